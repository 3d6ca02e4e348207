"""Random ray batches across all images of a split; images stay uint8 until a batch is drawn."""

from __future__ import annotations

import numpy as np
import torch

from ..cameras import generate_rays
from .images import load_image
from .scene import SceneData


class PixelBank:
    """All pixels of a set of views, flattened into one uint8 tensor [P, C] (C = 3 or 4).

    Views may differ in size. ``offsets`` [V+1] are the first pixel index of each view.
    """

    def __init__(self, scene: SceneData, views: list[int], progress=None, with_depth: bool = False) -> None:
        self.scene = scene
        self.views = list(views)
        chunks = []
        it = progress(self.views, desc="loading images", unit="img") if progress else self.views
        for v in it:
            img = load_image(scene.image_paths[v], scene.downscale)
            w, h = (int(s) for s in scene.sizes[v])
            if img.shape[:2] != (h, w):
                from ..errors import DataError

                raise DataError(f"{scene.image_paths[v]}: decoded to {img.shape[1]}x{img.shape[0]} but "
                                f"{w}x{h} was expected; all images must match their camera size")
            chunks.append(img.reshape(-1, img.shape[-1]))
        channels = {c.shape[-1] for c in chunks}
        if len(channels) > 1:  # mixed RGB / RGBA: give every image an alpha channel
            chunks = [c if c.shape[-1] == 4 else np.concatenate([c, np.full_like(c[:, :1], 255)], -1) for c in chunks]
        self.pixels = torch.from_numpy(np.concatenate(chunks, 0))  # [P, C] uint8
        sizes = scene.sizes[self.views]
        counts = sizes[:, 0] * sizes[:, 1]
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
        self.c2w = scene.c2w[self.views]
        self.intrinsics = scene.intrinsics[self.views]
        self.widths = sizes[:, 0]
        self.camera_model = scene.camera_model
        self.distortion = scene.distortion[self.views] if scene.distortion is not None else None
        # ground-truth z-depth per pixel [P] float32 (0 = none), in scene units
        self.depth = self._load_depth(scene) if with_depth else None

    def _load_depth(self, scene: SceneData) -> torch.Tensor:
        from ..errors import DataError
        from .depth import load_depth

        if scene.depth_paths is None:
            raise DataError(f"{scene.root}: depth supervision was asked for but this dataset has no depth maps; "
                            "drop --depth-weight")
        maps = []
        for v in self.views:
            w, h = (int(s) for s in scene.sizes[v])
            p = scene.depth_paths[v]
            maps.append(load_depth(p, w, h).reshape(-1) * scene.scale if p is not None else np.zeros(w * h, np.float32))
        return torch.from_numpy(np.concatenate(maps))
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[-1] == 4

    def rays(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rays and uint8 pixels for flat pixel indices ``idx`` [N]: origins, dirs [N, 3], pixels [N, C]."""
        view = torch.searchsorted(self.offsets, idx, right=True) - 1
        local = idx - self.offsets[view]
        w = self.widths[view]
        x, y = local % w, local // w
        dist = self.distortion[view] if self.distortion is not None else None
        origins, dirs = generate_rays(self.c2w[view], self.intrinsics[view], x, y, dist, self.camera_model)
        return origins, dirs, self.pixels[idx]

    def sample(self, n: int, generator: torch.Generator):
        """``n`` uniformly random pixels across all views (with replacement): origins, dirs [N, 3],
        pixels [N, C] and, when depth was loaded, the ground-truth distance along each ray [N] (0 = none).

        Pixels whose ray the lens model cannot produce (outside its valid region) are dropped,
        so a batch may hold slightly fewer than ``n`` rays.
        """
        idx = torch.randint(0, len(self), (n,), generator=generator)
        origins, dirs, pix = self.rays(idx)
        if self.distortion is not None:
            ok = torch.isfinite(dirs).all(-1)
            if not bool(ok.all()):
                origins, dirs, pix, idx = origins[ok], dirs[ok], pix[ok], idx[ok]
        if self.depth is None:
            return origins, dirs, pix
        view = torch.searchsorted(self.offsets, idx, right=True) - 1
        cos = (dirs * self.c2w[view][:, :3, 2]).sum(-1).clamp_min(1e-6)  # z-depth -> distance along the ray
        return origins, dirs, pix, self.depth[idx] / cos
