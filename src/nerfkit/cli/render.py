"""``nerfkit render``: render a camera path of a trained run to video."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def cmd_render(a) -> int:
    from ..train.trainer import load_run
    from ..video.orbit import render_orbit

    if a.path != "orbit":
        raise ConfigError(f"--path {a.path}: only 'orbit' is available in this version")
    cfg, scene, model, _ = load_run(a.run, a.device)
    out = render_orbit(model, scene, Path(a.run) / "renders", n_frames=a.frames, fps=a.fps, width=a.width,
                       height=a.height, background=cfg.data.background, save_frames=not a.no_frames,
                       progress=not a.quiet)
    print(f"video: {out['video']}\ndepth video: {out['video_depth']}")
    if out["frames"]:
        print(f"frames: {out['frames']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("render", help="render a camera path to RUN/renders/<name>.mp4 (RGB and depth)")
    r.add_argument("run", help="run directory")
    r.add_argument("--path", default="orbit", help="camera path (orbit)")
    r.add_argument("--frames", type=int, default=120, help="number of frames (default 120)")
    r.add_argument("--fps", type=int, default=30)
    r.add_argument("--width", type=int, default=None, help="frame width (default: training width)")
    r.add_argument("--height", type=int, default=None, help="frame height (default: training height)")
    r.add_argument("--no-frames", action="store_true", help="skip writing PNG frames")
    r.add_argument("--device", default="auto")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_render)
