"""Unit quaternions for rotations: conversion to and from 3x3 matrices, and spherical interpolation.

Quaternions are stored scalar-first, ``(w, x, y, z)`` [..., 4], Hamilton convention (the one of
Eigen, scipy and instant-ngp; note that instant-ngp *files* store ``(x, y, z, w)``: reorder at
the reader). ``q`` and ``-q`` are the same rotation.
"""

from __future__ import annotations

import torch


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of quaternions ``q`` [..., 4] (w, x, y, z); ``q`` is normalised first."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [..., 4] (w, x, y, z) with w >= 0 of rotation matrices ``rot`` [..., 3, 3].

    Uses the largest of the four candidate denominators (|w|, |x|, |y|, |z|) for each matrix, so the
    result is accurate for every rotation, including half turns where w = 0.
    """
    m = rot.reshape(-1, 3, 3)
    m00, m11, m22 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    # 4 w^2, 4 x^2, 4 y^2, 4 z^2 from the diagonal
    sq = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = sq.argmax(-1)  # [B]
    r = 0.5 * sq.clamp_min(0).sqrt()  # the magnitudes |w|, |x|, |y|, |z|
    d21, d02, d10 = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]  # 4w(x, y, z)
    s01, s02, s12 = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]  # 4xy, 4xz, 4yz
    cand = torch.stack([
        torch.stack([r[:, 0], d21 / (4 * r[:, 0]), d02 / (4 * r[:, 0]), d10 / (4 * r[:, 0])], -1),
        torch.stack([d21 / (4 * r[:, 1]), r[:, 1], s01 / (4 * r[:, 1]), s02 / (4 * r[:, 1])], -1),
        torch.stack([d02 / (4 * r[:, 2]), s01 / (4 * r[:, 2]), r[:, 2], s12 / (4 * r[:, 2])], -1),
        torch.stack([d10 / (4 * r[:, 3]), s02 / (4 * r[:, 3]), s12 / (4 * r[:, 3]), r[:, 3]], -1),
    ], 1)  # [B, 4 candidates, 4]; the non-chosen ones may divide by zero and are discarded
    q = cand[torch.arange(len(m)), best]
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)
    return q.reshape(*rot.shape[:-2], 4)


def slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation between unit quaternions q0, q1 [..., 4] at fractions ``t`` [...].

    Takes the short way round (flips q1 when q0 . q1 < 0); ``t = 0`` gives q0, ``t = 1`` gives +-q1.
    Falls back to normalised linear interpolation when the two are nearly equal.
    """
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)  # angle between the two quaternions (half the rotation angle)
    sin = torch.sin(theta)
    near = sin < 1e-6
    safe = torch.where(near, torch.ones_like(sin), sin)
    a = torch.where(near, 1 - t, torch.sin((1 - t) * theta) / safe)
    b = torch.where(near, t, torch.sin(t * theta) / safe)
    q = a * q0 + b * q1
    return q / q.norm(dim=-1, keepdim=True)
