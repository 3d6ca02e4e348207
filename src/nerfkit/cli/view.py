"""``nerfkit view``: the web viewer on a trained run or snapshot."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_viewer_flags(p: argparse.ArgumentParser) -> None:
    """--port/--host and the render settings, shared by ``view`` and ``train --viewer``."""
    p.add_argument("--port", type=int, default=7007, help="port of the viewer (default 7007; the next free one if taken)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it, with a warning)")
    p.add_argument("--viewer-max-res", type=int, default=512,
                   help="longest side of refined viewer frames in pixels (default 512; lower is faster on a CPU)")
    p.add_argument("--viewer-share", type=float, default=0.25,
                   help="while training, the viewer renders at most this share of the time (default 0.25)")


def viewer_options(a, output_dir: str | None = None):
    from ..errors import ConfigError
    from ..viewer.server import ViewerOptions

    if not 0 < a.viewer_share <= 1:
        raise ConfigError(f"--viewer-share {a.viewer_share}: give a number in (0, 1]")
    if not 0 <= a.port < 65536:
        raise ConfigError(f"--port {a.port}: give a port between 1 and 65535 (0: any free port)")
    return ViewerOptions(host=a.host, port=a.port, max_res=max(16, a.viewer_max_res), share=a.viewer_share,
                         output_dir=Path(output_dir) if output_dir else None)


def cmd_view(a) -> int:
    from ..viewer.app import serve_forever, view_trained

    viewer = view_trained(a.source, viewer_options(a, a.output_dir), a.device)
    print(f"views and keyframes are saved to {viewer.out_dir}")
    return serve_forever(viewer, "viewer")


def register(sub: argparse._SubParsersAction) -> None:
    v = sub.add_parser("view", help="open a trained run or snapshot in the web viewer (http://127.0.0.1:7007)")
    v.add_argument("source", help="run directory or snapshot file")
    add_viewer_flags(v)
    v.add_argument("--output-dir", default=None,
                   help="folder for saved views and camera_path.json (default RUN/viewer or SNAPSHOT_viewer)")
    v.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    v.set_defaults(func=cmd_view)
