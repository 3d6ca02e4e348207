"""The web viewer: a viser server that renders the model from the browser's camera.

Layer 6: nothing in nerfkit imports this package. Modules:
``view_camera`` (viser camera <-> nerfkit Camera), ``frames`` (outputs -> pictures, crop box),
``render_loop`` (progressive rendering per client, time share while training),
``training_link`` (trainer callback: status, pause, weight mirror), ``server`` (the viser app).
"""

from .frames import OUTPUTS, colorize, crop_fields
from .render_loop import RenderLoop, TimeShare
from .view_camera import camera_from_viser, fit_resolution, viser_pose_from_c2w

__all__ = ["OUTPUTS", "colorize", "crop_fields", "RenderLoop", "TimeShare", "camera_from_viser",
           "fit_resolution", "viser_pose_from_c2w"]
