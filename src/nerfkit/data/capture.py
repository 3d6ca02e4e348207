"""Photos or a video -> a posed dataset folder (``nerfkit process images|video``).

The output folder holds ``images/`` (the photos, EXIF rotation applied, optionally downscaled),
``colmap/database.db`` and ``colmap/sparse/0`` (COLMAP's model from pycolmap), ``sparse/0`` (the
chosen reconstruction), ``transforms.json`` (the canonical dialect of ``transforms_writer``, poses
in COLMAP's frame), ``sparse_pc.ply`` and ``process_report.json``. It is built under a temporary
name and renamed at the end, so a failed run leaves nothing half written and an existing folder
is only replaced with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import DataError
from .sfm import SfmOptions, pose_images
from .transforms_writer import write_transforms_file

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def list_photos(folder: str | Path) -> list[Path]:
    """The photos of ``folder`` (jpg, jpeg, png; not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: photo folder not found; pass a folder of .jpg/.png photos")
    photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in IMAGE_SUFFIXES)
    if len(photos) < 2:
        raise DataError(f"{folder}: found {len(photos)} photos (.jpg, .jpeg, .png); posing needs at least 2, "
                        "better 30 or more")
    return photos


def stage_photos(photos: list[Path], dest: Path, downscale: float = 1.0, progress: bool = True) -> list[str]:
    """Copy ``photos`` into ``dest``: unchanged bytes when possible, re-encoded when EXIF rotates them or
    ``downscale`` > 1 (area filter). Every photo is decoded once here, so a corrupt one fails early."""
    from PIL import Image, ImageOps

    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for src in tqdm(photos, desc="copy photos", unit="img", disable=not progress, leave=False):
        try:
            with Image.open(src) as im:
                rotated = im.getexif().get(0x0112, 1) not in (None, 1)
                if downscale == 1 and not rotated:
                    im.load()  # decode fully: truncated files fail here, not inside COLMAP
                    shutil.copy2(src, dest / src.name)
                else:
                    im = ImageOps.exif_transpose(im)
                    if downscale != 1:
                        w, h = (max(1, int(round(s / downscale))) for s in im.size)
                        im = im.resize((w, h), Image.Resampling.BOX)
                    if src.suffix.lower() in (".jpg", ".jpeg"):
                        im.convert("RGB").save(dest / src.name, quality=95)
                    else:
                        im.save(dest / src.name)
        except OSError as e:
            raise DataError(f"{src}: cannot decode this photo ({e}); remove it or re-export it") from e
        names.append(src.name)
    return names


def _temp_output(out: Path, overwrite: bool) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise DataError(f"{out}: exists and is not empty; choose another --output or pass --overwrite")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{out.parent}: cannot create the output folder ({e}); choose a writable --output") from e
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
    except OSError as e:
        raise DataError(f"{out.parent}: cannot write here ({e}); choose a writable --output") from e
    return tmp


def _finish(tmp: Path, out: Path, names: list[str], options: SfmOptions, report: dict, progress: bool,
            source: Path) -> dict:
    """Pose the staged photos of ``tmp/images``, write transforms.json and the report, rename to ``out``."""
    from .colmap import read_colmap
    from .colmap_model import read_colmap_model

    sfm = pose_images(tmp / "images", tmp, names, options, progress=progress, source=source)
    scene = read_colmap(tmp)
    model = read_colmap_model(sfm.model_dir)
    files = [f"images/{p.name}" for p in scene.image_paths]
    write_transforms_file(scene, tmp, files, np.asarray(model.points.xyz), np.asarray(model.points.rgb))
    report.update({"sfm": sfm.to_json(), "camera_model": sfm.camera_model, "matching": options.matching,
                   "n_points": len(model.points)})
    report["sfm"]["model_dir"] = "sparse/0"
    (tmp / "process_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return report


def process_images(folder: str | Path, output: str | Path, options: SfmOptions | None = None, downscale: float = 1.0,
                   overwrite: bool = False, progress: bool = True) -> dict:
    """Pose the photos of ``folder`` and write the dataset folder ``output``; returns the report."""
    out = Path(output)
    options = options or SfmOptions()
    photos = list_photos(folder)
    t0 = time.perf_counter()
    tmp = _temp_output(out, overwrite)
    try:
        names = stage_photos(photos, tmp / "images", downscale, progress)
        report = {"source": str(Path(folder).resolve()), "kind": "images", "downscale": downscale}
        report = _finish(tmp, out, names, options, report, progress, Path(folder))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def process_video(video: str | Path, output: str | Path, options: SfmOptions | None = None, fps: float = 2.0,
                  max_frames: int | None = None, min_sharpness: float = 0.3, downscale: float = 1.0,
                  overwrite: bool = False, progress: bool = True) -> dict:
    """Pick sharp frames of ``video``, pose them (sequential matching by default) and write ``output``."""
    from .video_frames import extract_frames

    out = Path(output)
    options = options or SfmOptions(matching="sequential")
    if not Path(video).is_file():
        raise DataError(f"{video}: video file not found; check the path")
    t0 = time.perf_counter()
    tmp = _temp_output(out, overwrite)
    try:
        sel = extract_frames(video, tmp / "frames", fps=fps, max_frames=max_frames, min_sharpness=min_sharpness,
                             progress=progress)
        photos = sorted((tmp / "frames").glob("frame_*.jpg"))
        if len(photos) < 2:
            raise DataError(f"{video}: only {len(photos)} sharp frames were kept; raise --fps or lower --min-sharpness")
        names = stage_photos(photos, tmp / "images", downscale, progress)
        shutil.rmtree(tmp / "frames")
        report = {"source": str(Path(video).resolve()), "kind": "video", "downscale": downscale,
                  "video": {"fps": sel.video_fps, "frames_decoded": sel.n_decoded, "frames_kept": len(sel.indices),
                            "blurry_dropped": sel.n_blurry_dropped, "kept_frame_indices": sel.indices,
                            "sharpness": sel.sharpness}}
        report = _finish(tmp, out, names, options, report, progress, Path(video))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report
