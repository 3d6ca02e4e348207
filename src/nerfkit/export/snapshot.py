"""Snapshots: one self-describing file holding a trained scene, and one loader for runs and snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..data.scene import SceneData
from ..errors import RunError
from ..methods import Method
from ..train.config import TrainConfig


@dataclass
class Trained:
    """A trained scene ready to render: config, cameras of its dataset, model on its device.

    ``scene`` carries the dataset's cameras, splits, box and normalisation. For a snapshot its
    image files may not exist on this machine: rendering and export never read them.
    """

    cfg: TrainConfig
    scene: SceneData
    model: Method
    step: int
    train_time: float
    source: Path


def load_trained(path: str | Path, device: str = "auto") -> Trained:
    """A run directory or a snapshot file -> :class:`Trained` (newest checkpoint of a run)."""
    from ..train.trainer import load_run

    path = Path(path)
    if path.is_dir():
        cfg, scene, model, ck = load_run(path, device)
        return Trained(cfg, scene, model, int(ck["step"]), float(ck["train_time"]), path)
    if path.is_file():
        raise RunError(f"{path}: snapshot files are not readable yet")  # TODO(snapshot helper)
    raise RunError(f"{path}: neither a run directory nor a snapshot file; pass a folder made by "
                   "'nerfkit train' or a file made by 'nerfkit export snapshot'")
