"""Where an ngp training step spends its time: torch.profiler over a window of steps of a lego run.

Trains ``--steps`` steps (the occupancy grid carves itself during the first few hundred), profiles the
next ``--window`` steps and writes benchmarks/results/<name>.json with, per step: wall time, time the
device was busy (sum of kernel times), kernel launches, host syncs (``cudaStreamSynchronize`` /
``cudaDeviceSynchronize`` / blocking copies), and the top operators by device and by host time. On a
GPU machine (part of benchmarks/gpu_check.sh):

    python benchmarks/profile_ngp_step.py --data bench_data/lego --downscale 1 --name ngp_step_profile_gpu

On a CPU it profiles host time only (no device columns).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from common import SHARED_DATA, machine, write_result
from nerfkit.cli.train import parse_options
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.trainer import train

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaEventSynchronize")


def _device_us(evt) -> float:
    return float(getattr(evt, "self_device_time_total", getattr(evt, "self_cuda_time_total", 0.0)) or 0.0)


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
    cuda = torch.cuda.is_available() and a.device in ("auto", "cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    state: dict = {}

    def on_step(trainer, rec):
        if trainer.step == a.steps:
            state["prof"] = profile(activities=acts)
            state["prof"].__enter__()
            state["t0"], state["step0"] = time.perf_counter(), trainer.step
        elif trainer.step == a.steps + a.window and "prof" in state:
            if cuda:
                torch.cuda.synchronize()
            state["wall"] = time.perf_counter() - state["t0"]
            state["prof"].__exit__(None, None, None)

    cfg = TrainConfig(
        data=DataConfig(path=a.data, downscale=a.downscale, background="white", train_background="random"),
        method="ngp", method_options=parse_options(a.set),
        runtime=RuntimeConfig(max_steps=a.steps + a.window, seed=0, device=a.device),
        log=LogConfig(eval_every=0, checkpoint_every=0, checkpoint_every_s=None, progress=False),
        output=str(out))
    train(cfg, callbacks=[on_step])
    prof, n = state["prof"], a.window
    events = prof.key_averages()
    kernels = [e for e in prof.events() if getattr(e, "device_type", None) is not None
               and str(e.device_type).endswith("CUDA")]
    device_busy_ms = sum(_device_us(e) for e in events) / 1e3
    syncs = {e.key: e.count / n for e in events if any(e.key.startswith(s) for s in SYNC_EVENTS)}
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
    by_device = sorted(events, key=_device_us, reverse=True)[:20]
    by_host = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:20]
    from nerfkit.ops._triton import _FAILED

    result = {
        "benchmark": f"ngp training step profile, lego downscale {a.downscale:g}, steps {a.steps}..{a.steps + n}",
        "command": f"python benchmarks/profile_ngp_step.py --downscale {a.downscale:g} --steps {a.steps} "
                   f"--window {n} --name {a.name}",
        "machine": machine(), "method_options": parse_options(a.set),
        "ms_per_step": round(state["wall"] / n * 1e3, 2),
        "device_busy_ms_per_step": round(device_busy_ms / n, 2) if cuda else None,
        "kernel_launches_per_step": round(launches / n, 1) if cuda else None,
        "device_kernels_recorded": len(kernels),
        "host_syncs_per_step": {k: round(v, 2) for k, v in syncs.items()},
        "top_device_ms_per_step": [[e.key[:80], round(_device_us(e) / n / 1e3, 3), round(e.count / n, 1)]
                                   for e in by_device if _device_us(e) > 0],
        "top_host_self_ms_per_step": [[e.key[:80], round(e.self_cpu_time_total / n / 1e3, 3), round(e.count / n, 1)]
                                      for e in by_host],
        "triton_fallbacks": dict(_FAILED),
    }
    write_result(a.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
