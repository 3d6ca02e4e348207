"""Write a SceneData as one canonical ``transforms.json`` (instant-ngp and nerfstudio compatible).

Poses are written in the capture's original frame (the reader's normalisation is undone), as
camera-to-world matrices with OpenGL camera axes. Intrinsics are per frame (``fl_x fl_y cx cy w h``)
with nerfstudio's ``camera_model`` and OpenCV coefficients (``k1 k2 p1 p2 [k3]`` or fisheye
``k1..k4``); splits go to ``train_filenames`` / ``test_filenames``; sparse points (when given) to a
``sparse_pc.ply`` named by ``ply_file_path``. The folder is written under a temporary name and
renamed, so an interrupted run leaves nothing half written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from ..cameras import opencv_to_opengl
from ..cameras.normalize import apply_to_poses
from ..errors import DataError
from .images import load_image, save_png
from .scene import SceneData

# nerfkit lens model -> (nerfstudio camera_model, names of our coefficients in order)
_LENS = {
    "pinhole": ("PINHOLE", ()),
    "simple_radial": ("OPENCV", ("k1",)),
    "radial": ("OPENCV", ("k1", "k2")),
    "opencv": ("OPENCV", ("k1", "k2", "p1", "p2", "k3")),
    "opencv_fisheye": ("OPENCV_FISHEYE", ("k1", "k2", "k3", "k4")),
}


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray | None = None) -> None:
    """ASCII PLY point cloud: xyz [P, 3] float, rgb [P, 3] uint8 (optional)."""
    lines = ["ply", "format ascii 1.0", f"element vertex {len(xyz)}", "property float x", "property float y",
             "property float z"]
    if rgb is not None:
        lines += ["property uchar red", "property uchar green", "property uchar blue"]
    lines.append("end_header")
    body = [" ".join(f"{v:.6f}" for v in p) + ("" if rgb is None else " " + " ".join(str(int(c)) for c in q))
            for p, q in zip(xyz, rgb if rgb is not None else [None] * len(xyz))]
    path.write_text("\n".join(lines + body) + "\n")


def write_transforms_json(scene: SceneData, out_dir: str | Path, points: np.ndarray | None = None,
                          point_colors: np.ndarray | None = None, overwrite: bool = False) -> Path:
    """Write ``out_dir/transforms.json`` + ``out_dir/images/`` (+ ``sparse_pc.ply``); returns the json path.

    Images are copied unchanged when the scene was read at full size, otherwise the loaded
    (downscaled) images are written as PNG. ``points`` [P, 3] are in the capture's original frame.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DataError(f"{out}: exists and is not empty; choose another --output or remove it")
    if scene.camera_model not in _LENS:
        raise DataError(f"{scene.root}: lens model {scene.camera_model} cannot be written to transforms.json")
    if scene.downscale != 1 and scene.has_alpha:
        raise DataError(f"{scene.root}: writing downscaled images with alpha is not supported; use downscale 1")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    try:
        files, used = [], set()
        for v, src in enumerate(scene.image_paths):
            name = src.name if scene.downscale == 1 else src.stem + ".png"
            if name in used:
                name = f"{v:05d}_{name}"
            used.add(name)
            if scene.downscale == 1:
                shutil.copy2(src, tmp / "images" / name)
            else:
                save_png(tmp / "images" / name, load_image(src, scene.downscale))
            files.append(f"images/{name}")
        write_transforms_file(scene, tmp, files, points, point_colors)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / "transforms.json"


def transforms_meta(scene: SceneData, file_paths: list[str]) -> dict:
    """The canonical transforms.json dictionary of ``scene``, its views named by ``file_paths``."""
    if scene.camera_model not in _LENS:
        raise DataError(f"{scene.root}: lens model {scene.camera_model} cannot be written to transforms.json")
    inv = torch.linalg.inv(scene.world_transform.double()).float()
    c2w = opencv_to_opengl(apply_to_poses(inv, scene.c2w.float()))  # original frame, OpenGL axes
    model, names = _LENS[scene.camera_model]
    frames = []
    for v, name in enumerate(file_paths):
        fx, fy, cx, cy = (float(x) for x in scene.intrinsics[v])
        w, h = (int(x) for x in scene.sizes[v])
        frame = {"file_path": name, "transform_matrix": c2w[v].tolist(),
                 "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": w, "h": h}
        coeffs = scene.distortion[v].tolist() if scene.distortion is not None else []
        frame.update({k: float(c) for k, c in zip(names, coeffs)})
        frames.append(frame)
    meta = {"camera_model": model, "frames": frames}
    if model == "OPENCV_FISHEYE":
        meta["is_fisheye"] = True
    for split in ("train", "val", "test"):
        if scene.splits.get(split):
            meta[f"{split}_filenames"] = [frames[i]["file_path"] for i in scene.splits[split]]
    return meta


def write_transforms_file(scene: SceneData, folder: Path, file_paths: list[str], points: np.ndarray | None = None,
                          point_colors: np.ndarray | None = None) -> Path:
    """Write ``folder/transforms.json`` (+ ``sparse_pc.ply``) for images already in ``folder``."""
    folder = Path(folder)
    meta = transforms_meta(scene, file_paths)
    if points is not None and len(points):
        write_ply(folder / "sparse_pc.ply", np.asarray(points, dtype=np.float64), point_colors)
        meta["ply_file_path"] = "sparse_pc.ply"
    (folder / "transforms.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder / "transforms.json"
