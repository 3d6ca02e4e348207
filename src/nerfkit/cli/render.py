"""``nerfkit render``: render a camera path of a trained run (or snapshot) to mp4 videos and PNG frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError

DEFAULT_FRAMES = 120  # frames of a built-in path (or a keyframe file without a duration)
DEFAULT_FPS = 30.0


def _frame_count(a, fps: float, cam_path=None) -> int:
    """--frames, else --seconds x fps, else the file's frames (or its seconds x fps for keyframes), else 120."""
    if a.frames is not None:
        n = a.frames
    elif a.seconds is not None:
        n = round(a.seconds * fps)
    elif cam_path is not None and not cam_path.keyframes:
        n = len(cam_path)
    elif cam_path is not None and cam_path.seconds:
        n = round(cam_path.seconds * fps)
    else:
        n = DEFAULT_FRAMES
    if n < 1:
        raise ConfigError(f"the path would have {n} frames; pass --frames or --seconds of at least one frame")
    return int(n)


def _outputs(a, source: Path, name: str, channels):
    from ..video.render_path import video_files

    out_dir = (source if source.is_dir() else source.parent) / "renders"
    videos = video_files(channels, out_dir, name, a.output)
    if a.no_frames:
        frames_dir = None
    elif a.frames_dir:
        frames_dir = Path(a.frames_dir)
    else:  # beside the videos, in a folder named after them
        first = next(iter(videos.values()))
        frames_dir = first.parent / (name if a.output is None else first.stem)
    return videos, frames_dir


def cmd_render(a) -> int:
    from ..cameras.path_files import ngp_space, read_camera_path
    from ..cameras.paths import interpolate_poses
    from ..export.snapshot import load_trained
    from ..video.render_path import (SCENE_PATHS, check_outputs, default_size, parse_channels, path_intrinsics,
                                     render_path, scene_path)

    channels = parse_channels(a.channels)
    for opt in ("frames", "width", "height"):
        v = getattr(a, opt)
        if v is not None and v < 1:
            raise ConfigError(f"--{opt} {v}: must be at least 1")
    for opt in ("fps", "seconds"):
        v = getattr(a, opt)
        if v is not None and not v > 0:
            raise ConfigError(f"--{opt} {v}: must be positive")
    builtin = a.path in SCENE_PATHS and not Path(a.path).is_file()
    name = a.path if builtin else Path(a.path).stem
    if not builtin and not Path(a.path).is_file():
        raise ConfigError(f"--path {a.path}: no such camera path file; use {', '.join(SCENE_PATHS)} or a "
                          "nerfstudio camera_path.json, instant-ngp base_cam.json or nerfkit path file")
    source = Path(a.run)
    videos, frames_dir = _outputs(a, source, name, channels)
    if source.exists():  # fail before loading the model (a missing run is reported by the loader)
        check_outputs(videos, frames_dir, a.overwrite)

    trained = load_trained(source, a.device)
    scene = trained.scene
    if builtin:
        fps = a.fps or DEFAULT_FPS
        width, height = default_size(scene, a.width, a.height)
        c2w = scene_path(scene, a.path, _frame_count(a, fps))
        k = path_intrinsics(scene, width, height)
    else:
        scale, offset = ngp_space(scene.root)
        cam = read_camera_path(a.path, scene.world_transform, a.path_frame, scale, offset)
        fps = a.fps or cam.fps or DEFAULT_FPS
        width, height = default_size(scene, a.width or cam.width, a.height or cam.height)
        n = _frame_count(a, fps, cam)
        c2w, fov = cam.c2w, cam.fov_y_deg
        if cam.keyframes or n != len(cam):  # interpolate keyframes, or resample to the asked frame count
            if fov is None:
                c2w = interpolate_poses(c2w, n)
            else:
                c2w, fov = interpolate_poses(c2w, n, fov)
        k = path_intrinsics(scene, width, height, fov)
    out = render_path(trained.model, c2w, k, width, height, videos, fps=fps,
                      background=trained.cfg.data.background, frames_dir=frames_dir, chunk=a.chunk,
                      progress=not a.quiet, overwrite=a.overwrite, desc=f"render {name}")
    rate = out["n_frames"] / max(out["render_seconds"], 1e-9)
    print(f"rendered {out['n_frames']} frames at {width}x{height} ({rate:.2f} frames/s)")
    for c, p in out["videos"].items():
        print(f"{c} video: {p}")
    if out["frames"]:
        print(f"frames: {out['frames']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("render", help="render a camera path to mp4 videos (RUN/renders/<path>.mp4) and PNG frames",
                       description="Render a camera path of a trained run or snapshot. Built-in paths: orbit "
                                   "(turntable), spiral (forward-facing, LLFF style), train (through ~10 training "
                                   "cameras); or a camera path file: nerfstudio camera_path.json, instant-ngp "
                                   "base_cam.json, or a nerfkit camera path.")
    r.add_argument("run", help="run directory or snapshot file")
    r.add_argument("--path", default="orbit", help="orbit, spiral, train, or a camera path FILE (default orbit)")
    r.add_argument("--channels", default="rgb,depth",
                   help="comma-separated channels, one video each: rgb, depth, opacity (default rgb,depth)")
    r.add_argument("--frames", type=int, default=None,
                   help=f"number of frames (default: --seconds x fps, the file's frames, or {DEFAULT_FRAMES})")
    r.add_argument("--seconds", type=float, default=None, help="video length in seconds (frames = seconds x fps)")
    r.add_argument("--fps", type=float, default=None, help="frames per second (default: the file's, else 30)")
    r.add_argument("--width", type=int, default=None, help="frame width (default: the file's, else training width)")
    r.add_argument("--height", type=int, default=None, help="frame height (default: the file's, else training height)")
    r.add_argument("--output", default=None,
                   help="video FILE.mp4 (several channels: FILE.mp4 for rgb, FILE_<channel>.mp4 for the others; "
                        "default RUN/renders/<path>.mp4)")
    r.add_argument("--frames-dir", default=None,
                   help="folder for PNG frames <channel>_0000.png (default: a folder named after the video)")
    r.add_argument("--no-frames", action="store_true", help="skip writing PNG frames")
    r.add_argument("--overwrite", action="store_true", help="replace existing videos and frames")
    r.add_argument("--path-frame", choices=("original", "scene"), default=None,
                   help="frame of a nerfstudio / instant-ngp path file: the dataset's original frame (default) "
                        "or nerfkit's normalised scene frame")
    r.add_argument("--chunk", type=int, default=None, help="rays per render call (default: the method's)")
    r.add_argument("--device", default="auto")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=cmd_render)
