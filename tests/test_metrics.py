"""Metrics against closed forms and scikit-image's reference SSIM."""

import math

import numpy as np
import pytest
import torch

from nerfkit.train.metrics import LPIPS, mse_to_psnr, psnr, ssim


def test_psnr_closed_form():
    a = torch.zeros(8, 8, 3)
    b = torch.full((8, 8, 3), 0.1)
    assert psnr(a, b) == pytest.approx(20.0, abs=1e-5)  # mse 0.01 -> 20 dB
    assert mse_to_psnr(1e-3) == pytest.approx(30.0)
    assert math.isinf(psnr(a, a))


def test_ssim_identity_and_reference():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 40, 3, generator=g)
    y = (x + 0.1 * torch.randn(48, 40, 3, generator=g)).clamp(0, 1)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-9)
    ref = metrics.structural_similarity(
        x.numpy().astype(np.float64), y.numpy().astype(np.float64), channel_axis=-1, data_range=1.0,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )
    assert ssim(x, y) == pytest.approx(ref, abs=1e-6)


def test_lpips_never_downloads():
    m = LPIPS()
    if not m.available:
        assert m(torch.zeros(8, 8, 3), torch.zeros(8, 8, 3)) is None
        assert m.reason
