"""The viewer in a real browser: Debian's headless Chromium driven by Playwright.

Opens the viewer of the tiny trained model, compares the canvas with a server-side render_image of
the browser's own camera, switches the output to depth, saves a PNG and a keyframe, and closes a
tab in the middle of a render. Skips when chromium is absent, except on CI (CI=true) where it fails.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 640, "height": 480}
FRAME_SIDE = 160  # the viewer's refined frames: 160x120, stretched by the browser to the 640x480 canvas
T = 120.0  # generous waits: CI machines are small and busy


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        msg = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed (pip install -e '.[test]')")
        pytest.skip("playwright is not installed")
    return exe


def _wait(cond, timeout=T, what="condition"):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _screenshot(page) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB")).astype(np.float32) / 255.0


def _canvas_mask(page, w: int, h: int) -> np.ndarray:
    """[H, W] True where the 3D canvas is the topmost element (not under the panel or a notification)."""
    m = page.evaluate("""([w, h]) => { const out = [];
        for (let y = 0; y < h; y++) { const row = [];
          for (let x = 0; x < w; x++) { const e = document.elementFromPoint(x + 0.5, y + 0.5);
            row.push(e !== null && e.tagName === 'CANVAS' ? 1 : 0); }
          out.push(row); }
        return out; }""", [w, h])
    mask = np.array(m, dtype=bool)
    mask[-90:, :90] = False  # the axes gizmo, drawn in the canvas itself (bottom left)
    return mask


def _reference(model, cam_state, size, background, output="rgb"):
    """render_image of the browser's camera, built here independently of the viewer's conversion:
    viser's own SO3 for the rotation, the pinhole intrinsics of a vertical field of view."""
    import viser.transforms as vtf
    from PIL import Image

    from nerfkit.render import Camera, render_image
    from nerfkit.viewer.frames import colorize

    wxyz, pos, fov = cam_state
    w, h = size
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.from_numpy(vtf.SO3(np.asarray(wxyz)).as_matrix()).float()
    c2w[:3, 3] = torch.as_tensor(pos).float()
    f = 0.5 * h / math.tan(0.5 * fov)
    out = render_image(model, Camera(c2w, torch.tensor([f, f, w / 2, h / 2]), w, h), background=background)
    img = Image.fromarray(colorize(out, output)).resize((VIEWPORT["width"], VIEWPORT["height"]), Image.BILINEAR)
    return np.asarray(img).astype(np.float32) / 255.0, c2w


def test_viewer_in_chromium(trained_ngp, tmp_path):
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    from nerfkit.cameras.path_files import read_camera_path
    from nerfkit.viewer.app import view_trained
    from nerfkit.viewer.server import ViewerOptions

    out_dir = tmp_path / "views"
    viewer = view_trained(trained_ngp, ViewerOptions(port=0, max_res=FRAME_SIDE, preview_res=48, output_dir=out_dir,
                                                     thumbnails=True), device="cpu")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, timeout=T * 1000)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(T * 1000)
            page.goto(viewer.url)
            page.wait_for_selector("canvas")
            _wait(lambda: len(viewer.loops) > 0, what="client")
            cid = next(iter(viewer.loops))
            client = viewer.server.get_clients()[cid]
            # hide the training cameras from the browser's panel so only the rendered picture shows
            page.get_by_label("Training cameras").uncheck()
            _wait(lambda: not viewer.gui_cams.value, what="checkbox")
            frame = viewer.wait_idle(cid, T)
            assert frame.image.shape[:2] == (FRAME_SIDE * 3 // 4, FRAME_SIDE)
            time.sleep(1.0)  # let the browser draw the last frame
            shot = _screenshot(page)
            mask = _canvas_mask(page, VIEWPORT["width"], VIEWPORT["height"])
            assert mask.mean() > 0.3
            cam = (client.camera.wxyz.copy(), client.camera.position.copy(), client.camera.fov)
            ref, c2w = _reference(viewer.model, cam, (frame.camera.width, frame.camera.height), viewer.background)
            # the browser's camera is the one the viewer set: the first test view of the dataset
            want = viewer.scene.c2w[viewer.scene.splits["test"][0]]
            assert torch.allclose(c2w, want, atol=2e-3), (c2w, want)
            # not blank: the object covers part of the picture, with contrast
            assert shot[mask].std() > 0.05
            err = np.abs(shot - ref)[mask].mean()
            assert err < 0.03, f"canvas differs from render_image by {err:.4f} (mean abs)"

            # switch to depth in the browser's dropdown: the canvas changes and matches the depth picture
            page.get_by_label("Output").click()
            page.get_by_role("option", name="depth").click()
            _wait(lambda: viewer.gui_output.value == "depth", what="output = depth")
            frame_d = _wait(lambda: (f := viewer.wait_idle(cid, T)).view.output == "depth" and f, what="depth frame")
            time.sleep(1.0)
            shot_d = _screenshot(page)
            assert np.abs(shot_d - shot)[mask].mean() > 0.05
            ref_d, _ = _reference(viewer.model, cam, (frame_d.camera.width, frame_d.camera.height),
                                  viewer.background, "depth")
            assert np.abs(shot_d - ref_d)[mask].mean() < 0.04

            # save the view: a PNG of the selected output at the save height, with the canvas' aspect
            page.get_by_role("button", name="Save view PNG").click()
            png = _wait(lambda: sorted(out_dir.glob("view_*.png")), what="saved PNG")[0]
            from PIL import Image

            saved = np.asarray(Image.open(png))
            h = int(viewer.gui_save_h.value)
            assert saved.shape == (h, round(h * 4 / 3), 3)
            page.get_by_role("button", name="Add keyframe").click()
            path_file = _wait(lambda: (out_dir / "camera_path.json").is_file() and out_dir / "camera_path.json",
                              what="camera_path.json")
            meta = json.loads(path_file.read_text())
            assert meta["format"] == "nerfkit-camera-path" and meta["frame"] == "scene"
            cp = read_camera_path(path_file)
            assert len(cp) == 1 and torch.allclose(cp.c2w[0], c2w, atol=1e-4)
            assert abs(float(cp.fov_y_deg[0]) - math.degrees(cam[2])) < 1e-3

            # a second tab closed while its first frame renders: its thread ends, the first tab lives on
            page2 = browser.new_page(viewport=VIEWPORT)
            page2.goto(viewer.url)
            cid2 = _wait(lambda: max(viewer.loops) if len(viewer.loops) > 1 else None, what="second client")
            loop2 = viewer.loops[cid2]
            page2.close()
            _wait(lambda: cid2 not in viewer.loops and not loop2.alive, what="second client's thread to end")
            assert cid in viewer.loops and viewer.loops[cid].alive
            browser.close()
    finally:
        viewer.stop()
