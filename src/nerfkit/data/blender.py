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
        raise DataError(f"{path}: no 'frames' list (each frame a file_path and a transform_matrix); fix the file, "
                        "or check that --data points at the scene folder")
    return meta


def resolve_image(root: Path, file_path: str, json_path: Path) -> Path | None:
    """The image a ``file_path`` entry names (extension optional), or None when no file exists.

    Paths that escape the dataset folder, and entries that name a folder, are rejected.
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
    if base.is_dir():
        raise DataError(f"{json_path}: file_path '{file_path}' is a folder ({base}), not an image file; "
                        "point file_path at the image")
    return None


def check_downscale(root: Path, downscale: float) -> None:
    """Reject a downscale factor below 1 (or not a number) before anything is read."""
    if not (isinstance(downscale, (int, float)) and math.isfinite(downscale) and downscale >= 1):
        raise DataError(f"{root}: downscale must be a number >= 1, got {downscale}; pass --downscale 1 or more")


def check_unique(images: list[Path], json_path: Path, file_paths: list[str]) -> None:
    """Reject two frames of one file that use the same image (with possibly different poses)."""
    seen: dict[Path, int] = {}
    for k, img in enumerate(images):
        if img in seen:
            raise DataError(f"{json_path}: frames #{seen[img]} and #{k} both use the image {img.name} "
                            f"(file_path '{file_paths[k]}'); remove the duplicate frame")
        seen[img] = k


def frame_matrix(frame: dict, where: str) -> torch.Tensor:
    """The ``transform_matrix`` of a frame as float64 [3|4, 4]; shape errors name ``where``."""
    try:
        mat = torch.tensor(frame["transform_matrix"], dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"{where}: transform_matrix is not a 4x4 list of numbers; fix it (4 rows of 4 numbers, "
                        "camera-to-world)") from None
    if mat.shape not in ((4, 4), (3, 4)):
        raise DataError(f"{where}: transform_matrix has shape {tuple(mat.shape)}, expected 4x4; fix it (4 rows of "
                        "4 numbers, camera-to-world)")
    return mat


def read_blender(root: str | Path, downscale: float = 1.0, splits=None) -> SceneData:
    """Read a Blender-format scene folder.

    ``downscale``: images are area-filtered down by this factor when loaded (intrinsics follow).
    Frames whose image file is missing are skipped with one warning per split giving the count.
    Split files other than train may be absent, unless ``splits`` names them explicitly
    (``splits=None``: train, val and test, the latter two optional).
    """
    root = Path(root)
    check_downscale(root, downscale)
    required = {"train"} if splits is None else set(splits)
    splits = SPLITS if splits is None else tuple(splits)
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
            if split in required:
                raise DataError(f"{jpath}: not found, but split '{split}' was asked for; add the file or "
                                "use the splits the scene has")
            split_idx[split] = []
            continue
        meta = _load_json(jpath)
        try:
            fov = float(meta["camera_angle_x"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{jpath}: missing or invalid 'camera_angle_x' (horizontal field of view in radians); "
                            "fix the file")
        if not math.isfinite(fov) or not 0 < fov < math.pi:
            raise PoseError(f"{jpath}: camera_angle_x={fov} is not a field of view in (0, pi) radians; "
                            "fix camera_angle_x")
        if split == "train" and not meta["frames"]:
            raise DataError(f"{jpath}: the 'frames' list is empty; add the training views or re-export the scene")
        missing, first_missing = 0, None
        idx, imgs, names = [], [], []
        for k, frame in enumerate(meta["frames"]):
            if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
                raise DataError(f"{jpath}: frame #{k} needs 'file_path' and 'transform_matrix'; add them or "
                                "remove the frame")
            img = resolve_image(root, str(frame["file_path"]), jpath)
            if img is None:
                missing += 1
                first_missing = first_missing or str(frame["file_path"])
                continue
            where = f"{jpath} frame #{k} ({frame['file_path']})"
            poses.append(check_rigid(frame_matrix(frame, where), where))
            imgs.append(img)
            names.append(str(frame["file_path"]))
            wh = image_header(img)[:2]
            if size is None:
                size, size_src = wh, img
            elif wh != size:
                raise DataError(f"{img}: image is {wh[0]}x{wh[1]} but {size_src} is {size[0]}x{size[1]}; "
                                "all images of a Blender scene must share one size: resize or remove it")
            focals.append(focal_from_fov(fov, wh[0]))
            dpath = img.with_name(img.stem + "_depth.npy")
            depth_paths.append(dpath if dpath.is_file() else None)
            idx.append(len(paths))
            paths.append(img)
        check_unique(imgs, jpath, names)
        if split == "train" and meta["frames"] and not imgs:
            raise DataError(f"{jpath}: no frames with existing images (none of the {len(meta['frames'])} image files exists; the first "
                            f"missing is '{first_missing}' under {root}); check the file_path entries")
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
