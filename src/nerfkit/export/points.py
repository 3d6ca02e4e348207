"""Point-cloud export: the expected surface of training views, coloured by the rendered image.

Each chosen training view is rendered through :func:`nerfkit.render.render_image` (the path
evaluation, video and the viewer use) over a black background. Pixels whose opacity exceeds
``min_opacity`` become points at the expected termination distance along their ray (rendered depth
divided by opacity, so partly transparent pixels are not pulled towards the camera), coloured by the
rendered colour divided by the opacity (the surface colour without the background). Points are mapped
to the dataset's original frame with the inverse of ``scene.world_transform`` and written as PLY.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cameras import generate_rays, pixel_grid
from ..errors import ConfigError
from ..render import Camera, render_image
from .mesh import ExportError, check_output, to_original, write_atomic

POINT_FORMATS = (".ply",)


@dataclass
class PointsOptions:
    views: int = 10
    """Training views to render, evenly spaced over the train split."""
    max_points: int | None = 1_000_000
    """Keep at most this many points (a seeded random subset); None keeps all."""
    min_opacity: float = 0.9
    """Pixels with a lower rendered opacity are dropped (background, soft edges)."""
    downscale: float = 1.0
    """Render the views this many times smaller than the loaded training images."""
    seed: int = 0


@dataclass
class PointCloud:
    """``points`` [P, 3] float32 in the original frame, ``colors`` [P, 3] uint8, ``views`` used."""

    points: np.ndarray
    colors: np.ndarray
    views: list[int]


def pick_views(train_views: list[int], n: int) -> list[int]:
    """``n`` views evenly spaced over ``train_views`` (all of them when ``n`` >= their number)."""
    if n < 1:
        raise ConfigError(f"--views {n}: render at least one view")
    if n >= len(train_views):
        return list(train_views)
    idx = np.unique(np.round(np.linspace(0, len(train_views) - 1, n)).astype(int))
    return [train_views[i] for i in idx]


def _camera(scene, view: int, downscale: float) -> Camera:
    from ..train.trainer import scene_camera

    cam = scene_camera(scene, view)
    if downscale == 1.0:
        return cam
    if downscale <= 0:
        raise ConfigError(f"--downscale {downscale}: must be positive")
    w, h = max(1, round(cam.width / downscale)), max(1, round(cam.height / downscale))
    k = cam.intrinsics.clone().float()
    k[0::2] *= w / cam.width  # fx, cx follow the width; fy, cy the height
    k[1::2] *= h / cam.height
    return Camera(cam.c2w, k, w, h, cam.camera_model, cam.distortion)


def view_points(model, camera: Camera, min_opacity: float = 0.9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scene-frame surface points [P, 3], colours [P, 3] (float, 0..1) and pixel indices [P] (row-major
    into H*W) of one rendered camera."""
    out = render_image(model, camera, background=torch.zeros(3))
    alpha = out["opacity"].reshape(-1)  # [H*W]
    keep = alpha > min_opacity
    x, y = pixel_grid(camera.width, camera.height)
    o, d = generate_rays(camera.c2w.float(), camera.intrinsics.float(), x[keep], y[keep], camera.distortion,
                         camera.camera_model)
    axis = camera.c2w[:3, 2].float()
    z = out["depth"].reshape(-1)[keep] / alpha[keep]  # expected z-depth of the surface where the ray ends
    t = z / (d @ axis).clamp_min(1e-6)  # z-depth -> distance along the unit ray
    pts = o + t[:, None] * d
    rgb = (out["rgb"].reshape(-1, 3)[keep] / alpha[keep, None]).clamp(0, 1)
    good = torch.isfinite(pts).all(-1)
    return pts[good], rgb[good], keep.nonzero()[:, 0][good]


def extract_points(model, scene, options: PointsOptions | None = None) -> PointCloud:
    """Render ``options.views`` training views of ``scene`` and back-project their opaque pixels."""
    o = options or PointsOptions()
    views = pick_views(scene.split("train"), o.views)
    pts, cols = [], []
    for v in views:
        p, c, _ = view_points(model, _camera(scene, v, o.downscale), o.min_opacity)
        pts.append(p)
        cols.append(c)
    p = torch.cat(pts) if pts else torch.zeros(0, 3)
    c = torch.cat(cols) if cols else torch.zeros(0, 3)
    if len(p) == 0:
        raise ExportError(f"no pixel of the {len(views)} rendered views has opacity above {o.min_opacity:g}: "
                          "the model is empty or transparent; train longer or lower --min-opacity")
    if o.max_points is not None and len(p) > o.max_points:
        gen = torch.Generator().manual_seed(o.seed)
        idx = torch.randperm(len(p), generator=gen)[:o.max_points].sort().values
        p, c = p[idx], c[idx]
    xyz = to_original(p.double().numpy(), scene.world_transform).astype(np.float32)
    rgb = (c * 255 + 0.5).to(torch.uint8).numpy()
    return PointCloud(xyz, rgb, views)


def save_points(cloud: PointCloud, path: str | Path) -> Path:
    """Write ``cloud`` as a binary PLY (x y z float, red green blue uchar), atomically."""
    import trimesh

    path = Path(path)
    if path.suffix.lower() not in POINT_FORMATS:
        raise ExportError(f"{path}: point clouds are written as .ply")
    pc = trimesh.PointCloud(cloud.points, colors=cloud.colors)
    return write_atomic(path, pc.export(file_type="ply"))


def export_points(model, scene, output: str | Path, options: PointsOptions | None = None,
                  overwrite: bool = False) -> tuple[Path, PointCloud]:
    """Check ``output``, extract the point cloud and write it; returns the path and the cloud."""
    out = check_output(output, overwrite, POINT_FORMATS)
    cloud = extract_points(model, scene, options)
    return save_points(cloud, out), cloud
