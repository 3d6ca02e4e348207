"""SceneData: what every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class SceneData:
    """A posed image collection, in nerfkit conventions.

    Attributes (V views):
      image_paths: [V] image files.
      intrinsics: [V, 4] float32 (fx, fy, cx, cy) in pixels of the *loaded* (downscaled) images.
      sizes: [V, 2] int64 (width, height) of the loaded images.
      c2w: [V, 4, 4] float32 camera-to-world, OpenCV camera axes, in the normalised scene frame.
      splits: split name -> list of view indices ("train", "val", "test").
      aabb: [2, 3] scene box (min, max corner) that holds the content.
      near, far: ray bounds used by samplers that do not march the box.
      world_transform: [4, 4] the transform applied to the file's poses (file frame -> scene frame);
        points in the scene frame map back with its inverse.
      scale: the uniform scale part of ``world_transform`` (1.0 when none was applied).
      downscale: factor the images were reduced by when loaded.
      depth_paths: optional [V] ground-truth depth files, z-depth along the optical axis in the file's
        units (0 where the ray hits nothing): float32 .npy at image size (synthetic scene) or EXR at
        the sensor's depth size (Record3D, metres); or None.
      has_alpha: images carry an alpha channel (transparent background, composited at batch time).
      camera_model: lens model of every view, a name of ``nerfkit.cameras.DISTORTION_MODELS``
        ("pinhole" when the images are undistorted).
      distortion: [V, P] float32 distortion coefficients of ``camera_model`` (P may be 0).
      mask_paths: optional [V] masks (non-zero = pixel may train), or None.
    """

    root: Path
    format: str
    image_paths: list[Path]
    intrinsics: torch.Tensor
    sizes: torch.Tensor
    c2w: torch.Tensor
    splits: dict[str, list[int]]
    aabb: torch.Tensor
    near: float
    far: float
    world_transform: torch.Tensor = field(default_factory=lambda: torch.eye(4))
    scale: float = 1.0
    downscale: float = 1.0
    depth_paths: list[Path | None] | None = None
    has_alpha: bool = False
    camera_model: str = "pinhole"
    distortion: torch.Tensor | None = None
    mask_paths: list[Path | None] | None = None

    def __len__(self) -> int:
        return len(self.image_paths)

    def split(self, name: str) -> list[int]:
        """View indices of a split; raises a clear error when the split is absent or empty."""
        from ..errors import DataError

        idx = self.splits.get(name)
        if not idx:
            have = ", ".join(f"{k} ({len(v)})" for k, v in self.splits.items() if v) or "none"
            hint = f" (e.g. transforms_{name}.json of a Blender scene)" if self.format == "blender" else ""
            raise DataError(f"{self.root}: split '{name}' has no images (splits present: {have}); add its views "
                            f"to the dataset{hint} or use one of the splits present")
        return idx
