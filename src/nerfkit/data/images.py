"""Image decoding, area downscaling and background compositing.

Images are held as uint8. Images with alpha are stored *premultiplied* (colour already multiplied by
alpha) so that area downscaling is exact and compositing over any background ``bg`` is
``rgb_premultiplied + (1 - alpha) * bg``, the same as compositing first and downscaling after.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError


def read_image(path: Path) -> np.ndarray:
    """Decode an image file to uint8 [H, W, 3|4]; alpha images come back premultiplied.

    16-bit images are reduced to 8 bits, greyscale is expanded to RGB, EXIF rotation is applied.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the file_path entries of the dataset")
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64) / 65535.0
                arr = np.repeat((arr * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
                return arr
            has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            arr = np.array(im, dtype=np.uint8)  # writable: torch.from_numpy needs it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot decode image ({e}); re-export or remove this frame") from e
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise DataError(f"{path}: image of shape {arr.shape} is too small (needs at least 2x2)")
    if arr.shape[-1] == 4:
        arr = premultiply(arr)
    return arr


def image_header(path: Path) -> tuple[int, int, bool]:
    """(width, height, has_alpha) of an image as loaded (EXIF orientation applied), from its header only."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation with a 90-degree turn
                w, h = h, w
            return w, h, im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: cannot decode image ({e}); re-export or remove this frame") from e


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """uint8 straight-alpha RGBA -> uint8 premultiplied RGBA."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba.copy()
    out[..., :3] = np.clip(rgba[..., :3].astype(np.float32) * a + 0.5, 0, 255).astype(np.uint8)
    return out


def downscale_image(img: np.ndarray, factor: float) -> np.ndarray:
    """Area (box) filter an image [H, W, C] uint8 down by ``factor`` (>= 1). Output size is rounded."""
    if factor == 1:
        return img
    h, w = img.shape[:2]
    out_h, out_w = max(1, int(round(h / factor))), max(1, int(round(w / factor)))
    t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    t = F.interpolate(t, size=(out_h, out_w), mode="area")
    return t[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def load_image(path: Path, downscale: float = 1.0) -> np.ndarray:
    """Read and downscale one image: uint8 [H, W, 3|4] (alpha premultiplied)."""
    return downscale_image(read_image(path), downscale)


def composite(pixels: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
    """uint8 or float pixels [..., 3|4] -> float RGB [..., 3] in [0, 1] over ``background`` [..., 3].

    Premultiplied alpha: out = rgb + (1 - alpha) * background. Pixels without alpha pass through.
    """
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels
    if x.shape[-1] == 3:
        return x
    rgb, alpha = x[..., :3], x[..., 3:4]
    if background is None:
        return rgb
    return rgb + (1.0 - alpha) * background


def background_color(name: str, shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Background colours [*shape, 3]: 'white', 'black' or 'random' (uniform per ray)."""
    if name == "white":
        return torch.ones(*shape, 3, device=device)
    if name == "black":
        return torch.zeros(*shape, 3, device=device)
    if name == "random":
        return torch.rand(*shape, 3, generator=generator, device=device)
    from ..errors import ConfigError

    raise ConfigError(f"unknown background '{name}'; use white, black or random")


def save_png(path: Path, img: np.ndarray) -> None:
    """Write a uint8 [H, W, C] (or float in [0, 1]) image atomically (temp file then rename)."""
    from PIL import Image

    if img.dtype != np.uint8:
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img).save(tmp, format="PNG")
    tmp.replace(path)
