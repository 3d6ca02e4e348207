"""Pinhole intrinsics: focal lengths and principal point in pixels.

Pixel centres sit at +0.5: the pixel in column i, row j has its centre at (i + 0.5, j + 0.5).
A camera with the principal point in the middle of a W x H image has cx = W/2, cy = H/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import PoseError


def focal_from_fov(fov_rad: float, size_px: float) -> float:
    """Focal length in pixels for a full field of view ``fov_rad`` across ``size_px`` pixels."""
    if not (0.0 < fov_rad < math.pi):
        raise PoseError(f"field of view {fov_rad!r} rad is outside (0, pi); check camera_angle_x/y")
    return 0.5 * size_px / math.tan(0.5 * fov_rad)


def fov_from_focal(focal_px: float, size_px: float) -> float:
    """Full field of view in radians for a focal length in pixels."""
    return 2.0 * math.atan(0.5 * size_px / focal_px)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal lengths ``fx, fy`` and principal point ``cx, cy`` in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in vals):
            raise PoseError(f"intrinsics {vals} are not finite; fix the focal length / principal point")
        if self.fx <= 0 or self.fy <= 0:
            raise PoseError(f"focal length ({self.fx}, {self.fy}) must be positive")
        if self.width < 1 or self.height < 1:
            raise PoseError(f"image size {self.width}x{self.height} is empty")

    @classmethod
    def from_fov(cls, fov_x: float, width: int, height: int, fov_y: float | None = None) -> "Intrinsics":
        """Centred camera from its horizontal (and optionally vertical) field of view in radians."""
        fx = focal_from_fov(fov_x, width)
        fy = focal_from_fov(fov_y, height) if fov_y is not None else fx
        return cls(fx, fy, width / 2.0, height / 2.0, int(width), int(height))

    def scaled(self, factor: float) -> "Intrinsics":
        """Intrinsics of the image resized by ``factor`` (0.25 for a 4x downscale).

        Pixel edges scale, so the principal point scales with them (centres at +0.5 stay consistent).
        """
        w, h = int(round(self.width * factor)), int(round(self.height * factor))
        return Intrinsics(self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor, w, h)

    def matrix(self) -> torch.Tensor:
        """3x3 calibration matrix K (float32)."""
        return torch.tensor([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def as_tensor(self) -> torch.Tensor:
        """[4] tensor (fx, fy, cx, cy), float32."""
        return torch.tensor([self.fx, self.fy, self.cx, self.cy], dtype=torch.float32)
