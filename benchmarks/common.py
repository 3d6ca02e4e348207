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


SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaEventSynchronize")
LAUNCH_EVENTS = ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx")


class StepProfiler:
    """A trainer callback that runs ``torch.profiler`` over training steps ``first .. first + window`` and
    then holds a per-step summary in ``summary``: wall ms, device-busy ms (sum of kernel times), kernel
    launches, host syncs (blocking CUDA calls) and the top operators by device and by host time.
    On a CPU the device columns are None. Costs a little host time in the profiled steps only."""

    def __init__(self, first: int, window: int = 20):
        self.first, self.window = first, window
        self.cuda = torch.cuda.is_available()
        self.summary: dict | None = None
        self._prof = None

    def __call__(self, trainer, rec) -> None:
        from torch.profiler import ProfilerActivity, profile

        if trainer.step == self.first and self._prof is None and trainer.device.type in ("cpu", "cuda"):
            self.cuda = trainer.device.type == "cuda"
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
            self._prof = profile(activities=acts)
            self._prof.__enter__()
            self._t0 = time.perf_counter()
        elif trainer.step == self.first + self.window and self._prof is not None and self.summary is None:
            if self.cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - self._t0
            self._prof.__exit__(None, None, None)
            self.summary = self._summarise(self._prof.key_averages(), wall)

    def _summarise(self, events, wall: float) -> dict:
        n = self.window

        def dev_us(e) -> float:
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) or 0.0)

        by_device = sorted(events, key=dev_us, reverse=True)[:20]
        by_host = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:20]
        return {
            "steps": [self.first, self.first + n],
            "ms_per_step": round(wall / n * 1e3, 2),
            "device_busy_ms_per_step": round(sum(dev_us(e) for e in events) / n / 1e3, 2) if self.cuda else None,
            "kernel_launches_per_step": round(sum(e.count for e in events if e.key in LAUNCH_EVENTS) / n, 1)
            if self.cuda else None,
            "host_syncs_per_step": {e.key: round(e.count / n, 2) for e in events
                                    if any(e.key.startswith(s) for s in SYNC_EVENTS)},
            "top_device_ms_per_step": [[e.key[:80], round(dev_us(e) / n / 1e3, 3), round(e.count / n, 1)]
                                       for e in by_device if dev_us(e) > 0],
            "top_host_self_ms_per_step": [[e.key[:80], round(e.self_cpu_time_total / n / 1e3, 3),
                                           round(e.count / n, 1)] for e in by_host],
        }
