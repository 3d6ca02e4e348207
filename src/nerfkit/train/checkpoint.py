"""Checkpoints: written to a temporary file and renamed, so an interruption never leaves a corrupt one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from ..errors import RunError

_NAME = re.compile(r"step_(\d+)\.pt$")


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as ``checkpoints/step_XXXXXXX.pt`` atomically; keep the newest ``keep`` files."""
    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    path = ckdir / f"step_{step:07d}.pt"
    tmp = ckdir / f".{path.name}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, oldest first."""
    ckdir = Path(run_dir) / "checkpoints"
    if not ckdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckdir.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def load_checkpoint(run_dir: Path, device="cpu") -> dict:
    """The newest readable checkpoint of a run. Loads tensors and plain containers only (no code)."""
    cks = list_checkpoints(run_dir)
    if not cks:
        raise RunError(f"{run_dir}: no checkpoint in {Path(run_dir) / 'checkpoints'}; "
                       "train first (nerfkit train) or point at a finished run")
    errors = []
    for path in reversed(cks):
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # corrupt or truncated: fall back to the previous one
            errors.append(f"{path.name}: {e}")
    raise RunError(f"{run_dir}: every checkpoint is unreadable ({'; '.join(errors)}); re-train the run")
