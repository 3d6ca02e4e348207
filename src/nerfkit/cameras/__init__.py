"""Cameras: intrinsics, axis conventions, rays, paths. OpenCV axes inside (x right, y down, z forward)."""

from .conventions import check_rigid, llff_to_opencv, opencv_to_llff, opencv_to_opengl, opengl_to_opencv, to_homogeneous
from .distortion import MODELS as DISTORTION_MODELS
from .distortion import distort, distorted_camera_directions, project, undistort
from .intrinsics import Intrinsics, focal_from_fov, fov_from_focal
from .paths import look_at, orbit
from .rays import camera_directions, generate_rays, pixel_grid, ray_aabb

__all__ = [
    "Intrinsics", "focal_from_fov", "fov_from_focal", "opengl_to_opencv", "opencv_to_opengl", "llff_to_opencv",
    "opencv_to_llff",
    "to_homogeneous", "check_rigid", "camera_directions", "generate_rays", "pixel_grid", "ray_aabb",
    "look_at", "orbit", "distort", "undistort", "distorted_camera_directions", "project", "DISTORTION_MODELS",
]
