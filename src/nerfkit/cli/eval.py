"""``nerfkit eval``: metrics and comparison pictures of a trained run on a split."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_eval(a) -> int:
    from ..train.evaluate import evaluate

    m = evaluate(a.run, split=a.split, device=a.device, progress=not a.quiet)
    lp = "n/a" if m["lpips"] is None else f"{m['lpips']:.4f}"
    print(f"{m['split']}: {m['n_images']} images at {m['resolution'][0]}x{m['resolution'][1]}: "
          f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, LPIPS {lp}")
    print(f"metrics: {Path(m['output']) / 'metrics.json'}\npictures: {m['output']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a run: RUN/eval/metrics.json and comparison pictures")
    e.add_argument("run", help="run directory")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)
