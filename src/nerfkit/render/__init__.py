"""Volume rendering, samplers and the occupancy grid."""

from .compositing import (accumulate_packed, composite_batched, composite_packed, weights_batched,
                          weights_packed)
from .image import Camera, render_image
from .occupancy import OccupancyGrid, march_visible, render_rays_in_rounds
from .samplers import intervals, sample_pdf, stratified

__all__ = ["weights_batched", "weights_packed", "composite_batched", "composite_packed", "accumulate_packed",
           "stratified", "intervals", "sample_pdf", "Camera", "render_image", "OccupancyGrid",
           "render_rays_in_rounds", "march_visible"]
