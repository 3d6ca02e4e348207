"""Format detection: pick the reader for a dataset folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .blender import read_blender
from .colmap import read_colmap
from .llff import read_llff
from .record3d import read_record3d
from .transforms_json import read_transforms_json
from .scene import SceneData

READERS = {"blender": read_blender, "transforms_json": read_transforms_json, "llff": read_llff,
           "colmap": read_colmap, "record3d": read_record3d}


def detect_format(root: Path) -> str:
    """Name of the format of ``root`` (a folder)."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found; check --data")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, not a dataset folder; point --data at the folder that holds the scene")
    try:
        os.listdir(root)  # an unreadable folder would otherwise look empty to the checks below
    except OSError as e:
        raise DataError(f"{root}: cannot read the dataset folder ({e.strerror or e}); check its permissions "
                        "(e.g. chmod u+rx)") from e
    if (root / "transforms_train.json").is_file():
        return "blender"
    if (root / "transforms.json").is_file():
        return "transforms_json"
    if any(root.glob("transforms*.json")):  # several instant-ngp files, read as one scene
        return "transforms_json"
    if (root / "poses_bounds.npy").is_file():
        return "llff"
    if (root / "metadata.json").is_file() and (root / "rgb").is_dir():
        return "record3d"
    if (root / "images").is_dir() and any((d / n).is_file() for d in (root / "sparse", root / "sparse" / "0")
                                          for n in ("cameras.bin", "cameras.txt")):
        return "colmap"
    raise DataError(f"{root}: no known dataset format found (looked for transforms_train.json, "
                    "transforms.json, poses_bounds.npy, metadata.json + rgb/, images/ + sparse/cameras.bin); "
                    f"point --data at the scene folder, or pass --format (one of {', '.join(READERS)})")


def read_scene(root: str | Path, format: str | None = None, **opts) -> SceneData:
    """Read a dataset, auto-detecting its format unless ``format`` is given."""
    if format is not None and format not in READERS:
        raise DataError(f"{root}: unknown data format '{format}' (--format); use one of {', '.join(READERS)}, "
                        "or leave it out to detect the format")
    fmt = format or detect_format(Path(root))
    opts = {k: v for k, v in opts.items() if v is not None}  # None: the reader's own default
    return READERS[fmt](root, **opts)
