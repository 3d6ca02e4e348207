"""The method interface: fields + sampler + renderer + losses + optimiser groups + defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class SceneBounds:
    """What a method needs to know about the scene: the box and the near/far ray bounds."""

    aabb: torch.Tensor  # [2, 3]
    near: float
    far: float
    unbounded: bool = False
    """the photos have a background beyond the box (real captures; not images with alpha)"""
    camera_extent: float = 0.0
    """largest distance of a camera centre from the box centre"""


class Method(nn.Module):
    """Base class. Subclasses set ``name`` and ``Config`` (a dataclass of their options).

    ``render_rays(origins [N,3], dirs [N,3], background [N,3] | None) -> dict`` returns at least
    rgb [N,3], depth [N] (expected distance along the unit ray) and opacity [N]. ``loss`` turns
    those and the target colours into a dict with the total under "loss".
    """

    name = "base"

    @dataclass
    class Config:
        pass

    def __init__(self, config, bounds: SceneBounds) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("aabb", bounds.aabb.clone().float())
        self.near, self.far = float(bounds.near), float(bounds.far)

    # --- hooks the trainer calls -------------------------------------------------------------
    def render_rays(self, origins, dirs, background=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, outputs: dict, target: torch.Tensor) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def make_optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        raise NotImplementedError  # pragma: no cover

    def batch_rays(self) -> int:
        """Rays per training step."""
        return int(self.config.batch_rays)

    def warmup(self) -> None:
        """Build or compile kernels before training starts (not counted as training time)."""

    def before_step(self, step: int) -> None:
        """Called before each training step (e.g. occupancy-grid updates)."""

    def after_step(self, step: int, outputs: dict) -> None:
        """Called after each optimiser step (e.g. to adapt the batch size)."""

    def update_schedule(self, optimizer, progress: float) -> None:
        """Called before each step with the fraction of the budget used (0 -> 1), for budget-aware schedules."""

    # --- field queries (mesh and point-cloud export) ------------------------------------------
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density [P] of the scene at world points [P, 3] (the field ``render_rays`` uses).

        The default asks ``self.field``; methods with another layout override it.
        """
        field = getattr(self, "field", None)
        if field is None:  # pragma: no cover - every registered method has a field or overrides this
            raise NotImplementedError(f"method '{self.name}' does not expose its density")
        return field.density(points)

    def query_color(self, points: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """Colour [P, 3] emitted at world points [P, 3] towards unit view directions ``dirs`` [P, 3]."""
        field = getattr(self, "field", None)
        if field is None:  # pragma: no cover
            raise NotImplementedError(f"method '{self.name}' does not expose its colour")
        return field(points, dirs)[1]

    def state_for_log(self) -> dict:
        """Extra numbers for the metrics log."""
        return {}

    @classmethod
    def device_defaults(cls, device: torch.device) -> dict:
        """Option values that suit ``device`` better than the paper's; user options override them.

        The trainer writes them into the run's config, so a run reloads identically anywhere.
        """
        return {}

    @classmethod
    def make_config(cls, overrides: dict | None = None):
        """The method's config with ``overrides`` applied; unknown keys are errors."""
        cfg = cls.Config()
        names = {f.name for f in dataclasses.fields(cfg)}
        for key, value in (overrides or {}).items():
            if key not in names:
                raise ConfigError(f"method '{cls.name}' has no option '{key}'; options: {', '.join(sorted(names))}")
            setattr(cfg, key, _coerce(getattr(cfg, key), value, f"method '{cls.name}' option '{key}'"))
        return cfg


def _coerce(default, value, where: str):
    """``value`` converted to the type of ``default`` (bools accept true/false/1/0 strings)."""
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    try:
        out = type(default)(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a {type(default).__name__}, got {value!r}") from None
    if isinstance(default, int) and isinstance(value, float) and out != value:
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return out
