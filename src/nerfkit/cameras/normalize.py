"""Scene normalisation: a similarity transform from a capture's own frame into nerfkit's scene frame.

Convention (documented in the README): with sparse points, the robust box of the points (2nd to 98th
percentile per axis) is centred at the origin and scaled so its largest half-extent is 1, so the
content sits in [-1, 1]^3 and the method box is [-1.5, 1.5]^3. Without points, the centre is the
point closest to all cameras' optical axes (least squares) and the cameras' mean distance to it
becomes 4, as in the Blender scenes. No rotation is applied: the file's up axis is kept.
"""

from __future__ import annotations

import torch


def axes_focus(c2w: torch.Tensor) -> torch.Tensor:
    """The point [3] closest (least squares) to the optical axes of cameras c2w [V, 4, 4] (OpenCV).

    Falls back to the mean camera centre when the axes are near parallel (forward-facing captures)
    or the point lies behind most cameras (outward-looking captures).
    """
    c = c2w[:, :3, 3].double()
    z = torch.nn.functional.normalize(c2w[:, :3, 2].double(), dim=-1)
    proj = torch.eye(3, dtype=torch.float64) - z[:, :, None] * z[:, None, :]  # [V, 3, 3] removes the axis part
    a = proj.sum(0)
    b = (proj @ c[:, :, None]).sum(0).squeeze(-1)
    eig = torch.linalg.eigvalsh(a)
    if len(c) < 2 or eig[0] < 1e-3 * eig[-1]:
        return c.mean(0).float()
    p = torch.linalg.solve(a, b)
    if ((p - c) * z).sum(-1).gt(0).double().mean() < 0.5:
        return c.mean(0).float()
    return p.float()


def similarity(center: torch.Tensor, scale: float) -> torch.Tensor:
    """4x4 transform p -> scale * (p - center)."""
    t = torch.eye(4)
    t[:3, :3] *= scale
    t[:3, 3] = -scale * center
    return t


def apply_to_poses(transform: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """Apply a similarity ``transform`` [4, 4] to camera-to-world poses [V, 4, 4]: rotations stay
    orthonormal (the uniform scale moves only the camera centres)."""
    scale = float(torch.linalg.det(transform[:3, :3]).abs() ** (1.0 / 3.0))
    out = transform @ c2w
    out[:, :3, :3] /= scale
    return out


def normalize_scene(c2w: torch.Tensor, points: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(normalised c2w [V, 4, 4], world_transform [4, 4], scale) under the convention above."""
    if points is not None and points.shape[0] >= 8:
        p = points.double()
        lo = torch.quantile(p, 0.02, dim=0)
        hi = torch.quantile(p, 0.98, dim=0)
        center = ((lo + hi) / 2).float()
        scale = 1.0 / float(((hi - lo) / 2).max().clamp_min(1e-9))
    else:
        center = axes_focus(c2w)
        dist = (c2w[:, :3, 3] - center).norm(dim=-1).mean()
        scale = 4.0 / float(dist.clamp_min(1e-9))
    t = similarity(center, scale)
    return apply_to_poses(t, c2w.float()), t, scale
