"""Pictures people look at: comparison strips, error maps, depth colouring."""

from __future__ import annotations

import numpy as np
import torch

# anchor colours of a perceptually ordered map (dark blue -> teal -> yellow), interpolated linearly
_ANCHORS = torch.tensor([[0.05, 0.03, 0.25], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.45, 0.80, 0.35],
                         [0.99, 0.91, 0.15]])


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] [...] to RGB [..., 3]."""
    v = values.clamp(0, 1) * (len(_ANCHORS) - 1)
    i0 = v.floor().long().clamp(max=len(_ANCHORS) - 2)
    f = (v - i0)[..., None]
    return _ANCHORS[i0] * (1 - f) + _ANCHORS[i0 + 1] * f


def depth_to_rgb(depth: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Colour a depth map [H, W]: near = bright, far = dark; invalid (zero) pixels black."""
    valid = depth > 0 if valid is None else valid
    if valid.any():
        lo, hi = torch.quantile(depth[valid], 0.01), torch.quantile(depth[valid], 0.99)
        norm = 1.0 - (depth - lo) / (hi - lo).clamp_min(1e-6)
    else:
        norm = torch.zeros_like(depth)
    rgb = colormap(norm)
    return torch.where(valid[..., None], rgb, torch.zeros_like(rgb))


def error_map(pred: torch.Tensor, gt: torch.Tensor, max_err: float = 0.25) -> torch.Tensor:
    """Per-pixel absolute error (mean over channels), scaled so ``max_err`` is the top colour."""
    err = (pred - gt).abs().mean(-1) / max_err
    return colormap(err)


def comparison_strip(gt: torch.Tensor, pred: torch.Tensor, depth: torch.Tensor | None = None,
                     opacity: torch.Tensor | None = None) -> np.ndarray:
    """[H, W*k, 3] uint8: ground truth | render | error map (| depth, shown where opacity > 0.5)."""
    panels = [gt.clamp(0, 1), pred.clamp(0, 1), error_map(pred.clamp(0, 1), gt)]
    if depth is not None:
        valid = None if opacity is None else opacity > 0.5
        d = depth if opacity is None else depth / opacity.clamp_min(1e-6)  # depth of the visible surface
        panels.append(depth_to_rgb(d, valid))
    img = torch.cat(panels, dim=1)
    return (img.numpy() * 255.0 + 0.5).astype(np.uint8)
