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

    The file's content decides the decoder (a JPEG named .png is read as a JPEG). 16-bit images are
    scaled to 8 bits with rounding (v * 255 / 65535), greyscale is expanded to RGB, palette images
    become RGB (RGBA with their transparency), EXIF orientation is applied.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            wide = _read_png16_colour(path, im)  # [H, W, 3|4] uint8, or None
            if wide is not None:
                turn = _EXIF_TURNS.get(im.getexif().get(0x0112))
                arr = np.array(Image.fromarray(wide).transpose(Image.Transpose(turn)) if turn is not None else wide)
            else:
                im = ImageOps.exif_transpose(im)
                im.load()
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale
                    grey = np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0.0, 1.0)
                    arr = np.repeat((grey * 255.0 + 0.5).astype(np.uint8)[..., None], 3, axis=-1)
                else:
                    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
                    im = im.convert("RGBA" if has_alpha else "RGB")
                    arr = np.array(im, dtype=np.uint8)  # writable: torch.from_numpy needs it
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _decode_error(path, e) from e
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise DataError(f"{path}: image of shape {arr.shape} is too small (needs at least 2x2 pixels); "
                        "re-export it larger or remove this frame")
    if arr.shape[-1] == 4:
        arr = premultiply(arr)
    return arr


# EXIF orientation -> the transpose that shows the image upright (as PIL.ImageOps.exif_transpose does)
_EXIF_TURNS = {2: 0, 3: 3, 4: 1, 5: 5, 6: 4, 7: 6, 8: 2}  # values of PIL.Image.Transpose


def _read_png16_colour(path: Path, im) -> np.ndarray | None:
    """uint8 [H, W, 3|4] of a 16-bit colour or grey+alpha PNG, rounded from all 16 bits; None for other files.

    Pillow has no 16-bit colour mode and keeps only the high byte of each sample (65280 -> 255 instead
    of 254). The file is decoded a second time with an unpacker that yields the other bytes - the
    little-endian one for RGB/RGBA (it picks the low bytes), plain 8-bit RGBA for grey+alpha (4 bytes
    a pixel: grey high, grey low, alpha high, alpha low) - and the samples are rebuilt from both.
    ``im``: the opened, not yet loaded, image.
    """
    from PIL import Image

    tile = getattr(im, "tile", None)
    if im.format != "PNG" or not tile or len({t.args for t in tile}) != 1:
        return None
    rawmode = tile[0].args
    if rawmode not in ("RGB;16B", "RGBA;16B", "LA;16B"):
        return None
    with Image.open(path) as second:
        second.tile = [t._replace(args="RGBA" if rawmode == "LA;16B" else rawmode[:-1] + "L") for t in second.tile]
        try:
            other = np.asarray(second, dtype=np.uint32)
        except (ValueError, OSError):  # no such unpacker in this Pillow: keep its 8-bit reading
            return None
    if rawmode == "LA;16B":
        grey = (other[..., 0] << 8) | other[..., 1]
        alpha = (other[..., 2] << 8) | other[..., 3]
        full = np.stack([grey, grey, grey, alpha], -1)  # [H, W, 4]
    else:
        full = (np.asarray(im, dtype=np.uint32) << 8) | other  # [H, W, C] 16-bit samples
    return ((full.astype(np.float64) * (255.0 / 65535.0)) + 0.5).astype(np.uint8)


def image_header(path: Path) -> tuple[int, int, bool]:
    """(width, height, has_alpha) of an image as loaded (EXIF orientation applied), from its header only."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    _check_file(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation with a 90-degree turn
                w, h = h, w
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise _decode_error(path, e) from e
    if w < 2 or h < 2:
        raise DataError(f"{path}: image is {w}x{h} pixels, too small (needs at least 2x2); re-export it larger "
                        "or remove this frame")
    return w, h, alpha


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an image file; point the dataset entry at the image")
    if not path.is_file():
        raise DataError(f"{path}: image file not found; check the file_path entries of the dataset")


def _decode_error(path: Path, e: Exception) -> DataError:
    """A read failure of the operating system (permissions, I/O) or an undecodable file, named with the fix."""
    if isinstance(e, OSError) and e.errno is not None:
        return DataError(f"{path}: cannot read ({e.strerror or e}); check the file's permissions and the disk")
    if isinstance(e, OSError) and "truncated" in str(e):
        return DataError(f"{path}: image file is truncated (its data ends early); copy it again, re-export it or "
                         "remove this frame")
    return DataError(f"{path}: cannot decode image ({e}); re-export or remove this frame")


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
    import io

    from .files import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[-1] == 1 else img).save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
