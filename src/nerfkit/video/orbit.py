"""Render an orbit around the scene to mp4 videos (RGB and depth) and PNG frames (used by the demo).

The work is done by :mod:`nerfkit.video.render_path`; this module keeps the demo's one-call API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.scene import SceneData
from .render_path import (default_size, orbit_for_scene, path_intrinsics, render_path, video_files,
                          write_frames_video)

__all__ = ["orbit_for_scene", "write_video", "render_orbit"]


def write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Encode uint8 frames [H, W, 3] to H.264 mp4 with imageio-ffmpeg (temp name, then rename)."""
    write_frames_video(Path(path), frames, fps)


def render_orbit(model, scene: SceneData, out_dir: Path, n_frames: int = 120, fps: int = 30,
                 width: int | None = None, height: int | None = None, background: str = "white",
                 save_frames: bool = True, chunk: int | None = None, progress: bool = True,
                 name: str = "orbit") -> dict:
    """Render ``n_frames`` around the scene; writes ``<name>.mp4``, ``<name>_depth.mp4`` and frames
    (``<name>/rgb_0000.png``, ``<name>/depth_0000.png``...), replacing earlier ones."""
    out_dir = Path(out_dir)
    width, height = default_size(scene, width, height)
    videos = video_files(("rgb", "depth"), out_dir, name)
    out = render_path(model, orbit_for_scene(scene, n_frames), path_intrinsics(scene, width, height), width, height,
                      videos, fps=fps, background=background, frames_dir=out_dir / name if save_frames else None,
                      chunk=chunk, progress=progress, overwrite=True, desc="render orbit")
    return {"video": out["videos"]["rgb"], "video_depth": out["videos"]["depth"], "frames": out["frames"],
            "n_frames": n_frames, "size": [width, height]}
