"""``nerfkit`` console script."""

from __future__ import annotations

import argparse
import ast
import datetime
import sys
import warnings
from pathlib import Path

from ..errors import ConfigError, NerfkitError


def _parse_options(pairs: list[str]) -> dict:
    """``key=value`` pairs -> dict; values are read as Python literals when possible."""
    out = {}
    for p in pairs or []:
        if "=" not in p:
            raise ConfigError(f"--set expects key=value, got '{p}'")
        k, v = p.split("=", 1)
        try:
            out[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k.strip()] = v
    return out


def _default_run_dir(data: str, method: str) -> str:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("runs") / f"{Path(data).resolve().name}-{method}-{stamp}")


def cmd_train(a) -> int:
    from ..methods import METHODS
    from ..train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig, parse_duration
    from ..train.trainer import train

    if a.method not in METHODS:
        raise ConfigError(f"unknown method '{a.method}'; available: {', '.join(METHODS)}")
    if a.resume and not a.output:
        raise ConfigError("--resume needs --output RUN_DIR (the run to continue)")
    cfg = TrainConfig(
        data=DataConfig(path=str(Path(a.data).resolve()), format=a.format, downscale=a.downscale,
                        background=a.background, train_background=a.train_background,
                        depth_weight=a.depth_weight),
        method=a.method, method_options=_parse_options(a.set),
        runtime=RuntimeConfig(max_steps=a.max_steps, max_time=parse_duration(a.max_time), seed=a.seed,
                              device=a.device, threads=a.threads),
        log=LogConfig(eval_every=a.eval_every, checkpoint_every=a.checkpoint_every, progress=not a.quiet),
        output=a.output or _default_run_dir(a.data, a.method),
    )
    METHODS[a.method].make_config(cfg.method_options)  # fail fast on unknown options
    run = train(cfg, resume=a.resume)
    print(f"run directory: {run}")
    print(f"  config: {run / 'config.json'}\n  metrics log: {run / 'metrics.jsonl'}\n  checkpoints: {run / 'checkpoints'}")
    return 0


def cmd_eval(a) -> int:
    from ..train.evaluate import evaluate

    m = evaluate(a.run, split=a.split, device=a.device, progress=not a.quiet)
    lp = "n/a" if m["lpips"] is None else f"{m['lpips']:.4f}"
    print(f"{m['split']}: {m['n_images']} images at {m['resolution'][0]}x{m['resolution'][1]}: "
          f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, LPIPS {lp}")
    print(f"metrics: {Path(m['output']) / 'metrics.json'}\npictures: {m['output']}")
    return 0


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


def cmd_process(a) -> int:
    from ..data import read_colmap_model, read_scene
    from ..data.transforms_writer import write_transforms_json

    if a.source not in ("colmap", "record3d"):
        raise ConfigError(f"process {a.source}: only 'colmap' and 'record3d' are available in this version")
    scene = read_scene(a.path, format=a.source, downscale=a.downscale)
    points = colors = None
    if a.source == "colmap":
        from ..data.colmap import _model_folder

        model = read_colmap_model(_model_folder(Path(a.path)))
        points, colors = model.points.xyz, model.points.rgb
    path = write_transforms_json(scene, a.output, points, colors, overwrite=a.overwrite)
    print(f"{len(scene)} images, {scene.camera_model} lens -> {path}")
    if points is not None:
        print(f"{len(points)} sparse points -> {Path(a.output) / 'sparse_pc.ply'}")
    return 0


def cmd_demo(a) -> int:
    from .demo import run_demo

    run_demo(Path(a.output), quiet=a.quiet, resolution=a.resolution)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nerfkit", description="Neural radiance fields: train, evaluate, render.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="generate the built-in scene, train, evaluate and render it (< 3 min on a CPU)")
    d.add_argument("--output", default="nerfkit-demo", help="folder for the scene and the run (default: nerfkit-demo)")
    d.add_argument("--resolution", type=int, default=None, help="override the demo's image size in pixels")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)

    t = sub.add_parser("train", help="train a radiance field on a dataset")
    t.add_argument("--data", required=True, help="dataset folder (format auto-detected)")
    t.add_argument("--format", "--data.format", dest="format", default=None, help="force the data format (blender, transforms_json, llff, colmap)")
    t.add_argument("--method", default="ngp", help="method: ngp (Instant-NGP, default) or nerf (vanilla NeRF)")
    t.add_argument("--downscale", type=float, default=None,
                   help="reduce images by this factor (area filter); default: the format's own (1, or LLFF's images_k)")
    t.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    t.add_argument("--max-time", default=None, help="stop after this much training time, e.g. 300, 90s, 5m")
    t.add_argument("--output", default=None, help="run directory (default: runs/<scene>-<method>-<time>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    t.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    t.add_argument("--background", default="white", choices=["white", "black"],
                   help="background for evaluation/rendering of images with alpha")
    t.add_argument("--train-background", default="random", choices=["random", "white", "black"],
                   help="background behind transparent training pixels (default random per ray)")
    t.add_argument("--depth-weight", type=float, default=0.0,
                   help="weight of an L1 depth loss on datasets with depth maps (synthetic, Record3D); 0 = off")
    t.add_argument("--eval-every", type=int, default=1000, help="steps between preview evaluations (0: never)")
    t.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method option, e.g. --set n_fine=64 (repeatable; see the method's options in the README)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    pr = sub.add_parser("process", help="convert a capture to one canonical transforms.json + images/")
    pr.add_argument("source", help="colmap (a workspace with images/ and sparse/) or record3d (an EXR+JPG export)")
    pr.add_argument("path", help="the capture folder")
    pr.add_argument("--output", required=True, help="folder to write (must not exist or be empty)")
    pr.add_argument("--downscale", type=float, default=None, help="write images reduced by this factor")
    pr.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    pr.set_defaults(func=cmd_process)

    e = sub.add_parser("eval", help="evaluate a run: RUN/eval/metrics.json and comparison pictures")
    e.add_argument("run", help="run directory")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)

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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, cat, *_: f"warning: {msg}\n"
    try:
        return args.func(args)
    except NerfkitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
