"""``nerfkit render``: camera paths of a trained run to mp4 videos and PNG frames; bad input exits 2."""

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from nerfkit.cameras.paths import interpolate_poses
from nerfkit.cli.main import main
from nerfkit.data.images import background_color
from nerfkit.export.snapshot import load_trained
from nerfkit.render import Camera, render_image
from nerfkit.video.render_path import (DepthColouring, orbit_for_scene, path_intrinsics, scene_path,
                                       train_path_for_scene, video_files)


@pytest.fixture(scope="module")
def trained(trained_ngp):
    return load_trained(trained_ngp, "cpu")


def _reference(trained, c2w, k, w, h):
    bg = background_color(trained.cfg.data.background, ())
    return render_image(trained.model, Camera(c2w, k, w, h), background=bg)


def _decode(path):
    with imageio.get_reader(path) as r:
        return [f for f in r]


def _png(path):
    return np.asarray(imageio.imread(path))


def test_orbit_all_channels_video_and_frames(trained_ngp, trained, tmp_path):
    out = tmp_path / "out" / "orbit.mp4"
    rc = main(["render", str(trained_ngp), "--path", "orbit", "--frames", "8", "--width", "32", "--height", "32",
               "--channels", "rgb,depth,opacity", "--output", str(out), "--frames-dir", str(tmp_path / "f"),
               "--quiet", "--fps", "8"])
    assert rc == 0
    for name in ("orbit.mp4", "orbit_depth.mp4", "orbit_opacity.mp4"):
        frames = _decode(tmp_path / "out" / name)
        assert len(frames) == 8 and frames[0].shape == (32, 32, 3)
    for c in ("rgb", "depth", "opacity"):
        assert len(list((tmp_path / "f").glob(f"{c}_*.png"))) == 8
    assert not list((tmp_path / "out").glob("*.tmp*"))
    # frame 0 is render_image at the orbit's first camera
    scene = trained.scene
    c2w = orbit_for_scene(scene, 8)[0]
    k = path_intrinsics(scene, 32, 32)
    ref = _reference(trained, c2w, k, 32, 32)
    rgb_ref = (ref["rgb"].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    rgb_png = _png(tmp_path / "f" / "rgb_0000.png")
    assert np.abs(rgb_png.astype(int) - rgb_ref).max() <= 1
    op_png = _png(tmp_path / "f" / "opacity_0000.png")
    assert np.abs(op_png[..., 0].astype(int) - (ref["opacity"].clamp(0, 1).numpy() * 255 + 0.5)).max() <= 1
    dep_ref = (DepthColouring()(ref["depth"], ref["opacity"]).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(_png(tmp_path / "f" / "depth_0000.png").astype(int) - dep_ref).max() <= 1
    # the decoded video frame matches within the codec's loss
    video0 = _decode(out)[0].astype(float)
    assert np.abs(video0 - rgb_ref).mean() < 6.0
    assert ref["opacity"].mean() > 0.05  # the camera sees the object (not a blank frame)


def test_file_path_with_fov_and_size_from_the_file(trained_ngp, trained, tmp_path):
    scene = trained.scene
    views = scene.split("train")
    kf = scene.c2w[views[:3]]
    poses, fov = interpolate_poses(kf, 5, fovs=torch.tensor([40.0, 50.0, 60.0]))
    path = {"format": "nerfkit-camera-path", "version": 1, "frame": "scene", "width": 24, "height": 16, "fps": 5,
            "frames": [{"c2w": poses[i].tolist(), "fov_y_deg": float(fov[i])} for i in range(5)]}
    f = tmp_path / "mypath.json"
    f.write_text(json.dumps(path))
    out = tmp_path / "v.mp4"
    rc = main(["render", str(trained_ngp), "--path", str(f), "--channels", "rgb", "--output", str(out),
               "--frames-dir", str(tmp_path / "fr"), "--quiet"])
    assert rc == 0
    assert [p.name for p in tmp_path.glob("*.mp4")] == ["v.mp4"]  # one channel + --output: that file only
    frames = _decode(out)
    assert len(frames) == 5 and frames[0].shape == (16, 24, 3)
    # frame 2 at fov 50 degrees (vertical): fy = 8 / tan(25 deg)
    k = path_intrinsics(scene, 24, 16, fov[2:3])[0]
    assert float(k[1]) == pytest.approx(8 / np.tan(np.radians(25)), rel=1e-5)
    ref = (_reference(trained, poses[2], k, 24, 16)["rgb"].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
    assert np.abs(_png(tmp_path / "fr" / "rgb_0002.png").astype(int) - ref).max() <= 1


def test_keyframe_file_is_interpolated_to_seconds_times_fps(trained_ngp, trained, tmp_path):
    scene = trained.scene
    kf = scene.c2w[scene.split("train")[:2]]
    meta = {"camera_path": [], "render_width": 16, "render_height": 16}  # nerfstudio dialect, zero frames
    bad = tmp_path / "empty_path.json"
    bad.write_text(json.dumps(meta))
    assert main(["render", str(trained_ngp), "--path", str(bad), "--output", str(tmp_path / "x.mp4"), "--quiet"]) == 2
    f = tmp_path / "kf.json"
    f.write_text(json.dumps({"format": "nerfkit-camera-path", "version": 1, "interpolate": True,
                             "width": 16, "height": 16, "frames": [{"c2w": kf[0].tolist()}, {"c2w": kf[1].tolist()}]}))
    rc = main(["render", str(trained_ngp), "--path", str(f), "--seconds", "1", "--fps", "4", "--channels", "depth",
               "--output", str(tmp_path / "d.mp4"), "--no-frames", "--quiet"])
    assert rc == 0
    frames = _decode(tmp_path / "d.mp4")
    assert len(frames) == 4 and frames[0].shape == (16, 16, 3)


def test_spiral_and_train_paths(trained):
    scene = trained.scene
    with pytest.warns(UserWarning, match="forward-facing"):  # the synthetic scene is a 360 capture
        sp = scene_path(scene, "spiral", 6)
    tr = train_path_for_scene(scene, 19)  # 10 keyframes, 2 frames per segment: keyframes at even frames
    assert sp.shape == (6, 4, 4) and tr.shape == (19, 4, 4)
    train_c2w = scene.c2w[scene.split("train")]
    for i in (0, 2, 18):  # each even frame is a training camera
        assert float((train_c2w - tr[i]).abs().flatten(1).amax(1).min()) < 1e-4
    eye = torch.eye(3).expand(6, 3, 3)
    torch.testing.assert_close(sp[:, :3, :3].transpose(1, 2) @ sp[:, :3, :3], eye, atol=1e-5, rtol=0)


def test_video_file_names():
    assert video_files(("rgb", "depth"), "r", "orbit") == {"rgb": Path("r/orbit.mp4"),
                                                           "depth": Path("r/orbit_depth.mp4")}
    assert video_files(("depth",), "r", "orbit", "x/v.mp4") == {"depth": Path("x/v.mp4")}
    assert video_files(("rgb", "opacity"), "r", "orbit", "x/v.mp4") == {"rgb": Path("x/v.mp4"),
                                                                       "opacity": Path("x/v_opacity.mp4")}


def test_bad_input_exits_2(trained_ngp, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    base = ["render", str(trained_ngp), "--frames", "2", "--width", "8", "--height", "8", "--channels", "rgb",
            "--no-frames", "--quiet"]
    assert main([*base, "--output", str(out)]) == 0
    capsys.readouterr()
    # existing output without --overwrite
    assert main([*base, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "--overwrite" in err
    assert main([*base, "--output", str(out), "--overwrite"]) == 0
    # missing camera path file
    assert main([*base, "--output", str(tmp_path / "m.mp4"), "--path", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
    # unwritable output: its folder would be inside a regular file
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main([*base, "--output", str(blocker / "v.mp4")]) == 2
    assert "output folder" in capsys.readouterr().err
    # missing run, bad channel, bad frame count
    assert main(["render", str(tmp_path / "no_run"), "--quiet"]) == 2
    assert main([*base, "--output", str(tmp_path / "c.mp4"), "--channels", "rgb,normals"]) == 2
    assert "normals" in capsys.readouterr().err
    assert main(["render", str(trained_ngp), "--frames", "0", "--output", str(tmp_path / "z.mp4"), "--quiet"]) == 2
    assert not (tmp_path / "c.mp4").exists() and not (tmp_path / "z.mp4").exists()
