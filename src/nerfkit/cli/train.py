"""``nerfkit train``: train a radiance field on a dataset."""

from __future__ import annotations

import argparse
import ast
import datetime
from pathlib import Path

from ..errors import ConfigError


def parse_options(pairs: list[str]) -> dict:
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


def default_run_dir(data: str, method: str) -> str:
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
                        depth_weight=a.depth_weight, image_memory=a.image_memory),
        method=a.method, method_options=parse_options(a.set),
        runtime=RuntimeConfig(max_steps=a.max_steps, max_time=parse_duration(a.max_time), seed=a.seed,
                              device=a.device, threads=a.threads),
        log=LogConfig(eval_every=a.eval_every, checkpoint_every=a.checkpoint_every,
                      checkpoint_every_s=a.checkpoint_minutes * 60.0 if a.checkpoint_minutes > 0 else None,
                      progress=not a.quiet),
        output=a.output or default_run_dir(a.data, a.method),
    )
    METHODS[a.method].make_config(cfg.method_options)  # fail fast on unknown options
    from ..data.batching import parse_memory

    parse_memory(a.image_memory)  # fail fast on an unreadable size
    run = train_with_viewer(cfg, a) if a.viewer else train(cfg, resume=a.resume)
    print(f"run directory: {run}")
    print(f"  config: {run / 'config.json'}\n  metrics log: {run / 'metrics.jsonl'}\n  checkpoints: {run / 'checkpoints'}")
    return 0


def train_with_viewer(cfg, a) -> Path:
    """Train with the web viewer beside it; after training the viewer keeps serving until Ctrl+C."""
    from ..train.trainer import Trainer, _merge_resume
    from ..viewer.app import serve_forever, start_training_viewer
    from .view import viewer_options

    if a.resume:
        cfg = _merge_resume(cfg)
    trainer = Trainer(cfg, resume=a.resume)
    viewer, link = start_training_viewer(trainer, viewer_options(a))
    print(f"viewer: {viewer.url}", flush=True)
    trainer.callbacks.append(link)
    try:
        run = trainer.train()
    except BaseException:
        viewer.stop()
        raise
    link.finished(trainer.model)
    print(f"run directory: {run}")
    serve_forever(viewer, "training finished; the viewer shows the final model")
    return run


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a radiance field on a dataset")
    t.add_argument("--data", required=True, help="dataset folder (format auto-detected)")
    t.add_argument("--format", "--data.format", dest="format", default=None,
                   help="force the data format (blender, transforms_json, llff, colmap, record3d)")
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
    t.add_argument("--image-memory", default="auto", metavar="SIZE",
                   help="memory for decoded training images, e.g. 4GiB (default auto: 25%% of RAM); larger "
                        "captures are streamed through a rotating working set")
    t.add_argument("--eval-every", type=int, default=1000, help="steps between preview evaluations (0: never)")
    t.add_argument("--checkpoint-every", type=int, default=2000, help="steps between checkpoints")
    t.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="M",
                   help="also write a checkpoint after M minutes of wall-clock time without one (default 10; 0: off)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="method option, e.g. --set n_fine=64 (repeatable; see the method's options in the README)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--viewer", action="store_true",
                   help="serve the web viewer while training (see 'nerfkit view'); it stays up after training until Ctrl+C")
    from .view import add_viewer_flags

    add_viewer_flags(t)
    t.set_defaults(func=cmd_train)
