"""Camera paths: quaternions, spline interpolation, spiral, keyframe selection and path files
(nerfstudio camera_path.json, instant-ngp base_cam.json, nerfkit's own format)."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from nerfkit.cameras import look_at
from nerfkit.cameras.path_files import (CameraPath, append_keyframe, ngp_space, ngp_to_transforms_matrix,
                                        read_camera_path, transforms_matrix_to_ngp, write_camera_path)
from nerfkit.cameras.paths import interpolate_poses, mean_pose, select_keyframes, spiral, spiral_focus_distance
from nerfkit.cameras.quaternions import matrix_to_quaternion, quaternion_to_matrix, slerp
from nerfkit.errors import DataError, NerfkitError, PoseError


def assert_rotations(rot, atol=1e-5):
    eye = torch.eye(3, dtype=rot.dtype).expand_as(rot)
    torch.testing.assert_close(rot.transpose(-1, -2) @ rot, eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rot), torch.ones(rot.shape[:-2], dtype=rot.dtype), atol=atol, rtol=0)


def similarity(scale, shift):
    t = torch.eye(4)
    t[:3, :3] *= scale
    t[:3, 3] = torch.tensor(shift, dtype=torch.float32)
    return t


# ------------------------------------------------------------------------------------------ quaternions

def test_quaternion_matrix_round_trip_matches_scipy():
    rots = Rotation.random(64, random_state=3)
    half_turns = Rotation.from_rotvec([[math.pi, 0, 0], [0, math.pi, 0], [0, 0, math.pi],
                                       [math.pi / 2 ** 0.5] * 2 + [0]])
    mats = torch.tensor(np.concatenate([rots.as_matrix(), half_turns.as_matrix()]), dtype=torch.float64)
    q = matrix_to_quaternion(mats)
    torch.testing.assert_close(quaternion_to_matrix(q), mats, atol=1e-12, rtol=0)
    xyzw = torch.tensor(Rotation.from_matrix(mats.numpy()).as_quat(), dtype=torch.float64)
    ref = torch.cat([xyzw[:, 3:], xyzw[:, :3]], -1)  # scipy is scalar-last
    sign = torch.sign((q * ref).sum(-1, keepdim=True))  # q and -q are the same rotation
    torch.testing.assert_close(q, ref * sign, atol=1e-12, rtol=0)


def test_slerp_halves_the_angle_and_hits_endpoints():
    q0 = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64)
    q1 = matrix_to_quaternion(torch.tensor(Rotation.from_euler("z", 120, degrees=True).as_matrix()))
    mid = quaternion_to_matrix(slerp(q0, q1, torch.tensor(0.25, dtype=torch.float64)))
    torch.testing.assert_close(mid, torch.tensor(Rotation.from_euler("z", 30, degrees=True).as_matrix()),
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(slerp(q0, q1, torch.tensor(1.0, dtype=torch.float64)), q1, atol=1e-12, rtol=0)
    torch.testing.assert_close(slerp(q0, -q1, torch.tensor(0.0, dtype=torch.float64)), q0, atol=1e-12, rtol=0)


# ---------------------------------------------------------------------------------------- interpolation

def _keyframes(k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    eyes = torch.randn(k, 3, generator=g) * 2 + torch.tensor([0.0, 0.0, 4.0])
    return torch.stack([look_at(e, torch.randn(3, generator=g) * 0.3, torch.tensor([0.0, 0.0, 1.0])) for e in eyes])


def test_interpolation_passes_through_keyframes_and_stays_rigid():
    kf = _keyframes(4)
    out = interpolate_poses(kf, 10)  # 3 segments of 3 frames: keyframe k is frame 3k
    assert out.shape == (10, 4, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out[[0, 3, 6, 9]], kf, atol=1e-5, rtol=0)
    assert_rotations(out[:, :3, :3])
    torch.testing.assert_close(out[:, 3], torch.tensor([0.0, 0, 0, 1]).expand(10, 4), atol=0, rtol=0)
    # closed loop: frame N would be frame 0; keyframe k is frame k N / K
    loop = interpolate_poses(kf, 12, closed=True)
    torch.testing.assert_close(loop[[0, 3, 6, 9]], kf, atol=1e-5, rtol=0)


def test_two_keyframes_move_straight_and_turn_evenly():
    a = torch.eye(4)
    b = torch.eye(4)
    b[:3, :3] = torch.tensor(Rotation.from_euler("y", 90, degrees=True).as_matrix(), dtype=torch.float32)
    b[:3, 3] = torch.tensor([2.0, -4.0, 6.0])
    out, fov = interpolate_poses(torch.stack([a, b]), 5, fovs=torch.tensor([40.0, 60.0]))
    # collinear, evenly spaced ghost points: Catmull-Rom reproduces the straight line at constant speed
    torch.testing.assert_close(out[:, :3, 3], torch.linspace(0, 1, 5)[:, None] * b[:3, 3], atol=1e-6, rtol=0)
    angles = [Rotation.from_matrix(out[i, :3, :3].double().numpy()).magnitude() for i in range(5)]
    assert angles == pytest.approx([0, math.pi / 8, math.pi / 4, 3 * math.pi / 8, math.pi / 2], abs=1e-6)
    torch.testing.assert_close(fov, torch.tensor([40.0, 45.0, 50.0, 55.0, 60.0]))


def test_interpolation_rejects_zero_keyframes():
    with pytest.raises(NerfkitError, match="keyframes"):
        interpolate_poses(torch.zeros(0, 4, 4), 5)


def test_select_keyframes_spreads_and_walks_to_neighbours():
    ang = torch.linspace(0, 2 * math.pi, 41)[:-1]
    c2w = torch.stack([look_at(torch.stack([4 * a.cos(), 4 * a.sin(), torch.tensor(1.0)]), torch.zeros(3),
                               torch.tensor([0.0, 0.0, 1.0])) for a in ang])
    idx = select_keyframes(c2w, 8)
    assert len(idx) == len(set(idx)) == 8
    pos = c2w[idx, :3, 3]
    steps = (pos[1:] - pos[:-1]).norm(dim=-1)
    # 8 cameras spread on a circle of radius 4, visited in order: every step is one 45-degree chord
    chord = 2 * 4 * math.sin(math.pi / 8)
    assert float(steps.max()) == pytest.approx(chord, rel=0.15)
    assert select_keyframes(c2w[:3], 10) and len(select_keyframes(c2w[:3], 10)) == 3


# ---------------------------------------------------------------------------------------------- spiral

def _forward_facing(n=12, seed=0):
    """Cameras on a 2 x 1 grid patch at z=0 looking along +z (OpenCV), slight jitter."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        c2w = torch.eye(4)
        c2w[:3, 3] = torch.tensor([2.0, 1.0, 0.1]) * (torch.rand(3, generator=g) - 0.5)
        out.append(c2w)
    return torch.stack(out)


def test_spiral_circles_the_mean_camera_and_looks_at_the_focus():
    c2w = _forward_facing()
    avg = mean_pose(c2w)
    torch.testing.assert_close(avg[:3, :3], torch.eye(3), atol=1e-6, rtol=0)
    focus = 5.0
    out = spiral(c2w, 16, focus, n_rotations=2, zrate=0.5)
    assert out.shape == (16, 4, 4)
    assert_rotations(out[:, :3, :3])
    local = (c2w[:, :3, 3] - avg[:3, 3]).abs()
    radii = torch.quantile(local, 0.9, dim=0)
    # frame 0: angle 0 -> offset (rx, 0, 0); frame 2 (angle pi/2 with 2 turns over 16): (0, ry, rz sin(pi/4))
    torch.testing.assert_close(out[0, :3, 3], avg[:3, 3] + torch.tensor([radii[0], 0, 0]), atol=1e-5, rtol=0)
    expect2 = avg[:3, 3] + torch.stack([torch.tensor(0.0), radii[1], radii[2] * math.sin(math.pi / 4)])
    torch.testing.assert_close(out[2, :3, 3], expect2, atol=1e-5, rtol=0)
    target = avg[:3, 3] + focus * avg[:3, 2]
    to_target = torch.nn.functional.normalize(target - out[:, :3, 3], dim=-1)
    torch.testing.assert_close(out[:, :3, 2], to_target, atol=1e-5, rtol=0)
    assert (out[:, 1, 1] > 0.9).all()  # still upright: camera y (down) stays along world +y like the inputs
    # LLFF focus: 1 / (0.25 / near + 0.75 / (5 far))
    assert spiral_focus_distance(1.0, 10.0) == pytest.approx(1 / (0.25 + 0.75 / 50))


# ------------------------------------------------------------------------------------------ path files

# camera at (0, -4, 0) looking at the origin with world +z up, OpenGL axes: right +x, up +z, back -y
GL_FROM_MINUS_Y = [[1, 0, 0, 0], [0, 0, -1, -4], [0, 1, 0, 0], [0, 0, 0, 1]]
# the same camera with OpenCV axes: x right (+x), y down (-z), z forward (+y)
CV_FROM_MINUS_Y = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, -4], [0, -1, 0, 0], [0, 0, 0, 1]])


def test_nerfstudio_camera_path_reads_known_pose(tmp_path):
    second = look_at(torch.tensor([3.0, 1.0, 2.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    second_gl = second.clone()
    second_gl[:3, 1:3] *= -1  # OpenCV -> OpenGL by hand: negate camera y and z
    meta = {"camera_type": "perspective", "render_height": 24, "render_width": 32, "fps": 12, "seconds": 2,
            "keyframes": [],
            "camera_path": [{"camera_to_world": sum(GL_FROM_MINUS_Y, []), "fov": 50, "aspect": 4 / 3},
                            {"camera_to_world": sum(second_gl.tolist(), []), "fov": 60, "aspect": 4 / 3}]}
    f = tmp_path / "camera_path.json"
    f.write_text(json.dumps(meta))
    world = similarity(0.5, [1.0, 2.0, 3.0])
    cam = read_camera_path(f, world)
    assert isinstance(cam, CameraPath) and len(cam) == 2 and not cam.keyframes
    assert (cam.width, cam.height, cam.fps, cam.seconds) == (32, 24, 12.0, 2.0)
    torch.testing.assert_close(cam.fov_y_deg, torch.tensor([50.0, 60.0]))
    expected = CV_FROM_MINUS_Y.clone()
    expected[:3, 3] = torch.tensor([1.0, 0.0, 3.0])  # 0.5 * (0, -4, 0) + (1, 2, 3)
    torch.testing.assert_close(cam.c2w[0], expected, atol=1e-6, rtol=0)
    # the scene-frame camera still looks at the (mapped) origin (1, 2, 3)
    exp2 = look_at(0.5 * torch.tensor([3.0, 1.0, 2.0]) + torch.tensor([1.0, 2, 3]), torch.tensor([1.0, 2, 3]),
                   torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(cam.c2w[1], exp2, atol=1e-5, rtol=0)
    # frame="scene": no transform
    torch.testing.assert_close(read_camera_path(f, world, frame="scene").c2w[0], CV_FROM_MINUS_Y, atol=1e-6, rtol=0)


def test_instant_ngp_base_cam_reads_known_pose(tmp_path):
    # identity quaternion in NGP space: NGP axes (a, b, c) are the file's (y, z, x), so the camera's
    # x (right) is file +y, y (down) file +z, z (forward) file +x; T = offset + 0.33 * (1, 0, 0) in NGP
    # space is the file point (0, 1, 0)
    ident = {"R": [0, 0, 0, 1], "T": [0.83, 0.5, 0.5], "fov": 45, "slice": 0, "scale": 1, "aperture_size": 0}
    # a realistic keyframe, converted with instant-ngp's loader formula by hand (scipy for the quaternion)
    eye, tgt = torch.tensor([2.0, -3.0, 1.5]), torch.tensor([0.2, 0.1, 0.0])
    cv = look_at(eye, tgt, torch.tensor([0.0, 0.0, 1.0])).double()
    ngp = cv[:3].clone()  # the NGP camera keeps OpenCV-like axes (the loader negates OpenGL y, z)
    ngp[:, 3] = ngp[:, 3] * 0.33 + 0.5
    ngp = ngp[[1, 2, 0]]  # cycle rows: (x, y, z) -> (y, z, x)
    xyzw = Rotation.from_matrix(ngp[:, :3].numpy()).as_quat().tolist()
    real = {"R": xyzw, "T": ngp[:, 3].tolist(), "fov": 55, "slice": 0, "scale": 1, "aperture_size": 0}
    f = tmp_path / "base_cam.json"
    f.write_text(json.dumps({"loop": False, "time": 1.0, "path": [ident, real]}))
    cam = read_camera_path(f)
    assert cam.keyframes and len(cam) == 2
    torch.testing.assert_close(cam.fov_y_deg, torch.tensor([45.0, 55.0]))
    expected = torch.tensor([[0.0, 0, 1, 0], [1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]])
    torch.testing.assert_close(cam.c2w[0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(cam.c2w[1], cv.float(), atol=1e-5, rtol=0)
    # writer side: our inverse gives back the same R (up to sign) and T
    r, t = transforms_matrix_to_ngp(ngp_to_transforms_matrix(xyzw, real["T"]))
    assert abs(sum(a * b for a, b in zip(r, xyzw))) == pytest.approx(1.0, abs=1e-9)
    assert t == pytest.approx(real["T"], abs=1e-9)


def test_ngp_space_reads_dataset_scale_and_offset(tmp_path):
    assert ngp_space(tmp_path) == (0.33, (0.5, 0.5, 0.5))
    (tmp_path / "transforms.json").write_text(json.dumps({"scale": 0.1, "offset": [0.5, 0.2, 0.5], "frames": []}))
    assert ngp_space(tmp_path) == (0.1, (0.5, 0.2, 0.5))


def test_nerfkit_path_round_trip_in_original_frame(tmp_path):
    kf = _keyframes(3, seed=4)
    world = similarity(0.25, [0.5, -1.0, 2.0])
    path = CameraPath(kf, torch.tensor([40.0, 50.0, 60.0]), 64, 48, 24.0, 3.0, keyframes=True)
    f = write_camera_path(tmp_path / "p.json", path, frame="original", world_transform=world)
    meta = json.loads(f.read_text())
    assert meta["format"] == "nerfkit-camera-path" and meta["version"] == 1 and meta["frame"] == "original"
    # the file holds original-frame poses: centre = (scene centre - shift) / scale
    torch.testing.assert_close(torch.tensor(meta["frames"][0]["c2w"])[:3, 3],
                               (kf[0, :3, 3] - torch.tensor([0.5, -1.0, 2.0])) / 0.25, atol=1e-5, rtol=0)
    back = read_camera_path(f, world)
    torch.testing.assert_close(back.c2w, kf, atol=1e-5, rtol=0)
    torch.testing.assert_close(back.fov_y_deg, path.fov_y_deg)
    assert (back.width, back.height, back.fps, back.seconds, back.keyframes) == (64, 48, 24.0, 3.0, True)
    with pytest.raises(DataError, match="already exists"):
        write_camera_path(f, path, overwrite=False)


def test_append_keyframe_creates_and_extends(tmp_path):
    f = tmp_path / "kf.json"
    kf = _keyframes(2, seed=5)
    append_keyframe(f, kf[0], 50.0, width=32, height=32, fps=10)
    cam = append_keyframe(f, kf[1], 55.0)
    back = read_camera_path(f)
    assert back.keyframes and len(back) == 2 and (back.width, back.fps) == (32, 10.0)
    torch.testing.assert_close(back.c2w, kf, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.fov_y_deg, torch.tensor([50.0, 55.0]))
    assert len(cam) == 2


@pytest.mark.parametrize("content, error, words", [
    ({"camera_path": [], "render_width": 8, "render_height": 8}, DataError, "zero keyframes"),
    ({"path": []}, DataError, "zero keyframes"),
    ({"format": "nerfkit-camera-path", "version": 1, "frames": []}, DataError, "zero keyframes"),
    ({"camera_path": [{"camera_to_world": [float("nan")] + [0.0] * 15, "fov": 50}]}, PoseError, "NaN"),
    ({"camera_path": [{"camera_to_world": [2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1], "fov": 50}]},
     PoseError, "not a rigid"),
    ({"path": [{"R": [0, 0, 0, 0], "T": [0, 0, 0], "fov": 50}]}, PoseError, "quaternion"),
    ({"camera_path": [{"camera_to_world": sum(GL_FROM_MINUS_Y, []), "fov": -5}]}, DataError, "field of view"),
    ({"frames": []}, DataError, "unknown camera path format"),
])
def test_bad_path_files_name_the_file(tmp_path, content, error, words):
    f = tmp_path / "bad_path.json"
    f.write_text(json.dumps(content))
    with pytest.raises(error, match=words) as e:
        read_camera_path(f)
    assert str(f) in str(e.value)


def test_missing_and_broken_path_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_camera_path(tmp_path / "nope.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        read_camera_path(tmp_path / "broken.json")
