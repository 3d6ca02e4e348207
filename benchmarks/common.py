"""Shared helpers for benchmark scripts: machine description, matmul peak, peak memory, JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import torch

SHARED_DATA = Path(os.environ.get("NERFKIT_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def matmul_peak_gflops(dtype=torch.float32, n: int = 2048, reps: int = 5, device="cpu") -> float:
    """Measured dense matrix-multiply throughput (GFLOP/s) of this machine for ``dtype``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_result(name: str, result: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    print(f"wrote {path}")
    return path


def warmup_seconds(run_dir: Path) -> float | None:
    """Seconds the run spent in the model's warm-up (kernel builds/compilation, outside the training
    clock), from the run's events.jsonl (the newest warm-up when the run was resumed)."""
    path = Path(run_dir) / "events.jsonl"
    if not path.is_file():
        return None
    found = [json.loads(x).get("seconds") for x in path.read_text().splitlines() if '"warmup"' in x]
    return found[-1] if found else None
