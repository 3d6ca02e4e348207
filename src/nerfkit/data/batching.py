"""Random ray batches across the images of a split, within a memory budget.

Two banks with one interface (``sample``, ``set_step``, ``has_alpha``):

- :class:`PixelBank` decodes every image once and keeps all pixels in one uint8 tensor; batches are
  uniform over every pixel of the split. Used when the decoded images fit the budget.
- :class:`StreamingPixelBank` keeps a working set of ``slots`` images (as many as fit the budget)
  and replaces a few of them every ``refresh_every`` steps, decoding the next ones on a background
  thread. Batches are uniform over the pixels of the working set. Which images are in the working
  set is a pure function of the seed and the step, so a resumed run sees exactly the images an
  uninterrupted one sees.

:func:`make_pixel_bank` picks one and explains the choice.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..cameras import generate_rays
from ..errors import ConfigError, DataError
from .images import load_image
from .scene import SceneData

AUTO_FRACTION = 0.25
"""``--image-memory auto`` allows this fraction of the machine's physical memory for images."""

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "t": 1000**4, "tb": 1000**4, "tib": 1024**4}


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where it cannot be read."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def parse_memory(spec: str | int | float | None) -> int:
    """'auto' (or None), '2GiB', '512MB', '1.5g' or a number of bytes -> bytes."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        total = physical_memory()
        return int(AUTO_FRACTION * total) if total else 4 * 1024**3
    if isinstance(spec, (int, float)):
        value = float(spec)
    else:
        import re

        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", spec)
        if not m or m.group(2).lower() not in _UNITS:
            raise ConfigError(f"cannot read image memory '{spec}'; write e.g. auto, 2GiB or 512MB")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ConfigError(f"image memory must be positive, got '{spec}'")
    return int(value)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _fit(img: np.ndarray, channels: int) -> np.ndarray:
    """An image [H, W, 3|4] with ``channels`` channels: alpha added as opaque, or composited over white."""
    if img.shape[-1] == channels:
        return img
    if channels == 4:
        return np.concatenate([img, np.full_like(img[..., :1], 255)], -1)
    a = img[..., 3:4].astype(np.uint16)
    return (img[..., :3].astype(np.uint16) + (255 - a)).clip(0, 255).astype(np.uint8)  # premultiplied over white


class _Bank:
    """What both banks share: per-view cameras, image decoding and ray generation."""

    def __init__(self, scene: SceneData, views: list[int], with_depth: bool) -> None:
        self.scene = scene
        self.views = list(views)
        sizes = scene.sizes[self.views]
        self.widths = sizes[:, 0]
        self.pixel_counts = sizes[:, 0] * sizes[:, 1]  # [V]
        self.c2w = scene.c2w[self.views]
        self.intrinsics = scene.intrinsics[self.views]
        self.camera_model = scene.camera_model
        self.distortion = scene.distortion[self.views] if scene.distortion is not None else None
        if with_depth and scene.depth_paths is None:
            raise DataError(f"{scene.root}: depth supervision was asked for but this dataset has no depth maps; "
                            "drop --depth-weight")
        self.with_depth = with_depth

    def _decode(self, vi: int) -> np.ndarray:
        """Pixels [h*w, C] of the ``vi``-th view of the bank, checked against its camera size."""
        path = self.scene.image_paths[self.views[vi]]
        img = load_image(path, self.scene.downscale)
        w, h = (int(s) for s in self.scene.sizes[self.views[vi]])
        if img.shape[:2] != (h, w):
            raise DataError(f"{path}: decoded to {img.shape[1]}x{img.shape[0]} but {w}x{h} was expected; "
                            "all images must match their camera size")
        return img.reshape(-1, img.shape[-1])

    def _decode_depth(self, vi: int) -> np.ndarray:
        """Ground-truth z-depth [h*w] float32 of the ``vi``-th view (0 = none), in scene units."""
        from .depth import load_depth

        v = self.views[vi]
        w, h = (int(s) for s in self.scene.sizes[v])
        p = self.scene.depth_paths[v]
        if p is None:
            return np.zeros(w * h, np.float32)
        return load_depth(p, w, h).reshape(-1) * self.scene.scale

    def _rays(self, vi: torch.Tensor, local: torch.Tensor):
        """Rays of pixels ``local`` [N] (row-major index within the image) of bank views ``vi`` [N]."""
        w = self.widths[vi]
        x, y = local % w, local // w
        dist = self.distortion[vi] if self.distortion is not None else None
        return generate_rays(self.c2w[vi], self.intrinsics[vi], x, y, dist, self.camera_model)

    def _finish(self, vi, origins, dirs, pix, depth):
        """Drop rays the lens model cannot produce; turn z-depth into distance along each ray."""
        if self.distortion is not None:
            ok = torch.isfinite(dirs).all(-1)
            if not bool(ok.all()):
                origins, dirs, pix, vi = origins[ok], dirs[ok], pix[ok], vi[ok]
                depth = depth[ok] if depth is not None else None
        if depth is None:
            return origins, dirs, pix
        cos = (dirs * self.c2w[vi][:, :3, 2]).sum(-1).clamp_min(1e-6)  # z-depth -> distance along the ray
        return origins, dirs, pix, depth / cos

    def set_step(self, step: int) -> None:
        """Called before each training step (the streaming bank refreshes its working set here)."""

    def close(self) -> None:
        """Stop background work."""


class PixelBank(_Bank):
    """All pixels of a set of views in one uint8 tensor [P, C] (C = 3, or 4 when any image has alpha).

    Views may differ in size. ``offsets`` [V+1] are the first pixel index of each view. The tensor is
    allocated once and filled image by image, so decoding never holds two copies of the pixels.
    """

    def __init__(self, scene: SceneData, views: list[int], progress=None, with_depth: bool = False,
                 channels: int | None = None) -> None:
        super().__init__(scene, views, with_depth)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(self.pixel_counts, 0)])
        total = int(self.offsets[-1])
        it = progress(range(len(self.views)), desc="loading images", unit="img") if progress else range(len(self.views))
        self.pixels = None
        for vi in it:
            img = self._decode(vi)
            if self.pixels is None:
                c = channels or (4 if scene.has_alpha else img.shape[-1])
                self.pixels = torch.empty(total, c, dtype=torch.uint8)  # [P, C]
            elif img.shape[-1] == 4 and self.pixels.shape[-1] == 3 and channels is None:
                # an image with alpha after RGB ones: give every image an alpha channel
                self.pixels = torch.cat([self.pixels, torch.full_like(self.pixels[:, :1], 255)], -1)
            a, b = int(self.offsets[vi]), int(self.offsets[vi + 1])
            self.pixels[a:b] = torch.from_numpy(_fit(img, self.pixels.shape[-1]))
        # ground-truth z-depth per pixel [P] float32 (0 = none), in scene units
        self.depth = (torch.from_numpy(np.concatenate([self._decode_depth(vi) for vi in range(len(self.views))]))
                      if with_depth else None)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[-1] == 4

    def rays(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rays and uint8 pixels for flat pixel indices ``idx`` [N]: origins, dirs [N, 3], pixels [N, C]."""
        vi = torch.searchsorted(self.offsets, idx, right=True) - 1
        origins, dirs = self._rays(vi, idx - self.offsets[vi])
        return origins, dirs, self.pixels[idx]

    def sample(self, n: int, generator: torch.Generator):
        """``n`` uniformly random pixels across all views (with replacement): origins, dirs [N, 3],
        pixels [N, C] and, when depth was loaded, the ground-truth distance along each ray [N] (0 = none).

        Pixels whose ray the lens model cannot produce (outside its valid region) are dropped,
        so a batch may hold slightly fewer than ``n`` rays.
        """
        idx = torch.randint(0, len(self), (n,), generator=generator)
        vi = torch.searchsorted(self.offsets, idx, right=True) - 1
        origins, dirs = self._rays(vi, idx - self.offsets[vi])
        depth = self.depth[idx] if self.depth is not None else None
        return self._finish(vi, origins, dirs, self.pixels[idx], depth)


class StreamingPixelBank(_Bank):
    """A rotating working set of ``slots`` decoded images out of a split too large to hold in memory.

    The images are visited in a sequence of seeded random permutations of the split (one per pass).
    At refresh ``r = step // refresh_every`` the working set holds sequence positions
    ``[r * swap, r * swap + slots)``; position ``p`` lives in slot ``p % slots``, so a refresh replaces
    ``swap`` slots in place and a resumed run rebuilds the same layout.
    """

    def __init__(self, scene: SceneData, views: list[int], slots: int, seed: int = 0, refresh_every: int = 50,
                 swap: int | None = None, channels: int | None = None, with_depth: bool = False,
                 progress=None, prefetch: bool = True) -> None:
        super().__init__(scene, views, with_depth)
        n = len(self.views)
        if not 1 <= slots < n:
            raise ValueError(f"slots must be in [1, {n - 1}], got {slots}")
        self.slots, self.seed, self.refresh_every = int(slots), int(seed), int(refresh_every)
        self.swap = int(swap) if swap else max(1, math.ceil(self.slots / 8))
        self.slot_pixels = int(self.pixel_counts.max())
        c = channels or (4 if scene.has_alpha else 3)
        self.pixels = torch.zeros(self.slots * self.slot_pixels, c, dtype=torch.uint8)  # [K * maxpx, C]
        self.depth = torch.zeros(self.slots * self.slot_pixels) if with_depth else None
        self.slot_view = torch.full((self.slots,), -1, dtype=torch.int64)  # bank view index per slot
        self.refresh = -1
        self._perms: dict[int, torch.Tensor] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="nerfkit-images") if prefetch else None
        self._pending = None  # (refresh index, future of decoded images)
        self._progress = progress

    # --- the schedule ---------------------------------------------------------------------------
    def view_at(self, position: int) -> int:
        """Bank view index at a position of the visiting sequence."""
        n = len(self.views)
        epoch, k = divmod(position, n)
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perms = {epoch: torch.randperm(n, generator=g)}  # one pass at a time is enough
        return int(self._perms[epoch][k])

    def window(self, refresh: int) -> list[tuple[int, int]]:
        """(slot, view) of every slot at refresh ``refresh``."""
        start = refresh * self.swap
        return [(p % self.slots, self.view_at(p)) for p in range(start, start + self.slots)]

    def incoming(self, refresh: int) -> list[tuple[int, int]]:
        """(slot, view) pairs that refresh ``refresh`` (> 0) brings in."""
        start = (refresh - 1) * self.swap + self.slots
        return [(p % self.slots, self.view_at(p)) for p in range(start, start + self.swap)]

    # --- loading --------------------------------------------------------------------------------
    def _load(self, pairs) -> list[tuple[int, int, np.ndarray, np.ndarray | None]]:
        return [(s, v, _fit(self._decode(v), self.pixels.shape[-1]), self._decode_depth(v) if self.with_depth else None)
                for s, v in pairs]

    def _store(self, loaded) -> None:
        for s, v, pix, depth in loaded:
            a = s * self.slot_pixels
            self.pixels[a:a + pix.shape[0]] = torch.from_numpy(pix)
            if depth is not None:
                self.depth[a:a + depth.shape[0]] = torch.from_numpy(depth)
            self.slot_view[s] = v
        counts = self.pixel_counts[self.slot_view]
        self._cum = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])  # [K+1]

    def set_step(self, step: int) -> None:
        r = step // self.refresh_every
        if r == self.refresh:
            return
        if r == self.refresh + 1 and self.refresh >= 0:
            if self._pending is not None and self._pending[0] == r:
                loaded = self._pending[1].result()
            else:
                loaded = self._load(self.incoming(r))
        else:  # first call or a jump (resume): build the whole window
            pairs = self.window(r)
            if self._progress:
                pairs = self._progress(pairs, desc="loading images", unit="img")
            loaded = self._load(pairs)
        self._pending = None
        self._store(loaded)
        self.refresh = r
        if self._pool is not None:  # decode the next refresh's images while training runs
            self._pending = (r + 1, self._pool.submit(self._load, self.incoming(r + 1)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending = None

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[-1] == 4

    def __len__(self) -> int:
        return int(self._cum[-1])

    def sample(self, n: int, generator: torch.Generator):
        """``n`` uniformly random pixels of the working set; the same outputs as :meth:`PixelBank.sample`."""
        if self.refresh < 0:
            self.set_step(0)
        idx = torch.randint(0, int(self._cum[-1]), (n,), generator=generator)
        slot = torch.searchsorted(self._cum, idx, right=True) - 1
        local = idx - self._cum[slot]
        flat = slot * self.slot_pixels + local
        vi = self.slot_view[slot]
        origins, dirs = self._rays(vi, local)
        depth = self.depth[flat] if self.depth is not None else None
        return self._finish(vi, origins, dirs, self.pixels[flat], depth)


def make_pixel_bank(scene: SceneData, views: list[int], memory: str | int | None = "auto", seed: int = 0,
                    progress=None, with_depth: bool = False, log=None):
    """The bank for ``views``: all images in memory when they fit ``memory`` (see :func:`parse_memory`),
    otherwise a :class:`StreamingPixelBank` with as many images as fit. ``log(text)`` receives the
    explanation when streaming is chosen (default: stderr)."""
    budget = parse_memory(memory)
    c = 4 if scene.has_alpha else 3
    per_pixel = c + (4 if with_depth else 0)
    counts = scene.sizes[views][:, 0] * scene.sizes[views][:, 1]
    need = int(counts.sum()) * per_pixel
    if need <= budget:
        return PixelBank(scene, views, progress=progress, with_depth=with_depth)
    per_image = int(counts.max()) * per_pixel
    slots = int(budget * 8 / 9) // per_image  # 1/9 of the budget for the images decoded ahead
    w, h = (int(s) for s in scene.sizes[views][int(counts.argmax())])
    if slots < 2:
        raise ConfigError(f"{scene.root}: one {w}x{h} image needs {format_bytes(per_image)}, more than the image "
                          f"memory budget {format_bytes(budget)} allows for streaming; raise --image-memory or "
                          "reduce the images with --downscale")
    fit = math.ceil(math.sqrt(need / budget) * 100) / 100
    bank = StreamingPixelBank(scene, views, slots=slots, seed=seed, channels=c, with_depth=with_depth, progress=progress)
    text = (f"note: the {len(views)} training images decode to {format_bytes(need)}, more than the image memory "
            f"budget of {format_bytes(budget)} (--image-memory); streaming them: {slots} images in memory, "
            f"{bank.swap} replaced every {bank.refresh_every} steps. To hold all of them instead, raise "
            f"--image-memory or pass --downscale {fit:g}.")
    (log or (lambda t: print(t, file=sys.stderr)))(text)
    return bank
