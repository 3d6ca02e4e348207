"""Instant-NGP (method ngp) on lego: PSNR over training time, throughput, render time, memory.

CPU protocol (issue 3): lego at 200x200 (downscale 4), white background for evaluation, 100 train
views, 5 minutes of training, PSNR/SSIM on the 25 test images, and the test PSNR reached at
30 s, 1 min and 2 min (evaluation time excluded from the clock):

    python benchmarks/bench_ngp_lego.py --downscale 4 --minutes 5 --eval-at 30,60,120

GPU protocol: lego at 800x800, PSNR at 15 s, 60 s, 3 min, 5 min:

    python benchmarks/bench_ngp_lego.py --downscale 1 --minutes 5 --eval-at 15,60,180 --name ngp_lego_gpu

Writes benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from common import SHARED_DATA, StepProfiler, machine, peak_rss_mib, warmup_seconds, write_result
from nerfkit.cli.train import parse_options
from nerfkit.render import render_image
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.evaluate import evaluate
from nerfkit.train.trainer import load_run, scene_camera, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(SHARED_DATA / "nerf_synthetic" / "lego"))
    ap.add_argument("--downscale", type=float, default=4)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--eval-at", default="30,60,120", help="training seconds at which to evaluate the test split")
    ap.add_argument("--output", default="runs/bench-ngp-lego")
    ap.add_argument("--name", default="ngp_lego_cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--test-every", type=int, default=1, help="evaluate every k-th test image")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="method option key=value")
    ap.add_argument("--profile-at", type=int, default=0,
                    help="profile 20 training steps from this step on (0: off); summary under 'step_profile'")
    a = ap.parse_args()

    out = Path(a.output)
    shutil.rmtree(out, ignore_errors=True)
    eval_at = [float(x) for x in a.eval_at.split(",") if x]
    cfg = TrainConfig(
        data=DataConfig(path=a.data, downscale=a.downscale, background="white", train_background="random"),
        method="ngp", method_options=parse_options(a.set),
        runtime=RuntimeConfig(max_time=a.minutes * 60, seed=0, device=a.device),
        log=LogConfig(eval_every=0, eval_times=eval_at, eval_stride=a.test_every, checkpoint_every=0,
                      progress=not a.quiet),
        output=str(out),
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    prof = StepProfiler(a.profile_at, 20) if a.profile_at > 0 else None
    train(cfg, callbacks=[prof] if prof else [])
    wall = time.perf_counter() - t0
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps_log = [r for r in log if "loss" in r]
    curve = [{"at_s": r["at_s"], "step": r["step"], "test_psnr": round(r["test_psnr"], 3),
              "test_ssim": round(r["test_ssim"], 4)} for r in log if "at_s" in r]
    warmup_s = warmup_seconds(out)

    t1 = time.perf_counter()
    m = evaluate(out, split="test", device=a.device, every=a.test_every, progress=not a.quiet)
    eval_s = time.perf_counter() - t1

    _, scene, model, ck = load_run(out, a.device)
    train_time, steps = float(ck["train_time"]), int(ck["step"])
    cam = scene_camera(scene, scene.split("test")[0])
    bg = torch.ones(3)
    render_image(model, cam, background=bg)  # warm-up (kernel build / compile)
    times = []
    for _ in range(3):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        render_image(model, cam, background=bg)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    samples = [r["samples"] for r in steps_log if r.get("samples")]
    result = {
        "benchmark": f"ngp, lego {cam.width}x{cam.height} (downscale {a.downscale:g}), random training background, "
                     f"white evaluation background, 100 train views, {a.minutes:g} min",
        "command": "python benchmarks/bench_ngp_lego.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in (("downscale", a.downscale), ("minutes", a.minutes),
                                                           ("eval_at", a.eval_at), ("test_every", a.test_every),
                                                           ("name", a.name))) + (
            f" --profile-at {a.profile_at}" if a.profile_at else ""),
        "machine": machine(), "method_options": parse_options(a.set),
        "train_seconds": round(train_time, 1), "warmup_seconds_not_counted": warmup_s, "wall_seconds_train": round(wall, 1), "steps": steps,
        "steps_per_s": round(steps / train_time, 2),
        "train_samples_per_s": round(sum(samples) * 10 / train_time) if samples else None,
        "psnr_curve": curve,
        "test_psnr": round(m["psnr"], 3), "test_ssim": round(m["ssim"], 4), "test_lpips": m["lpips"],
        "n_test_images": m["n_images"], "eval_seconds": round(eval_s, 1),
        "render_seconds_per_frame": round(min(times), 3),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None,
    }
    if prof is not None:
        result["step_profile"] = prof.summary  # None if the run ended before the window
    if torch.cuda.is_available():
        from nerfkit.ops._triton import _FAILED

        result["triton_fallbacks"] = dict(_FAILED)  # kernels that failed on this GPU and ran the reference
    write_result(a.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
