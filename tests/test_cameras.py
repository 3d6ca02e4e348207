"""Cameras: intrinsics, axis conventions, rays, ray-box intersection, camera paths.

References are closed forms and hand-computed values. Camera maths runs in float32, so values are
compared with atol ~1e-6 (unit vectors) or rel 1e-6 (focal lengths computed in float64).
"""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras import (Intrinsics, camera_directions, check_rigid, focal_from_fov, fov_from_focal,
                             generate_rays, look_at, opencv_to_opengl, opengl_to_opencv, orbit, pixel_grid,
                             ray_aabb, to_homogeneous)
from nerfkit.errors import PoseError

LEGO_FOV = 0.6911112070083618  # camera_angle_x of nerf_synthetic/lego


def random_rotation(seed: int) -> torch.Tensor:
    """A random proper rotation (float64 QR of a Gaussian matrix, det fixed to +1)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def pose(rot: torch.Tensor, centre) -> torch.Tensor:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rot
    c2w[:3, 3] = torch.as_tensor(centre, dtype=torch.float64)
    return c2w


def assert_rotation(r: torch.Tensor, atol: float = 1e-5) -> None:
    r = r.double()
    torch.testing.assert_close(r.T @ r, torch.eye(3, dtype=torch.float64), atol=atol, rtol=0)
    assert abs(float(torch.linalg.det(r)) - 1.0) < atol


# ---------------------------------------------------------------------------------------------- rays


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_central_pixel_ray_is_the_optical_axis(seed):
    # W = H = 101, principal point at the image centre 50.5: pixel (50, 50) has its centre exactly on it
    k = torch.tensor([120.0, 90.0, 50.5, 50.5])
    c2w = pose(random_rotation(seed), [0.3, -1.2, 2.5]).float()
    o, d = generate_rays(c2w, k, torch.tensor([50]), torch.tensor([50]))
    torch.testing.assert_close(d[0], c2w[:3, 2], atol=1e-6, rtol=0)
    torch.testing.assert_close(o[0], c2w[:3, 3], atol=0, rtol=0)
    assert abs(float(d.norm()) - 1.0) < 1e-6


def test_corner_pixel_directions_by_hand():
    # fx=100, fy=80, cx=cy=50.5: pixel (0,0) centre (0.5,0.5) -> camera direction (-0.5, -0.625, 1);
    # pixel (100, 0) -> (+0.5, -0.625, 1); pixel (100, 100) -> (0.5, 0.625, 1).
    k = torch.tensor([100.0, 80.0, 50.5, 50.5])
    x, y = torch.tensor([0, 100, 100]), torch.tensor([0, 0, 100])
    cam = torch.tensor([[-0.5, -0.625, 1.0], [0.5, -0.625, 1.0], [0.5, 0.625, 1.0]])
    torch.testing.assert_close(camera_directions(x, y, k), cam, atol=1e-7, rtol=0)

    rot = random_rotation(7)
    c2w = pose(rot, [1.0, 2.0, 3.0]).float()
    _, d = generate_rays(c2w, k, x, y)
    n = math.sqrt(0.25 + 0.625**2 + 1.0)  # 1.2808688...
    expected = (cam.double() / n) @ rot.T  # world direction = R d_cam, normalised
    torch.testing.assert_close(d.double(), expected, atol=1e-6, rtol=0)
    # identity rotation: the normalised camera direction itself, hand-computed
    _, d0 = generate_rays(torch.eye(4), k, x[:1], y[:1])
    torch.testing.assert_close(d0[0], torch.tensor([-0.5 / n, -0.625 / n, 1.0 / n]), atol=1e-7, rtol=0)


def test_per_ray_poses_match_shared_pose():
    k = torch.tensor([60.0, 60.0, 16.0, 12.0])
    c2w = pose(random_rotation(3), [0.1, 0.2, 0.3]).float()
    x, y = pixel_grid(32, 24)
    assert x.shape == (32 * 24,) and int(x[33]) == 1 and int(y[33]) == 1  # row-major: index = y*W + x
    o1, d1 = generate_rays(c2w, k, x, y)
    o2, d2 = generate_rays(c2w[:3].expand(x.numel(), 3, 4), k.expand(x.numel(), 4), x, y)
    torch.testing.assert_close(o1, o2, atol=0, rtol=0)
    torch.testing.assert_close(d1, d2, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------- intrinsics


def test_from_fov_and_lego_numbers():
    intr = Intrinsics.from_fov(LEGO_FOV, 800, 800)
    f = 0.5 * 800 / math.tan(0.5 * LEGO_FOV)
    assert math.isclose(intr.fx, f, rel_tol=1e-12) and math.isclose(intr.fy, f, rel_tol=1e-12)
    assert abs(intr.fx - 1111.111) < 1e-3  # the well-known lego focal length
    assert (intr.cx, intr.cy, intr.width, intr.height) == (400.0, 400.0, 800, 800)

    small = intr.scaled(0.25)
    assert abs(small.fx - 277.7778) < 1e-3 and abs(small.fy - 277.7778) < 1e-3
    assert (small.cx, small.cy, small.width, small.height) == (100.0, 100.0, 200, 200)
    # the field of view is invariant under scaling
    assert math.isclose(fov_from_focal(small.fx, small.width), LEGO_FOV, rel_tol=1e-12)

    k = small.matrix()
    torch.testing.assert_close(k, torch.tensor([[small.fx, 0, 100.0], [0, small.fy, 100.0], [0, 0, 1.0]]))


def test_from_fov_with_vertical_fov_and_bad_values():
    intr = Intrinsics.from_fov(math.radians(90), 640, 480, fov_y=math.radians(60))
    assert math.isclose(intr.fx, 320.0, rel_tol=1e-12)  # 0.5 * 640 / tan(45 deg)
    assert math.isclose(intr.fy, 240.0 * math.sqrt(3.0), rel_tol=1e-12)  # 0.5 * 480 / tan(30 deg)
    assert math.isclose(focal_from_fov(fov_from_focal(500.0, 640), 640), 500.0, rel_tol=1e-12)
    for bad in (0.0, math.pi, -0.1, float("nan")):
        with pytest.raises(PoseError):
            focal_from_fov(bad, 100)
    with pytest.raises(PoseError):
        Intrinsics(float("nan"), 1.0, 0.0, 0.0, 4, 4)
    with pytest.raises(PoseError):
        Intrinsics(-1.0, 1.0, 0.0, 0.0, 4, 4)


# --------------------------------------------------------------------------------------- conventions


def gl_pose_looking_at_origin_from_minus_y() -> torch.Tensor:
    # OpenGL camera at (0,-4,0) looking at the origin with world +z up: looking direction -z_gl = +y
    # world, so z_gl = (0,-1,0); y_gl = up = (0,0,1); x_gl = y_gl x z_gl = (1,0,0).
    return pose(torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=torch.float64), [0.0, -4.0, 0.0])


def test_opengl_opencv_round_trip_and_axes():
    lego_r0 = torch.tensor([  # frame ./train/r_0 of nerf_synthetic/lego (a Blender / OpenGL pose)
        [-0.9999021887779236, 0.004192245192825794, -0.013345719315111637, -0.05379832163453102],
        [-0.013988681137561798, -0.2996590733528137, 0.95394366979599, 3.845470428466797],
        [-4.656612873077393e-10, 0.9540371894836426, 0.29968830943107605, 1.2080823183059692],
        [0.0, 0.0, 0.0, 1.0]])
    gl = torch.stack([lego_r0.double(), gl_pose_looking_at_origin_from_minus_y(),
                      pose(random_rotation(11), [1.0, -2.0, 0.5])]).float()
    cv = opengl_to_opencv(gl)
    torch.testing.assert_close(opencv_to_opengl(cv), gl, atol=0, rtol=0)
    torch.testing.assert_close(cv[:, :3, 0], gl[:, :3, 0], atol=0, rtol=0)  # x (right) unchanged
    torch.testing.assert_close(cv[:, :3, 1], -gl[:, :3, 1], atol=0, rtol=0)  # up -> down
    torch.testing.assert_close(cv[:, :3, 2], -gl[:, :3, 2], atol=0, rtol=0)  # looking direction preserved
    torch.testing.assert_close(cv[:, :, 3], gl[:, :, 3], atol=0, rtol=0)  # position unchanged
    for r in cv[:, :3, :3]:
        assert_rotation(r)
    # the hand-made pose: the OpenCV camera looks along +y world with its y axis pointing down (-z)
    torch.testing.assert_close(cv[1, :3, :3], torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]), atol=0, rtol=0)
    # [3, 4] poses convert the same way
    torch.testing.assert_close(opengl_to_opencv(gl[:, :3]), cv[:, :3], atol=0, rtol=0)
    assert gl[0, 1, 2] > 0  # input untouched (the conversion does not work in place)


def test_point_in_front_of_opengl_camera_has_positive_opencv_depth():
    gl = pose(random_rotation(5), [0.5, 1.0, -2.0])
    cv = opengl_to_opencv(gl)
    # a point 3 units in front of the OpenGL camera (along its -z) and a bit off-axis
    p_cam_gl = torch.tensor([0.4, -0.3, -3.0], dtype=torch.float64)
    p_world = gl[:3, :3] @ p_cam_gl + gl[:3, 3]
    p_cam_cv = cv[:3, :3].T @ (p_world - cv[:3, 3])
    torch.testing.assert_close(p_cam_cv, torch.tensor([0.4, 0.3, 3.0], dtype=torch.float64))
    # and the OpenCV ray through the point's pixel hits it
    fx = 100.0
    u, v = fx * p_cam_cv[0] / p_cam_cv[2] + 50.0, fx * p_cam_cv[1] / p_cam_cv[2] + 50.0
    o, d = generate_rays(cv.float(), torch.tensor([fx, fx, 50.0, 50.0]), (u - 0.5).float()[None], (v - 0.5).float()[None])
    to_p = (p_world - cv[:3, 3]) / (p_world - cv[:3, 3]).norm()
    torch.testing.assert_close(d[0].double(), to_p, atol=1e-6, rtol=0)


def test_to_homogeneous():
    p = pose(random_rotation(2), [1.0, 2.0, 3.0])
    torch.testing.assert_close(to_homogeneous(p[:3]), p, atol=0, rtol=0)
    batch = torch.stack([p[:3], p[:3]])
    torch.testing.assert_close(to_homogeneous(batch), torch.stack([p, p]), atol=0, rtol=0)
    assert to_homogeneous(p) is p
    with pytest.raises(PoseError):
        to_homogeneous(torch.zeros(3, 3))


def test_check_rigid():
    good = pose(random_rotation(4), [0.0, 1.0, 2.0])
    out = check_rigid(good, "cams.json")
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, good.float(), atol=0, rtol=0)
    torch.testing.assert_close(check_rigid(good[:3], "cams.json"), good.float(), atol=0, rtol=0)

    nan = good.clone()
    nan[1, 3] = float("nan")
    scaled = good.clone()
    scaled[:3, :3] *= 1.1
    reflection = good.clone()
    reflection[:3, :3] = reflection[:3, :3] @ torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    inf = good.clone()
    inf[0, 0] = float("inf")
    for bad in (nan, scaled, reflection, inf):
        with pytest.raises(PoseError, match="cams.json"):
            check_rigid(bad, "cams.json")
    # in a batch the message names the offending pose
    with pytest.raises(PoseError, match="pose #2"):
        check_rigid(torch.stack([good, good, reflection]), "cams.json")
    with pytest.raises(PoseError, match="pose #1"):
        check_rigid(torch.stack([good, nan, good]), "cams.json")


# ------------------------------------------------------------------------------------------ ray_aabb

UNIT_BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])


@pytest.mark.parametrize(
    "origin, direction, t_near, t_far, hit",
    [
        ((-3, 0, 0), (1, 0, 0), 2.0, 4.0, True),  # axis-aligned, through the centre
        ((-3, -3, -3), (1, 1, 1), 2.0, 4.0, True),  # main diagonal, corner to corner
        ((-3, -3, -3), (1 / math.sqrt(3),) * 3, 2 * math.sqrt(3), 4 * math.sqrt(3), True),  # unit direction
        ((-2, -1.5, 0), (1, 1, 0), 1.0, 2.5, True),  # enters through x=-1 (t=1), leaves through y=1 (t=2.5)
        ((0.5, 0, 0), (1, 0, 0), 0.0, 0.5, True),  # origin inside: enters at 0
        ((0.5, 0.2, -0.3), (-1, 0, 0), 0.0, 1.5, True),  # inside, going the other way
        ((-3, 2, 0), (1, 0, 0), None, None, False),  # parallel to the x axis, outside the y slab
        ((-3, 0, 0), (1, 1, 0), None, None, False),  # y slab [-1, 1] ends before x slab [2, 4] starts
        ((-3, 0, 0), (-1, 0, 0), None, None, False),  # pointing away from the box
        ((-3, 1, 0), (1, 0, 0), 2.0, 4.0, True),  # lies in the face plane y = 1 (closed box: hit)
        ((-3, -1, 1), (1, 0, 0), 2.0, 4.0, True),  # lies along the edge y = -1, z = 1
        ((-3, 1, 0), (1, -0.0, 0), 2.0, 4.0, True),  # same with a negative zero component
        ((-3, 1.001, 0), (1, 0, 0), None, None, False),  # just outside that face
    ],
)
def test_ray_aabb_hand_computed(origin, direction, t_near, t_far, hit):
    o = torch.tensor([origin], dtype=torch.float32)
    d = torch.tensor([direction], dtype=torch.float32)
    tn, tf, h = ray_aabb(o, d, UNIT_BOX)
    assert bool(h[0]) is hit
    assert not torch.isnan(tn).any() and not torch.isnan(tf).any()
    if hit:
        assert abs(float(tn[0]) - t_near) < 1e-6 and abs(float(tf[0]) - t_far) < 1e-6


def test_ray_aabb_random_rays_enter_and_leave_on_the_surface():
    g = torch.Generator().manual_seed(0)
    box = torch.tensor([[-0.5, -1.0, 0.0], [1.5, 0.5, 2.0]], dtype=torch.float64)
    o = torch.rand(4000, 3, generator=g, dtype=torch.float64) * 6 - 3
    # half aimed at a random point near the box, half random
    aim = box[0] + (box[1] - box[0]) * (torch.rand(4000, 3, generator=g, dtype=torch.float64) * 1.4 - 0.2)
    d = torch.where(torch.arange(4000)[:, None] % 2 == 0, aim - o, torch.randn(4000, 3, generator=g, dtype=torch.float64))
    tn, tf, hit = ray_aabb(o, d, box)
    inside = ((o >= box[0]) & (o <= box[1])).all(-1)

    def in_box(p, eps):
        return ((p >= box[0] - eps) & (p <= box[1] + eps)).all(-1)

    assert hit.sum() > 500 and (~hit).sum() > 500 and inside.sum() > 80
    assert hit[inside].all() and (tn[inside] == 0).all()
    h = hit
    mid = o[h] + 0.5 * (tn[h] + tf[h])[:, None] * d[h]
    assert in_box(mid, 0).all()
    for t, sign in ((tn, -1), (tf, 1)):
        p = o[h] + t[h][:, None] * d[h]
        on_face = ((p - box[0]).abs().amin(-1) < 1e-9) | ((p - box[1]).abs().amin(-1) < 1e-9)
        assert in_box(p, 1e-9).all()
        assert (on_face | (sign < 0) & inside[h]).all()  # the entry of an inside origin is the origin itself
        beyond = o[h] + (t[h] + sign * 1e-6)[:, None] * d[h]
        assert (~in_box(beyond, 0) | (sign < 0) & inside[h]).all()
    # a missed ray never passes through the box: dense check along t in [0, 10]
    ts = torch.linspace(0, 10, 2001, dtype=torch.float64)
    pts = o[~hit][:, None] + ts[None, :, None] * d[~hit][:, None]
    assert not in_box(pts, -1e-6).any()


# ---------------------------------------------------------------------------------------- look_at/orbit


def test_look_at_looks_at_target_and_is_rigid():
    g = torch.Generator().manual_seed(1)
    up = torch.tensor([0.0, 0.0, 1.0])
    for _ in range(5):
        eye, target = torch.randn(3, generator=g) * 3, torch.randn(3, generator=g) * 0.5
        c2w = look_at(eye, target, up)
        assert c2w.shape == (4, 4) and c2w.dtype == torch.float32
        torch.testing.assert_close(c2w[:3, 3], eye, atol=0, rtol=0)
        torch.testing.assert_close(c2w[:3, 2], (target - eye) / (target - eye).norm(), atol=1e-6, rtol=0)
        torch.testing.assert_close(c2w[3], torch.tensor([0.0, 0.0, 0.0, 1.0]), atol=0, rtol=0)
        assert_rotation(c2w[:3, :3])
        assert abs(float(c2w[:3, 0] @ up)) < 1e-6  # no roll: the x axis is horizontal
    # degenerate: looking straight down along -up still gives a rigid camera looking at the target
    c2w = look_at(torch.tensor([0.0, 0.0, 5.0]), torch.zeros(3), up)
    torch.testing.assert_close(c2w[:3, 2], torch.tensor([0.0, 0.0, -1.0]), atol=1e-7, rtol=0)
    assert_rotation(c2w[:3, :3])


def test_look_at_camera_y_points_down():
    # camera at (0,-4,0) looking at the origin, world +z up: OpenCV x = +x world (right), y = -z (down),
    # z = +y (forward); the same as the Blender pose of gl_pose_looking_at_origin_from_minus_y converted.
    c2w = look_at(torch.tensor([0.0, -4.0, 0.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    expected = opengl_to_opencv(gl_pose_looking_at_origin_from_minus_y()).float()
    torch.testing.assert_close(c2w, expected, atol=1e-6, rtol=0)


def test_orbit_cameras_on_sphere_looking_at_centre():
    centre = torch.tensor([0.5, -0.2, 0.1])
    up = torch.tensor([0.0, 0.0, 1.0])
    radius, elev = 3.0, 30.0
    poses = orbit(12, radius, elevation_deg=elev, center=tuple(centre.tolist()))
    assert poses.shape == (12, 4, 4)
    offset = poses[:, :3, 3] - centre
    torch.testing.assert_close(offset.norm(dim=-1), torch.full((12,), radius), atol=1e-5, rtol=0)
    # raised by the elevation above the plane perpendicular to up
    torch.testing.assert_close(offset @ up, torch.full((12,), radius * math.sin(math.radians(elev))),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(poses[:, :3, 2], -offset / radius, atol=1e-6, rtol=0)
    for p in poses:
        assert_rotation(p[:3, :3])
    # one full turn in equal steps: consecutive horizontal offsets are 30 degrees apart
    h = offset[:, :2] / offset[:, :2].norm(dim=-1, keepdim=True)
    cos = (h * h.roll(-1, 0)).sum(-1)
    torch.testing.assert_close(cos, torch.full((12,), math.cos(math.radians(30))), atol=1e-6, rtol=0)
    # a tilted up vector: cameras still orbit at the radius and look at the centre
    poses = orbit(5, 2.0, elevation_deg=-10.0, up=(0.0, 1.0, 1.0))
    torch.testing.assert_close(poses[:, :3, 3].norm(dim=-1), torch.full((5,), 2.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(poses[:, :3, 2], -poses[:, :3, 3] / 2.0, atol=1e-6, rtol=0)


def test_generate_rays_through_lens_distortion_reproject_to_pixel_centres():
    from nerfkit.cameras import project

    c2w = look_at(torch.tensor([3.0, -2.0, 1.0]), torch.zeros(3), torch.tensor([0.0, 0.0, 1.0]))
    k = torch.tensor([60.0, 58.0, 33.0, 23.5])
    dist = torch.tensor([0.0578421, -0.0805099, -0.000980296, 0.00015575])  # the instant-ngp fox lens
    x, y = pixel_grid(64, 48)
    o, d = generate_rays(c2w, k, x, y, dist, "opencv")
    pts_world = o + 2.5 * d
    w2c = torch.linalg.inv(c2w)
    pts_cam = pts_world @ w2c[:3, :3].T + w2c[:3, 3]
    uv = project(pts_cam, k, dist, "opencv")
    torch.testing.assert_close(uv, torch.stack([x + 0.5, y + 0.5], -1).float(), atol=1e-3, rtol=0)
    # the distorted ray differs from the pinhole one away from the centre
    _, d0 = generate_rays(c2w, k, x, y)
    assert float((d - d0).norm(dim=-1).max()) > 1e-3
