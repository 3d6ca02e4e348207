"""COLMAP sparse model reader/writer: the real test_colmap model from ../shared/data plus corrupted copies.

References: image sizes from the JPEG headers (PIL), the raw camera params, a PINHOLE reprojection of
the stored 3D points against the stored keypoints, and a text round trip that must be bit-exact.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from nerfkit.data.colmap_model import (
    CAMERA_MODEL_IDS, CAMERA_MODELS, ColmapCamera, ColmapImage, camera_intrinsics, find_colmap_model,
    quaternion_to_rotation, read_colmap_model, write_colmap_text,
)
from nerfkit.errors import DataError


@pytest.fixture(scope="module")
def colmap_root(shared_data):
    root = shared_data / "colmap" / "test_colmap"
    if not (root / "dense" / "0" / "sparse" / "cameras.bin").is_file():
        pytest.skip(f"{root} not found")
    return root


@pytest.fixture(scope="module")
def dense(colmap_root):
    return read_colmap_model(colmap_root / "dense" / "0" / "sparse")


def test_model_table():
    assert sorted(CAMERA_MODEL_IDS) == list(range(11))
    n = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8, "OPENCV_FISHEYE": 8,
         "FULL_OPENCV": 12, "FOV": 5, "SIMPLE_RADIAL_FISHEYE": 4, "RADIAL_FISHEYE": 5, "THIN_PRISM_FISHEYE": 12}
    assert {k: len(m.params) for k, m in CAMERA_MODELS.items()} == n
    assert CAMERA_MODELS["SIMPLE_RADIAL_FISHEYE"].id == 8 and CAMERA_MODELS["THIN_PRISM_FISHEYE"].id == 10


def test_intrinsics_models():
    cam = ColmapCamera(1, "SIMPLE_RADIAL", 100, 80, np.array([90.0, 50.0, 40.0, 0.01]))
    assert camera_intrinsics(cam) == (90.0, 90.0, 50.0, 40.0, {"k1": 0.01})
    cam = ColmapCamera(2, "OPENCV", 100, 80, np.arange(1.0, 9.0))
    assert camera_intrinsics(cam) == (1.0, 2.0, 3.0, 4.0, {"k1": 5.0, "k2": 6.0, "p1": 7.0, "p2": 8.0})
    with pytest.raises(DataError, match="cameras.bin.*FOV"):
        camera_intrinsics(ColmapCamera(3, "FOV", 100, 80, np.ones(5), source="x/cameras.bin"))


def test_quaternion_rotation():
    rng = np.random.default_rng(0)
    q = rng.normal(size=4)
    r = quaternion_to_rotation(q)
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
    # 90 degrees about z maps x to y
    c = np.sqrt(0.5)
    assert np.allclose(quaternion_to_rotation([c, 0, 0, c]) @ [1, 0, 0], [0, 1, 0])
    im = ColmapImage(1, q / np.linalg.norm(q), np.array([1.0, 2.0, 3.0]), 1, "a", np.zeros((0, 2)), np.zeros(0))
    assert np.allclose(im.world_to_camera() @ im.camera_to_world(), np.eye(4))


def test_dense_model(dense, colmap_root):
    from PIL import Image

    assert dense.format == "bin"
    assert (len(dense.cameras), len(dense.images), len(dense.points)) == (23, 23, 1443)
    assert {c.model for c in dense.cameras.values()} == {"PINHOLE"}
    for im in dense.images.values():
        cam = dense.cameras[im.camera_id]
        with Image.open(colmap_root / "dense" / "0" / "images" / im.name) as f:
            assert f.size == (cam.width, cam.height), im.name
        fx, fy, cx, cy, dist = camera_intrinsics(cam)
        assert [fx, fy, cx, cy] == cam.params.tolist() and dist == {}


def test_dense_poses_look_at_points(dense):
    centroid = dense.points.xyz.mean(0)
    for im in dense.images.values():
        c2w = im.camera_to_world()
        assert c2w.dtype == np.float64 and np.isfinite(c2w).all()
        r, t = im.rotation(), im.tvec
        centre = -r.T @ t
        assert np.allclose(centre, c2w[:3, 3])
        to_pts = centroid - centre
        cos = c2w[:3, 2] @ to_pts / np.linalg.norm(to_pts)  # camera +z (forward, OpenCV axes) in world
        assert cos > 0.5, (im.name, cos)


def test_dense_reprojection(dense):
    pts = dense.points
    for im in dense.images.values():
        fx, fy, cx, cy, _ = camera_intrinsics(dense.cameras[im.camera_id])
        seen = im.point3d_ids != -1
        assert seen.sum() > 20
        xyz = pts.xyz[pts.rows(im.point3d_ids[seen])]
        cam = xyz @ im.rotation().T + im.tvec
        assert (cam[:, 2] > 0).all()
        uv = np.stack([fx * cam[:, 0] / cam[:, 2] + cx, fy * cam[:, 1] / cam[:, 2] + cy], -1)
        err = np.linalg.norm(uv - im.xys[seen], axis=-1)
        assert np.median(err) < 2.0, (im.name, np.median(err))
    # tracks point back at keypoints that name the same 3D point
    for i in range(0, len(pts), 97):
        for img_id, k in pts.track_of(i):
            assert dense.images[int(img_id)].point3d_ids[k] == pts.ids[i]


def test_sparse_with_0_subfolder(colmap_root):
    folder, ext = find_colmap_model(colmap_root / "sparse")
    assert folder == colmap_root / "sparse" / "0" and ext == "bin"
    model = read_colmap_model(colmap_root / "sparse")
    assert len(model.cameras) == 23
    assert {(c.model, c.width, c.height) for c in model.cameras.values()} == {("SIMPLE_RADIAL", 3031, 2006)}
    assert all(len(camera_intrinsics(c)[4]) == 1 for c in model.cameras.values())


def test_text_round_trip(dense, tmp_path):
    write_colmap_text(dense, tmp_path / "txt")
    back = read_colmap_model(tmp_path / "txt")
    assert back.format == "txt"
    assert list(back.cameras) == list(dense.cameras)
    for cid, c in dense.cameras.items():
        b = back.cameras[cid]
        assert (b.model, b.width, b.height) == (c.model, c.width, c.height)
        np.testing.assert_array_equal(b.params, c.params)
    assert list(back.images) == list(dense.images)
    for iid, im in dense.images.items():
        b = back.images[iid]
        assert (b.name, b.camera_id) == (im.name, im.camera_id)
        np.testing.assert_array_equal(b.qvec, im.qvec)
        np.testing.assert_array_equal(b.tvec, im.tvec)
        np.testing.assert_array_equal(b.xys, im.xys)
        np.testing.assert_array_equal(b.point3d_ids, im.point3d_ids)
    for name in ("ids", "xyz", "rgb", "error", "track_offsets", "track"):
        a, b = getattr(dense.points, name), getattr(back.points, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


def _copy_model(dense_dir, dst):
    shutil.copytree(dense_dir, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_truncated_images_bin(colmap_root, tmp_path):
    d = _copy_model(colmap_root / "dense" / "0" / "sparse", tmp_path / "m")
    data = (d / "images.bin").read_bytes()
    (d / "images.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"images\.bin.*truncated"):
        read_colmap_model(d)


def test_trailing_garbage(colmap_root, tmp_path):
    d = _copy_model(colmap_root / "dense" / "0" / "sparse", tmp_path / "m")
    with open(d / "cameras.bin", "ab") as f:
        f.write(b"\0\1\2")
    with pytest.raises(DataError, match=r"cameras\.bin: 3 unexpected bytes"):
        read_colmap_model(d)


def test_missing_points_bin(colmap_root, tmp_path):
    d = _copy_model(colmap_root / "dense" / "0" / "sparse", tmp_path / "m")
    (d / "points3D.bin").unlink()
    with pytest.raises(DataError, match=r"missing points3D\.bin"):
        read_colmap_model(d)
    with pytest.raises(DataError, match="no COLMAP model"):
        read_colmap_model(tmp_path)


def test_bad_text(dense, tmp_path):
    d = write_colmap_text(dense, tmp_path / "txt")
    lines = (d / "cameras.txt").read_text().splitlines()
    no = next(i for i, ln in enumerate(lines, 1) if not ln.startswith("#"))
    lines[no - 1] = " ".join(lines[no - 1].split()[:-1])  # drop one PINHOLE param
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"cameras\.txt:{no}: camera \d+ \(PINHOLE\) has 3 params, expected 4"):
        read_colmap_model(d)


def test_unknown_camera_id(dense, tmp_path):
    d = write_colmap_text(dense, tmp_path / "txt")
    lines = (d / "cameras.txt").read_text().splitlines()
    first = next(i for i, ln in enumerate(lines) if not ln.startswith("#"))
    cid = lines[first].split()[0]
    del lines[first]
    (d / "cameras.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"images\.txt: image \d+ .* refers to camera {cid}, which .*cameras\.txt"):
        read_colmap_model(d)


def test_tiny_text_model_edge_cases(tmp_path):
    """An image with no keypoints (blank keypoint line), a name with a space, no 3D points."""
    from nerfkit.data.colmap_model import ColmapModel, ColmapPoints

    cams = {7: ColmapCamera(7, "OPENCV_FISHEYE", 64, 48, np.array([50.0, 51.0, 32.0, 24.0, 0.1, -0.01, 1e-3, 1e-4]))}
    imgs = {3: ColmapImage(3, np.array([1.0, 0, 0, 0]), np.array([0.1, 0.2, 0.3]), 7, "a b.png",
                           np.zeros((0, 2)), np.zeros(0, np.int64)),
            5: ColmapImage(5, np.array([0.5, 0.5, 0.5, 0.5]), np.zeros(3), 7, "c.png",
                           np.array([[1.5, 2.5]]), np.array([-1]))}
    d = write_colmap_text(ColmapModel(cams, imgs, ColmapPoints.empty()), tmp_path / "t")
    back = read_colmap_model(d)
    assert [(i.id, i.name, len(i.xys)) for i in back.images.values()] == [(3, "a b.png", 0), (5, "c.png", 1)]
    assert len(back.points) == 0 and back.points.track.shape == (0, 2)
    fx, fy, cx, cy, dist = camera_intrinsics(back.cameras[7])
    assert (fx, fy, cx, cy) == (50.0, 51.0, 32.0, 24.0) and list(dist) == ["k1", "k2", "k3", "k4"]
    assert np.allclose(back.images[5].camera_to_world()[:3, :3] @ back.images[5].rotation(), np.eye(3))


def test_unknown_binary_model_id(colmap_root, tmp_path):
    d = _copy_model(colmap_root / "dense" / "0" / "sparse", tmp_path / "m")
    data = bytearray((d / "cameras.bin").read_bytes())
    data[12:16] = (42).to_bytes(4, "little")  # first camera's model id (after the count and camera id)
    (d / "cameras.bin").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"cameras\.bin: camera 1 has unknown model id 42"):
        read_colmap_model(d)
