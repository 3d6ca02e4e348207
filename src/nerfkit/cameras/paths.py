"""Camera paths for rendering videos."""

from __future__ import annotations

import math

import torch


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """OpenCV camera-to-world [4, 4] at ``eye`` looking at ``target`` with world ``up`` roughly up.

    OpenCV's camera y axis points down, so it is aligned with -up; x = z cross up points right.
    """
    eye, target, up = (torch.as_tensor(v, dtype=torch.float32) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    if x.norm() < 1e-6:  # looking straight along up: pick any perpendicular x
        x = torch.linalg.cross(z, torch.tensor([1.0, 0.0, 0.0]))
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit(
    n_frames: int,
    radius: float,
    elevation_deg: float = 30.0,
    center=(0.0, 0.0, 0.0),
    up=(0.0, 0.0, 1.0),
) -> torch.Tensor:
    """Turntable around ``center``: [n_frames, 4, 4] OpenCV c2w, one full turn, camera at ``radius``.

    The orbit lies in the plane perpendicular to ``up`` raised by ``elevation_deg``.
    """
    up_t = torch.as_tensor(up, dtype=torch.float32)
    up_t = up_t / up_t.norm()
    center_t = torch.as_tensor(center, dtype=torch.float32)
    # an orthonormal basis (a, b) of the plane perpendicular to up
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up_t[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    a = torch.linalg.cross(up_t, helper)
    a = a / a.norm()
    b = torch.linalg.cross(up_t, a)
    el = math.radians(elevation_deg)
    poses = []
    for i in range(n_frames):
        th = 2.0 * math.pi * i / n_frames
        offset = radius * (math.cos(el) * (math.cos(th) * a + math.sin(th) * b) + math.sin(el) * up_t)
        poses.append(look_at(center_t + offset, center_t, up_t))
    return torch.stack(poses)
