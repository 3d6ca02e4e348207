"""read_record3d: the shared Record3D door-handle export plus tiny generated fixtures."""

from __future__ import annotations

import json
import math
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras import opencv_to_opengl
from nerfkit.data.record3d import read_depth_exr, read_record3d
from nerfkit.errors import DataError, PoseError


@pytest.fixture(scope="module")
def door(shared_data):
    root = shared_data / "record3d" / "door_handle_detection" / "EXR_RGBD"
    if not (root / "metadata.json").is_file():
        pytest.skip(f"{root}/metadata.json not present")
    return root


@pytest.fixture(scope="module")
def meta(door):
    return json.loads((door / "metadata.json").read_text())


@pytest.fixture(scope="module")
def scene(door):
    return read_record3d(door)


def _quat_to_matrix(qx, qy, qz, qw):
    """Rotation of a unit quaternion (x, y, z, w): R v = q v q*, via the Rodrigues form."""
    u = np.array([qx, qy, qz])
    return (qw * qw - u @ u) * np.eye(3) + 2 * np.outer(u, u) + 2 * qw * np.array(
        [[0, -qz, qy], [qz, 0, -qx], [-qy, qx, 0]])


# --- the shared export -------------------------------------------------------------------------------

def test_door_frames_matched_by_integer_name(door, meta, scene):
    assert len(meta["poses"]) == 345 and len(scene) == 44 and scene.format == "record3d"
    idx = [int(p.stem) for p in scene.image_paths]
    assert idx == list(range(0, 345, 8))  # sorted numerically, not as strings ("104" after "16")
    assert all(int(p.stem) == 8 * i for i, p in enumerate(scene.image_paths))
    assert scene.splits["test"] == list(range(0, 44, 8))
    assert sorted(scene.splits["train"] + scene.splits["test"]) == list(range(44))
    assert scene.depth_paths is not None and len(scene.depth_paths) == 44
    assert all(d is not None and d.is_file() and d.name == f"{8 * i}.exr" for i, d in enumerate(scene.depth_paths))


def test_door_intrinsics_column_major(door, meta):
    k = np.array(meta["K"]).reshape(3, 3).T  # column-major
    w, h = meta["w"], meta["h"]
    # only the column-major reading puts the principal point at the image centre (row-major gives 0, 0)
    assert abs(k[0, 2] - w / 2) < 0.02 * w and abs(k[1, 2] - h / 2) < 0.02 * h
    assert np.array(meta["K"]).reshape(3, 3)[0, 2] == 0
    assert (w, h) == (1440, 1920)
    with Image.open(door / "rgb" / "0.jpg") as im:
        assert im.size == (w, h)
    s = read_record3d(door, downscale=4)
    assert s.sizes.tolist() == [[360, 480]] * 44
    want = torch.tensor([k[0, 0], k[1, 1], k[0, 2], k[1, 2]], dtype=torch.float32) / 4
    torch.testing.assert_close(s.intrinsics, want.expand(44, 4), rtol=0, atol=1e-3)
    assert s.camera_model == "pinhole" and s.distortion.shape == (44, 0)


def test_door_poses_round_trip(meta, scene):
    # scene c2w (OpenCV) -> undo world_transform -> OpenGL flip back -> the file's quaternion + translation
    inv = torch.linalg.inv(scene.world_transform.double())
    c2w = inv @ scene.c2w.double()
    c2w[:, :3, :3] *= scene.scale  # world_transform's inverse shrinks the rotation by 1/scale; undo that
    file = opencv_to_opengl(c2w).numpy()
    for i in range(44):
        p = meta["poses"][8 * i]
        np.testing.assert_allclose(file[i, :3, :3], _quat_to_matrix(*p[:4]), atol=2e-5)
        np.testing.assert_allclose(file[i, :3, 3], p[4:], atol=2e-5)
    assert np.allclose(meta["initPose"], [0, 0, 0, 1, 0, 0, 0])  # identity only with the scalar last


def test_door_normalised_cameras_look_at_centre(scene):
    c = scene.c2w[:, :3, 3]
    dist = c.norm(dim=-1)
    assert abs(float(dist.mean()) - 4.0) < 1e-4
    cos = (scene.c2w[:, :3, 2] * -c).sum(-1) / dist  # OpenCV +z (forward) vs the direction to the centre
    # a handheld capture circling a door handle: the data gives mean 0.997, min 0.985
    assert float(cos.mean()) > 0.95 and float(cos.min()) > 0.9
    # ARKit's world is y-up: the OpenCV "up" (-y) axis of the cameras points to world +y (data: 0.885)
    assert float((-scene.c2w[:, 1, 1]).mean()) > 0.7
    r = scene.c2w[:, :3, :3]
    torch.testing.assert_close(r.transpose(-1, -2) @ r, torch.eye(3).expand(44, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(scene.aabb, torch.tensor([[-1.5] * 3, [1.5] * 3]))
    assert scene.near == 0.05 and scene.far >= float(dist.max()) + 3 * math.sqrt(3)
    assert scene.world_transform.shape == (4, 4) and scene.scale > 1  # metres: cameras ~0.26 m from the handle


def test_door_depth_decodes_and_agrees_with_poses(scene):
    d = read_depth_exr(scene.depth_paths[0])
    assert d.shape == (256, 192) and d.dtype == np.float32
    assert np.isfinite(d).all() and 0.05 < d.min() and d.max() < 5  # metres
    # depth at the principal point ~ distance along the optical axis to the scene centre (in metres)
    errs = []
    for i in range(0, 44, 4):
        d = read_depth_exr(scene.depth_paths[i])
        u, v = (scene.intrinsics[i, 2:] * d.shape[1] / float(scene.sizes[i, 0])).long().tolist()
        z = float(np.median(d[v - 3:v + 4, u - 3:u + 4]))
        c = scene.c2w[i, :3, 3]
        errs.append(abs(z - float((scene.c2w[i, :3, 2] * -c).sum()) / scene.scale))
    assert np.mean(errs) < 0.05  # data: 0.022 m


# --- tiny fixtures ------------------------------------------------------------------------------------

def _pose(angle=0.0, t=(0.0, 0.0, 1.0)):
    """A camera at ``t`` rotated about world y by ``angle``, as qx qy qz qw tx ty tz."""
    return [0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2), *t]


def _make(tmp_path, frames=(0, 2, 4), n_poses=5, **over):
    root = tmp_path / "r3d"
    (root / "rgb").mkdir(parents=True)
    for n in frames:
        Image.new("RGB", (8, 6)).save(root / "rgb" / f"{n}.jpg")
    poses = []
    for k in range(n_poses):
        a = 0.3 * k
        poses.append(_pose(a, (2 * math.sin(a), 0.0, 2 * math.cos(a))))  # on a circle, looking (-z) at 0
    meta = dict(w=8, h=6, dw=4, dh=3, fps=60, K=[7.0, 0, 0, 0, 7.0, 0, 4.0, 3.0, 1], poses=poses)
    meta.update(over)
    (root / "metadata.json").write_text(json.dumps(meta))
    return root


def test_tiny_scene(tmp_path):
    root = _make(tmp_path)
    s = read_record3d(root, holdout=2)
    assert len(s) == 3 and s.depth_paths is None
    assert s.splits == {"train": [1], "test": [0, 2]}
    torch.testing.assert_close(s.intrinsics[0], torch.tensor([7.0, 7.0, 4.0, 3.0]))
    # cameras on a circle looking at the origin: the centre is recovered, distance becomes 4
    torch.testing.assert_close(s.c2w[:, :3, 3].norm(dim=-1), torch.full((3,), 4.0), atol=1e-4, rtol=0)
    assert abs(s.scale - 2.0) < 1e-4


def test_non_integer_names_skipped_with_one_warning(tmp_path):
    root = _make(tmp_path)
    for name in ("thumb.jpg", "0_copy.jpg"):
        Image.new("RGB", (8, 6)).save(root / "rgb" / name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = read_record3d(root)
    assert len(s) == 3 and len(caught) == 1 and "2 images" in str(caught[0].message)


def test_missing_metadata(tmp_path):
    root = _make(tmp_path)
    (root / "metadata.json").unlink()
    with pytest.raises(DataError, match="metadata.json: not found"):
        read_record3d(root)


def test_malformed_json(tmp_path):
    root = _make(tmp_path)
    (root / "metadata.json").write_text('{"w": 8, "h": ')
    with pytest.raises(DataError, match="malformed JSON at line 1"):
        read_record3d(root)


def test_k_with_eight_values(tmp_path):
    root = _make(tmp_path, K=[7.0, 0, 0, 0, 7.0, 0, 4.0, 3.0])
    with pytest.raises(DataError, match="'K' has shape \\(8,\\), expected 9"):
        read_record3d(root)


def test_frame_beyond_poses(tmp_path):
    root = _make(tmp_path, frames=(0, 2, 7), n_poses=5)
    with pytest.raises(DataError, match=r"7\.jpg: frame 7 has no pose .*5 poses"):
        read_record3d(root)


def test_nan_pose(tmp_path):
    root = _make(tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    meta["poses"][2][5] = float("nan")
    (root / "metadata.json").write_text(json.dumps(meta))  # json writes NaN, Python's json reads it
    with pytest.raises(PoseError, match=r"poses\[2\] \(frame 2\.jpg\): contains NaN"):
        read_record3d(root)


def test_non_unit_quaternion(tmp_path):
    root = _make(tmp_path)
    meta = json.loads((root / "metadata.json").read_text())
    meta["poses"][4][:4] = [0.0, 0.0, 0.0, 3.0]
    (root / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(PoseError, match="unit quaternion"):
        read_record3d(root)


def _write_exr(path, img, compression):
    """A one-channel (R, float16) scanline EXR, written from the OpenEXR file-layout spec."""
    h, w = img.shape

    def attr(name, typ, data):
        return name.encode() + b"\0" + typ.encode() + b"\0" + struct.pack("<i", len(data)) + data

    header = struct.pack("<ii", 20000630, 2)
    header += attr("channels", "chlist", b"R\0" + struct.pack("<iB3xii", 1, 0, 1, 1) + b"\0")
    header += attr("compression", "compression", bytes([compression]))
    header += attr("dataWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1))
    header += attr("displayWindow", "box2i", struct.pack("<4i", 0, 0, w - 1, h - 1))
    header += attr("lineOrder", "lineOrder", b"\0")
    header += attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
    header += attr("screenWindowCenter", "v2f", struct.pack("<2f", 0, 0))
    header += attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0"
    lines = 16 if compression == 3 else 1
    chunks = []
    for y in range(0, h, lines):
        raw = np.frombuffer(img[y:y + lines].astype("<f2").tobytes(), dtype=np.uint8)
        if compression:
            half = (raw.size + 1) // 2
            t = np.concatenate([raw[0::2], raw[1::2]]).astype(np.int64)  # interleave: even bytes first
            d = t.copy()
            d[1:] = (t[1:] - t[:-1] + 128) & 0xFF  # predictor
            assert half == raw[0::2].size
            z = zlib.compress(d.astype(np.uint8).tobytes())
            raw = z if len(z) < raw.size else raw.tobytes()  # the spec stores a chunk raw when zip does not help
        else:
            raw = raw.tobytes()
        chunks.append(struct.pack("<ii", y, len(raw)) + raw)
    offsets, pos = [], len(header) + 8 * len(chunks)
    for c in chunks:
        offsets.append(pos)
        pos += len(c)
    path.write_bytes(header + struct.pack(f"<{len(chunks)}Q", *offsets) + b"".join(chunks))


@pytest.mark.parametrize("compression", [0, 2, 3])
def test_read_depth_exr_round_trip(tmp_path, compression):
    rng = np.random.default_rng(compression)
    yy, xx = np.mgrid[0:37, 0:64]
    img = (0.5 + 0.01 * yy + 0.002 * xx).astype(np.float16)  # smooth, like depth: zip helps
    img[5, 3] = rng.random() * 3
    _write_exr(tmp_path / "d.exr", img, compression)
    if compression:
        assert (tmp_path / "d.exr").stat().st_size < 37 * 64 * 2  # the compressed path was written
    np.testing.assert_array_equal(read_depth_exr(tmp_path / "d.exr"), img.astype(np.float32))
    with pytest.raises(DataError, match="no channel 'Z'"):
        read_depth_exr(tmp_path / "d.exr", channel="Z")


def test_depth_paths_listed_when_present(tmp_path):
    root = _make(tmp_path)
    (root / "depth").mkdir()
    _write_exr(root / "depth" / "2.exr", np.ones((3, 4), np.float16), 3)
    s = read_record3d(root)
    assert s.depth_paths == [None, root / "depth" / "2.exr", None]
    np.testing.assert_array_equal(read_depth_exr(s.depth_paths[1]), np.ones((3, 4), np.float32))
    (root / "depth" / "bad.exr").write_bytes(b"not an exr")
    with pytest.raises(DataError, match="not an OpenEXR file"):
        read_depth_exr(root / "depth" / "bad.exr")
