"""Image quality metrics: PSNR, SSIM (Gaussian 11x11, sigma 1.5) and optional LPIPS.

Images are float tensors in [0, 1] of shape [H, W, 3] (or [B, H, W, 3]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mse_to_psnr(mse: float | torch.Tensor) -> float:
    """PSNR in dB for a mean squared error on a [0, 1] scale."""
    mse = float(mse)
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) between two images with values in [0, 1]."""
    return mse_to_psnr(torch.mean((pred.float() - target.float()) ** 2))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window, data range 1.

    Computed per channel over the 'valid' region (no padding), as the NeRF papers' evaluation code
    and scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` (which crops the borders) do.
    """
    x = pred.float()
    y = target.float()
    if x.dim() == 3:
        x, y = x[None], y[None]
    x = x.permute(0, 3, 1, 2).double()
    y = y.permute(0, 3, 1, 2).double()
    c = x.shape[1]
    w = _gaussian_window(window, sigma, c, x.device, x.dtype)

    def filt(z):
        return F.conv2d(z, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x**2
    syy = filt(y * y) - mu_y**2
    sxy = filt(x * y) - mu_x * mu_y
    c1, c2 = k1**2, k2**2
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    return float((num / den).mean())


class LPIPS:
    """LPIPS (VGG) when the ``lpips`` package and its backbone weights are available locally.

    Never downloads: if the weights are not already cached, ``available`` is False and
    :meth:`__call__` returns None. ``reason`` says why it is unavailable.
    """

    def __init__(self, net: str = "vgg") -> None:
        self.model = None
        self.reason = ""
        try:
            import lpips  # noqa: F401  (optional dependency)
        except Exception as e:  # ImportError, or a broken torchvision beside it
            self.reason = f"lpips package not importable ({type(e).__name__}); pip install 'nerfkit[lpips]'"
            return
        try:
            import torch.hub

            # torchvision fetches backbone weights into the hub cache; refuse to download
            hub_dir = torch.hub.get_dir()
            import os

            ckpts = os.path.join(hub_dir, "checkpoints")
            if not os.path.isdir(ckpts) or not any(n.startswith(net) for n in os.listdir(ckpts)):
                self.reason = f"{net} backbone weights not in {ckpts} (never downloaded at run time)"
                return
            self.model = lpips.LPIPS(net=net, verbose=False).eval()
        except Exception as e:
            self.reason = f"LPIPS failed to load: {e}"
            self.model = None

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> float | None:
        if self.model is None:
            return None
        a = pred.float().permute(2, 0, 1)[None] * 2 - 1
        b = target.float().permute(2, 0, 1)[None] * 2 - 1
        return float(self.model(a.cpu(), b.cpu()))
