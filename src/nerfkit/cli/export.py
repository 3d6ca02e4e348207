"""``nerfkit export``: turn a trained run (or snapshot) into a mesh, a point cloud or a snapshot file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def cmd_mesh(a) -> int:
    from ..export.mesh import MESH_FORMATS, MeshOptions, check_output, extract_mesh, save_mesh
    from ..export.snapshot import load_trained

    out = check_output(a.output, a.overwrite, MESH_FORMATS)  # fail before loading or computing anything
    t0 = time.perf_counter()
    trained = load_trained(a.run, a.device)
    opts = MeshOptions(resolution=a.resolution, threshold=a.threshold,
                       crop=tuple(a.crop) if a.crop else None, keep_largest=a.keep_largest,
                       fill_cavities=not a.no_fill,
                       colors=not a.no_colors)
    mesh = extract_mesh(trained.model, trained.scene, opts)
    save_mesh(mesh, out)
    print(f"mesh: {out} ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces, {mesh.n_components} components, "
          f"largest {100 * mesh.largest_share:.1f}% of the faces{', kept alone' if a.keep_largest else ''}; "
          f"threshold {a.threshold:g}, resolution {a.resolution}; {time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_points(a) -> int:
    from ..export.points import POINT_FORMATS, PointsOptions, extract_points, save_points
    from ..export.mesh import check_output
    from ..export.snapshot import load_trained

    out = check_output(a.output, a.overwrite, POINT_FORMATS)
    t0 = time.perf_counter()
    trained = load_trained(a.run, a.device)
    opts = PointsOptions(views=a.views, max_points=a.max_points if a.max_points > 0 else None,
                         min_opacity=a.min_opacity, downscale=a.downscale)
    cloud = extract_points(trained.model, trained.scene, opts)
    save_points(cloud, out)
    print(f"points: {out} ({len(cloud.points)} points from {len(cloud.views)} training views; "
          f"{time.perf_counter() - t0:.1f} s)")
    return 0


def cmd_snapshot(a) -> int:
    from ..errors import RunError

    try:  # written beside this command; imported late so mesh/points work without it
        from ..export.snapshot import save_snapshot
    except ImportError:
        raise RunError("snapshot export is not available in this version of nerfkit") from None
    out = Path(a.output)
    if out.exists() and not out.is_dir() and not a.overwrite:
        raise RunError(f"{out}: already exists; pass --overwrite to replace it or choose another --output")
    path = save_snapshot(a.run, out, overwrite=a.overwrite)
    print(f"snapshot: {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="export a trained run: mesh, point cloud or snapshot file")
    kinds = e.add_subparsers(dest="kind", required=True)

    m = kinds.add_parser("mesh", help="marching-cubes mesh of the density, vertex-coloured (PLY, OBJ, GLB)")
    m.add_argument("run", help="run directory or snapshot file")
    m.add_argument("--output", "-o", required=True, help="mesh file: .ply, .obj or .glb")
    m.add_argument("--resolution", type=int, default=256,
                   help="grid samples along the longest side of the box (default 256)")
    m.add_argument("--threshold", type=float, default=10.0,
                   help="density level of the surface (default 10; an error suggests a value when nothing crosses it)")
    m.add_argument("--crop", type=float, nargs=6, metavar=("XMIN", "YMIN", "ZMIN", "XMAX", "YMAX", "ZMAX"),
                   help="box in the dataset's original coordinates (default: the whole scene box)")
    m.add_argument("--no-fill", action="store_true",
                   help="keep enclosed low-density cavities (default: fill them, so only the outer surface remains)")
    m.add_argument("--keep-largest", action="store_true", help="keep only the largest connected component")
    m.add_argument("--no-colors", action="store_true", help="skip the vertex colours")
    m.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    m.add_argument("--device", default="auto")
    m.set_defaults(func=cmd_mesh)

    p = kinds.add_parser("points", help="point cloud from the rendered depth of training views (PLY)")
    p.add_argument("run", help="run directory or snapshot file")
    p.add_argument("--output", "-o", required=True, help="point cloud file (.ply)")
    p.add_argument("--views", type=int, default=10, help="training views to render, evenly spaced (default 10)")
    p.add_argument("--max-points", type=int, default=1_000_000,
                   help="keep at most this many points, a random subset (default 1000000; 0: all)")
    p.add_argument("--min-opacity", type=float, default=0.9,
                   help="drop pixels whose rendered opacity is lower (default 0.9)")
    p.add_argument("--downscale", type=float, default=1.0,
                   help="render the views this many times smaller than the training images (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_points)

    s = kinds.add_parser("snapshot", help="one self-describing file with the trained scene (.nerfkit)")
    s.add_argument("run", help="run directory")
    s.add_argument("--output", "-o", required=True, help="snapshot file, e.g. scene.nerfkit")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    s.set_defaults(func=cmd_snapshot)
