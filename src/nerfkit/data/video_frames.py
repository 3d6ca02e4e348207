"""Frames from a video for posing: decoded with imageio-ffmpeg, the sharpest frame of each time slot kept.

Sharpness is the variance of the Laplacian of the grey image (a blurred frame has little
high-frequency energy). The video is cut into slots of ``1 / fps`` seconds; each slot keeps its
sharpest frame, and kept frames much blurrier than the median kept frame are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ConfigError, DataError


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image (rgb uint8 [H, W, 3]), at most ~512 px wide."""
    grey = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    step = max(1, grey.shape[1] // 512)
    g = grey[::step, ::step]
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


@dataclass
class FrameSelection:
    """Which frames were kept: their indices in the video, sharpness, and how many were dropped as blurry."""

    indices: list[int]
    sharpness: list[float]
    n_decoded: int
    n_blurry_dropped: int
    video_fps: float


def extract_frames(video: str | Path, out_dir: str | Path, fps: float = 2.0, max_frames: int | None = None,
                   min_sharpness: float = 0.3, progress: bool = True) -> FrameSelection:
    """Write the selected frames of ``video`` as ``out_dir/frame_00001.jpg``... (JPEG quality 95).

    ``fps``: kept frames per second of video (one per slot); ``max_frames`` caps the count by widening
    the slots; ``min_sharpness``: kept frames below this fraction of the median sharpness are dropped.
    """
    import imageio.v2 as imageio
    from PIL import Image

    video, out_dir = Path(video), Path(out_dir)
    if fps <= 0:
        raise ConfigError(f"--fps {fps}: must be positive")
    if not video.is_file():
        raise DataError(f"{video}: video file not found; check the path")
    try:
        reader = imageio.get_reader(video, "ffmpeg")
        meta = reader.get_meta_data()
    except Exception as e:
        raise DataError(f"{video}: cannot decode this video ({e}); re-encode it, e.g. "
                        f"`ffmpeg -i {video.name} -c:v libx264 out.mp4`, or extract frames yourself and use "
                        "`nerfkit process images`") from e
    vfps = float(meta.get("fps") or 30.0)
    duration = float(meta.get("duration") or 0.0)
    slot = 1.0 / fps
    if max_frames and duration > 0:
        slot = max(slot, duration / max_frames)
    frames_per_slot = max(1, int(round(slot * vfps)))
    out_dir.mkdir(parents=True, exist_ok=True)
    kept: list[tuple[float, int, Path]] = []  # (sharpness, frame index, file) of each slot's sharpest frame
    cur: tuple[int, float, int, np.ndarray] | None = None  # (slot, sharpness, frame index, pixels)

    def flush(c):
        f = out_dir / f".slot_{c[0]:06d}.jpg"
        Image.fromarray(c[3]).save(f, quality=95)
        kept.append((c[1], c[2], f))

    n = 0
    try:
        total = int(duration * vfps) or None
        for i, frame in enumerate(tqdm(reader, desc="decode video", unit="frame", total=total,
                                       disable=not progress, leave=False)):
            s, k = sharpness(frame), i // frames_per_slot
            if cur is not None and k != cur[0]:
                flush(cur)
                cur = None
            if cur is None or s > cur[1]:
                cur = (k, s, i, np.ascontiguousarray(frame[..., :3]))
            n = i + 1
    except Exception as e:
        if n == 0:
            raise DataError(f"{video}: cannot decode this video ({e}); re-encode it, e.g. "
                            f"`ffmpeg -i {video.name} -c:v libx264 out.mp4`") from e
        # a damaged tail: keep what decoded
    finally:
        reader.close()
    if cur is not None:
        flush(cur)
    if n == 0:
        raise DataError(f"{video}: the video has no frames; check the file")
    med = float(np.median([s for s, _, _ in kept]))
    sharp = [x for x in kept if x[0] >= min_sharpness * med]
    if max_frames and len(sharp) > max_frames:
        sharp = [sharp[j] for j in np.linspace(0, len(sharp) - 1, max_frames).astype(int)]
    chosen = {f for _, _, f in sharp}
    for _, _, f in kept:
        if f not in chosen:
            f.unlink()
    for j, (_, _, f) in enumerate(sharp):
        f.rename(out_dir / f"frame_{j + 1:05d}.jpg")
    return FrameSelection(indices=[i for _, i, _ in sharp], sharpness=[round(s, 2) for s, _, _ in sharp],
                          n_decoded=n, n_blurry_dropped=len(kept) - len(sharp), video_fps=vfps)
