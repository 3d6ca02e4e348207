"""Reader for COLMAP workspaces: ``images/`` + a sparse model (``sparse/``, ``sparse/0`` or the folder itself).

COLMAP stores world-to-camera poses with OpenCV camera axes, nerfkit's own axes, so poses are only
inverted, never flipped. Lens models SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV and
OPENCV_FISHEYE are supported; rays are generated through the distortion model. The scene is
normalised with the sparse points (``nerfkit.cameras.normalize``); the near bound is half the 1st
percentile of the points' depths in the cameras. Every ``holdout``-th image (by name) is the test split.
Image files smaller or larger than the camera's size (a resized copy, same aspect ratio) get intrinsics
scaled to the file; another aspect ratio is an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..cameras.normalize import normalize_scene
from ..errors import DataError
from .blender import check_downscale
from .colmap_model import camera_intrinsics, find_colmap_model, read_colmap_model
from .images import image_header
from .scene import SceneData

# COLMAP model -> (nerfkit lens model, coefficient order)
LENS = {
    "SIMPLE_PINHOLE": ("pinhole", ()), "PINHOLE": ("pinhole", ()),
    "SIMPLE_RADIAL": ("simple_radial", ("k1",)), "RADIAL": ("radial", ("k1", "k2")),
    "OPENCV": ("opencv", ("k1", "k2", "p1", "p2")), "OPENCV_FISHEYE": ("opencv_fisheye", ("k1", "k2", "k3", "k4")),
}


def _model_folder(root: Path) -> Path:
    for cand in (root / "sparse", root):
        try:
            return find_colmap_model(cand)[0]
        except DataError:
            continue
    raise DataError(f"{root}: no COLMAP model found in {root / 'sparse'}, {root / 'sparse' / '0'} or {root}; "
                    "point --data at the workspace that holds images/ and sparse/")


def read_colmap(root: str | Path, downscale: float = 1.0, holdout: int = 8, images: str = "images") -> SceneData:
    """Read a COLMAP workspace into a normalised :class:`SceneData`."""
    root = Path(root)
    check_downscale(root, downscale)
    model = read_colmap_model(_model_folder(root))
    img_dir = root / images
    if not img_dir.is_dir():
        raise DataError(f"{img_dir}: image folder not found; a COLMAP workspace needs {images}/ beside sparse/")
    lenses = set()
    paths, c2w, intr, sizes, dist = [], [], [], [], []
    missing = 0
    for im in sorted(model.images.values(), key=lambda i: i.name):
        path = img_dir / im.name
        if not path.is_file():
            missing += 1
            continue
        cam = model.cameras[im.camera_id]
        if cam.model not in LENS:
            raise DataError(f"{cam.source or img_dir}: camera model {cam.model} is not supported; undistort the images "
                            "with `colmap image_undistorter` or use one of " + ", ".join(LENS))
        fx, fy, cx, cy, coeffs = camera_intrinsics(cam)
        lens, order = LENS[cam.model]
        lenses.add(lens)
        w, h = cam.width, cam.height
        iw, ih = image_header(path)[:2]  # the file may be a resized copy of what COLMAP saw
        if abs(iw / ih - w / h) > 0.01 * w / h:
            raise DataError(f"{path}: image is {iw}x{ih} but {cam.source or 'the COLMAP model'} declares its camera "
                            f"{cam.id} as {w}x{h} (another aspect ratio); were the images cropped or rotated? "
                            "Re-run COLMAP on these images or restore the originals")
        out_w, out_h = max(1, int(round(iw / downscale))), max(1, int(round(ih / downscale)))
        sx, sy = out_w / w, out_h / h  # camera size -> loaded size (file size / downscale)
        intr.append([fx * sx, fy * sy, cx * sx, cy * sy])
        sizes.append([out_w, out_h])
        dist.append([coeffs[k] for k in order])
        c2w.append(torch.from_numpy(np.array(im.camera_to_world())))  # already OpenCV axes: no flip
        paths.append(path)
    if missing:
        warnings.warn(f"{img_dir}: {missing} registered images have no file and were skipped", stacklevel=2)
    if not paths:
        raise DataError(f"{img_dir}: none of the {len(model.images)} registered images exist; check the folder")
    if len(lenses) > 1:
        raise DataError(f"{root}: cameras mix lens models {sorted(lenses)}; undistort the images first")
    pts = torch.from_numpy(np.array(model.points.xyz, dtype=np.float32))  # a copy: the parsed buffer is read-only if len(model.points) else None
    poses, transform, scale = normalize_scene(torch.stack(c2w).float(), pts)
    n = len(paths)
    near = 0.05
    if pts is not None and len(pts) >= 8:
        near = max(near, 0.5 * _nearest_point_depth(poses, pts @ transform[:3, :3].T + transform[:3, 3]))
    test = list(range(0, n, holdout)) if holdout and n > 1 else []
    lens = lenses.pop()
    return SceneData(
        root=root, format="colmap", image_paths=paths, intrinsics=torch.tensor(intr, dtype=torch.float32),
        sizes=torch.tensor(sizes, dtype=torch.int64), c2w=poses,
        splits={"train": [i for i in range(n) if i not in set(test)], "test": test},
        aabb=torch.tensor([[-1.5] * 3, [1.5] * 3]), near=near,
        far=float((poses[:, :3, 3].norm(dim=-1).max() + 1.5 * 3 ** 0.5) * 1.05),
        world_transform=transform, scale=scale, downscale=downscale, has_alpha=False,
        camera_model=lens, distortion=torch.tensor(dist, dtype=torch.float32) if lens != "pinhole" else None,
    )


def _nearest_point_depth(c2w: torch.Tensor, points: torch.Tensor) -> float:
    """1st percentile of the depths of the sparse points in front of the cameras (normalised frame).

    Half of it is the near bound: nothing the cameras photographed is closer, and a near bound keeps
    the optimiser from explaining a view with density right in front of that camera (floaters).
    """
    rel = points[None, :, :] - c2w[:, None, :3, 3]  # [V, P, 3]
    z = (rel * c2w[:, None, :3, 2]).sum(-1)  # depth along each optical axis
    z = z[z > 0]
    return float(torch.quantile(z[: 1 << 20], 0.01)) if z.numel() else 0.1
