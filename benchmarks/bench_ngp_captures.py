"""Instant-NGP on real captures: fox (instant-ngp), fern (LLFF) and the COLMAP figurine.

Protocol (issue 4): every 8th image held out (the readers' default split), a fixed training time
on this machine, PSNR/SSIM on all held-out images at the training resolution. Resolutions: fox at
downscale 4 (270x480), fern from images_8 (504x378), the COLMAP capture at downscale 2 (~500x330).

    python benchmarks/bench_ngp_captures.py --minutes 5

Writes benchmarks/results/ngp_captures_cpu.json (one entry per scene, written after each scene).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from common import SHARED_DATA, machine, peak_rss_mib, write_result
from nerfkit.cli.train import parse_options
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
from nerfkit.train.evaluate import evaluate
from nerfkit.train.trainer import train

SCENES = {
    "fox": (SHARED_DATA / "nerf" / "fox", 4.0),
    "fern": (SHARED_DATA / "nerf_llff_data" / "fern", None),  # LLFF's own images_8 folder
    "colmap_figurine": (SHARED_DATA / "colmap" / "test_colmap" / "dense" / "0", 2.0),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--output", default="runs/bench-ngp-captures")
    ap.add_argument("--name", default="ngp_captures_cpu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="method option key=value (all scenes)")
    a = ap.parse_args()

    results = {"benchmark": f"ngp on real captures, every 8th image held out, {a.minutes:g} min of training each",
               "command": f"python benchmarks/bench_ngp_captures.py --minutes {a.minutes:g}",
               "machine": machine(), "method_options": parse_options(a.set), "scenes": {}}
    for name in a.scenes.split(","):
        path, downscale = SCENES[name]
        out = Path(a.output) / name
        shutil.rmtree(out, ignore_errors=True)
        cfg = TrainConfig(
            data=DataConfig(path=str(path), downscale=downscale, background="white"),
            method="ngp", method_options=parse_options(a.set),
            runtime=RuntimeConfig(max_time=a.minutes * 60, seed=0, device=a.device),
            log=LogConfig(eval_every=0, checkpoint_every=0, progress=not a.quiet), output=str(out))
        t0 = time.perf_counter()
        train(cfg)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        m = evaluate(out, split="test", device=a.device, progress=not a.quiet, overwrite=True)
        log = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        steps = [r for r in log if "loss" in r]
        cfg_json = json.loads((out / "config.json").read_text())
        results["scenes"][name] = {
            "data": str(path), "downscale": downscale, "resolution": m["resolution"],
            "n_train": None, "n_test": m["n_images"],
            "test_psnr": round(m["psnr"], 3), "test_psnr_std": round(m["psnr_std"], 3),
            "test_ssim": round(m["ssim"], 4),
            "steps": steps[-1]["step"] if steps else 0, "train_seconds": round(steps[-1]["time"], 1) if steps else 0,
            "final_train_psnr": steps[-1].get("psnr") if steps else None,
            "wall_seconds_train": round(wall, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
            "method_options_resolved": cfg_json.get("method_options"),
        }
        results["peak_rss_mib"] = round(peak_rss_mib(), 1)
        write_result(a.name, results)
        print(name, json.dumps(results["scenes"][name]))


if __name__ == "__main__":
    main()
