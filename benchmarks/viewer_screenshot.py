"""A screenshot of the web viewer on a trained run, for the README (headless Debian Chromium via Playwright).

    python benchmarks/viewer_screenshot.py RUN_OR_SNAPSHOT [--output docs/viewer_lego.png]

The README's picture: lego after the 5-minute CPU benchmark run (benchmarks/bench_ngp_lego.py).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from nerfkit.viewer.app import view_trained
from nerfkit.viewer.server import ViewerOptions

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--output", default=str(Path(__file__).resolve().parents[1] / "docs" / "viewer_lego.png"))
    ap.add_argument("--max-res", type=int, default=480)
    a = ap.parse_args()
    v = view_trained(a.run, ViewerOptions(port=0, max_res=a.max_res, preview_res=64,
                                          output_dir=Path(tempfile.mkdtemp())), "cpu")
    try:
        with sync_playwright() as p:
            br = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            pg = br.new_page(viewport={"width": 960, "height": 600})
            pg.goto(v.url)
            pg.wait_for_selector("canvas", timeout=120000)
            while not v.loops:
                time.sleep(0.1)
            cid = next(iter(v.loops))
            cam = v.server.get_clients()[cid].camera
            time.sleep(2)
            cam.position = cam.look_at + 1.15 * (cam.position - cam.look_at)  # a little further out: frustums in view
            time.sleep(1)
            frame = v.wait_idle(cid, 600)
            time.sleep(2)
            pg.screenshot(path=a.output)
            print(f"{a.output}: final frame {frame.image.shape[1]}x{frame.image.shape[0]} in {frame.seconds:.2f} s")
            br.close()
    finally:
        v.stop()


if __name__ == "__main__":
    main()
