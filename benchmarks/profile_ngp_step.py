"""Where an ngp training step spends its time: torch.profiler over a window of steps of a lego run.

Trains ``--steps`` steps (the occupancy grid carves itself during the first few hundred), profiles the
next ``--window`` steps and writes benchmarks/results/<name>.json with, per step: wall time, time the
device was busy (sum of kernel times), kernel launches, host syncs (blocking CUDA calls) and the top
operators by device and by host time (see ``common.StepProfiler``; ``bench_ngp_lego.py --profile-at``
records the same inside a benchmark run). On the CPU (device columns None):

    python benchmarks/profile_ngp_step.py --steps 1500 --window 20 --name ngp_step_profile_cpu
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from common import SHARED_DATA, StepProfiler, machine, write_result
from nerfkit.cli.train import parse_options
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.trainer import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(SHARED_DATA / "nerf_synthetic" / "lego"))
    ap.add_argument("--downscale", type=float, default=4)
    ap.add_argument("--steps", type=int, default=300, help="steps before the profiled window")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--output", default="runs/profile-ngp-step")
    ap.add_argument("--name", default="ngp_step_profile_cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], help="method option key=value")
    a = ap.parse_args()

    out = Path(a.output)
    shutil.rmtree(out, ignore_errors=True)
    prof = StepProfiler(a.steps, a.window)
    cfg = TrainConfig(
        data=DataConfig(path=a.data, downscale=a.downscale, background="white", train_background="random"),
        method="ngp", method_options=parse_options(a.set),
        runtime=RuntimeConfig(max_steps=a.steps + a.window, seed=0, device=a.device),
        log=LogConfig(eval_every=0, checkpoint_every=0, checkpoint_every_s=None, progress=False),
        output=str(out))
    train(cfg, callbacks=[prof])
    from nerfkit.ops._triton import _FAILED

    result = {
        "benchmark": f"ngp training step profile, lego downscale {a.downscale:g}, steps {a.steps}..{a.steps + a.window}",
        "command": f"python benchmarks/profile_ngp_step.py --downscale {a.downscale:g} --steps {a.steps} "
                   f"--window {a.window} --name {a.name}",
        "machine": machine(), "method_options": parse_options(a.set), **prof.summary,
        "triton_fallbacks": dict(_FAILED),
    }
    write_result(a.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
