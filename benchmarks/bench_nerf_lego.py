"""Vanilla NeRF on lego at 200x200 (downscale 4), white background, 5 minutes of training on this machine.

Reports test PSNR/SSIM on the 25 test images, iterations/s, step time at nerf-pytorch's settings
(1024 rays x 64 coarse + 128 fine samples), achieved GFLOP/s against the measured matmul peak,
and peak memory. Writes benchmarks/results/nerf_lego_cpu.json.

    python benchmarks/bench_nerf_lego.py [--minutes 5] [--output runs/bench-nerf-lego]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from common import SHARED_DATA, machine, matmul_peak_gflops, peak_rss_mib, write_result
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.evaluate import evaluate
from nerfkit.train.trainer import train


def macs_per_sample(field) -> int:
    """Multiply-accumulates of one field evaluation (the Linear layers; encodings are negligible)."""
    return sum(m.in_features * m.out_features for m in field.modules() if isinstance(m, torch.nn.Linear))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--output", default="runs/bench-nerf-lego")
    ap.add_argument("--set", action="append", default=[], help="method option key=value")
    ap.add_argument("--test-every", type=int, default=1,
                    help="evaluate every k-th test image (vanilla NeRF renders a 200x200 frame in ~90 s on 2 cores)")
    a = ap.parse_args()
    from nerfkit.cli.train import parse_options

    out = Path(a.output)
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(
        data=DataConfig(path=str(SHARED_DATA / "nerf_synthetic" / "lego"), downscale=4, background="white",
                        train_background="white"),
        method="nerf", method_options=parse_options(a.set),
        runtime=RuntimeConfig(max_time=a.minutes * 60, seed=0),
        log=LogConfig(eval_every=0, checkpoint_every=0, progress=True),
        output=str(out),
    )
    t0 = time.perf_counter()
    train(cfg)
    wall_train = time.perf_counter() - t0
    log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = max(r["step"] for r in log)
    train_time = max(r["time"] for r in log if "time" in r)
    t1 = time.perf_counter()
    m = evaluate(out, split="test", every=a.test_every)
    eval_s = time.perf_counter() - t1

    from nerfkit.train.trainer import load_run

    _, _, model, _ = load_run(out, "cpu")
    mcfg = model.config
    n_rays = mcfg.batch_rays
    macs = n_rays * (mcfg.n_coarse * macs_per_sample(model.coarse)
                     + (mcfg.n_coarse + mcfg.n_fine) * macs_per_sample(model.fine))
    step_s = train_time / steps
    gflop_step = 3 * 2 * macs / 1e9  # forward + backward (~2x forward)
    peak32 = matmul_peak_gflops(torch.float32)
    peak16 = matmul_peak_gflops(torch.bfloat16)
    result = {
        "benchmark": "vanilla NeRF, lego 200x200 (downscale 4), white background, 100 train views",
        "command": "python benchmarks/bench_nerf_lego.py --minutes %g --test-every %d" % (a.minutes, a.test_every),
        "machine": machine(),
        "method_options": {k: getattr(mcfg, k) for k in ("n_coarse", "n_fine", "width", "depth", "batch_rays", "lr", "bf16")},
        "train_seconds": round(train_time, 1), "wall_seconds_train": round(wall_train, 1),
        "steps": steps, "iterations_per_s": round(steps / train_time, 3), "seconds_per_step": round(step_s, 3),
        "test_psnr": round(m["psnr"], 3), "test_ssim": round(m["ssim"], 4), "test_lpips": m["lpips"],
        "n_test_images": m["n_images"], "eval_seconds": round(eval_s, 1),
        "render_seconds_per_frame": round(eval_s / m["n_images"], 2),
        "gflop_per_step": round(gflop_step, 1), "achieved_gflops": round(gflop_step / step_s, 1),
        "matmul_peak_gflops_fp32": round(peak32, 1), "matmul_peak_gflops_bf16": round(peak16, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "reference_nerf_pytorch": {"steps": 31, "seconds_per_step": 9.5, "psnr": 7.7},
    }
    write_result("nerf_lego_cpu", result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
