"""Export the lego mesh of a trained Instant-NGP run and draw it next to the NeRF render.

    python benchmarks/export_lego_mesh.py --run runs/bench-ngp-lego        # an existing lego run
    python benchmarks/export_lego_mesh.py --minutes 3                      # or train one first (200x200)

Writes the mesh (PLY) to ``--mesh`` (default runs/export-lego/lego.ply), a picture to
docs/export_lego_mesh.png (left: the NeRF render of test view 0; middle: the mesh with its vertex
colours; right: the mesh's shape, grey Lambert shading) and benchmarks/results/export_lego_mesh.json
(times, vertex/face/component counts, largest component's share).

The pictures of the mesh are drawn without new dependencies: dense points sampled on its faces are
projected through the same camera and z-buffered per pixel (a point splat), then shaded with the face
normal.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

from common import SHARED_DATA, machine, peak_rss_mib, write_result
from nerfkit.data.images import save_png
from nerfkit.export.mesh import MeshOptions, extract_mesh, save_mesh, to_scene
from nerfkit.export.snapshot import load_trained
from nerfkit.render import Camera, render_image
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.trainer import scene_camera, train

ROOT = Path(__file__).resolve().parents[1]
LIGHT = np.array([-0.6, 0.6, 0.5])  # towards the light in camera axes: right, up, towards the viewer


def splat(mesh: trimesh.Trimesh, colors: np.ndarray, cam: Camera, n_points: int = 4_000_000,
          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point-splat ``mesh`` (in the camera's world frame) through ``cam``.

    Returns per pixel [H, W]: face colour [H, W, 3] float (0..1), Lambert factor [H, W] of the face
    normal against a light fixed to the camera, and a coverage mask [H, W] bool.
    """
    pts, face = trimesh.sample.sample_surface(mesh, n_points, seed=seed)
    w2c = np.linalg.inv(cam.c2w.double().numpy())
    pc = pts @ w2c[:3, :3].T + w2c[:3, 3]  # [P, 3] camera frame (OpenCV: z forward)
    fx, fy, cx, cy = cam.intrinsics.double().numpy()
    z = pc[:, 2]
    ok = z > 1e-6
    u = np.floor(fx * pc[:, 0] / np.where(ok, z, 1) + cx).astype(np.int64)
    v = np.floor(fy * pc[:, 1] / np.where(ok, z, 1) + cy).astype(np.int64)
    ok &= (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)
    pix, z, face = (v * cam.width + u)[ok], z[ok], face[ok]
    order = np.lexsort((z, pix))  # by pixel, nearest first
    pix, face = pix[order], face[order]
    first = np.r_[True, pix[1:] != pix[:-1]]
    pix, face = pix[first], face[first]
    h, w = cam.height, cam.width
    rgb = np.ones((h * w, 3))
    lam = np.zeros(h * w)
    mask = np.zeros(h * w, dtype=bool)
    normals_cam = mesh.face_normals @ w2c[:3, :3].T
    light = LIGHT / np.linalg.norm(LIGHT)
    light = light * np.array([1, -1, -1])  # from "up, towards the viewer" to OpenCV camera axes
    shade = (normals_cam @ light).clip(0, None)  # normals point out of the surface
    rgb[pix] = colors[mesh.faces].mean(1)[face] / 255.0
    lam[pix] = 0.2 + 0.8 * shade[face]
    mask[pix] = True
    return rgb.reshape(h, w, 3), lam.reshape(h, w), mask.reshape(h, w)


def picture(model, mesh_result, world_transform: torch.Tensor, cam: Camera, background: torch.Tensor) -> np.ndarray:
    """[H, 3W, 3] uint8: NeRF render | mesh with vertex colours | grey shaded mesh, all through ``cam``
    (scene frame; the mesh's original-frame vertices are brought back with ``world_transform``)."""
    nerf = render_image(model, cam, background=background)["rgb"].numpy()
    tm = trimesh.Trimesh(to_scene(mesh_result.vertices, world_transform), mesh_result.faces, process=False)
    rgb, lam, mask = splat(tm, mesh_result.colors, cam)
    coloured = np.where(mask[..., None], rgb, 1.0)
    grey = np.where(mask[..., None], (0.85 * lam)[..., None].repeat(3, -1), 1.0)
    return (np.concatenate([nerf, coloured, grey], 1).clip(0, 1) * 255 + 0.5).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=None, help="trained lego run or snapshot (default: train one)")
    ap.add_argument("--data", default=str(SHARED_DATA / "nerf_synthetic" / "lego"))
    ap.add_argument("--minutes", type=float, default=3.0, help="training time when no --run is given")
    ap.add_argument("--train-output", default=str(ROOT / "runs" / "export-lego"))
    ap.add_argument("--mesh", default=str(ROOT / "runs" / "export-lego" / "lego.ply"))
    ap.add_argument("--picture", default=str(ROOT / "docs" / "export_lego_mesh.png"))
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threshold", type=float, default=10.0)
    ap.add_argument("--view", type=int, default=0, help="test view drawn")
    ap.add_argument("--size", type=int, default=400, help="picture height/width of each panel")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    run = a.run
    if run is None:
        cfg = TrainConfig(data=DataConfig(path=a.data, downscale=4.0), method="ngp",
                          runtime=RuntimeConfig(max_time=60 * a.minutes, device=a.device),
                          log=LogConfig(eval_every=0, checkpoint_every=0, progress=False), output=a.train_output)
        run = train(cfg)
    trained = load_trained(run, a.device)
    t0 = time.perf_counter()
    mesh = extract_mesh(trained.model, trained.scene, MeshOptions(resolution=a.resolution, threshold=a.threshold))
    t_mesh = time.perf_counter() - t0
    out = Path(a.mesh)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_mesh(mesh, out)
    print(f"mesh: {out}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, {mesh.n_components} components, "
          f"largest {100 * mesh.largest_share:.1f}% of the faces ({t_mesh:.1f} s)")

    view = trained.scene.split("test")[a.view]
    cam = scene_camera(trained.scene, view)
    k = cam.intrinsics.clone().float()
    k[0::2] *= a.size / cam.width
    k[1::2] *= a.size / cam.height
    cam = Camera(cam.c2w, k, a.size, a.size)
    bg = torch.ones(3) if trained.cfg.data.background == "white" else torch.zeros(3)
    t1 = time.perf_counter()
    img = picture(trained.model, mesh, trained.scene.world_transform, cam, bg)
    Path(a.picture).parent.mkdir(parents=True, exist_ok=True)
    save_png(Path(a.picture), img)
    print(f"picture: {a.picture} ({time.perf_counter() - t1:.1f} s)")
    write_result("export_lego_mesh", {
        "run": str(run), "step": trained.step, "train_time_s": round(trained.train_time, 1),
        "resolution": a.resolution, "threshold": a.threshold, "mesh_time_s": round(t_mesh, 1),
        "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)), "components": mesh.n_components,
        "largest_component_share": round(mesh.largest_share, 4), "peak_rss_mib": round(peak_rss_mib()),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
