"""Browser camera <-> nerfkit camera.

viser reports each client's camera as ``wxyz`` (unit quaternion, scalar first) and ``position``:
the rotation and translation of ``P_world = R p_camera + t`` with OpenCV camera axes (x right,
y down, z = look direction), plus the vertical field of view ``fov`` in radians and the canvas
size. That is nerfkit's convention already, so c2w = [R | t] with no axis flip; the viewer's
world frame is the scene frame (everything drawn in the viewer is in scene coordinates).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..cameras.quaternions import matrix_to_quaternion, quaternion_to_matrix
from ..render import Camera


def fit_resolution(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The canvas size ``width`` x ``height`` scaled down (never up) so its longer side is <= ``max_side``."""
    s = min(1.0, float(max_side) / max(width, height, 1))
    return max(1, int(round(width * s))), max(1, int(round(height * s)))


def camera_from_viser(wxyz, position, fov_y: float, width: int, height: int) -> Camera:
    """A pinhole :class:`Camera` of ``width`` x ``height`` pixels seeing what the browser sees.

    ``wxyz`` [4], ``position`` [3] in the scene frame; ``fov_y`` vertical field of view (radians).
    Square pixels, principal point at the image centre.
    """
    rot = quaternion_to_matrix(torch.as_tensor(np.asarray(wxyz, dtype=np.float64)).float())  # [3, 3]
    c2w = torch.eye(4)
    c2w[:3, :3] = rot
    c2w[:3, 3] = torch.as_tensor(np.asarray(position, dtype=np.float64)).float()
    f = 0.5 * height / math.tan(0.5 * float(fov_y))
    k = torch.tensor([f, f, 0.5 * width, 0.5 * height], dtype=torch.float32)
    return Camera(c2w, k, int(width), int(height))


def viser_pose_from_c2w(c2w: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV c2w [4, 4] (or [3, 4]) -> (wxyz [4], position [3]) as viser takes them."""
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    q = matrix_to_quaternion(c2w[:3, :3].double()).numpy()
    return q, c2w[:3, 3].double().numpy()


def fov_y_of(intrinsics: torch.Tensor, height: int) -> float:
    """Vertical field of view (radians) of a camera with intrinsics [4] (fx, fy, cx, cy)."""
    return 2.0 * math.atan(0.5 * float(height) / float(intrinsics[1]))


def scene_up(c2w: torch.Tensor) -> np.ndarray:
    """The scene's up direction [3]: the mean of the cameras' up axes (-y in OpenCV), snapped to a
    coordinate axis when within ~15 degrees of one (datasets are usually axis-aligned)."""
    up = (-c2w[:, :3, 1]).double().mean(0)
    up = up / up.norm().clamp_min(1e-12)
    i = int(up.abs().argmax())
    if abs(float(up[i])) > math.cos(math.radians(15.0)):
        snapped = torch.zeros(3, dtype=torch.float64)
        snapped[i] = math.copysign(1.0, float(up[i]))
        up = snapped
    return up.numpy()
