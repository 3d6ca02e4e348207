"""Ray generation and ray-box intersection.

Camera axes are OpenCV (x right, y down, z forward); pixel centres are at +0.5.
"""

from __future__ import annotations

import torch


def pixel_grid(width: int, height: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer pixel coordinates of a full image in row-major order: (x [H*W], y [H*W])."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    return xs.reshape(-1), ys.reshape(-1)


def camera_directions(x: torch.Tensor, y: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """Directions in camera space (z = 1) through pixel centres.

    ``x, y``: [N] integer (or float) pixel indices; ``intrinsics``: [4] or [N, 4] (fx, fy, cx, cy).
    Returns [N, 3], not normalised (the z component is 1, so depth along z equals the ray parameter).
    """
    k = intrinsics.to(torch.float32)
    fx, fy, cx, cy = k[..., 0], k[..., 1], k[..., 2], k[..., 3]
    u = (x.to(torch.float32) + 0.5 - cx) / fx
    v = (y.to(torch.float32) + 0.5 - cy) / fy
    return torch.stack([u, v, torch.ones_like(u)], dim=-1)


def generate_rays(
    c2w: torch.Tensor, intrinsics: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
    distortion: torch.Tensor | None = None, camera_model: str = "pinhole",
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space rays through pixels (x, y).

    ``c2w``: [4, 4] / [3, 4] or per-ray [N, 3|4, 4] (OpenCV axes); ``intrinsics``: [4] or [N, 4];
    ``x, y``: [N]. With a lens ``camera_model`` other than "pinhole" and its ``distortion``
    coefficients ([P] or [N, P]), the pixel is undistorted first, so the ray is the true one; pixels
    the model cannot undistort get NaN directions. Returns origins [N, 3] and unit directions [N, 3].
    """
    if camera_model != "pinhole" and distortion is not None and distortion.numel() > 0:
        from .distortion import distorted_camera_directions

        d_cam = distorted_camera_directions(x, y, intrinsics.to(torch.float32), distortion.to(torch.float32),
                                            camera_model)
    else:
        d_cam = camera_directions(x, y, intrinsics)  # [N, 3]
    rot = c2w[..., :3, :3].to(torch.float32)
    d_world = (rot @ d_cam.unsqueeze(-1)).squeeze(-1) if rot.dim() == 3 else d_cam @ rot.T
    d_world = d_world / d_world.norm(dim=-1, keepdim=True)
    origins = c2w[..., :3, 3].to(torch.float32).expand_as(d_world)
    return origins.contiguous(), d_world


def ray_aabb(
    origins: torch.Tensor, directions: torch.Tensor, aabb: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab intersection of rays with an axis-aligned box.

    ``origins, directions``: [N, 3]; ``aabb``: [2, 3] (min corner, max corner).
    Returns t_near [N], t_far [N] (t_near clamped to >= 0, so an origin inside the box enters at 0)
    and hit [N] (bool): whether the ray meets the box in front of its origin. Zero direction
    components are handled (the slab is then either always or never satisfied).
    """
    inv = 1.0 / directions  # +-inf for zero components
    t0 = (aabb[0] - origins) * inv
    t1 = (aabb[1] - origins) * inv
    # 0 * inf = nan when the origin lies exactly on a slab plane; such slabs do not constrain t
    tmin = torch.minimum(t0, t1).nan_to_num(nan=-float("inf"))
    tmax = torch.maximum(t0, t1).nan_to_num(nan=float("inf"))
    t_near = tmin.amax(dim=-1).clamp_min(0.0)
    t_far = tmax.amin(dim=-1)
    hit = t_far > t_near
    return t_near, t_far, hit
