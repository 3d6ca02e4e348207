"""How much a connected viewer slows training: training steps/s with and without a browser client.

Trains Instant-NGP on the built-in synthetic scene (64 px) for ``--seconds`` of training time twice,
alternating the order over ``--repeats`` rounds: once with no viewer, once with ``--viewer`` and one
headless Chromium tab (Debian's chromium via Playwright) whose camera orbits, a new view every 0.25 s
(the worst case, a user dragging all the time), at the viewer's default time share. The
browser runs on the same 2 cores as training here and draws its WebGL canvas in software, so the
number includes the browser's own cost, which a user's desktop browser would not take from training.
Reports steps per second of wall time during the training loop, and the slowdown
1 - rate_with / rate_without. Writes ``benchmarks/results/viewer_slowdown.json``.

Usage: ``python benchmarks/bench_viewer_slowdown.py [--seconds 20] [--repeats 2] [--share 0.25] [--warm 60
--name viewer_slowdown_warm]`` (``--warm``: first train that long without a viewer and measure the steady state).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

from nerfkit.data.synthetic import generate_synthetic  # noqa: E402
from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig  # noqa: E402
from nerfkit.train.trainer import Trainer, _merge_resume  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _cfg(data: Path, out: Path, max_time: float) -> TrainConfig:
    return TrainConfig(data=DataConfig(path=str(data)), method="ngp", runtime=RuntimeConfig(max_time=max_time, seed=0),
                       log=LogConfig(eval_every=0, checkpoint_every=0, progress=False), output=str(out))


def run_once(data: Path, work: Path, seconds: float, with_viewer: bool, share: float, max_res: int,
             warm: Path | None = None, warm_s: float = 0.0) -> dict:
    out = work / f"run_{'viewer' if with_viewer else 'plain'}_{time.time_ns()}"
    if warm is not None:  # continue a run already trained for warm_s seconds (occupancy grid pruned)
        shutil.copytree(warm, out)
        cfg = _merge_resume(_cfg(data, out, warm_s + seconds))
        cfg.output = str(out)  # the stored config names the warm run's folder
        trainer = Trainer(cfg, resume=True)
    else:
        trainer = Trainer(_cfg(data, out, seconds))
    step0 = trainer.step
    stop = threading.Event()
    viewer = browser_thread = None
    frames = 0
    if with_viewer:
        from nerfkit.viewer.app import start_training_viewer
        from nerfkit.viewer.server import ViewerOptions

        viewer, link = start_training_viewer(trainer, ViewerOptions(port=0, share=share, max_res=max_res,
                                                                    output_dir=work / "views", thumbnails=False))
        trainer.callbacks.append(link)
        ready = threading.Event()

        def browse():
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                b = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
                page = b.new_page(viewport={"width": 640, "height": 480})
                page.goto(viewer.url)
                page.wait_for_selector("canvas", timeout=120_000)
                while not viewer.loops:
                    time.sleep(0.05)
                ready.set()
                k = 0
                while not stop.is_set():  # orbit the camera: a new view every 0.25 s
                    for cid, client in list(viewer.server.get_clients().items()):
                        a = 0.3 * k
                        client.camera.position = (3 * math.cos(a), 3 * math.sin(a), 1.5)
                        client.camera.look_at = (0.0, 0.0, 0.0)
                        # a camera set from the server does not come back as a client update (a mouse drag
                        # sent by Playwright did not reach viser's controls either): hand the new view to
                        # the render loop the way a browser camera update does
                        viewer._camera_moved(cid, client.camera)
                    k += 1
                    stop.wait(0.25)
                b.close()

        browser_thread = threading.Thread(target=browse, daemon=True)
        browser_thread.start()
        ready.wait(180)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    if with_viewer:
        frames = sum(loop.frames for loop in viewer.loops.values())  # before the tab closes (its loop goes)
        stop.set()
        browser_thread.join(30)
        viewer.stop()
    steps = trainer.step - step0
    return {"viewer": with_viewer, "steps": steps, "train_time_s": round(trainer.train_time, 2),
            "wall_s": round(wall, 2), "steps_per_s": round(steps / wall, 3), "viewer_frames": frames}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="training time per run")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--share", type=float, default=0.25, help="the viewer's render time share")
    ap.add_argument("--max-res", type=int, default=256, help="viewer's refined frame size")
    ap.add_argument("--warm", type=float, default=0.0,
                    help="train this many seconds first (no viewer) and measure from there: the steady state")
    ap.add_argument("--name", default="viewer_slowdown")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    try:
        data = generate_synthetic(work / "s64", resolution=64)
        warm = None
        if a.warm > 0:
            warm = work / "warm"
            Trainer(_cfg(data, warm, a.warm)).train()
        runs = []
        for r in range(a.repeats):
            for with_viewer in ((False, True) if r % 2 == 0 else (True, False)):
                res = run_once(data, work, a.seconds, with_viewer, a.share, a.max_res, warm, a.warm)
                print(res, flush=True)
                runs.append(res)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    plain = sum(r["steps"] for r in runs if not r["viewer"]) / sum(r["wall_s"] for r in runs if not r["viewer"])
    view = sum(r["steps"] for r in runs if r["viewer"]) / sum(r["wall_s"] for r in runs if r["viewer"])
    out = {"machine": machine(), "seconds": a.seconds, "warm_seconds": a.warm, "share": a.share,
           "max_res": a.max_res, "runs": runs,
           "steps_per_s_without": round(plain, 3), "steps_per_s_with_client": round(view, 3),
           "slowdown": round(1.0 - view / plain, 4)}
    print(f"steps/s without viewer {plain:.2f}, with one moving client {view:.2f}: slowdown {100 * out['slowdown']:.1f} %")
    write_result(a.name, out)


if __name__ == "__main__":
    main()
