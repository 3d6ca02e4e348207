"""Methods registry: name -> Method subclass. Adding a method is one line here."""

from .base import Method, SceneBounds
from .nerf import NeRF
from .ngp import NGP

METHODS: dict[str, type[Method]] = {
    NeRF.name: NeRF,
    NGP.name: NGP,
}

__all__ = ["METHODS", "Method", "SceneBounds"]
