"""read_transforms_json: the instant-ngp fox scene plus tiny generated instant-ngp / nerfstudio fixtures."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from nerfkit.cameras import opencv_to_opengl
from nerfkit.data.transforms_json import read_transforms_json
from nerfkit.errors import DataError, PoseError

FOX = dict(fl_x=1375.52, fl_y=1374.49, cx=554.558, cy=965.268,
           k1=0.0578421, k2=-0.0805099, p1=-0.000980296, p2=0.00015575)


@pytest.fixture(scope="module")
def fox(shared_data):
    root = shared_data / "nerf" / "fox"
    if not (root / "transforms.json").is_file():
        pytest.skip(f"{root}/transforms.json not present")
    return root


def test_fox_views_intrinsics_distortion(fox):
    s = read_transforms_json(fox)
    assert len(s) == 67 and s.format == "transforms_json"
    assert len(s.splits["train"]) + len(s.splits["test"]) == 67
    assert s.splits["test"] == list(range(0, 67, 8))
    assert not set(s.splits["train"]) & set(s.splits["test"])
    want = torch.tensor([FOX["fl_x"], FOX["fl_y"], FOX["cx"], FOX["cy"]])
    torch.testing.assert_close(s.intrinsics, want.expand(67, 4), rtol=0, atol=1e-3)
    assert s.sizes.tolist() == [[1080, 1920]] * 67
    assert s.camera_model == "opencv"
    torch.testing.assert_close(s.distortion, torch.tensor([FOX[k] for k in ("k1", "k2", "p1", "p2")]).expand(67, 4))
    assert s.mask_paths is None and not s.has_alpha


def test_fox_downscale(fox):
    s = read_transforms_json(fox, downscale=4)
    assert s.sizes.tolist() == [[270, 480]] * 67
    want = torch.tensor([FOX["fl_x"], FOX["fl_y"], FOX["cx"], FOX["cy"]]) / 4
    torch.testing.assert_close(s.intrinsics[5], want, rtol=0, atol=1e-3)


def test_fox_normalised_cameras_look_at_centre(fox):
    s = read_transforms_json(fox)
    c = s.c2w[:, :3, 3]
    dist = c.norm(dim=-1)
    assert abs(float(dist.mean()) - 4.0) < 1e-4
    cos = (s.c2w[:, :3, 2] * -c).sum(-1) / dist  # +z (forward, OpenCV) vs direction to the origin
    assert float(cos.min()) > 0.9  # the data gives 0.964
    # box from aabb_scale 4, near/far bound the box as seen from every camera
    torch.testing.assert_close(s.aabb, torch.tensor([[-6.0] * 3, [6.0] * 3]))
    assert s.near == 0.05 and s.far >= float(dist.max()) + 6 * math.sqrt(3)
    # rotations stay orthonormal
    r = s.c2w[:, :3, :3]
    torch.testing.assert_close(r.transpose(1, 2) @ r, torch.eye(3).expand(67, 3, 3), atol=1e-5, rtol=0)


def test_fox_poses_round_trip(fox):
    s = read_transforms_json(fox)
    meta = json.loads((fox / "transforms.json").read_text())
    file_c2w = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float64)
    back = torch.linalg.inv(s.world_transform.double()) @ s.c2w.double()
    back[:, :3, :3] *= s.scale  # the scale moves centres only; rotations were kept orthonormal
    torch.testing.assert_close(opencv_to_opengl(back), file_c2w, atol=1e-5, rtol=0)
    raw = read_transforms_json(fox, normalize=False)
    assert raw.scale == 1.0
    torch.testing.assert_close(opencv_to_opengl(raw.c2w.double()), file_c2w, atol=1e-5, rtol=0)


# --- tiny generated fixtures ------------------------------------------------------------------------


def _look_at_origin_gl(pos) -> list[list[float]]:
    """c2w with OpenGL axes at ``pos`` looking at the origin, world +z up."""
    c = torch.tensor(pos, dtype=torch.float64)
    back = c / c.norm()  # OpenGL camera +z points backward, away from the target
    right = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), back)
    right = right / right.norm()
    up = torch.linalg.cross(back, right)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, up, back, c
    return m.tolist()


def _scene(tmp_path, n=4, size=(8, 6), meta=None, frames=None, ext=".png"):
    from PIL import Image

    (tmp_path / "images").mkdir(exist_ok=True)
    out = []
    for i in range(n):
        Image.new("RGB", size, (i * 40, 0, 0)).save(tmp_path / "images" / f"{i:03d}{ext}")
        ang = 2 * math.pi * i / n
        out.append({"file_path": f"images/{i:03d}{ext}",
                    "transform_matrix": _look_at_origin_gl([3 * math.cos(ang), 3 * math.sin(ang), 1.0])})
    for i, extra in (frames or {}).items():
        out[i].update(extra)
    data = {"fl_x": 10.0, "fl_y": 11.0, "frames": out, **(meta or {})}
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    return tmp_path


def test_defaults_and_per_frame_override(tmp_path):
    root = _scene(tmp_path, frames={1: {"fl_x": 20.0, "cx": 3.0, "w": 16, "h": 12, "k1": 0.1}})
    s = read_transforms_json(root)
    torch.testing.assert_close(s.intrinsics[0], torch.tensor([10.0, 11.0, 4.0, 3.0]))  # cx, cy default w/2, h/2
    # frame 1 declares 16x12 for an 8x6 file: intrinsics follow the file (x0.5)
    torch.testing.assert_close(s.intrinsics[1], torch.tensor([10.0, 5.5, 1.5, 3.0]))
    assert s.camera_model == "opencv"
    torch.testing.assert_close(s.distortion, torch.tensor([[0.0] * 4, [0.1, 0, 0, 0], [0.0] * 4, [0.0] * 4]))
    assert s.splits == {"train": [1, 2, 3], "test": [0]}


def test_camera_angle_and_pinhole(tmp_path):
    root = _scene(tmp_path, meta={"camera_angle_x": 1.0, "k1": 0.0, "p1": 0.0})
    meta = json.loads((root / "transforms.json").read_text())
    del meta["fl_x"], meta["fl_y"]
    (root / "transforms.json").write_text(json.dumps(meta))
    s = read_transforms_json(root, downscale=2)
    f = 0.5 * 8 / math.tan(0.5) / 2
    torch.testing.assert_close(s.intrinsics[0], torch.tensor([f, f, 2.0, 1.5]))
    assert s.camera_model == "pinhole" and s.distortion.shape == (4, 0)
    assert s.sizes.tolist() == [[4, 3]] * 4


def test_nerfstudio_fisheye_splits_masks(tmp_path):
    from PIL import Image

    root = _scene(tmp_path, meta={"camera_model": "OPENCV_FISHEYE", "k1": 0.1, "k2": 0.2, "k3": 0.3, "k4": 0.4,
                                  "train_filenames": ["images/000.png", "images/002"],
                                  "test_filenames": ["images/001.png", "images/003.png"]},
                  frames={2: {"mask_path": "masks/002.png"}})
    (root / "masks").mkdir()
    Image.new("L", (8, 6), 255).save(root / "masks" / "002.png")
    s = read_transforms_json(root)
    assert s.camera_model == "opencv_fisheye"
    torch.testing.assert_close(s.distortion, torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 4))
    assert s.splits == {"train": [0, 2], "test": [1, 3]}
    assert s.mask_paths == [None, None, root / "masks" / "002.png", None]
    t = read_transforms_json(root, split="test")
    assert len(t) == 2 and t.splits == {"test": [0, 1]} and t.image_paths[0].name == "001.png"


def test_instant_ngp_is_fisheye(tmp_path):
    root = _scene(tmp_path, meta={"is_fisheye": True, "k1": 0.1, "k4": 0.4})
    s = read_transforms_json(root)
    assert s.camera_model == "opencv_fisheye"
    torch.testing.assert_close(s.distortion[0], torch.tensor([0.1, 0.0, 0.0, 0.4]))


def test_applied_transform_recorded(tmp_path):
    a = [[1.0, 0.0, 0.0, 0.5], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0]]  # nerfstudio's COLMAP -> file
    root = _scene(tmp_path, meta={"applied_transform": a})
    s = read_transforms_json(root)
    meta = json.loads((root / "transforms.json").read_text())
    file_c2w = torch.tensor([f["transform_matrix"] for f in meta["frames"]], dtype=torch.float64)
    a4 = torch.cat([torch.tensor(a, dtype=torch.float64), torch.tensor([[0.0, 0, 0, 1]], dtype=torch.float64)])
    back = torch.linalg.inv(s.world_transform.double()) @ s.c2w.double()  # scene -> original frame
    back[:, :3, :3] *= s.scale
    torch.testing.assert_close(opencv_to_opengl(back), torch.linalg.inv(a4) @ file_c2w, atol=1e-5, rtol=0)


def test_nan_pose_names_file(tmp_path):
    m = _look_at_origin_gl([3.0, 0.0, 1.0])
    m[0][3] = float("nan")
    root = _scene(tmp_path, frames={2: {"transform_matrix": m}})
    with pytest.raises(PoseError, match=r"transforms\.json frame #2.*NaN"):
        read_transforms_json(root)


def test_malformed_json_names_file_and_line(tmp_path):
    (tmp_path / "transforms.json").write_text('{\n  "fl_x": 10,\n  "frames": [\n    {,}\n  ]\n}\n')
    with pytest.raises(DataError, match=r"transforms\.json: malformed JSON at line 4"):
        read_transforms_json(tmp_path)


def test_missing_image_skipped_with_one_warning(tmp_path):
    root = _scene(tmp_path, n=5)
    (root / "images" / "001.png").unlink()
    (root / "images" / "003.png").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = read_transforms_json(root)
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "2 of 5 frames have no image file" in msgs[0]
    assert [p.name for p in s.image_paths] == ["000.png", "002.png", "004.png"]


def test_file_path_without_extension(tmp_path):
    root = _scene(tmp_path, ext=".jpg", frames={i: {"file_path": f"images/{i:03d}"} for i in range(4)})
    s = read_transforms_json(root)
    assert [p.name for p in s.image_paths] == ["000.jpg", "001.jpg", "002.jpg", "003.jpg"]


def test_several_json_files_in_one_folder(tmp_path):
    """instant-ngp reads every transforms*.json of a folder: one scene; each file keeps its own camera."""
    from nerfkit.data import read_scene

    root = _scene(tmp_path, n=6)
    meta = json.loads((root / "transforms.json").read_text())
    (root / "transforms.json").unlink()
    a = {"fl_x": 10.0, "frames": meta["frames"][:4]}
    b = {"camera_angle_x": 1.0, "aabb_scale": 4, "frames": meta["frames"][4:]}
    (root / "transforms_a.json").write_text(json.dumps(a))
    (root / "transforms_b.json").write_text(json.dumps(b))
    s = read_scene(root)
    assert s.format == "transforms_json" and len(s) == 6
    assert s.intrinsics[0, 0].item() == pytest.approx(10.0)
    assert s.intrinsics[5, 0].item() == pytest.approx(0.5 * 8 / math.tan(0.5))  # file b's camera_angle_x
    assert s.splits == {"train": [1, 2, 3, 4, 5], "test": [0]}  # no split files: every 8th held out
    torch.testing.assert_close(s.aabb, torch.tensor([[-6.0] * 3, [6.0] * 3]))
    # files named after splits give the splits
    (root / "transforms_a.json").rename(root / "transforms_train.json")
    (root / "transforms_b.json").rename(root / "transforms_test.json")
    s = read_transforms_json(root)
    assert s.splits == {"train": [2, 3, 4, 5], "test": [0, 1]}  # files in name order: test, train
    assert len(read_transforms_json(root / "transforms_test.json")) == 2  # a .json file is accepted as root
    (root / "transforms_test.json").write_text(json.dumps({**b, "applied_transform": [[1, 0, 0, 1], [0, 1, 0, 0],
                                                                                       [0, 0, 1, 0]]}))
    with pytest.raises(DataError, match="applied_transform differs"):
        read_transforms_json(root)


def test_no_transforms_json_at_all(tmp_path):
    with pytest.raises(DataError, match="no transforms"):
        read_transforms_json(tmp_path)


def test_mixed_lens_and_unknown_model_rejected(tmp_path):
    root = _scene(tmp_path, frames={1: {"is_fisheye": True, "k1": 0.1}})
    with pytest.raises(DataError, match="mixes fisheye and perspective"):
        read_transforms_json(root)
    root = _scene(tmp_path, meta={"camera_model": "EQUIRECTANGULAR"})
    with pytest.raises(DataError, match="EQUIRECTANGULAR"):
        read_transforms_json(root)
