"""Turning ``render_image`` outputs into pictures, and the crop box."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .. import fields as _fields

OUTPUTS = ("rgb", "depth", "opacity")

# a dark-blue -> purple -> orange -> pale-yellow ramp for depth (near = bright)
_RAMP = np.array([[0.05, 0.03, 0.20], [0.35, 0.10, 0.50], [0.80, 0.25, 0.35], [0.98, 0.60, 0.15],
                  [1.00, 0.95, 0.70]], dtype=np.float32)


def _ramp(v: np.ndarray) -> np.ndarray:
    """Values in [0, 1] [H, W] -> colours [H, W, 3] by piecewise-linear interpolation of ``_RAMP``."""
    x = np.clip(v, 0.0, 1.0) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(np.int64), len(_RAMP) - 2)
    t = (x - i)[..., None]
    return _RAMP[i] * (1.0 - t) + _RAMP[i + 1] * t


def colorize(out: dict, output: str) -> np.ndarray:
    """One output of :func:`nerfkit.render.render_image` as a uint8 picture [H, W, 3].

    rgb: as rendered. opacity: grey levels. depth: normalised between the 2nd and 98th percentile
    of the depth of opaque pixels (opacity > 0.5), near = bright, faded out by opacity.
    """
    if output == "rgb":
        img = out["rgb"].clamp(0, 1).numpy()
    elif output == "opacity":
        img = np.repeat(out["opacity"].clamp(0, 1).numpy()[..., None], 3, -1)
    elif output == "depth":
        depth, alpha = out["depth"].numpy(), out["opacity"].clamp(0, 1).numpy()
        solid = depth[alpha > 0.5]
        lo, hi = (np.percentile(solid, [2.0, 98.0]) if solid.size else (0.0, 1.0))
        v = 1.0 - (depth - lo) / max(float(hi - lo), 1e-6)
        img = _ramp(v) * alpha[..., None]
    else:
        raise ValueError(f"unknown output '{output}'; choose one of {', '.join(OUTPUTS)}")
    return (img * 255.0 + 0.5).astype(np.uint8)


def _field_types() -> tuple[type, ...]:
    return tuple(getattr(_fields, n) for n in _fields.__all__)


@contextmanager
def crop_fields(model: torch.nn.Module, box_min, box_max):
    """Inside this block every field of ``model`` has zero density outside the box [min, max] (scene frame).

    Works for every method without touching it: a forward hook on each field module (``Field(points,
    dirs) -> (sigma, rgb)``) masks sigma by the points' box test. Rendering only; removed on exit.
    """
    lo = torch.as_tensor(np.asarray(box_min, dtype=np.float32))
    hi = torch.as_tensor(np.asarray(box_max, dtype=np.float32))

    def hook(_module, inputs, output):
        pts = inputs[0]  # [P, 3]
        sigma, rgb = output
        inside = ((pts >= lo.to(pts.device)) & (pts <= hi.to(pts.device))).all(-1)  # [P]
        return sigma * inside.reshape(sigma.shape).to(sigma.dtype), rgb

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _field_types())]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
