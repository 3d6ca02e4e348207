"""Viewer pieces without a browser: camera conversion, pictures, crop box, render loop, training link, CLI."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest
import torch

from nerfkit.render import render_image
from nerfkit.train.trainer import scene_camera
from nerfkit.viewer.frames import colorize, crop_fields
from nerfkit.viewer.render_loop import RenderLoop, TimeShare
from nerfkit.viewer.training_link import TrainingLink
from nerfkit.viewer.view_camera import camera_from_viser, fit_resolution, scene_up, viser_pose_from_c2w


@pytest.fixture(scope="module")
def trained(trained_ngp):
    from nerfkit.export.snapshot import load_trained

    return load_trained(trained_ngp, "cpu")


def test_fit_resolution():
    assert fit_resolution(640, 480, 160) == (160, 120)
    assert fit_resolution(100, 50, 512) == (100, 50)  # never upscaled
    assert fit_resolution(1, 1000, 10) == (1, 10)


def test_viser_pose_round_trip_matches_viser_convention():
    import viser.transforms as vtf

    from nerfkit.cameras import look_at

    c2w = look_at(torch.tensor([2.0, -1.0, 0.5]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    wxyz, pos = viser_pose_from_c2w(c2w)
    # viser's own SO3 reads our quaternion as the same rotation: P_world = R p_camera + t
    assert np.allclose(vtf.SO3(wxyz).as_matrix(), c2w[:3, :3].numpy(), atol=1e-6)
    cam = camera_from_viser(wxyz, pos, math.radians(60.0), 64, 48)
    assert torch.allclose(cam.c2w, c2w, atol=1e-6)
    f = 24.0 / math.tan(math.radians(30.0))  # half height over tan(half fov)
    assert torch.allclose(cam.intrinsics, torch.tensor([f, f, 32.0, 24.0]))
    # the optical axis (+z, OpenCV) points at the look-at target
    assert torch.allclose(cam.c2w[:3, 2], -c2w[:3, 3] / c2w[:3, 3].norm(), atol=1e-6)


def test_camera_from_viser_renders_like_the_dataset_camera(trained):
    """The dataset's first test view, through viser's (wxyz, position, fov): same picture."""
    sc = trained.scene
    v = sc.splits["test"][0]
    ref_cam = scene_camera(sc, v)
    w, h = ref_cam.width, ref_cam.height
    assert abs(float(ref_cam.intrinsics[2]) - w / 2) < 1e-4 and abs(float(ref_cam.intrinsics[3]) - h / 2) < 1e-4
    fov = 2 * math.atan(0.5 * h / float(ref_cam.intrinsics[1]))
    wxyz, pos = viser_pose_from_c2w(sc.c2w[v])
    cam = camera_from_viser(wxyz, pos, fov, w, h)
    a = render_image(trained.model, ref_cam)["rgb"]
    b = render_image(trained.model, cam)["rgb"]
    assert (a - b).abs().max() < 1e-3
    assert np.allclose(scene_up(sc.c2w), [0, 0, 1])  # the synthetic scene is z-up


def test_colorize_outputs():
    rgb = torch.rand(4, 5, 3)
    depth = torch.linspace(1, 2, 20).view(4, 5)
    opacity = torch.ones(4, 5)
    opacity[0, 0] = 0.0
    out = {"rgb": rgb, "depth": depth, "opacity": opacity}
    assert np.array_equal(colorize(out, "rgb"), (rgb.numpy() * 255 + 0.5).astype(np.uint8))
    assert np.array_equal(colorize(out, "opacity")[..., 0], (opacity.numpy() * 255 + 0.5).astype(np.uint8))
    d = colorize(out, "depth").astype(float).sum(-1)
    assert d[0, 0] == 0  # transparent pixel is black
    assert d[0, 1] > d[3, 4]  # near is brighter than far
    with pytest.raises(ValueError):
        colorize(out, "normals")


def test_crop_box(trained):
    model, sc = trained.model, trained.scene
    cam = scene_camera(sc, sc.splits["test"][0])
    full = render_image(model, cam)
    lo, hi = sc.aabb[0].numpy(), sc.aabb[1].numpy()
    with crop_fields(model, lo - 10, hi + 10) as n:
        assert n == 1
        same = render_image(model, cam)
    assert (same["rgb"] - full["rgb"]).abs().max() < 1e-5
    far = hi + 100.0
    with crop_fields(model, far, far + 1):  # a box holding nothing: empty picture
        empty = render_image(model, cam)
    assert full["opacity"].max() > 0.5 and empty["opacity"].max() < 1e-6
    half_hi = hi.copy()
    half_hi[0] = 0.5 * (lo[0] + hi[0])
    with crop_fields(model, lo, half_hi):
        half = render_image(model, cam)
    assert 0.0 < half["opacity"].sum() < full["opacity"].sum()
    assert (render_image(model, cam)["rgb"] - full["rgb"]).abs().max() < 1e-5  # hooks removed


def test_render_loop_is_not_starved_by_a_moving_camera():
    """While training runs the loop waits out training's share after each frame; a camera that moves more
    often than that wait lasts must still get frames (the newest camera each time)."""
    shown = []

    def render(view, side):
        time.sleep(0.02)  # with share 0.1 each frame is followed by a 0.18 s wait
        return view

    loop = RenderLoop(render, lambda f, final: shown.append(f), levels=(8, 32), settle_s=0.05,
                      share=TimeShare(0.1, busy=lambda: True))
    t_end = time.monotonic() + 1.5
    k = 0
    while time.monotonic() < t_end:  # a new camera every 0.03 s
        loop.request(k)
        k += 1
        time.sleep(0.03)
    loop.stop()
    assert len(shown) >= 4, shown  # ~1.5 s / 0.2 s per frame
    assert shown == sorted(shown) and len(set(shown)) == len(shown)  # always a newer camera


def test_render_loop_progressive_and_newest_only():
    shown, rendered = [], []
    gate = threading.Event()

    def render(view, side):
        rendered.append((view, side))
        if view == "slow":
            gate.wait(5)
        return (view, side)

    loop = RenderLoop(render, lambda f, final: shown.append((f, final)), levels=(8, 32), settle_s=0.05)
    loop.request("a")
    t_end = time.monotonic() + 10
    while not loop.idle() and time.monotonic() < t_end:
        time.sleep(0.01)
    assert shown == [(("a", 8), False), (("a", 32), True)]  # fast frame first, refined when still
    shown.clear()
    rendered.clear()
    loop.request("slow")
    time.sleep(0.1)
    for v in ("b", "c", "d"):  # arrive while "slow" renders: only the newest is rendered next
        loop.request(v)
    gate.set()
    while not loop.idle() and time.monotonic() < t_end:
        time.sleep(0.01)
    assert [v for v, _ in rendered] == ["slow", "d", "d"]
    assert shown[-1] == (("d", 32), True)
    loop.stop()
    assert not loop.alive


def test_render_loop_client_gone_mid_render():
    """show() raising (the browser tab closed while the frame rendered) ends the thread quietly."""
    errors = []

    def show(frame, final):
        raise ConnectionError("client disconnected")

    loop = RenderLoop(lambda v, s: v, show, levels=(8,), on_error=errors.append)
    loop.request("a")
    loop._thread.join(5)
    assert not loop.alive and errors == []


def test_render_loop_reports_render_errors_and_lives_on():
    errors, shown = [], []

    def render(view, side):
        if view == "bad":
            raise RuntimeError("boom")
        return view

    loop = RenderLoop(render, lambda f, final: shown.append(f), levels=(8,), on_error=errors.append)
    loop.request("bad")
    time.sleep(0.2)
    loop.request("good")
    t_end = time.monotonic() + 5
    while not shown and time.monotonic() < t_end:
        time.sleep(0.01)
    loop.stop()
    assert [str(e) for e in errors] == ["boom"] and shown == ["good"]


def test_time_share():
    busy = [True]
    ts = TimeShare(0.25, busy=lambda: busy[0])
    ts.charge(0.1)  # 0.1 s rendering at a 25 % share: wait 0.3 s before the next frame
    assert 0.25 < ts.wait_s() <= 0.3
    busy[0] = False  # training paused or finished: no waiting
    assert ts.wait_s() == 0.0
    with pytest.raises(ValueError):
        TimeShare(0.0)


def test_training_link_pause_copy_and_status():
    model = torch.nn.Linear(2, 2)
    link = TrainingLink(refresh_s=0.0, status_s=0.0)
    copy = link.attach(model)
    statuses = []
    link.on_status = statuses.append

    class FakeTrainer:
        pass

    tr = FakeTrainer()
    tr.model = model
    with torch.no_grad():
        model.weight.fill_(3.0)
    link(tr, {"step": 1, "loss": 0.5, "psnr": 20.0})
    assert torch.equal(copy.weight, model.weight) and link.copies == 1
    assert statuses[-1]["step"] == 1 and statuses[-1]["psnr"] == 20.0
    # while a frame renders (lock held elsewhere) the trainer does not wait: no copy this step
    with torch.no_grad():
        model.weight.fill_(4.0)
    held = threading.Event()
    release = threading.Event()

    def render_thread():
        with link.model_lock:
            held.set()
            release.wait(5)

    th = threading.Thread(target=render_thread)
    th.start()
    held.wait(5)
    t0 = time.monotonic()
    link(tr, {"step": 2, "loss": 0.4, "psnr": 21.0})
    assert time.monotonic() - t0 < 0.5 and float(copy.weight[0, 0]) == 3.0
    release.set()
    th.join()
    # pause holds the trainer's callback until resume
    link.pause()
    done = threading.Event()
    th = threading.Thread(target=lambda: (link(tr, {"step": 3, "loss": 0.3, "psnr": 22.0}), done.set()))
    th.start()
    assert not done.wait(0.3)
    link.resume()
    assert done.wait(5)
    th.join()
    assert float(copy.weight[0, 0]) == 4.0


def test_trainer_calls_callbacks(synthetic_64, tmp_path):
    from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig
    from nerfkit.train.trainer import train

    seen = []
    cfg = TrainConfig(data=DataConfig(path=str(synthetic_64)), method="ngp", runtime=RuntimeConfig(max_steps=3),
                      log=LogConfig(eval_every=0, checkpoint_every=0, progress=False), output=str(tmp_path / "run"))
    train(cfg, callbacks=[lambda tr, rec: seen.append((rec["step"], tr.step, rec["psnr"]))])
    assert [s for s, _, _ in seen] == [1, 2, 3] and all(a == b for _, a, b in [(0, s, t) for s, t, _ in seen])


def test_view_cli_bad_snapshot(tmp_path, capsys):
    from nerfkit.cli.main import main

    bad = tmp_path / "broken.nksnap"
    bad.write_bytes(b"not a snapshot")
    assert main(["view", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "broken.nksnap" in err and "Traceback" not in err
    assert main(["view", str(tmp_path / "missing"), "--port", "0"]) == 2


def test_port_in_use_takes_the_next(trained, tmp_path, capsys):
    from nerfkit.viewer.server import Viewer, ViewerOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        v = Viewer(trained.model, trained.scene, options=ViewerOptions(port=taken, output_dir=tmp_path,
                                                                        thumbnails=False))
        try:
            port = v.start()
            assert port != taken and port > taken
            assert f"port {taken} is in use; using port {port}" in capsys.readouterr().err
        finally:
            v.stop()


def test_host_warning(trained, tmp_path, capsys):
    from nerfkit.viewer.server import Viewer, ViewerOptions

    v = Viewer(trained.model, trained.scene, options=ViewerOptions(host="0.0.0.0", port=0, output_dir=tmp_path,
                                                                    thumbnails=False))
    try:
        v.start()
        assert "warning: the viewer listens on 0.0.0.0" in capsys.readouterr().err
    finally:
        v.stop()
