"""Align two sets of cameras with a similarity transform and measure how far apart they are.

Used to check posing (``nerfkit process``) against known cameras: the similarity is the
least-squares fit of Umeyama (1991) between camera centres, scale included, which is all a
reconstruction can recover of the world frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def umeyama(src: torch.Tensor, dst: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(s, R [3, 3], t [3]) minimising sum |dst_i - (s R src_i + t)|^2 over points src, dst [N, 3] (N >= 3)."""
    src, dst = src.double(), dst.double()
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = torch.linalg.svd(cov)
    e = torch.eye(3, dtype=torch.float64)
    if torch.linalg.det(u) * torch.linalg.det(vt) < 0:  # a reflection: flip the weakest axis
        e[2, 2] = -1
    r = u @ e @ vt
    var = (a ** 2).sum() / len(src)
    s = float((d * e.diagonal()).sum() / var)
    return s, r, mu_d - s * r @ mu_s


@dataclass
class PoseErrors:
    """Errors of aligned cameras: rotation in degrees, position as a fraction of the reference's size."""

    rotation_deg_mean: float
    rotation_deg_max: float
    position_mean: float
    position_max: float
    scene_size: float
    scale: float


def pose_errors(c2w: torch.Tensor, c2w_ref: torch.Tensor) -> PoseErrors:
    """Align cameras c2w [V, 4, 4] onto c2w_ref [V, 4, 4] (same views, both OpenCV axes) and measure.

    The reference's size is the largest distance of its camera centres from their mean.
    """
    s, r, t = umeyama(c2w[:, :3, 3], c2w_ref[:, :3, 3])
    centres = s * c2w[:, :3, 3].double() @ r.T + t
    ref = c2w_ref[:, :3, 3].double()
    size = float((ref - ref.mean(0)).norm(dim=-1).max())
    rel = r @ c2w[:, :3, :3].double()
    cos = ((rel * c2w_ref[:, :3, :3].double()).sum((-1, -2)) - 1) / 2  # trace(R_a^T R_b) = 1 + 2 cos(angle)
    ang = torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))
    pos = (centres - ref).norm(dim=-1) / size
    return PoseErrors(float(ang.mean()), float(ang.max()), float(pos.mean()), float(pos.max()), size, s)
