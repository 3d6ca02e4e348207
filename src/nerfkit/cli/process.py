"""``nerfkit process``: a capture -> one canonical transforms.json + images/ (+ sparse points)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def cmd_process(a) -> int:
    from ..data import read_colmap_model, read_scene
    from ..data.transforms_writer import write_transforms_json

    if a.source not in ("colmap", "record3d"):
        raise ConfigError(f"process {a.source}: only 'colmap' and 'record3d' are available in this version")
    scene = read_scene(a.path, format=a.source, downscale=a.downscale)
    points = colors = None
    if a.source == "colmap":
        from ..data.colmap import _model_folder

        model = read_colmap_model(_model_folder(Path(a.path)))
        points, colors = model.points.xyz, model.points.rgb
    path = write_transforms_json(scene, a.output, points, colors, overwrite=a.overwrite)
    print(f"{len(scene)} images, {scene.camera_model} lens -> {path}")
    if points is not None:
        print(f"{len(points)} sparse points -> {Path(a.output) / 'sparse_pc.ply'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("process", help="convert a capture to one canonical transforms.json + images/")
    pr.add_argument("source", help="colmap (a workspace with images/ and sparse/) or record3d (an EXR+JPG export)")
    pr.add_argument("path", help="the capture folder")
    pr.add_argument("--output", required=True, help="folder to write (must not exist or be empty)")
    pr.add_argument("--downscale", type=float, default=None, help="write images reduced by this factor")
    pr.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    pr.set_defaults(func=cmd_process)
