"""Lens distortion: the COLMAP / OpenCV camera models, forward and inverse, in pure PyTorch.

Coordinates. ``distort`` and ``undistort`` work on *normalised* image coordinates: a camera-space
point (X, Y, Z) (OpenCV axes: x right, y down, z forward) has undistorted normalised coordinates
(x, y) = (X / Z, Y / Z); the lens moves them to distorted normalised coordinates (x_d, y_d), and
the pixel is (fx * x_d + cx, fy * y_d + cy) with pixel centres at +0.5 (see ``intrinsics.py``).

Models and their ``params`` (only the distortion coefficients; focal length and principal point
live in the intrinsics), with r^2 = x^2 + y^2:

==================  ==========================  ===================================================
model               params                      maps (x, y) to (x_d, y_d)
==================  ==========================  ===================================================
``pinhole``         none (P = 0)                identity
``simple_radial``   k                           (x, y) * (1 + k r^2)
``radial``          k1, k2                      (x, y) * (1 + k1 r^2 + k2 r^4)
``opencv``          k1, k2, p1, p2 [, k3]       radial (1 + k1 r^2 + k2 r^4 + k3 r^6) plus tangential:
                                                x_d = x R + 2 p1 x y + p2 (r^2 + 2 x^2),
                                                y_d = y R + p1 (r^2 + 2 y^2) + 2 p2 x y
``opencv_fisheye``  k1, k2, k3, k4              equidistant (Kannala-Brandt): theta = atan(r),
                                                theta_d = theta (1 + k1 theta^2 + k2 theta^4
                                                + k3 theta^6 + k4 theta^8), (x_d, y_d) =
                                                (x, y) * theta_d / r
==================  ==========================  ===================================================

These are the OpenCV ``projectPoints`` / ``fisheye::projectPoints`` equations (and COLMAP's
SIMPLE_RADIAL, RADIAL, OPENCV, OPENCV_FISHEYE; instant-ngp's ``k1 k2 p1 p2`` is ``opencv`` and its
fisheye ``k1..k4`` is ``opencv_fisheye``). ``params`` is a tensor [P] shared by every point or
[N, P] per point; the distortion is computed in the dtype and on the device of the coordinates.

Inverse. ``undistort`` runs a fixed number of Newton iterations (no data-dependent control flow,
so no host sync): the 2x2 analytic Jacobian for the pinhole-family models, a 1-D Newton on theta
for the fisheye model. A point is reported as *not converged* when the final residual exceeds the
tolerance, when the solution lies where the model folds over (Jacobian determinant / dtheta_d/dtheta
<= 0: the lens cannot image that point, the root is not the physical one), or when the iterate is
not finite. Non-converged points come back as NaN together with a boolean mask, never silently.
Gradients of ``undistort`` are the implicit-function gradients (one differentiable Newton step at
the detached solution), so they do not depend on the number of iterations.

Ray directions. ``distorted_camera_directions`` returns **unit-norm** directions for every model
(not z = 1 as ``rays.camera_directions``): the fisheye model reaches theta >= 90 degrees, where a
z = 1 direction does not exist, and one convention for all models is harder to misuse. Divide by
the z component to get z = 1 directions for the pinhole-family models.
"""

from __future__ import annotations

import math

import torch

from ..errors import PoseError

# model name -> accepted parameter counts
MODELS: dict[str, tuple[int, ...]] = {
    "pinhole": (0,),
    "simple_radial": (1,),
    "radial": (2,),
    "opencv": (4, 5),
    "opencv_fisheye": (4,),
}


def _check(params: torch.Tensor, model: str, n: int) -> None:
    if model not in MODELS:
        raise PoseError(f"unknown camera model {model!r}; expected one of {sorted(MODELS)}")
    counts = MODELS[model]
    bad_rows = params.dim() == 2 and params.shape[0] != n
    if params.dim() not in (1, 2) or params.shape[-1] not in counts or bad_rows:
        raise PoseError(
            f"camera model {model!r} takes {' or '.join(map(str, counts))} distortion parameters as [P] or "
            f"[N={n}, P], got shape {tuple(params.shape)}; pass only the distortion coefficients, not f/cx/cy"
        )


def _params(params, like: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(params, device=like.device)
    return p.to(like.dtype)


def _opencv_coeffs(p: torch.Tensor, model: str) -> tuple[torch.Tensor, ...]:
    """(k1, k2, k3, p1, p2) for the pinhole-family models, each [] or [N]; missing ones are 0."""
    zero = torch.zeros_like(p[..., 0])
    k1 = k2 = k3 = p1 = p2 = zero
    if model == "simple_radial":
        k1 = p[..., 0]
    elif model == "radial":
        k1, k2 = p[..., 0], p[..., 1]
    elif model == "opencv":
        k1, k2, p1, p2 = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
        if p.shape[-1] == 5:
            k3 = p[..., 4]
    return k1, k2, k3, p1, p2


def _opencv_distort(xy: torch.Tensor, c: tuple[torch.Tensor, ...], jacobian: bool = False):
    """Pinhole-family distortion of xy [N, 2]; with ``jacobian`` also d(x_d, y_d)/d(x, y) entries [N]."""
    k1, k2, k3, p1, p2 = c
    x, y = xy[..., 0], xy[..., 1]
    xx, yy, xy_ = x * x, y * y, x * y
    r2 = xx + yy
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * xy_ + p2 * (r2 + 2 * xx)
    yd = y * radial + p1 * (r2 + 2 * yy) + 2 * p2 * xy_
    out = torch.stack([xd, yd], dim=-1)
    if not jacobian:
        return out
    dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)  # d radial / d r^2
    j00 = radial + 2 * xx * dradial + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * xy_ * dradial + 2 * p1 * x + 2 * p2 * y
    j10 = j01  # the Jacobian of this model is symmetric
    j11 = radial + 2 * yy * dradial + 6 * p1 * y + 2 * p2 * x
    return out, (j00, j01, j10, j11)


def _theta_poly(theta: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """theta_d(theta) and its derivative for the fisheye model; ``theta`` [N], ``p`` [4] or [N, 4]."""
    k1, k2, k3, k4 = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    t2 = theta * theta
    poly = 1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4)))
    dpoly = 1 + t2 * (3 * k1 + t2 * (5 * k2 + t2 * (7 * k3 + t2 * 9 * k4)))
    return theta * poly, dpoly


def _safe_norm(xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(r [N], small [N] bool): the 2-norm with a finite gradient at 0; ``small`` marks r ~ 0."""
    r2 = (xy * xy).sum(-1)
    small = r2 <= torch.finfo(xy.dtype).eps ** 2
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    return r, small


def distort(xy: torch.Tensor, params, model: str) -> torch.Tensor:
    """Apply lens distortion to normalised image coordinates.

    ``xy``: [N, 2] undistorted normalised coordinates (X/Z, Y/Z); ``params``: [P] or [N, P]
    distortion coefficients of ``model`` (see the module docstring). Returns [N, 2] distorted
    normalised coordinates, same dtype and device as ``xy``. Differentiable in ``xy`` and ``params``.
    """
    p = _params(params, xy)
    _check(p, model, xy.shape[0])
    if model == "pinhole":
        return xy.clone()
    if model == "opencv_fisheye":
        r, small = _safe_norm(xy)
        theta_d, _ = _theta_poly(torch.atan(r), p)
        scale = torch.where(small, torch.ones_like(r), theta_d / r)  # theta_d / r -> 1 as r -> 0
        return xy * scale.unsqueeze(-1)
    return _opencv_distort(xy, _opencv_coeffs(p, model))


def _default_tol(dtype: torch.dtype) -> float:
    # residual tolerance in normalised units; 1e-5 is 0.01 px at f = 1000 px, ~100 float32 ulps
    return 1e-10 if dtype == torch.float64 else 1e-5


def _solve_theta(theta_d: torch.Tensor, p: torch.Tensor, iterations: int, tol: float):
    """Fisheye inverse: theta [N] with theta_d(theta) = ``theta_d`` and an ok mask [N]."""
    with torch.no_grad():
        td = theta_d.detach()
        pd = p.detach()
        theta = td.clone()
        for _ in range(iterations):
            f, df = _theta_poly(theta, pd)
            step = (f - td) / df
            new = theta - step
            # keep the iterate where the step is unusable (flat or folded model, overflow)
            theta = torch.where(torch.isfinite(new) & (df > 0), new.clamp(0.0, math.pi), theta)
        f, df = _theta_poly(theta, pd)
        ok = torch.isfinite(theta) & ((f - td).abs() <= tol) & (df > 0) & (theta < math.pi)
        # failed points restart from 0 so that the step below (and its gradient) stays finite
        theta = torch.where(ok, theta, torch.zeros_like(theta))
        df = torch.where(ok, df, torch.ones_like(df))
    # one differentiable Newton step at the solution: the implicit-function gradient
    f, _ = _theta_poly(theta, p)
    theta = theta - (f - theta_d) / df
    return theta, ok


def undistort(
    xy_d: torch.Tensor, params, model: str, iterations: int = 10, tol: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert :func:`distort` by Newton iterations.

    ``xy_d``: [N, 2] distorted normalised coordinates; ``params``: [P] or [N, P]. Runs exactly
    ``iterations`` Newton steps from x = x_d (analytic 2x2 Jacobian; 1-D in theta for the fisheye).
    ``tol``: largest accepted residual |distort(x) - x_d| (max over the two components; for the
    fisheye |theta_d(theta) - r_d|), default 1e-10 for float64 and 1e-5 for float32.

    Returns ``(xy, converged)``: [N, 2] undistorted normalised coordinates and a [N] bool mask.
    Points that did not converge (no solution: outside the image of the lens; the solution lies where
    the model folds over; for the fisheye, theta >= 90 degrees, which has no X/Z, Y/Z) are NaN.
    """
    p = _params(params, xy_d)
    _check(p, model, xy_d.shape[0])
    tol = _default_tol(xy_d.dtype) if tol is None else tol
    if model == "pinhole":
        return xy_d.clone(), torch.ones(xy_d.shape[:-1], dtype=torch.bool, device=xy_d.device)
    if model == "opencv_fisheye":
        theta, ok, r_d, small = _fisheye_angles(xy_d, p, iterations, tol)
        ok = ok & (theta < 0.5 * math.pi)
        scale = torch.where(small, torch.ones_like(theta), torch.tan(theta) / torch.where(small, 1.0, r_d))
        xy = xy_d * scale.unsqueeze(-1)
        return torch.where(ok.unsqueeze(-1), xy, torch.full_like(xy, math.nan)), ok
    c = _opencv_coeffs(p, model)
    with torch.no_grad():
        cd = tuple(t.detach() for t in c)
        target = xy_d.detach()
        x = target.clone()
        for _ in range(iterations):
            f, (a, b, cc, d) = _opencv_distort(x, cd, jacobian=True)
            res = f - target
            det = a * d - b * cc
            good = det > 0  # a fold (det <= 0) is not a region the lens images one-to-one
            safe = torch.where(good, det, torch.ones_like(det))
            dx = (d * res[..., 0] - b * res[..., 1]) / safe
            dy = (a * res[..., 1] - cc * res[..., 0]) / safe
            new = x - torch.stack([dx, dy], dim=-1)
            x = torch.where((good & torch.isfinite(new).all(-1)).unsqueeze(-1), new, x)
        f, (a, b, cc, d) = _opencv_distort(x, cd, jacobian=True)
        res = f - target
        det = a * d - b * cc
        ok = torch.isfinite(x).all(-1) & (res.abs().amax(-1) <= tol) & (det > 0)
        # failed points: identity step from x = 0, so the masked-out values and gradients stay finite
        x = torch.where(ok.unsqueeze(-1), x, torch.zeros_like(x))
        one, zero = torch.ones_like(det), torch.zeros_like(det)
        a, b, cc, d = (torch.where(ok, t, v) for t, v in ((a, one), (b, zero), (cc, zero), (d, one)))
        safe = torch.where(ok, det, one)
    # one differentiable Newton step at the detached solution: exact implicit-function gradient
    res = _opencv_distort(x, c) - xy_d
    dx = (d * res[..., 0] - b * res[..., 1]) / safe
    dy = (a * res[..., 1] - cc * res[..., 0]) / safe
    xy = x - torch.stack([dx, dy], dim=-1)
    return torch.where(ok.unsqueeze(-1), xy, torch.full_like(xy, math.nan)), ok


def _fisheye_angles(xy_d: torch.Tensor, p: torch.Tensor, iterations: int, tol: float):
    """Angle from the optical axis of distorted points xy_d [N, 2]: theta [N], ok [N], r_d [N], small [N].

    ``r_d`` = |xy_d| (1 where ``small``, i.e. on the axis, where theta = 0)."""
    r_d, small = _safe_norm(xy_d)
    theta_d = torch.where(small, torch.zeros_like(r_d), r_d)
    theta, ok = _solve_theta(theta_d, p, iterations, tol)
    return theta, ok, r_d, small


def distorted_camera_directions(
    x: torch.Tensor,
    y: torch.Tensor,
    intrinsics: torch.Tensor,
    params,
    model: str,
    iterations: int = 10,
    tol: float | None = None,
    return_valid: bool = False,
):
    """Unit-norm camera-space directions (OpenCV axes) of the true rays through pixel centres.

    Like :func:`nerfkit.cameras.rays.camera_directions` (pixel (x, y) has its centre at
    (x + 0.5, y + 0.5)), but the pixel is taken to lie in the *distorted* image, so its normalised
    coordinates go through :func:`undistort`. ``x, y``: [N] pixel indices (integer or float);
    ``intrinsics``: [4] or [N, 4] (fx, fy, cx, cy); ``params``: [P] or [N, P].

    Returns [N, 3] **unit** directions (for every model; for the fisheye, built from theta, so valid
    beyond 90 degrees). Computed in float64 if ``intrinsics`` is float64, else float32. Pixels whose
    ray cannot be found (outside the lens' valid region) are NaN; with ``return_valid`` the [N] bool
    mask of valid rays is returned too: ``(directions, valid)``.
    """
    dtype = torch.float64 if intrinsics.dtype == torch.float64 else torch.float32
    k = intrinsics.to(dtype)
    fx, fy, cx, cy = k[..., 0], k[..., 1], k[..., 2], k[..., 3]
    u = (x.to(dtype) + 0.5 - cx) / fx
    v = (y.to(dtype) + 0.5 - cy) / fy
    xy_d = torch.stack([u, v], dim=-1)
    p = _params(params, xy_d)
    _check(p, model, xy_d.shape[0])
    tol = _default_tol(dtype) if tol is None else tol
    if model == "opencv_fisheye":
        theta, ok, r_d, small = _fisheye_angles(xy_d, p, iterations, tol)
        # sin(theta) * (x_d, y_d) / r_d; at r_d ~ 0, theta ~ r_d so the factor tends to 1
        s = torch.where(small, torch.ones_like(theta), torch.sin(theta) / torch.where(small, 1.0, r_d))
        d = torch.cat([xy_d * s.unsqueeze(-1), torch.cos(theta).unsqueeze(-1)], dim=-1)
    else:
        xy, ok = undistort(xy_d, p, model, iterations=iterations, tol=tol)
        d = torch.cat([xy, torch.ones_like(xy[..., :1])], dim=-1)
        d = d / d.norm(dim=-1, keepdim=True)
    d = torch.where(ok.unsqueeze(-1), d, torch.full_like(d, math.nan))
    return (d, ok) if return_valid else d


def project(points_cam: torch.Tensor, intrinsics: torch.Tensor, params, model: str) -> torch.Tensor:
    """Pixel coordinates of camera-space points through the lens model.

    ``points_cam``: [N, 3] (OpenCV axes); ``intrinsics``: [4] or [N, 4] (fx, fy, cx, cy);
    ``params``: [P] or [N, P]. Returns [N, 2] continuous pixel coordinates (u, v) in which the centre
    of pixel (i, j) is (i + 0.5, j + 0.5). Pinhole-family models need Z > 0: other points give NaN.
    The fisheye model uses theta = atan2(r, Z), so it projects points at and beyond 90 degrees.
    Computed in the dtype of ``points_cam``; differentiable.
    """
    pts = points_cam
    k = intrinsics.to(device=pts.device, dtype=pts.dtype)
    p = _params(params, pts)
    _check(p, model, pts.shape[0])
    X, Y, Z = pts[..., 0], pts[..., 1], pts[..., 2]
    if model == "opencv_fisheye":
        r, small = _safe_norm(pts[..., :2])
        theta_d, _ = _theta_poly(torch.atan2(r, Z), p)
        # at r ~ 0 (on the axis) theta_d / r -> 1 / Z
        scale = torch.where(small, 1.0 / torch.where(Z > 0, Z, 1.0), theta_d / r)
        xy_d = pts[..., :2] * scale.unsqueeze(-1)
    else:
        front = Z > 0
        zs = torch.where(front, Z, torch.ones_like(Z))
        xy_d = distort(torch.stack([X / zs, Y / zs], dim=-1), p, model)
        xy_d = torch.where(front.unsqueeze(-1), xy_d, torch.full_like(xy_d, math.nan))
    u = k[..., 0] * xy_d[..., 0] + k[..., 2]
    v = k[..., 1] * xy_d[..., 1] + k[..., 3]
    return torch.stack([u, v], dim=-1)
