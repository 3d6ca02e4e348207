"""Reader for the NeRF Blender format: ``transforms_{train,val,test}.json`` + RGBA PNGs.

Poses in the files are camera-to-world with OpenGL camera axes (y up, z backward); the world
frame has +z up. Objects sit inside [-1.5, 1.5]^3 and cameras at distance ~4, so rays run from
near=2 to far=6 as in the NeRF paper.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from ..cameras import check_rigid, focal_from_fov, opengl_to_opencv
from ..errors import DataError, PoseError
from .files import read_json_object
from .images import image_header
from .scene import SceneData

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = ("", ".png", ".PNG", ".jpg", ".jpeg", ".JPG")


def _load_json(path: Path) -> dict:
    meta = read_json_object(path, "an object with a 'frames' list (is this a Blender transforms file?)")
    if not isinstance(meta.get("frames"), list):
        raise DataError(f"{path}: expected a JSON object with a 'frames' list; is this a Blender transforms file?")
    return meta


def resolve_image(root: Path, file_path: str, json_path: Path) -> Path | None:
    """The image a ``file_path`` entry names (extension optional), or None when no file exists.

    Paths that escape the dataset folder are rejected.
    """
    # normpath, not resolve: a symlinked image folder is fine, a '../' escape is not
    base = Path(os.path.normpath(root.absolute() / file_path))
    if not base.is_relative_to(Path(os.path.normpath(root.absolute()))):
        raise DataError(f"{json_path}: file_path '{file_path}' points outside the dataset folder {root}; "
                        "use paths relative to the folder")
    for suffix in IMAGE_SUFFIXES:
        cand = base.with_name(base.name + suffix) if suffix else base
        if cand.is_file():
            return cand
    return None


def read_blender(root: str | Path, downscale: float = 1.0, splits=SPLITS) -> SceneData:
    """Read a Blender-format scene folder.

    ``downscale``: images are area-filtered down by this factor when loaded (intrinsics follow).
    Frames whose image file is missing are skipped with one warning per split giving the count.
    Split files other than train may be absent.
    """
    root = Path(root)
    if downscale < 1:
        raise DataError(f"downscale must be >= 1, got {downscale}")
    paths: list[Path] = []
    poses: list[torch.Tensor] = []
    focals: list[float] = []
    depth_paths: list[Path | None] = []
    split_idx: dict[str, list[int]] = {}
    size: tuple[int, int] | None = None
    size_src: Path | None = None
    for split in splits:
        jpath = root / f"transforms_{split}.json"
        if not jpath.is_file():
            if split == "train":
                raise DataError(f"{jpath}: not found; a Blender scene needs transforms_train.json "
                                "(is --data pointing at the scene folder?)")
            split_idx[split] = []
            continue
        meta = _load_json(jpath)
        try:
            fov = float(meta["camera_angle_x"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{jpath}: missing or invalid 'camera_angle_x' (horizontal field of view in radians)")
        if not math.isfinite(fov) or not 0 < fov < math.pi:
            raise PoseError(f"{jpath}: camera_angle_x={fov} is not a field of view in (0, pi) radians")
        missing = 0
        idx = []
        for k, frame in enumerate(meta["frames"]):
            if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
                raise DataError(f"{jpath}: frame #{k} needs 'file_path' and 'transform_matrix'")
            img = resolve_image(root, str(frame["file_path"]), jpath)
            if img is None:
                missing += 1
                continue
            try:
                mat = torch.tensor(frame["transform_matrix"], dtype=torch.float64)
            except (TypeError, ValueError):
                raise DataError(f"{jpath}: frame #{k} transform_matrix is not a 4x4 list of numbers")
            if mat.shape not in ((4, 4), (3, 4)):
                raise DataError(f"{jpath}: frame #{k} transform_matrix has shape {tuple(mat.shape)}, expected 4x4")
            poses.append(check_rigid(mat, f"{jpath} frame #{k} ({frame['file_path']})"))
            wh = image_header(img)[:2]
            if size is None:
                size, size_src = wh, img
            elif wh != size:
                raise DataError(f"{img}: image is {wh[0]}x{wh[1]} but {size_src} is {size[0]}x{size[1]}; "
                                "all images of a Blender scene must share one size")
            focals.append(focal_from_fov(fov, wh[0]))
            dpath = img.with_name(img.stem + "_depth.npy")
            depth_paths.append(dpath if dpath.is_file() else None)
            idx.append(len(paths))
            paths.append(img)
        if missing:
            warnings.warn(f"{jpath}: {missing} of {len(meta['frames'])} frames have no image file and were skipped",
                          stacklevel=2)
        split_idx[split] = idx
    if not paths:
        raise DataError(f"{root}: no frames with existing images; check the file_path entries")
    assert size is not None
    w, h = size
    out_w, out_h = max(1, int(round(w / downscale))), max(1, int(round(h / downscale)))
    sx, sy = out_w / w, out_h / h
    f = torch.tensor(focals, dtype=torch.float32)
    intr = torch.stack([f * sx, f * sy, torch.full_like(f, w / 2 * sx), torch.full_like(f, h / 2 * sy)], -1)
    c2w = opengl_to_opencv(torch.stack(poses))  # Blender files use OpenGL camera axes
    return SceneData(
        root=root, format="blender", image_paths=paths, intrinsics=intr,
        sizes=torch.tensor([[out_w, out_h]] * len(paths), dtype=torch.int64), c2w=c2w, splits=split_idx,
        aabb=torch.tensor([[-1.5, -1.5, -1.5], [1.5, 1.5, 1.5]]), near=2.0, far=6.0,
        downscale=downscale, depth_paths=depth_paths if any(d is not None for d in depth_paths) else None,
        has_alpha=True,
    )
