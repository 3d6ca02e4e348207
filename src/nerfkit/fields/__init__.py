"""Fields: map points (and view directions) to density and colour. No sampling, no losses."""

from .nerf_mlp import NeRFField
from .ngp import NGPField

__all__ = ["NeRFField", "NGPField"]
