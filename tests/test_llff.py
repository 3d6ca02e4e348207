"""LLFF reader: real fern data, axis mapping, NDC, and bad-input fixtures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfkit.errors import DataError, PoseError
from nerfkit.cameras.conventions import llff_to_opencv, opencv_to_llff
from nerfkit.data.llff import average_pose, ndc_points, ndc_rays, read_llff


@pytest.fixture(scope="module")
def fern(shared_data):
    root = shared_data / "nerf_llff_data" / "fern"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return root


@pytest.fixture(scope="module")
def fern_scene(fern):
    return read_llff(fern)


def test_axis_mapping_known_matrix():
    # An LLFF camera whose columns are down=-world_z, right=world_x, backwards=-world_y:
    # it looks along +world_y with world +z up.
    llff = torch.tensor([[0.0, 1.0, 0.0, 5.0],
                         [0.0, 0.0, -1.0, 6.0],
                         [-1.0, 0.0, 0.0, 7.0]], dtype=torch.float64)
    cv = llff_to_opencv(llff)
    assert torch.equal(cv[:, 0], torch.tensor([1.0, 0, 0], dtype=torch.float64))   # x right = world +x
    assert torch.equal(cv[:, 1], torch.tensor([0.0, 0, -1], dtype=torch.float64))  # y down = world -z
    assert torch.equal(cv[:, 2], torch.tensor([0.0, 1, 0], dtype=torch.float64))   # z forward = world +y
    assert torch.equal(cv[:, 3], llff[:, 3])
    assert torch.linalg.det(cv[:, :3]) == pytest.approx(1.0)
    assert torch.equal(opencv_to_llff(cv), llff)


def test_fern_counts_and_intrinsics(fern_scene):
    s = fern_scene
    assert len(s) == 20 and s.format == "llff"
    assert s.splits["test"] == [0, 8, 16]
    assert len(s.splits["train"]) == 17 and not set(s.splits["train"]) & {0, 8, 16}
    assert s.image_paths[0].parent.name == "images_8" and s.downscale == 1.0
    assert (s.sizes == torch.tensor([504, 378])).all()
    assert torch.allclose(s.intrinsics[:, 0], torch.tensor(3260.5263 / 8), atol=0.01)
    assert torch.allclose(s.intrinsics[:, 1], torch.tensor(3260.5263 / 8), atol=0.01)
    assert (s.intrinsics[:, 2] == 252).all() and (s.intrinsics[:, 3] == 189).all()


def test_fern_forward_facing(fern_scene):
    rot = fern_scene.c2w[:, :3, :3].double()
    z, y = rot[:, :, 2], rot[:, :, 1]
    assert (z @ z.T).min() > 0.9  # every camera looks roughly the same way
    assert (y @ y.T).min() > 0    # and "down" is consistent
    assert torch.allclose(rot.transpose(-1, -2) @ rot, torch.eye(3, dtype=torch.float64).expand(20, 3, 3), atol=1e-5)


def test_fern_round_trip(fern, fern_scene):
    s = fern_scene
    raw = np.load(fern / "poses_bounds.npy")[:, :15].reshape(-1, 3, 5)[:, :, :4]
    inv = torch.linalg.inv(s.world_transform.double())
    file_frame = inv @ s.c2w.double()
    file_frame[:, :3, :3] *= s.scale  # world_transform is scale * I + shift; undo the scale on the axes
    back = opencv_to_llff(file_frame).numpy()
    np.testing.assert_allclose(back, raw, atol=1e-6, rtol=0)


def test_fern_bounds_and_box(fern, fern_scene):
    s = fern_scene
    bounds = np.load(fern / "poses_bounds.npy")[:, 15:]
    assert np.isfinite([s.near, s.far]).all() and 0 < s.near < s.far
    assert s.near == pytest.approx(0.9 * bounds[:, 0].min() * s.scale, rel=1e-6)
    assert s.far == pytest.approx(bounds[:, 1].max() * s.scale, rel=1e-6)
    assert s.near / 0.9 == pytest.approx(1 / 0.75, rel=1e-6)  # nearest bound lands at 1/0.75
    assert s.c2w[:, :3, 3].mean(0).abs().max() < 1e-5      # centred on the mean camera
    # cameras and their near/far frustum points lie inside the box
    lo, hi = s.aabb
    pts = s.c2w[:, :3, 3] + s.c2w[:, :3, 2] * torch.tensor(bounds[:, 1:] * s.scale, dtype=torch.float32)
    assert ((pts >= lo - 1e-4) & (pts <= hi + 1e-4)).all()


def test_ndc_axes_and_range():
    f, w, h, near = 400.0, 500.0, 300.0, 1.0
    # a point at depth 5 that projects onto the top-left image corner (pixel 0, 0) maps to NDC (-1, -1)
    z = 5.0
    p = torch.tensor([[(0 - w / 2) / f * z, (0 - h / 2) / f * z, z]], dtype=torch.float64)
    np.testing.assert_allclose(ndc_points(p, f, w, h, near)[0, :2].numpy(), [-1.0, -1.0], atol=1e-12)
    o = torch.tensor([[0.1, -0.2, 0.0]], dtype=torch.float64)
    d = torch.tensor([[0.2, 0.1, 1.0]], dtype=torch.float64)
    o_n, d_n = ndc_rays(o, d, f, w, h, near)
    assert o_n[0, 2] == pytest.approx(-1.0)            # origin slid onto the near plane
    assert (o_n + d_n)[0, 2] == pytest.approx(1.0)     # t' = 1 is infinity
    ts = torch.tensor([1.0, 2.0, 10.0, 1e3, 1e6], dtype=torch.float64)  # depths from near to "infinity"
    pts = o + ts[:, None] * d
    zn = ndc_points(pts, f, w, h, near)[:, 2]
    assert ((zn >= -1) & (zn <= 1)).all() and (zn.diff() > 0).all()
    # each point's NDC image lies on the NDC ray at a t' in [0, 1]
    q = ndc_points(pts, f, w, h, near)
    tp = (q[:, 2] - o_n[0, 2]) / d_n[0, 2]
    assert ((tp >= 0) & (tp <= 1)).all()
    np.testing.assert_allclose((o_n + tp[:, None] * d_n).numpy(), q.numpy(), atol=1e-9)


def test_ndc_straight_lines_world_frame():
    g = torch.Generator().manual_seed(0)
    ref = average_pose(torch.eye(4, dtype=torch.float64)[None])
    ref[:3, 3] = torch.tensor([0.3, -0.1, 0.2], dtype=torch.float64)
    for _ in range(5):
        o = ref[:3, 3] + torch.randn(3, generator=g, dtype=torch.float64) * 0.1
        d = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64) + torch.randn(3, generator=g, dtype=torch.float64) * 0.2
        pts = o + torch.tensor([2.0, 5.0, 40.0], dtype=torch.float64)[:, None] * d
        cam = (pts - ref[:3, 3]) @ ref[:3, :3]
        q = ndc_points(cam, 300.0, 400.0, 300.0)
        cross = torch.linalg.cross(q[1] - q[0], q[2] - q[0])
        assert cross.norm() < 1e-9 * (q[1] - q[0]).norm() * (q[2] - q[0]).norm() + 1e-12
        o_n, d_n = ndc_rays(o[None], d[None], 300.0, 400.0, 300.0, ref_c2w=ref)
        for p in q:  # the NDC ray passes through every mapped point
            assert torch.linalg.cross(p - o_n[0], d_n[0]).norm() < 1e-9


def test_average_pose_fern(fern_scene):
    ref = average_pose(fern_scene.c2w.double())
    assert torch.allclose(ref[:3, :3].T @ ref[:3, :3], torch.eye(3, dtype=torch.float64), atol=1e-9)
    assert (fern_scene.c2w[:, :3, 2].double() @ ref[:3, 2]).min() > 0.9


# --- tiny fixtures --------------------------------------------------------------------------------

def _make_scene(root, n=3, n_images=None, size=(8, 6), folder="images_2", hwf=(12.0, 16.0, 20.0)):
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        # columns down = +y, right = +x, backwards = -z: the camera looks along world +z
        llff = np.array([[0.0, 1.0, 0.0, 0.1 * i], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0]])
        m = np.concatenate([llff, np.array(hwf)[:, None]], 1)
        rows.append(np.concatenate([m.reshape(-1), [2.0, 10.0]]))
    np.save(root / "poses_bounds.npy", np.stack(rows))
    (root / folder).mkdir(exist_ok=True)
    for i in range(n if n_images is None else n_images):
        Image.new("RGB", size).save(root / folder / f"img{i:03d}.png")
    return root


def test_tiny_scene_ok(tmp_path):
    s = read_llff(_make_scene(tmp_path / "s"), holdout=2)
    assert s.splits["test"] == [0, 2] and s.splits["train"] == [1]
    assert torch.allclose(s.intrinsics[0], torch.tensor([10.0, 10.0, 4.0, 3.0]))
    # LLFF backwards = world -z, so OpenCV forward = world +z; LLFF down = world +y = OpenCV y
    assert torch.allclose(s.c2w[:, :3, 2], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(s.c2w[:, :3, 1], torch.tensor([0.0, 1.0, 0.0]))
    assert s.aabb[1, 2] == pytest.approx(10 * s.scale, rel=1e-5)  # box reaches the far bound along +z
    assert s.aabb[0, 2] == pytest.approx(2 * s.scale, rel=1e-5)   # and starts at the near bound


def test_downscale_folder_choice(tmp_path):
    root = _make_scene(tmp_path / "s")
    s = read_llff(root, downscale=4)  # no images_4: images_2 reduced 2x more at load time
    assert s.image_paths[0].parent.name == "images_2" and s.downscale == 2.0
    assert (s.sizes[0] == torch.tensor([4, 3])).all()
    assert s.intrinsics[0, 0] == pytest.approx(5.0)
    with pytest.raises(DataError, match="downscale=2"):
        read_llff(root, downscale=1)


def test_bad_shape(tmp_path):
    root = _make_scene(tmp_path / "s")
    np.save(root / "poses_bounds.npy", np.zeros((3, 15)))
    with pytest.raises(DataError, match="poses_bounds.npy.*shape"):
        read_llff(root)


def test_image_count_mismatch(tmp_path):
    with pytest.raises(DataError, match="2 images but .*poses_bounds.npy has 3 poses"):
        read_llff(_make_scene(tmp_path / "s", n_images=2))


def test_nan_pose(tmp_path):
    root = _make_scene(tmp_path / "s")
    arr = np.load(root / "poses_bounds.npy")
    arr[1, 3] = np.nan
    np.save(root / "poses_bounds.npy", arr)
    with pytest.raises(PoseError, match=r"poses_bounds.npy: pose #1 contains NaN"):
        read_llff(root)


def test_bad_bounds_and_aspect(tmp_path):
    root = _make_scene(tmp_path / "s")
    arr = np.load(root / "poses_bounds.npy")
    arr[2, 15:] = [5.0, 1.0]
    np.save(root / "poses_bounds.npy", arr)
    with pytest.raises(PoseError, match="view #2 has near/far"):
        read_llff(root)
    root2 = _make_scene(tmp_path / "a", size=(8, 8))
    with pytest.raises(DataError, match="aspect"):
        read_llff(root2)
