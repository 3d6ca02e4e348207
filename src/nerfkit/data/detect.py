"""Format detection: pick the reader for a dataset folder."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .blender import read_blender
from .scene import SceneData

READERS = {"blender": read_blender}


def detect_format(root: Path) -> str:
    """Name of the format of ``root`` (a folder)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; check --data")
    if (root / "transforms_train.json").is_file():
        return "blender"
    raise DataError(f"{root}: no known dataset format found (looked for transforms_train.json); "
                    f"supported formats: {', '.join(READERS)}")


def read_scene(root: str | Path, format: str | None = None, **opts) -> SceneData:
    """Read a dataset, auto-detecting its format unless ``format`` is given."""
    fmt = format or detect_format(Path(root))
    if fmt not in READERS:
        raise DataError(f"unknown data format '{fmt}'; supported: {', '.join(READERS)}")
    return READERS[fmt](root, **opts)
