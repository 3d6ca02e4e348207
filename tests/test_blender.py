"""Blender (NeRF synthetic) reader: the real lego scene from ../shared/data plus tiny generated scenes.

References: the lego numbers (camera_angle_x = 0.6911112070083618 -> focal 1111.111 px at 800 px),
the raw JSON matrices (round trip through the OpenGL -> OpenCV conversion), PIL decoding with a
hand-written premultiply, and 4x4 block means for the area filter (within 1 unit of rounding).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from nerfkit.cameras import opencv_to_opengl
from nerfkit.data.blender import read_blender
from nerfkit.data.images import load_image, read_image
from nerfkit.errors import DataError, PoseError

LEGO_FOCAL = 0.5 * 800 / math.tan(0.5 * 0.6911112070083618)  # 1111.111 px


def read_recording_warnings(*args, **kwargs):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        scene = read_blender(*args, **kwargs)
    return scene, [w for w in rec if issubclass(w.category, UserWarning)]


@pytest.fixture(scope="module")
def lego(shared_data):
    root = shared_data / "nerf_synthetic" / "lego"
    if not (root / "transforms_train.json").is_file():
        pytest.skip(f"{root} not found")
    return root


@pytest.fixture(scope="module")
def lego_scene(lego):
    return read_recording_warnings(lego)


# -------------------------------------------------------------------------------------------- lego


def test_lego_splits_and_missing_test_images(lego_scene):
    scene, warns = lego_scene
    assert {k: len(v) for k, v in scene.splits.items()} == {"train": 100, "val": 100, "test": 25}
    assert len(scene) == 225 and sorted(sum(scene.splits.values(), [])) == list(range(225))
    # the test JSON lists 200 frames, only 25 images are present: one warning with the count
    assert len(warns) == 1
    msg = str(warns[0].message)
    assert "175" in msg and "transforms_test.json" in msg
    assert all(p.is_file() for p in scene.image_paths)
    assert scene.image_paths[0].name == "r_0.png" and scene.image_paths[0].parent.name == "train"


def test_lego_intrinsics(lego_scene, lego):
    scene, _ = lego_scene
    k = scene.intrinsics
    assert k.shape == (225, 4)
    assert (k[:, :2] - 1111.1).abs().max() < 0.05
    torch.testing.assert_close(k[:, 0], torch.full((225,), LEGO_FOCAL), atol=1e-3, rtol=0)
    torch.testing.assert_close(k[:, 2:], torch.full((225, 2), 400.0), atol=0, rtol=0)
    assert (scene.sizes == torch.tensor([800, 800])).all()

    small, _ = read_recording_warnings(lego, downscale=4)
    torch.testing.assert_close(small.intrinsics[:, :2], torch.full((225, 2), 277.78), atol=5e-3, rtol=0)
    torch.testing.assert_close(small.intrinsics[:, :2], k[:, :2] / 4, atol=1e-4, rtol=0)
    torch.testing.assert_close(small.intrinsics[:, 2:], torch.full((225, 2), 100.0), atol=0, rtol=0)
    assert (small.sizes == torch.tensor([200, 200])).all() and small.downscale == 4


def test_lego_poses(lego_scene, lego):
    scene, _ = lego_scene
    c2w = scene.c2w
    assert c2w.shape == (225, 4, 4) and c2w.dtype == torch.float32
    pos = c2w[:, :3, 3]
    dist = pos.norm(dim=-1)
    assert ((dist > 3.9) & (dist < 4.2)).all()
    assert abs(float(dist.mean()) - 4.03) < 0.02
    # every OpenCV camera looks (+z) towards the origin
    cos = (c2w[:, :3, 2] * -pos).sum(-1) / dist
    assert (cos > 0.9).all()
    # the world is +z up: OpenCV's camera y (down) has a negative world-z component on average
    assert float(c2w[:, 2, 1].mean()) < -0.5
    rot = c2w[:, :3, :3].double()
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3, dtype=torch.float64).expand(225, 3, 3),
                               atol=1e-5, rtol=0)
    # converting back gives the file's OpenGL matrices (train split, in file order)
    meta = json.loads((lego / "transforms_train.json").read_text())
    raw = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float32)
    torch.testing.assert_close(opencv_to_opengl(c2w[scene.split("train")]), raw, atol=0, rtol=0)


def test_lego_image_downscale_premultiplied(lego):
    path = lego / "train" / "r_0.png"
    small = load_image(path, 4)
    assert small.shape == (200, 200, 4) and small.dtype == np.uint8
    assert (small[..., :3].astype(int) <= small[..., 3:].astype(int)).all()  # premultiplied
    assert 0 < (small[..., 3] == 0).mean() < 0.9  # lego has a transparent background and an opaque object

    from PIL import Image

    with Image.open(path) as im:
        raw = np.asarray(im.convert("RGBA")).astype(np.float64)
    premult = raw.copy()
    premult[..., :3] = raw[..., :3] * raw[..., 3:] / 255.0
    full = read_image(path)
    assert full.shape == (800, 800, 4) and full.dtype == np.uint8
    assert np.abs(full.astype(np.float64) - premult).max() <= 0.5 + 1e-9  # rounding only
    assert (full[..., 3] == raw[..., 3]).all()
    blocks = full.astype(np.float64).reshape(200, 4, 200, 4, 4).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - blocks).max() <= 1.0
    assert np.abs(small.astype(np.float64) - premult.reshape(200, 4, 200, 4, 4).mean(axis=(1, 3))).max() <= 1.0


# ----------------------------------------------------------------------------------- tiny scenes


def rot_z(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


def gl_pose(deg, radius=4.0):
    """OpenGL pose on a horizontal circle, looking at the origin (z_gl points away from it)."""
    # base pose at (0,-4,0) looking along +y: x_gl = (1,0,0), y_gl = (0,0,1) (up), z_gl = (0,-1,0)
    r = np.array(rot_z(deg)) @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = radius * r[:, 2]  # the camera looks along -z_gl at the origin, so it sits at +radius z_gl
    return m.tolist()


def write_png(path, size=(4, 4), seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGBA").save(path)


def make_scene(root, n=2, fov=0.9, frames=None, meta_extra=None, write_images=True):
    frames = frames if frames is not None else [
        {"file_path": f"./train/r_{i}", "transform_matrix": gl_pose(90 * i)} for i in range(n)]
    meta = {"camera_angle_x": fov, "frames": frames}
    if meta_extra is not None:
        meta.update(meta_extra)
        meta = {k: v for k, v in meta.items() if v is not None}
    root.mkdir(parents=True, exist_ok=True)
    (root / "transforms_train.json").write_text(json.dumps(meta))  # NaN is written as the literal NaN
    if write_images:
        for i in range(len(frames)):
            write_png(root / "train" / f"r_{i}.png", seed=i)
    return root


def test_tiny_scene_reads(tmp_path):
    fov = 0.9
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": gl_pose(90 * i)} for i in range(3)]
    root = make_scene(tmp_path / "scene", frames=frames, fov=fov)
    (root / "train" / "r_2.png").unlink()  # frame 2 has no image: skipped with one warning
    scene, warns = read_recording_warnings(root)
    assert len(warns) == 1 and "1 of 3" in str(warns[0].message) and "transforms_train.json" in str(warns[0].message)
    assert scene.splits == {"train": [0, 1], "val": [], "test": []}
    assert [p.name for p in scene.image_paths] == ["r_0.png", "r_1.png"]
    f = 0.5 * 4 / math.tan(0.5 * fov)  # 3.8637... px
    torch.testing.assert_close(scene.intrinsics, torch.tensor([[f, f, 2.0, 2.0]] * 2), atol=1e-5, rtol=0)
    assert (scene.sizes == torch.tensor([4, 4])).all()
    # OpenCV poses: the first camera sits at (0,-4,0) and looks along +y with its y axis down
    torch.testing.assert_close(scene.c2w[0, :3, 3], torch.tensor([0.0, -4.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.c2w[0, :3, :3], torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.c2w[:, :3, 2], -scene.c2w[:, :3, 3] / 4, atol=1e-6, rtol=0)
    with pytest.raises(DataError, match="val"):
        scene.split("val")
    img = load_image(scene.image_paths[1])
    assert img.shape == (4, 4, 4) and (img[..., :3] <= img[..., 3:]).all()


def test_missing_transforms_train(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="transforms_train.json"):
        read_blender(tmp_path / "empty")


def test_malformed_json_names_file_and_line(tmp_path):
    root = make_scene(tmp_path / "s")
    (root / "transforms_train.json").write_text('{\n  "camera_angle_x": 0.5,\n  "frames": [,]\n}\n')
    with pytest.raises(DataError) as exc:
        read_blender(root)
    msg = str(exc.value)
    assert "transforms_train.json" in msg and "line 3" in msg
    # valid JSON of the wrong shape
    (root / "transforms_train.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="transforms_train.json"):
        read_blender(root)


@pytest.mark.parametrize("value, err", [(None, DataError), ("wide", DataError), (float("nan"), PoseError),
                                        (4.0, PoseError), (0.0, PoseError)])
def test_bad_camera_angle_x(tmp_path, value, err):
    # None: key removed
    root = make_scene(tmp_path / "s", meta_extra={"camera_angle_x": value})
    with pytest.raises(err, match="transforms_train.json") as exc:
        read_blender(root)
    assert "camera_angle_x" in str(exc.value)


def test_nan_pose(tmp_path):
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": gl_pose(90 * i)} for i in range(2)]
    frames[1]["transform_matrix"][0][3] = float("nan")
    root = make_scene(tmp_path / "s", frames=frames)
    with pytest.raises(PoseError) as exc:
        read_blender(root)
    msg = str(exc.value)
    assert "transforms_train.json" in msg and "r_1" in msg and "NaN" in msg


@pytest.mark.parametrize("kind", ["scaled", "reflected"])
def test_non_rigid_pose(tmp_path, kind):
    frames = [{"file_path": f"./train/r_{i}", "transform_matrix": gl_pose(90 * i)} for i in range(2)]
    m = np.array(frames[0]["transform_matrix"])
    if kind == "scaled":
        m[:3, :3] *= 1.5
    else:
        m[:3, 0] *= -1
    frames[0]["transform_matrix"] = m.tolist()
    root = make_scene(tmp_path / "s", frames=frames)
    with pytest.raises(PoseError, match="rigid") as exc:
        read_blender(root)
    assert "transforms_train.json" in str(exc.value) and "r_0" in str(exc.value)


def test_bad_frame_entries(tmp_path):
    root = make_scene(tmp_path / "a", frames=[{"file_path": "./train/r_0"}])
    with pytest.raises(DataError, match="transforms_train.json"):
        read_blender(root)
    root = make_scene(tmp_path / "b", frames=[{"file_path": "./train/r_0", "transform_matrix": [[1, 0], [0, 1]]}])
    with pytest.raises(DataError, match="transforms_train.json"):
        read_blender(root)
    with pytest.raises(DataError):
        read_blender(root, downscale=0.5)


def test_undecodable_image_names_the_png(tmp_path):
    root = make_scene(tmp_path / "s")
    (root / "train" / "r_0.png").write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(DataError, match="r_0.png"):
        read_blender(root)
    with pytest.raises(DataError, match="r_0.png"):
        read_image(root / "train" / "r_0.png")


def test_truncated_image_fails_at_load_naming_the_png(tmp_path):
    # the header is intact (the reader accepts it), the pixel data is cut: loading must fail cleanly
    root = make_scene(tmp_path / "s")
    big = root / "train" / "r_1.png"
    write_png(big, size=(64, 64), seed=3)
    data = big.read_bytes()
    big.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="r_1.png"):
        load_image(big)


def test_images_of_different_sizes(tmp_path):
    root = make_scene(tmp_path / "s")
    write_png(root / "train" / "r_1.png", size=(6, 4))
    with pytest.raises(DataError) as exc:
        read_blender(root)
    msg = str(exc.value)
    assert "r_1.png" in msg and "r_0.png" in msg and "6x4" in msg and "4x4" in msg


def test_file_path_escaping_the_folder(tmp_path):
    frames = [{"file_path": "../../etc/passwd", "transform_matrix": gl_pose(0)}]
    root = make_scene(tmp_path / "s", frames=frames)
    with pytest.raises(DataError) as exc:
        read_blender(root)
    msg = str(exc.value)
    assert "transforms_train.json" in msg and "../../etc/passwd" in msg and "outside" in msg


def test_no_images_at_all(tmp_path):
    root = make_scene(tmp_path / "s", write_images=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DataError, match="no frames"):
            read_blender(root)
