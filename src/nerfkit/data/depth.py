"""Ground-truth depth maps: decoding and resampling to the image grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


def load_depth(path: Path, width: int, height: int) -> np.ndarray:
    """z-depth [height, width] float32 from a .npy or .exr file (0 = no depth), resized to the image.

    Depth maps smaller than the image (phone depth sensors) are upsampled bilinearly, except that
    a pixel next to a missing (0) value takes the nearest value, so no depth is invented across holes.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        try:
            d = np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read the depth map ({e}); re-export it") from e
    elif path.suffix.lower() == ".exr":
        from .record3d import read_depth_exr

        d = read_depth_exr(path)
    else:
        raise DataError(f"{path}: unknown depth file type; use .npy (float32 z-depth) or .exr")
    if d.ndim != 2:
        raise DataError(f"{path}: depth map has shape {d.shape}, expected [H, W]")
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)
    if d.shape != (height, width):
        t = torch.from_numpy(d)[None, None]
        lin = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
        near = F.interpolate(t, size=(height, width), mode="nearest")
        holes = F.interpolate((t == 0).float(), size=(height, width), mode="bilinear", align_corners=False) > 0
        d = torch.where(holes, near, lin)[0, 0].numpy()
    return d
