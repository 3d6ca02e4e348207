"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared benchmark data folder (``$NERFKIT_SHARED_DATA`` or ``<repo>/../shared/data``).

    Missing data fails the run on CI (``CI=true``, where the data must be present) and skips elsewhere.
    """
    env = os.environ.get("NERFKIT_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        msg = f"shared data folder {path} not found (set NERFKIT_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def synthetic_64(tmp_path_factory) -> Path:
    """The built-in synthetic scene at 64x64 (100 train, 25 test views), generated once per session."""
    from nerfkit.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "s64", resolution=64)


@pytest.fixture(scope="session")
def trained_ngp(synthetic_64, tmp_path_factory) -> Path:
    """A run directory: Instant-NGP trained 600 steps (~45 s on 2 cores) on ``synthetic_64``.

    Shared by the learning floor, export, render, snapshot, eval and viewer tests. Do not modify it
    in place: copy it first (``shutil.copytree``) when a test writes into the run.
    """
    from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
    from nerfkit.train.trainer import train

    cfg = TrainConfig(data=DataConfig(path=str(synthetic_64)), method="ngp",
                      method_options={"max_resolution": 512},
                      runtime=RuntimeConfig(seed=0, max_steps=600),
                      log=LogConfig(eval_every=0, checkpoint_every=0, progress=False),
                      output=str(tmp_path_factory.mktemp("trained") / "ngp64"))
    return Path(train(cfg))


@pytest.fixture(scope="session")
def orphan_snapshot(trained_ngp, synthetic_64, tmp_path_factory) -> Path:
    """A snapshot of ``trained_ngp`` whose run directory and dataset are both gone (the dataset lives
    on as ``synthetic_64``, for tests that relocate it with ``data=``). Do not write beside it in place
    of a fresh folder unless the name is unique to the test."""
    import json
    import shutil

    from nerfkit.export.snapshot import save_snapshot

    tmp = tmp_path_factory.mktemp("orphan")
    data, run = tmp / "data", tmp / "run"
    shutil.copytree(synthetic_64, data)
    shutil.copytree(trained_ngp, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["path"] = str(data)
    (run / "config.json").write_text(json.dumps(cfg))
    snap = save_snapshot(run, tmp / "scene.nerfkit")
    shutil.rmtree(run)
    shutil.rmtree(data)
    return snap


def run_in_triton_interpreter(script: str) -> None:
    """Run ``script`` in a fresh Python with ``TRITON_INTERPRET=1`` (Triton kernels execute on the CPU with
    numpy); fail with its output when it exits non-zero. Skips when Triton is not installed."""
    import subprocess
    import sys

    pytest.importorskip("triton", reason="Triton is not installed (CUDA builds of PyTorch on Linux ship it)")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
