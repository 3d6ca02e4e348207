"""Axis conventions. The one place where axes are flipped.

Inside nerfkit, cameras use OpenCV axes: x right, y down, z forward (the camera looks along +z).
Poses are camera-to-world matrices ``c2w`` of shape [..., 4, 4] (or [..., 3, 4]).

Blender, instant-ngp and nerfstudio files store OpenGL camera axes: x right, y up, z backward
(the camera looks along -z). The two differ by a rotation of 180 degrees about the camera's
x axis, i.e. negating the camera's y and z columns of ``c2w``. The flip is its own inverse.

LLFF's ``poses_bounds.npy`` stores camera columns [down, right, backwards]
(:func:`llff_to_opencv` / :func:`opencv_to_llff`).
"""

from __future__ import annotations

import torch

from ..errors import PoseError

# diag(1, -1, -1): flips camera y (up <-> down) and z (backward <-> forward).
_FLIP_YZ = (1.0, -1.0, -1.0)


def opengl_to_opencv(c2w: torch.Tensor) -> torch.Tensor:
    """Convert camera-to-world poses from OpenGL camera axes to OpenCV camera axes.

    ``c2w``: [..., 3 or 4, 4]. Only the rotation columns change; the camera centre stays.
    """
    flip = torch.tensor(_FLIP_YZ, dtype=c2w.dtype, device=c2w.device)
    out = c2w.clone()
    out[..., :3, :3] = c2w[..., :3, :3] * flip  # scale columns 1 and 2 (camera y and z axes) by -1
    return out


def opencv_to_opengl(c2w: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`opengl_to_opencv` (the same flip: it is an involution)."""
    return opengl_to_opencv(c2w)


def to_homogeneous(c2w: torch.Tensor) -> torch.Tensor:
    """Pad [..., 3, 4] poses to [..., 4, 4]; [..., 4, 4] poses pass through."""
    if c2w.shape[-2:] == (4, 4):
        return c2w
    if c2w.shape[-2:] != (3, 4):
        raise PoseError(f"pose has shape {tuple(c2w.shape)}, expected [...,3,4] or [...,4,4]")
    bottom = torch.zeros(*c2w.shape[:-2], 1, 4, dtype=c2w.dtype, device=c2w.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([c2w, bottom], dim=-2)


def check_rigid(c2w: torch.Tensor, where: str, tol: float = 1e-3) -> torch.Tensor:
    """Validate poses: finite, rotation orthonormal with determinant +1. Returns them as float32.

    ``where`` names the file in the error message. A pose whose rotation contains a uniform
    scale is rejected too: it would silently change ray lengths.
    """
    c2w = to_homogeneous(torch.as_tensor(c2w, dtype=torch.float64))
    bad = ~torch.isfinite(c2w).flatten(-2).all(-1)
    if bad.any():
        i = int(bad.nonzero()[0, 0]) if c2w.dim() > 2 else 0
        raise PoseError(f"{where}: pose #{i} contains NaN or infinity; fix or remove that frame")
    rot = c2w[..., :3, :3]
    eye = torch.eye(3, dtype=rot.dtype)
    err = (rot.transpose(-1, -2) @ rot - eye).abs().flatten(-2).amax(-1)
    det = torch.linalg.det(rot)
    nonrigid = (err > tol) | (det < 0)
    if nonrigid.any():
        i = int(nonrigid.nonzero()[0, 0]) if c2w.dim() > 2 else 0
        e = float(err.flatten()[i]) if err.dim() else float(err)
        raise PoseError(
            f"{where}: pose #{i} is not a rigid transform (rotation deviates from orthonormal by {e:.3g}, "
            f"det {float(det.flatten()[i]):.3g}); the rotation must be orthonormal with determinant +1 "
            "(re-export the poses without scale or shear)"
        )
    return c2w.float()


def llff_to_opencv(mat: torch.Tensor) -> torch.Tensor:
    """LLFF [down, right, backwards] camera columns -> OpenCV [right, down, forward].

    ``mat``: [..., 3, 4|5] (the 5th hwf column, if any, is dropped). Returns [..., 3, 4]:
    columns (c1, c0, -c2, t).
    """
    c0, c1, c2, t = mat[..., :, 0], mat[..., :, 1], mat[..., :, 2], mat[..., :, 3]
    return torch.stack([c1, c0, -c2, t], dim=-1)


def opencv_to_llff(c2w: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`llff_to_opencv`: [..., 3|4, 4] OpenCV c2w -> [..., 3, 4] LLFF matrix."""
    x, y, z, t = c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3]
    return torch.stack([y, x, -z, t], dim=-1)  # down = y, right = x, backwards = -z
