"""Crash-safe training: SIGKILL at several points (one inside a checkpoint write), SIGINT, resume.

The interrupted run must end with the same weights, the same metrics log (wall-clock keys aside)
and the same test PSNR as an uninterrupted run with the same seed and thread count.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nerfkit.train.trainer import read_log

STEPS, EVERY = 100, 20
# a small model keeps each of the seven process starts short; the test is about state, not quality
CHEAP = ["--set", "max_resolution=256", "--set", "n_levels=8", "--set", "log2_table_size=15",
         "--set", "grid_resolution=64", "--set", "target_samples=32768"]
TIMING_KEYS = {"time", "rays_per_s"}  # wall-clock values: the only keys allowed to differ


def _cmd(data: Path, out: Path, resume: bool = False) -> list[str]:
    cmd = [sys.executable, "-c", "import sys; from nerfkit.cli.main import main; sys.exit(main())", "train",
           "--data", str(data), "--output", str(out), "--max-steps", str(STEPS), "--checkpoint-every", str(EVERY),
           "--eval-every", "0", "--threads", "1", "--seed", "3", "--quiet", *CHEAP]
    return cmd + ["--resume"] if resume else cmd


def _env(**extra) -> dict:
    env = dict(os.environ)
    env.pop("NERFKIT_FAULT_KILL_IN_CHECKPOINT", None)
    env.update(extra)
    return env


def _logged_step(run: Path) -> int:
    """Newest step in the metrics log (0 before the first record)."""
    recs = read_log(run / "metrics.jsonl")
    return int(recs[-1]["step"]) if recs else 0


def _run_until(cmd, run: Path, env: dict, step: int | None, sig=signal.SIGKILL, event: str | None = None):
    """Start training, send ``sig`` once the log reaches ``step`` (or once ``event`` is in events.jsonl);
    returns the finished process."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if event is not None:
            ev = run / "events.jsonl"
            hit = ev.is_file() and f'"event": "{event}"' in ev.read_text().splitlines()[-1]
        else:
            hit = step is not None and _logged_step(run) >= step
        if hit:
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _assert_files_intact(run: Path) -> None:
    json.loads((run / "config.json").read_text())
    for ck in sorted((run / "checkpoints").glob("step_*.pt")):
        torch.load(ck, map_location="cpu", weights_only=True)  # raises on a corrupt file


def _log(run: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def _final_weights(run: Path) -> dict:
    ck = torch.load(run / "checkpoints" / f"step_{STEPS:07d}.pt", map_location="cpu", weights_only=True)
    return ck["model"]


def _test_psnr(run: Path) -> float:
    from nerfkit.train.evaluate import evaluate

    return float(evaluate(run, split="test", device="cpu", progress=False, report=False)["psnr"])


@pytest.fixture(scope="module")
def reference_run(synthetic_64, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("crash") / "reference"
    proc = subprocess.run(_cmd(synthetic_64, run), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return run


def test_sigkill_at_five_points_then_resume_matches_uninterrupted_run(synthetic_64, reference_run, tmp_path):
    run = tmp_path / "killed"
    rng = random.Random(11)
    # five kills: during start-up (model warm-up), at two random steps between checkpoints, inside the
    # write of the step-60 checkpoint, and at a random step after it; the sixth start runs to the end
    plan = [("event", "warmup"), ("step", rng.randint(5, 19)), ("step", rng.randint(25, 38)),
            ("fault", 60), ("step", rng.randint(61, 85))]
    kills = 0
    for i, (kind, at) in enumerate(plan):
        env = _env(NERFKIT_FAULT_KILL_IN_CHECKPOINT=str(at)) if kind == "fault" else _env()
        cmd = _cmd(synthetic_64, run, resume=i > 0)
        if kind == "event":
            rc, _, err = _run_until(cmd, run, env, None, event=at)
        else:
            rc, _, err = _run_until(cmd, run, env, at if kind == "step" else None)
        assert rc == -signal.SIGKILL, f"kill {i} ({kind} {at}) did not land: rc {rc}\n{err[-2000:]}"
        kills += 1
        _assert_files_intact(run)
        if kind == "fault":  # died inside the write: the half-written temporary file, never a step_ file
            assert (run / "checkpoints" / f".step_{at:07d}.pt.tmp").is_file()
            assert not (run / "checkpoints" / f"step_{at:07d}.pt").exists()
    proc = subprocess.run(_cmd(synthetic_64, run, resume=True), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert kills == 5
    _assert_files_intact(run)
    assert not list((run / "checkpoints").glob(".*.tmp"))
    resumes = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert sum(e["event"] == "resume" for e in resumes) == 5

    assert _log(run) == _log(reference_run)  # identical metrics log (wall-clock keys aside)
    ref_w, got_w = _final_weights(reference_run), _final_weights(run)
    assert all(torch.equal(ref_w[k], got_w[k]) for k in ref_w)
    p_ref, p_run = _test_psnr(reference_run), _test_psnr(run)
    assert abs(p_ref - p_run) <= 0.2, (p_ref, p_run)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_saves_a_checkpoint_and_exits_cleanly(synthetic_64, reference_run, tmp_path, sig):
    """Ctrl+C (and a scheduler's SIGTERM) stop at the end of the step with a checkpoint of that step."""
    run = tmp_path / "ctrl_c"
    rc, _, err = _run_until(_cmd(synthetic_64, run), run, _env(), 30, sig=sig)
    assert rc == 130, err
    assert "Traceback" not in err
    assert "interrupted at step" in err and "--resume" in err
    cks = sorted((run / "checkpoints").glob("step_*.pt"))
    stopped = int(cks[-1].stem.split("_")[1])
    assert 30 <= stopped < STEPS and stopped % EVERY != 0  # the checkpoint of the step it stopped at
    _assert_files_intact(run)
    ev = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert ev[-1]["event"] == "interrupt" and ev[-1]["signal"] == sig.name
    # resuming from a Ctrl+C checkpoint continues the same run exactly
    proc = subprocess.run(_cmd(synthetic_64, run, resume=True), env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert _log(run) == _log(reference_run)



def test_slow_steps_still_get_a_checkpoint_every_few_minutes(synthetic_64, tmp_path):
    """checkpoint_every_s: a checkpoint once that much wall-clock time passed without one (fake clock)."""
    from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
    from nerfkit.train.trainer import Trainer

    cfg = TrainConfig(data=DataConfig(path=str(synthetic_64)), method="ngp",
                      method_options={"max_resolution": 128, "n_levels": 4, "log2_table_size": 12,
                                      "grid_resolution": 32, "target_samples": 1 << 12},
                      runtime=RuntimeConfig(seed=0, max_steps=12, threads=1),
                      log=LogConfig(eval_every=0, checkpoint_every=1000, checkpoint_every_s=600.0, keep_checkpoints=10,
                                    progress=False), output=str(tmp_path / "run"))
    tr = Trainer(cfg)
    now = {"t": 0.0}
    tr._clock = lambda: now["t"]
    tr._last_save = 0.0
    tr.callbacks.append(lambda t, rec: now.update(t=now["t"] + 250.0))  # every step "takes" 250 s
    tr.train()
    saved = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "run" / "checkpoints").glob("step_*.pt"))
    assert saved == [3, 6, 9, 12]  # 750 s >= 600 s after 3 steps, then every 3 steps; the final one at 12
