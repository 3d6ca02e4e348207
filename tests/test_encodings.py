"""Encoding modules: frequency (positional), spherical harmonics, hash grid."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.encodings import FrequencyEncoding, HashGridEncoding, SHEncoding, spherical_harmonics
from nerfkit.ops import hash_encode

# ---- frequency ----


def test_frequency_values_and_order():
    enc = FrequencyEncoding(3)
    x = torch.tensor([[0.1, -0.2, 0.3]])
    out = enc(x)
    assert enc.out_dim == 3 + 3 * 2 * 3 == out.shape[-1]
    expected = [x]
    for k in range(3):
        expected += [torch.sin(2.0**k * x), torch.cos(2.0**k * x)]
    torch.testing.assert_close(out, torch.cat(expected, dim=-1))


def test_frequency_without_input_and_batch_shape():
    enc = FrequencyEncoding(10, include_input=False)
    x = torch.rand(4, 5, 3)
    out = enc(x)
    assert out.shape == (4, 5, 60) and enc.out_dim == 60
    torch.testing.assert_close(out[..., 57:60], torch.cos(512.0 * x))  # last block: cos(2^9 x)
    assert FrequencyEncoding(0).out_dim == 3


def test_frequency_follows_dtype():
    out = FrequencyEncoding(4)(torch.rand(2, 3, dtype=torch.float64))
    assert out.dtype == torch.float64


# ---- spherical harmonics ----


def test_sh_output_size():
    d = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    assert SHEncoding(4)(d).shape == (7, 16) and SHEncoding(4).out_dim == 16
    for degree in range(1, 6):
        assert spherical_harmonics(d, degree).shape == (7, degree**2)
    with pytest.raises(ValueError):
        SHEncoding(6)


def test_sh_closed_form_at_axes():
    c0 = 0.5 / math.sqrt(math.pi)
    c1 = math.sqrt(3 / (4 * math.pi))
    c20 = 0.25 * math.sqrt(5 / math.pi)
    c30 = 0.25 * math.sqrt(7 / math.pi)
    axes = torch.eye(3, dtype=torch.float64)  # +x, +y, +z
    y = spherical_harmonics(axes, 4)
    torch.testing.assert_close(y[:, 0], torch.full((3,), c0, dtype=torch.float64))
    # band 1 is c1 * (-y, z, -x)
    torch.testing.assert_close(y[:, 1:4], c1 * torch.tensor([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=torch.float64))
    # m = 0 terms: c20 (3 z^2 - 1) and c30 z (5 z^2 - 3)
    torch.testing.assert_close(y[:, 6], c20 * torch.tensor([-1.0, -1.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(y[:, 12], c30 * torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    # x^2 - y^2 term is +c at +x, -c at +y
    c22 = 0.25 * math.sqrt(15 / math.pi)
    torch.testing.assert_close(y[:2, 8], torch.tensor([c22, -c22], dtype=torch.float64))


def test_sh_orthonormal_monte_carlo():
    # E[Y_i Y_j] over uniform unit directions = delta_ij / (4 pi)
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(torch.randn(400_000, 3, generator=g, dtype=torch.float64), dim=-1)
    y = spherical_harmonics(d, 5)
    gram = (y.t() @ y) / d.shape[0] * (4 * math.pi)
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), atol=0.02, rtol=0)


def test_sh_rotation_about_z_preserves_band_energy():
    # Each band spans a rotation-invariant subspace: its squared norm is unchanged by rotations.
    g = torch.Generator().manual_seed(1)
    d = torch.nn.functional.normalize(torch.randn(50, 3, generator=g, dtype=torch.float64), dim=-1)
    a = 0.7
    rot = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64)
    y0, y1 = spherical_harmonics(d, 5), spherical_harmonics(d @ rot.t(), 5)
    for band in range(5):
        s = slice(band**2, (band + 1) ** 2)
        torch.testing.assert_close((y0[:, s] ** 2).sum(-1), (y1[:, s] ** 2).sum(-1))


# ---- hash grid module ----


def test_hash_grid_module_shapes_init_and_grad():
    enc = HashGridEncoding(n_levels=4, n_features=2, log2_table_size=12, min_resolution=4, max_resolution=64)
    assert enc.table.shape == (4, 4096, 2) and enc.table.dtype == torch.float32
    assert enc.table.abs().max() <= 1e-4
    assert enc.resolutions.tolist()[0] == 4 and enc.resolutions.tolist()[-1] == 64
    assert "resolutions" not in enc.state_dict()
    x = torch.rand(2, 5, 3)
    out = enc(x)
    assert out.shape == (2, 5, 8) and enc.out_dim == 8
    torch.testing.assert_close(out.reshape(10, 8), hash_encode(x.reshape(10, 3), enc.table, enc.resolutions, "ref"))
    out.sum().backward()
    assert enc.table.grad is not None and enc.table.grad.shape == enc.table.shape
