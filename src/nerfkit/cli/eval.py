"""``nerfkit eval``: metrics, comparison pictures and a report of a trained run or snapshot on a split."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_eval(a) -> int:
    from ..train.evaluate import evaluate

    m = evaluate(a.run, split=a.split, device=a.device, progress=not a.quiet, output=a.output, data=a.data,
                 overwrite=a.overwrite, every=a.every, max_images=a.max_images)
    lp = "n/a" if m["lpips"] is None else f"{m['lpips']:.4f}"
    out = Path(m["output"])
    print(f"{m['split']}: {m['n_images']} images at {m['resolution'][0]}x{m['resolution'][1]}: "
          f"PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, LPIPS {lp}")
    print(f"metrics: {out / 'metrics.json'}\nreport: {out / 'report.html'} (and report.md)\npictures: {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a run or snapshot: metrics.json, comparison pictures, report.html/.md")
    e.add_argument("run", metavar="RUN|SNAPSHOT", help="run directory or snapshot file (nerfkit export snapshot)")
    e.add_argument("--data", default=None,
                   help="dataset to compare against, when it is no longer where training read it "
                        "(required for a snapshot whose dataset is not on this machine)")
    e.add_argument("--split", default="test", help="split to evaluate (default test)")
    e.add_argument("--output", default=None,
                   help="output folder (default RUN/eval, or SNAPSHOT_STEM_eval beside the snapshot)")
    e.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation in the output folder")
    e.add_argument("--every", type=int, default=1, help="evaluate every k-th image of the split (default 1: all)")
    e.add_argument("--max-images", type=int, default=None, help="evaluate at most this many images")
    e.add_argument("--device", default="auto")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_eval)
