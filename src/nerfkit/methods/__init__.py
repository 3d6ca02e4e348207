"""Methods registry: name -> Method subclass. Adding a method is one line here."""

from .base import Method, SceneBounds
from .nerf import NeRF

METHODS: dict[str, type[Method]] = {
    NeRF.name: NeRF,
}

__all__ = ["METHODS", "Method", "SceneBounds"]
