"""Crash safety at full model size: kill a real training run repeatedly, resume, compare.

One uninterrupted run and one run that is killed with SIGKILL at random moments (one kill inside a
checkpoint write, through the NERFKIT_FAULT_KILL_IN_CHECKPOINT test hook) and stopped once with
SIGINT, each time resumed with ``--resume``. Both use the default Instant-NGP settings, the same seed
and thread count. Records the kill points, the steps redone after each kill, whether every file was
readable after each kill, whether the metrics logs are identical (wall-clock keys aside) and the
test PSNR of both.

    python benchmarks/bench_crash_resume.py            # Lego at 1/4 size (200x200), 1500 steps

Writes benchmarks/results/crash_resume.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SHARED_DATA, machine, write_result
from nerfkit.train.trainer import read_log

TIMING_KEYS = {"time", "rays_per_s"}
CLI = [sys.executable, "-c", "import sys; from nerfkit.cli.main import main; sys.exit(main())"]


def train_cmd(a, out: Path, resume: bool) -> list[str]:
    cmd = CLI + ["train", "--data", str(a.data), "--output", str(out), "--max-steps", str(a.steps),
                 "--checkpoint-every", str(a.checkpoint_every), "--eval-every", "0", "--threads", str(a.threads),
                 "--seed", "0", "--quiet"]
    if a.downscale:
        cmd += ["--downscale", str(a.downscale)]
    return cmd + (["--resume"] if resume else [])


def logged_step(run: Path) -> int:
    """Newest step in the metrics log (0 before the first record)."""
    recs = read_log(run / "metrics.jsonl")
    return int(recs[-1]["step"]) if recs else 0


def warmups(run: Path) -> int:
    """Number of training starts that got past loading (warm-up events) so far."""
    try:
        return (run / "events.jsonl").read_text().count('"event": "warmup"')
    except FileNotFoundError:
        return 0


def files_intact(run: Path) -> bool:
    try:
        json.loads((run / "config.json").read_text())
        for ck in (run / "checkpoints").glob("step_*.pt"):
            torch.load(ck, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure is what we measure
        print(f"  damaged file: {e}")
        return False
    return True


def newest_checkpoint_step(run: Path) -> int:
    steps = [int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt")]
    return max(steps, default=0)


def test_psnr(run: Path) -> float:
    from nerfkit.train.evaluate import evaluate

    return round(float(evaluate(run, split="test", device="cpu", progress=False, report=False,
                                output=run / "eval_bench", overwrite=True)["psnr"]), 4)


def log_without_timing(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING_KEYS}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=SHARED_DATA / "nerf_synthetic" / "lego")
    ap.add_argument("--downscale", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kills", type=int, default=6, help="SIGKILLs at random moments (one inside a checkpoint write)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill schedule")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--name", default="crash_resume")
    a = ap.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="nerfkit-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "NERFKIT_FAULT_KILL_IN_CHECKPOINT"}

    ref = work / "uninterrupted"
    t0 = time.perf_counter()
    subprocess.run(train_cmd(a, ref, resume=ref.exists()), env=env, check=True)
    ref_wall = time.perf_counter() - t0
    print(f"uninterrupted run: {ref_wall:.0f} s")

    rng = random.Random(a.seed)
    # kill steps drawn uniformly over the run; one of them inside the write of a checkpoint
    fault_ck = a.checkpoint_every * max(1, (a.steps // a.checkpoint_every) // 2)
    kill_steps = sorted(rng.randint(5, a.steps - 20) for _ in range(a.kills - 1))
    plan = [("kill", s) for s in kill_steps] + [("fault", fault_ck)]
    plan.sort(key=lambda p: p[1])
    plan.insert(len(plan) // 2, ("sigint", None))  # one Ctrl+C in the middle of the series
    run = work / "interrupted"
    events = []
    t0 = time.perf_counter()
    for i, (kind, at) in enumerate(plan):
        penv = dict(env, NERFKIT_FAULT_KILL_IN_CHECKPOINT=str(at)) if kind == "fault" else env
        start_step = newest_checkpoint_step(run) if run.exists() else 0
        proc = subprocess.Popen(train_cmd(a, run, resume=i > 0), env=penv, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        target = at if kind == "kill" else (start_step + 30 if kind == "sigint" else None)
        started = warmups(run)
        while proc.poll() is None:
            # watch the log only once this process trimmed it (its warm-up event is written after that)
            if target is not None and warmups(run) > started and logged_step(run) >= target:
                proc.send_signal(signal.SIGINT if kind == "sigint" else signal.SIGKILL)
                break
            time.sleep(0.05)
        _, err = proc.communicate()
        reached = logged_step(run)
        ck = newest_checkpoint_step(run)
        rec = {"kind": kind, "target_step": at if kind != "sigint" else target, "exit_code": proc.returncode,
               "logged_step_at_stop": reached, "newest_checkpoint": ck, "steps_to_redo": max(0, reached - ck),
               "files_intact": files_intact(run)}
        if kind == "sigint":
            rec["message"] = next((x for x in err.splitlines() if "interrupted at step" in x), err[-300:])
        events.append(rec)
        print(f"  {rec}")
    subprocess.run(train_cmd(a, run, resume=True), env=env, check=True)
    interrupted_wall = time.perf_counter() - t0

    same_log = log_without_timing(ref) == log_without_timing(run)
    last = f"step_{a.steps:07d}.pt"
    w_ref = torch.load(ref / "checkpoints" / last, weights_only=True)["model"]
    w_run = torch.load(run / "checkpoints" / last, weights_only=True)["model"]
    same_weights = all(torch.equal(w_ref[k], w_run[k]) for k in w_ref)
    p_ref, p_run = test_psnr(ref), test_psnr(run)
    result = {
        "benchmark": "SIGKILL/SIGINT during Instant-NGP training, resumed with --resume",
        "command": " ".join(["python", "benchmarks/bench_crash_resume.py", *sys.argv[1:]]),
        "machine": machine(), "data": str(a.data), "downscale": a.downscale, "steps": a.steps,
        "checkpoint_every": a.checkpoint_every, "threads": a.threads,
        "interruptions": events, "n_sigkill": sum(e["kind"] in ("kill", "fault") for e in events),
        "all_files_intact": all(e["files_intact"] for e in events),
        "identical_metrics_log": same_log, "identical_final_weights": same_weights,
        "test_psnr_uninterrupted": p_ref, "test_psnr_interrupted": p_run, "psnr_difference": round(p_run - p_ref, 4),
        "wall_s_uninterrupted": round(ref_wall, 1), "wall_s_interrupted_total": round(interrupted_wall, 1),
    }
    write_result(a.name, result)
    print(json.dumps({k: v for k, v in result.items() if k != "interruptions"}, indent=1))


if __name__ == "__main__":
    main()
