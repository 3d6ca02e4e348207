"""Render a camera path of a trained model to mp4 videos (one per channel) and optional PNG frames.

Every frame goes through :func:`nerfkit.render.render_image`, like evaluation and the viewer.
Channels: ``rgb``; ``depth`` (depth of the visible surface, coloured near = bright, far = dark,
with one range for the whole video, from the first frame that shows content, so it does not
flicker; black where opacity < 0.5); ``opacity`` (grey levels). Videos are H.264 (yuv420p) written
by imageio-ffmpeg; odd frame sizes are padded by one pixel (H.264 needs even sizes).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..cameras.paths import (interpolate_poses, orbit, select_keyframes, spiral,
                             spiral_focus_distance)
from ..data.images import background_color, save_png
from ..data.scene import SceneData
from ..errors import ConfigError, NerfkitError
from ..render import Camera, render_image
from ..train.pictures import colormap

CHANNELS = ("rgb", "depth", "opacity")
SCENE_PATHS = ("orbit", "spiral", "train")
TRAIN_KEYFRAMES = 10  # training cameras the "train" path passes through


# ------------------------------------------------------------------------------------ paths of a scene

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


def spiral_for_scene(scene: SceneData, n_frames: int, n_rotations: float = 2.0) -> torch.Tensor:
    """A forward-facing spiral [n_frames, 4, 4] around the mean training camera.

    Focus depth: LLFF's blend of the near and far bounds for LLFF scenes; otherwise the depth of the
    scene box centre in front of the mean camera (the near/far of other readers are not scene depths).
    """
    c2w = scene.c2w[scene.split("train")]
    forward = torch.nn.functional.normalize(c2w[:, :3, 2].mean(0), dim=0)
    if float(c2w[:, :3, 2].mean(0).norm()) < 0.5:
        warnings.warn("the training cameras face many directions; a spiral suits forward-facing captures "
                      "(try --path orbit)")
    focus = spiral_focus_distance(scene.near, scene.far) if scene.format == "llff" else 0.0
    if focus <= 0.0:
        focus = float((scene.aabb.mean(0) - c2w[:, :3, 3].mean(0)) @ forward)
    if focus <= 0.0:
        focus = spiral_focus_distance(max(scene.near, 1e-3), scene.far)
    return spiral(c2w, n_frames, focus, n_rotations=n_rotations)


def train_path_for_scene(scene: SceneData, n_frames: int, n_keyframes: int = TRAIN_KEYFRAMES) -> torch.Tensor:
    """A smooth path [n_frames, 4, 4] through ~``n_keyframes`` training cameras (spread over the
    capture, visited in nearest-neighbour order)."""
    c2w = scene.c2w[scene.split("train")]
    return interpolate_poses(c2w[select_keyframes(c2w, n_keyframes)], n_frames)


def scene_path(scene: SceneData, kind: str, n_frames: int) -> torch.Tensor:
    """Poses [n_frames, 4, 4] of a built-in path: 'orbit', 'spiral' or 'train'."""
    if kind == "orbit":
        return orbit_for_scene(scene, n_frames)
    if kind == "spiral":
        return spiral_for_scene(scene, n_frames)
    if kind == "train":
        return train_path_for_scene(scene, n_frames)
    raise ConfigError(f"unknown path '{kind}'; use {', '.join(SCENE_PATHS)} or a camera path file")


# ------------------------------------------------------------------------------------------ intrinsics

def default_size(scene: SceneData, width: int | None = None, height: int | None = None) -> tuple[int, int]:
    """Frame size: the given one; one side given -> the other from the first training view's aspect;
    none -> that view's size."""
    w0, h0 = (int(x) for x in scene.sizes[scene.split("train")[0]])
    if width and height:
        return int(width), int(height)
    if width:
        return int(width), max(1, round(width * h0 / w0))
    if height:
        return max(1, round(height * w0 / h0)), int(height)
    return w0, h0


def path_intrinsics(scene: SceneData, width: int, height: int,
                    fov_y_deg: torch.Tensor | None = None) -> torch.Tensor:
    """Centred pinhole intrinsics (fx, fy, cx, cy) for ``width`` x ``height`` frames: [N, 4] from a
    vertical field of view per frame ``fov_y_deg`` [N] (square pixels), else [4] with the first
    training view's vertical field of view and pixel aspect."""
    if fov_y_deg is not None:
        fy = 0.5 * height / torch.tan(torch.deg2rad(fov_y_deg.double()) / 2)
        c = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64).expand(len(fy), 2)
        return torch.cat([torch.stack([fy, fy], -1), c], -1).float()
    v0 = scene.split("train")[0]
    h0 = float(scene.sizes[v0][1])
    fx0, fy0 = (float(x) for x in scene.intrinsics[v0][:2])
    fy = fy0 * height / h0  # same vertical field of view
    return torch.tensor([fy * fx0 / fy0, fy, width / 2.0, height / 2.0], dtype=torch.float32)


# --------------------------------------------------------------------------------------------- outputs

def parse_channels(text: str) -> tuple[str, ...]:
    """'rgb,depth' -> ('rgb', 'depth'); unknown or repeated names are errors."""
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in names if c not in CHANNELS]
    if not names or bad or len(set(names)) != len(names):
        raise ConfigError(f"--channels {text!r}: give a comma-separated subset of {', '.join(CHANNELS)}")
    return names


def video_files(channels, out_dir: Path, name: str, output: str | Path | None = None) -> dict[str, Path]:
    """Video file per channel. Without ``output``: ``out_dir/<name>.mp4`` for rgb and
    ``out_dir/<name>_<channel>.mp4`` for the others. With ``output``: that file for a single channel;
    for several, rgb gets ``output`` and the others ``<output stem>_<channel>.mp4`` beside it."""
    if output is not None:
        output = Path(output)
        if output.suffix.lower() != ".mp4":
            raise ConfigError(f"--output {output}: the video file name must end in .mp4")
        if len(channels) == 1:
            return {channels[0]: output}
        out_dir, name = output.parent, output.stem
    out_dir = Path(out_dir)
    return {c: out_dir / (f"{name}.mp4" if c == "rgb" else f"{name}_{c}.mp4") for c in channels}


def frame_file(frames_dir: Path, channel: str, i: int) -> Path:
    """PNG frame ``i`` of a channel: ``frames_dir/<channel>_<i:04d>.png``."""
    return Path(frames_dir) / f"{channel}_{i:04d}.png"


def check_outputs(videos: dict[str, Path], frames_dir: Path | None, overwrite: bool) -> None:
    """Fail before rendering when an output exists (without ``overwrite``) or cannot be written."""
    targets = list(videos.values())
    if frames_dir is not None:
        targets += [frame_file(frames_dir, c, 0) for c in videos]
    if not overwrite:
        for p in targets:
            if p.exists():
                raise ConfigError(f"{p}: already exists; pass --overwrite to replace it or choose another --output")
    for folder in {p.parent for p in targets}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"{folder}: cannot create the output folder ({e.strerror or e}); "
                              "choose another --output / --frames-dir") from None
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder}: the output folder is not writable; choose another --output / --frames-dir")


class VideoSink:
    """Streams uint8 frames [H, W, 3] into an H.264 mp4 under a temporary name; ``close(ok=True)``
    renames it to ``path``, ``close(ok=False)`` deletes it."""

    def __init__(self, path: Path, fps: float) -> None:
        import imageio.v2 as imageio

        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.stem + ".tmp" + self.path.suffix)
        try:
            self.writer = imageio.get_writer(self.tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                             pixelformat="yuv420p")
        except Exception as e:
            raise NerfkitError(f"{self.path}: could not open the video for writing ({e}); "
                               "check the folder is writable and imageio-ffmpeg is installed") from e

    def append(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if h % 2 or w % 2:  # yuv420p needs even sizes: repeat the last row / column
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self.writer.append_data(frame)

    def close(self, ok: bool = True) -> None:
        try:
            self.writer.close()
        except Exception as e:
            ok = False
            err = e
        else:
            err = None
        if ok:
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)
            if err is not None:
                raise NerfkitError(f"{self.path}: could not finish the video ({err})") from err


def write_frames_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Encode a list of uint8 frames [H, W, 3] to ``path`` (temporary name, then rename)."""
    sink = VideoSink(path, fps)
    try:
        for f in frames:
            sink.append(f)
    except Exception as e:
        sink.close(ok=False)
        raise NerfkitError(f"{path}: could not write the video ({e}); check the folder is writable") from e
    sink.close()


# ---------------------------------------------------------------------------------------- frame images

def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Float image in [0, 1] -> uint8 array (rounded)."""
    return (img.clamp(0, 1).numpy() * 255.0 + 0.5).astype(np.uint8)


class DepthColouring:
    """Colours depth maps with one fixed range: the 1st to 99th percentile of the visible depth of the
    first frame that shows any content (near = bright, far = dark, empty pixels black)."""

    def __init__(self) -> None:
        self.lo: float | None = None
        self.hi: float | None = None

    def __call__(self, depth: torch.Tensor, opacity: torch.Tensor) -> torch.Tensor:
        valid = opacity > 0.5
        d = depth / opacity.clamp_min(1e-6)  # depth of the visible surface
        if self.lo is None and bool(valid.any()):
            self.lo, self.hi = float(torch.quantile(d[valid], 0.01)), float(torch.quantile(d[valid], 0.99))
        if self.lo is None:
            return torch.zeros(*depth.shape, 3)
        rgb = colormap(1.0 - (d - self.lo) / max(self.hi - self.lo, 1e-6))
        return torch.where(valid[..., None], rgb, torch.zeros_like(rgb))


# ----------------------------------------------------------------------------------------------- render

def render_path(model, c2w: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int,
                videos: dict[str, Path], fps: float = 30.0, background: str = "white",
                frames_dir: Path | None = None, chunk: int | None = None, progress: bool = True,
                overwrite: bool = False, desc: str = "render") -> dict:
    """Render poses c2w [N, 4, 4] (OpenCV, scene frame) with intrinsics [4] or [N, 4] at
    ``width`` x ``height`` and write one mp4 per channel of ``videos`` (channel -> file), plus PNG
    frames ``frames_dir/<channel>_<i>.png`` when ``frames_dir`` is given.

    Existing outputs are an error unless ``overwrite``. Videos are written under temporary names and
    renamed when complete. Returns {"videos": {channel: path}, "frames": dir or None, "n_frames",
    "size": [W, H], "fps", "render_seconds"}.
    """
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    n = int(c2w.shape[0])
    if n < 1:
        raise ConfigError("the camera path has no frames; ask for at least one (--frames)")
    if width < 1 or height < 1:
        raise ConfigError(f"frame size {width}x{height} is empty; pass a positive --width and --height")
    if not math.isfinite(fps) or fps <= 0:
        raise ConfigError(f"--fps {fps}: the frame rate must be positive")
    for c in videos:
        if c not in CHANNELS:
            raise ConfigError(f"unknown channel '{c}'; use {', '.join(CHANNELS)}")
    k = torch.as_tensor(intrinsics, dtype=torch.float32)
    k = k.expand(n, 4) if k.dim() == 1 else k
    check_outputs(videos, frames_dir, overwrite)
    device = next(iter(model.buffers())).device
    bg = background_color("white" if background == "random" else background, ()).to(device)
    depth_rgb = DepthColouring()
    sinks = {c: VideoSink(p, fps) for c, p in videos.items()}
    t0 = time.perf_counter()
    ok = False
    try:
        for i in tqdm(range(n), desc=desc, unit="frame", disable=not progress, leave=False):
            out = render_image(model, Camera(c2w[i], k[i], width, height), chunk=chunk, background=bg)
            for c, sink in sinks.items():
                if c == "rgb":
                    img = to_uint8(out["rgb"])
                elif c == "depth":
                    img = to_uint8(depth_rgb(out["depth"], out["opacity"]))
                else:
                    img = to_uint8(out["opacity"][..., None].expand(height, width, 3))
                sink.append(img)
                if frames_dir is not None:
                    save_png(frame_file(frames_dir, c, i), img)
        ok = True
    except OSError as e:
        raise NerfkitError(f"{next(iter(videos.values())).parent}: could not write the outputs ({e})") from e
    finally:
        errors = []
        for sink in sinks.values():
            try:
                sink.close(ok)
            except NerfkitError as e:
                errors.append(e)
        if errors and ok:
            raise errors[0]
    seconds = time.perf_counter() - t0
    return {"videos": {c: str(p) for c, p in videos.items()}, "frames": str(frames_dir) if frames_dir else None,
            "n_frames": n, "size": [width, height], "fps": fps, "render_seconds": seconds}
