"""``nerfkit demo``: built-in scene -> trained model -> metrics -> orbit video, in under 3 minutes on a CPU."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from ..data.synthetic import generate_synthetic
from ..methods import METHODS
from ..train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from ..train.evaluate import evaluate
from ..train.trainer import load_run, train
from ..video.orbit import render_orbit

# Per method: scene resolution, downscale, training budget (s), method options, orbit frames.
# The fastest registered method is used. Budgets keep the whole demo under 3 minutes on 2 CPU cores.
DEMO_PRESETS = {
    "ngp": dict(resolution=128, downscale=1, max_time=100, frames=60, options=dict(max_resolution=512)),
    "nerf": dict(resolution=128, downscale=2, max_time=110, frames=40,
                 options=dict(n_coarse=32, n_fine=64, width=128, batch_rays=1024, lr=1e-3)),
}
PREFERENCE = ("ngp", "nerf")


def run_demo(output: Path, quiet: bool = False, resolution: int | None = None) -> dict:
    t_start = time.perf_counter()
    method = next(m for m in PREFERENCE if m in METHODS and m in DEMO_PRESETS)
    preset = DEMO_PRESETS[method]
    res = resolution or preset["resolution"]
    output = Path(output)
    print(f"[1/4] generating the synthetic scene ({res}x{res}, 100 train + 25 test views)")
    scene_dir = generate_synthetic(output / f"scene_{res}", resolution=res)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = output / "runs" / f"{method}-{stamp}"
    cfg = TrainConfig(
        data=DataConfig(path=str(scene_dir.resolve()), downscale=preset["downscale"]),
        method=method, method_options=dict(preset["options"]),
        runtime=RuntimeConfig(max_time=preset["max_time"], seed=0),
        log=LogConfig(eval_every=0, checkpoint_every=0, progress=not quiet),
        output=str(run_dir),
    )
    print(f"[2/4] training '{method}' for {preset['max_time']} s at 1/{preset['downscale']} resolution")
    train(cfg)
    print("[3/4] evaluating on the 25 test views")
    metrics = evaluate(run_dir, split="test", progress=not quiet)
    print(f"[4/4] rendering a {preset['frames']}-frame orbit")
    _, scene, model, _ = load_run(run_dir)
    video = render_orbit(model, scene, run_dir / "renders", n_frames=preset["frames"], fps=20,
                         background=cfg.data.background, progress=not quiet)
    total = time.perf_counter() - t_start
    print()
    print(f"test PSNR: {metrics['psnr']:.2f} dB   SSIM: {metrics['ssim']:.4f}   "
          f"({metrics['n_images']} views at {metrics['resolution'][0]}x{metrics['resolution'][1]}, "
          f"{metrics['step']} steps, {total:.0f} s in all)")
    print(f"scene:        {scene_dir}")
    print(f"run:          {run_dir}")
    print(f"metrics:      {run_dir / 'eval' / 'metrics.json'}")
    print(f"comparisons:  {run_dir / 'eval'}  (ground truth | render | error | depth)")
    print(f"video:        {video['video']}")
    print(f"depth video:  {video['video_depth']}")
    return {"metrics": metrics, "run": str(run_dir), "video": video, "seconds": total}


def cmd_demo(a) -> int:
    run_demo(Path(a.output), quiet=a.quiet, resolution=a.resolution)
    return 0


def register(sub) -> None:
    d = sub.add_parser("demo", help="generate the built-in scene, train, evaluate and render it (< 3 min on a CPU)")
    d.add_argument("--output", default="nerfkit-demo", help="folder for the scene and the run (default: nerfkit-demo)")
    d.add_argument("--resolution", type=int, default=None, help="override the demo's image size in pixels")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=cmd_demo)
