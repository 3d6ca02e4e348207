"""Lens distortion models: identities, round trips, hand-computed values, rays through pixels, gradients.

References are the published model equations written out by hand (OpenCV pinhole radial-tangential
model and OpenCV fisheye / Kannala-Brandt equidistant model), and OpenCV itself when installed.
Round trips run in float64 to 1e-6 (the solver's float64 tolerance is 1e-10); float32 is checked
with a tolerance of a few hundred ulps; pixel round trips to 1e-4 px in float32.
"""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras.distortion import MODELS, distort, distorted_camera_directions, project, undistort
from nerfkit.errors import PoseError

FOX = (0.0578421, -0.0805099, -0.000980296, 0.00015575)  # instant-ngp fox: k1 k2 p1 p2
FISHEYE = (0.02, -0.005, 0.001, -0.0002)  # k1..k4

# realistic parameters per model, and the half extent of the normalised field of view to sample
REALISTIC = {
    "pinhole": ((), 1.0),
    "simple_radial": ((-0.1,), 0.9),
    "radial": ((-0.12, 0.02), 0.9),
    "opencv": (FOX, 0.8),
    "opencv_k3": ((-0.28, 0.07, 0.0002, -0.0001, 0.01), 0.9),
}


def _model(name: str) -> str:
    return "opencv" if name == "opencv_k3" else name


def random_xy(n: int, half: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(n, 2, generator=g, dtype=torch.float64) * 2 - 1) * half).to(dtype)


def random_fisheye_xy(n: int, max_deg: float, seed: int, dtype=torch.float64) -> torch.Tensor:
    """Normalised undistorted points with angles from the axis uniform in [0, max_deg]."""
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n, generator=g, dtype=torch.float64) * math.radians(max_deg)
    phi = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    r = torch.tan(theta)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], dim=-1).to(dtype)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_zero_parameters_are_identity(model):
    xy = random_xy(50, 0.8, 0)
    p = torch.zeros(MODELS[model][0], dtype=torch.float64)
    if model == "opencv_fisheye":
        # the fisheye with k = 0 is the equidistant projection, not the identity on X/Z: r_d = atan(r)
        r = xy.norm(dim=-1, keepdim=True)
        torch.testing.assert_close(distort(xy, p, model), xy * torch.atan(r) / r, rtol=0, atol=1e-15)
    else:
        torch.testing.assert_close(distort(xy, p, model), xy, rtol=0, atol=0)
    back, ok = undistort(distort(xy, p, model), p, model)
    assert ok.all()
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(REALISTIC))
def test_round_trip_pinhole_family(name):
    params, half = REALISTIC[name]
    p = torch.tensor(params, dtype=torch.float64)
    xy = random_xy(2000, half, 1)
    back, ok = undistort(distort(xy, p, _model(name)), p, _model(name))
    assert ok.all()
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-6)
    # float32: same points, tolerance of a few hundred ulps of coordinates <= ~1
    xy32 = xy.float()
    back32, ok32 = undistort(distort(xy32, p.float(), _model(name)), p.float(), _model(name))
    assert ok32.all() and back32.dtype == torch.float32
    torch.testing.assert_close(back32, xy32, rtol=0, atol=2e-6)


def test_round_trip_fisheye_to_80_degrees():
    p = torch.tensor(FISHEYE, dtype=torch.float64)
    xy = random_fisheye_xy(2000, 80.0, 2)
    back, ok = undistort(distort(xy, p, "opencv_fisheye"), p, "opencv_fisheye")
    assert ok.all()
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-6)
    # float32: X/Z = tan(theta) amplifies the angle error by 1/cos^2(80 deg) ~ 33, so compare relatively
    back32, ok32 = undistort(distort(xy.float(), p.float(), "opencv_fisheye"), p.float(), "opencv_fisheye")
    assert ok32.all()
    torch.testing.assert_close(back32, xy.float(), rtol=1e-5, atol=1e-6)


def test_per_ray_parameters_match_shared():
    xy = random_xy(6, 0.7, 3)
    p = torch.tensor([FOX, (-0.28, 0.07, 0.0002, -0.0001), (0, 0, 0, 0), FOX, FOX, (0.1, 0.0, 0.0, 0.01)],
                     dtype=torch.float64)
    out = distort(xy, p, "opencv")
    rows = torch.cat([distort(xy[i:i + 1], p[i], "opencv") for i in range(6)])
    torch.testing.assert_close(out, rows, rtol=0, atol=0)
    back, ok = undistort(out, p, "opencv")
    assert ok.all()
    torch.testing.assert_close(back, xy, rtol=0, atol=1e-9)


def test_opencv_by_hand():
    """x = 0.3, y = -0.2; k1 = 0.1, k2 = -0.05, p1 = 0.001, p2 = -0.002, k3 = 0.01.

    r^2 = 0.09 + 0.04 = 0.13, r^4 = 0.0169, r^6 = 0.002197
    radial = 1 + 0.1 * 0.13 - 0.05 * 0.0169 + 0.01 * 0.002197 = 1.01217697
    x_d = x * radial + 2 p1 x y + p2 (r^2 + 2 x^2)
        = 0.303653091 + 2 * 0.001 * 0.3 * (-0.2) + (-0.002) * (0.13 + 0.18)
        = 0.303653091 - 0.00012 - 0.00062 = 0.302913091
    y_d = y * radial + p1 (r^2 + 2 y^2) + 2 p2 x y
        = -0.202435394 + 0.001 * (0.13 + 0.08) + 2 * (-0.002) * 0.3 * (-0.2)
        = -0.202435394 + 0.00021 + 0.00024 = -0.201985394
    """
    xy = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    p = torch.tensor([0.1, -0.05, 0.001, -0.002, 0.01], dtype=torch.float64)
    expected = torch.tensor([[0.302913091, -0.201985394]], dtype=torch.float64)
    torch.testing.assert_close(distort(xy, p, "opencv"), expected, rtol=0, atol=1e-12)
    # without k3 the r^6 term (0.01 * 0.002197 * x resp. y) disappears
    no_k3 = expected - 0.01 * 0.002197 * xy
    torch.testing.assert_close(distort(xy, p[:4], "opencv"), no_k3, rtol=0, atol=1e-12)


def test_fisheye_by_hand():
    """(x, y) = (0.6, 0.8): r = 1, theta = atan(1) = pi/4.

    theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8); (x_d, y_d) = (x, y) theta_d / r.
    """
    k1, k2, k3, k4 = FISHEYE
    theta = math.pi / 4
    t2 = theta**2  # 0.616850...
    theta_d = theta * (1 + k1 * t2 + k2 * t2**2 + k3 * t2**3 + k4 * t2**4)
    assert theta_d == pytest.approx(0.7937550, abs=1e-7)  # 0.785398 * 1.010640
    expected = torch.tensor([[0.6 * theta_d, 0.8 * theta_d]], dtype=torch.float64)
    xy = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    p = torch.tensor(FISHEYE, dtype=torch.float64)
    torch.testing.assert_close(distort(xy, p, "opencv_fisheye"), expected, rtol=0, atol=1e-14)
    # on the axis the scale theta_d / r tends to 1
    torch.testing.assert_close(distort(torch.zeros(1, 2, dtype=torch.float64), p, "opencv_fisheye"),
                               torch.zeros(1, 2, dtype=torch.float64))


def test_matches_opencv_if_installed():
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    xy = random_xy(20, 0.7, 4)
    pts = np.concatenate([xy.numpy(), np.ones((20, 1))], axis=1).reshape(-1, 1, 3)
    zero = np.zeros(3)
    eye = np.eye(3)
    k5 = np.array([0.1, -0.05, 0.001, -0.002, 0.01])
    ref, _ = cv2.projectPoints(pts, zero, zero, eye, k5)
    ours = distort(xy, torch.from_numpy(k5), "opencv").numpy()
    np.testing.assert_allclose(ours, ref.reshape(-1, 2), atol=1e-9)
    kf = np.array(FISHEYE)
    ref_f, _ = cv2.fisheye.projectPoints(pts, zero.reshape(1, 1, 3), zero.reshape(1, 1, 3), eye, kf)
    ours_f = distort(xy, torch.from_numpy(kf), "opencv_fisheye").numpy()
    np.testing.assert_allclose(ours_f, ref_f.reshape(-1, 2), atol=1e-9)


CAMERAS = {
    "opencv_fox": ("opencv", FOX, (50.0, 52.0, 32.5, 23.5)),
    "opencv_strong": ("opencv", (-0.28, 0.07, 0.0002, -0.0001, 0.01), (40.0, 40.0, 32.0, 24.0)),
    "radial": ("radial", (-0.12, 0.02), (45.0, 45.0, 31.0, 24.5)),
    "fisheye_narrow": ("opencv_fisheye", FISHEYE, (40.0, 40.0, 32.0, 24.0)),
    # f = 23 px puts the image corners at theta ~ 100 degrees: rays behind the image plane
    "fisheye_wide": ("opencv_fisheye", FISHEYE, (23.0, 23.0, 32.0, 24.0)),
}


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_rays_through_pixels_project_back(name):
    model, params, k = CAMERAS[name]
    ys, xs = torch.meshgrid(torch.arange(48), torch.arange(64), indexing="ij")
    x, y = xs.reshape(-1), ys.reshape(-1)
    k = torch.tensor(k)
    p = torch.tensor(params)
    d, valid = distorted_camera_directions(x, y, k, p, model, return_valid=True)
    assert valid.all() and d.dtype == torch.float32 and d.shape == (64 * 48, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(64 * 48), rtol=0, atol=1e-6)
    if name == "fisheye_wide":
        assert (d[:, 2] < 0).any()  # some rays look more than 90 degrees off the axis
    uv = project(d, k, p, model)
    centres = torch.stack([x + 0.5, y + 0.5], dim=-1).float()
    torch.testing.assert_close(uv, centres, rtol=0, atol=1e-4)


def test_pinhole_directions_match_camera_directions():
    from nerfkit.cameras import camera_directions

    x, y = torch.arange(10), torch.arange(10) * 3
    k = torch.tensor([50.0, 52.0, 32.5, 23.5])
    ref = camera_directions(x, y, k)
    d = distorted_camera_directions(x, y, k, torch.zeros(0), "pinhole")
    torch.testing.assert_close(d, ref / ref.norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("name", ["simple_radial", "radial", "opencv_k3", "opencv_fisheye"])
def test_distort_gradcheck(name):
    if name == "opencv_fisheye":
        model, params = name, FISHEYE
        xy = random_fisheye_xy(4, 70.0, 5)
    else:
        model, params = _model(name), REALISTIC[name][0]
        xy = random_xy(4, 0.7, 5)
    xy = xy.requires_grad_()
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: distort(a, b, model), (xy, p))


@pytest.mark.parametrize("model,params", [("opencv", FOX), ("opencv_fisheye", FISHEYE)])
def test_undistort_gradients_are_implicit(model, params):
    """The gradient of the inverse is the inverse Jacobian (implicit function theorem): gradcheck."""
    xy = random_xy(4, 0.6, 6)
    xy_d = distort(xy, torch.tensor(params, dtype=torch.float64), model).requires_grad_()
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: undistort(a, b, model)[0], (xy_d, p))


def test_outside_valid_region_reports_non_convergence():
    # fox: r_d(r) = r (1 + k1 r^2 + k2 r^4) peaks at r_d ~ 1.13 (r ~ 1.34); r_d = 2 has no preimage
    p = torch.tensor(FOX, dtype=torch.float64)
    xy_d = torch.tensor([[2.0, 0.0], [0.3, 0.2], [1.5, 1.5]], dtype=torch.float64)
    xy, ok = undistort(xy_d, p, "opencv")
    assert ok.tolist() == [False, True, False]
    assert torch.isnan(xy[~ok]).all() and torch.isfinite(xy[ok]).all()
    # fisheye: theta_d(theta) has a maximum below 3 on [0, pi]; beyond it there is no ray
    pf = torch.tensor(FISHEYE, dtype=torch.float64)
    _, okf = undistort(torch.tensor([[3.0, 0.0], [0.2, 0.1]], dtype=torch.float64), pf, "opencv_fisheye")
    assert okf.tolist() == [False, True]
    # theta >= 90 degrees has no finite X/Z: undistort refuses, the ray directions do not
    xy_d = torch.tensor([[1.8, 0.0]], dtype=torch.float64)  # theta_d = 1.8: theta ~ 1.75 (100 degrees)
    _, ok90 = undistort(xy_d, pf, "opencv_fisheye")
    assert not ok90.any()
    d, valid = distorted_camera_directions(torch.tensor([99]), torch.tensor([0]),
                                           torch.tensor([1.0, 1.0, 99.5 - 1.8, 0.5], dtype=torch.float64),
                                           pf, "opencv_fisheye", return_valid=True)
    assert valid.all() and d[0, 2] < 0
    # rays of pixels outside the valid region are NaN, flagged
    d, valid = distorted_camera_directions(torch.tensor([0, 10]), torch.tensor([0, 0]),
                                           torch.tensor([1.0, 1.0, 10.5, 0.5]), p, "opencv", return_valid=True)
    assert valid.tolist() == [False, True] and torch.isnan(d[0]).all()


@pytest.mark.parametrize("model,params", [("opencv", FOX), ("opencv_fisheye", FISHEYE)])
def test_failed_points_do_not_poison_gradients(model, params):
    """Refining distortion parameters with a batch that holds an invalid pixel: finite gradients."""
    p = torch.tensor(params, dtype=torch.float64, requires_grad=True)
    xy_d = torch.tensor([[0.3, 0.2], [5.0, 0.0], [-0.1, 0.4]], dtype=torch.float64, requires_grad=True)
    xy, ok = undistort(xy_d, p, model)
    assert ok.tolist() == [True, False, True]
    xy[ok].sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(xy_d.grad).all()
    assert (xy_d.grad[1] == 0).all()


def test_bad_parameters_raise():
    xy = torch.zeros(3, 2)
    with pytest.raises(PoseError, match="4 or 5"):
        distort(xy, torch.zeros(3), "opencv")
    with pytest.raises(PoseError, match="unknown camera model"):
        distort(xy, torch.zeros(4), "kannala")
    with pytest.raises(PoseError, match="N=3"):
        undistort(xy, torch.zeros(2, 4), "opencv_fisheye")


def test_follows_dtype():
    for dtype in (torch.float32, torch.float64):
        xy = random_xy(5, 0.5, 7, dtype)
        for model in ("opencv", "opencv_fisheye"):
            p = torch.tensor(FOX if model == "opencv" else FISHEYE)  # float32 params follow xy
            assert distort(xy, p, model).dtype == dtype
            out, ok = undistort(xy, p, model)
            assert out.dtype == dtype and ok.dtype == torch.bool
