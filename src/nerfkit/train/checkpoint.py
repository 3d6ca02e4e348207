"""Checkpoints: written to a temporary file, flushed to disk and renamed, so an interruption (even
SIGKILL or a power cut) never leaves a corrupt ``step_*.pt``; a failed write (disk full) leaves the
previous checkpoints untouched."""

from __future__ import annotations

import errno
import io
import os
import re
import signal
from pathlib import Path

import torch

from ..errors import RunError

_NAME = re.compile(r"step_(\d+)\.pt$")

FAULT_ENV = "NERFKIT_FAULT_KILL_IN_CHECKPOINT"
"""Test hook: when this environment variable holds a step number, the process SIGKILLs itself halfway
through writing that step's checkpoint (the crash-safety tests use it to kill inside the write)."""


def save_checkpoint(run_dir: Path, step: int, state: dict, keep: int = 2) -> Path:
    """Write ``state`` as ``checkpoints/step_XXXXXXX.pt`` atomically; keep the newest ``keep`` files.

    On a write error (disk full, permissions) the temporary file is removed and a :class:`RunError`
    names the folder and the fix; older checkpoints are kept.
    """
    ckdir = Path(run_dir) / "checkpoints"
    path = ckdir / f"step_{step:07d}.pt"
    tmp = ckdir / f".{path.name}.tmp"
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getbuffer()
    try:
        ckdir.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            if os.environ.get(FAULT_ENV) == str(step):
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        prev = list_checkpoints(run_dir)
        kept = f"the previous checkpoint {prev[-1].name} is intact" if prev else "no earlier checkpoint exists"
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            fix = f"free disk space on the drive of {ckdir} (or train into another --output) and resume with --resume"
        else:
            fix = f"check that {ckdir} is writable, then resume with --resume"
        raise RunError(f"{path}: cannot write checkpoint ({e.strerror or e}); {kept}; {fix}") from e
    _fsync_dir(ckdir)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]  # not torch's advice to unpickle
            errors.append(f"{path.name}: {first[:200]}")
    raise RunError(f"{run_dir}: every checkpoint is unreadable ({'; '.join(errors)}); re-train the run")
