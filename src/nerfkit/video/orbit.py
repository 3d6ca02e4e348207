"""Render an orbit around the scene to mp4 videos (RGB and depth) and PNG frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..cameras import orbit
from ..data.images import background_color, save_png
from ..data.scene import SceneData
from ..errors import NerfkitError
from ..render import Camera, render_image
from ..train.pictures import depth_to_rgb


def orbit_for_scene(scene: SceneData, n_frames: int) -> torch.Tensor:
    """An orbit [n_frames, 4, 4] matched to the training cameras: their mean distance from the box
    centre, their mean elevation, and world up = the mean of the cameras' up vectors."""
    views = scene.split("train")
    c2w = scene.c2w[views]
    center = scene.aabb.mean(0)
    up = -c2w[:, :3, 1].mean(0)  # OpenCV camera y points down, so -y is the camera's up
    up = up / up.norm().clamp_min(1e-8)
    offs = c2w[:, :3, 3] - center
    radius = float(offs.norm(dim=-1).mean())
    elev = float(torch.rad2deg(torch.asin(((offs @ up) / offs.norm(dim=-1)).clamp(-1, 1))).mean())
    return orbit(n_frames, radius, elev, center.tolist(), up.tolist())


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode uint8 frames [H, W, 3] to H.264 mp4 with imageio-ffmpeg (temp name, then rename)."""
    import imageio.v2 as imageio

    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    h, w = frames[0].shape[:2]
    # H.264 with yuv420p needs even sizes; pad by one pixel where needed
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    try:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                pixelformat="yuv420p") as wr:
            for f in frames:
                wr.append_data(np.pad(f, pad, mode="edge") if any(p[1] for p in pad) else f)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise NerfkitError(f"{path}: could not write the video ({e}); check the folder is writable") from e
    tmp.replace(path)


def render_orbit(model, scene: SceneData, out_dir: Path, n_frames: int = 120, fps: int = 30,
                 width: int | None = None, height: int | None = None, background: str = "white",
                 save_frames: bool = True, chunk: int | None = None, progress: bool = True, name: str = "orbit") -> dict:
    """Render ``n_frames`` around the scene; writes ``<name>.mp4``, ``<name>_depth.mp4`` and frames."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v0 = scene.split("train")[0]
    w0, h0 = (int(x) for x in scene.sizes[v0])
    width, height = width or w0, height or h0
    k = scene.intrinsics[v0].clone()
    k[0] *= width / w0
    k[1] *= height / h0
    k[2], k[3] = width / 2.0, height / 2.0
    device = next(iter(model.buffers())).device
    bg = background_color(background, ()).to(device)
    rgb_frames, depth_frames = [], []
    poses = orbit_for_scene(scene, n_frames)
    for i in tqdm(range(n_frames), desc="render orbit", unit="frame", disable=not progress, leave=False):
        out = render_image(model, Camera(poses[i], k, width, height), chunk=chunk, background=bg)
        rgb = (out["rgb"].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
        dep = (depth_to_rgb(out["depth"], out["opacity"] > 0.5).numpy() * 255 + 0.5).astype(np.uint8)
        rgb_frames.append(rgb)
        depth_frames.append(dep)
        if save_frames:
            save_png(out_dir / name / f"rgb_{i:04d}.png", rgb)
            save_png(out_dir / name / f"depth_{i:04d}.png", dep)
    video = out_dir / f"{name}.mp4"
    video_depth = out_dir / f"{name}_depth.mp4"
    write_video(video, rgb_frames, fps)
    write_video(video_depth, depth_frames, fps)
    return {"video": str(video), "video_depth": str(video_depth), "frames": str(out_dir / name) if save_frames else None,
            "n_frames": n_frames, "size": [width, height]}
