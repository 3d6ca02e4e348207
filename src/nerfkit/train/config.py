"""Run configuration: one dataclass per component, stored in the run directory as plain JSON."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError

FORMAT_VERSION = 1


@dataclass
class DataConfig:
    path: str = ""
    """Dataset folder (format auto-detected)."""
    format: str | None = None
    """Force a data format instead of detecting it."""
    downscale: float | None = None
    """Reduce images by this factor (area filter) when loading (None: the format's default, 1 for most;
    LLFF picks its smallest stored images_k folder)."""
    background: str = "white"
    """Background for evaluation and rendering of images with alpha: white or black."""
    depth_weight: float = 0.0
    """Weight of an L1 loss between rendered and ground-truth depth (datasets with depth maps only)."""
    train_background: str = "random"
    """Background composited behind RGBA training pixels: random (per ray), white or black."""
    image_memory: str = "auto"
    """Memory for decoded training images: 'auto' (25% of physical memory) or a size like 2GiB. Larger
    captures are streamed: a working set that fits is kept and rotated (see data/batching.py)."""


@dataclass
class RuntimeConfig:
    max_steps: int | None = None
    """Stop after this many optimiser steps."""
    max_time: float | None = None
    """Stop after this many seconds of training (evaluation and checkpoint time excluded)."""
    seed: int = 0
    device: str = "auto"
    """cpu, cuda, mps or auto (CUDA, then MPS, then CPU)."""
    threads: int | None = None
    """CPU threads for PyTorch (default: PyTorch's choice)."""


@dataclass
class LogConfig:
    eval_every: int = 1000
    """Steps between quick evaluations on one test view (0 disables)."""
    eval_every_s: float | None = None
    """Also evaluate whenever this many training seconds passed (for time-based curves)."""
    eval_times: list = field(default_factory=list)
    """Training times (s) at which the test split is evaluated (logged as test_psnr/test_ssim)."""
    eval_stride: int = 1
    """Use every k-th test image for the evaluations at ``eval_times``."""
    checkpoint_every: int = 2000
    """Steps between checkpoints (a final one is always written)."""
    checkpoint_every_s: float | None = 600.0
    """Also write a checkpoint when this many wall-clock seconds passed since the last one (or the start),
    so a kill never loses more than that much work however slow the steps are; None or 0 disables it."""
    keep_checkpoints: int = 2
    progress: bool = True


@dataclass
class GuardConfig:
    """What happens when a step's loss or gradient is NaN/Inf: the step is skipped and counted."""

    lr_backoff_after: int = 3
    """Lower the learning rate after this many skipped steps in a row (and again after as many more)."""
    lr_backoff: float = 0.5
    """Factor applied to the learning rate each time."""
    max_bad_steps: int = 20
    """Stop with an error after this many skipped steps in a row."""


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    method: str = "nerf"
    method_options: dict = field(default_factory=dict)
    """Overrides of the method's own options (see ``nerfkit train --help``)."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    log: LogConfig = field(default_factory=LogConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    output: str = ""
    """Run directory."""

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_json(cls, d: dict, where: str = "config") -> "TrainConfig":
        d = dict(d)
        version = d.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ConfigError(f"{where}: format_version {version!r} is not supported (this nerfkit reads "
                              f"{FORMAT_VERSION}); re-train or use the nerfkit version that wrote it")
        subs = {"data": DataConfig, "runtime": RuntimeConfig, "log": LogConfig, "guard": GuardConfig}
        kwargs = {}
        names = {f.name for f in dataclasses.fields(cls)}
        for key, value in d.items():
            if key not in names:
                raise ConfigError(f"{where}: unknown key '{key}'")
            if key in subs:
                kwargs[key] = _build(subs[key], value, f"{where}.{key}")
            else:
                kwargs[key] = value
        return cls(**kwargs)


def _build(klass, values: dict, where: str):
    names = {f.name for f in dataclasses.fields(klass)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(names)}")
    return klass(**values)


def save_config(cfg: TrainConfig, path: Path) -> None:
    """Write the config atomically (a kill leaves the old file or the new one, never half of one)."""
    from ..data.files import write_atomic

    write_atomic(Path(path), json.dumps(cfg.to_json(), indent=2) + "\n")


def load_config(path: Path) -> TrainConfig:
    from ..errors import RunError

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: not found; is this a nerfkit run directory? Pass the folder made by "
                       "`nerfkit train` (it holds config.json and checkpoints/)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        what = f"{e.msg} at line {e.lineno}" if isinstance(e, json.JSONDecodeError) else f"not UTF-8: {e.reason}"
        raise RunError(f"{path}: malformed JSON ({what}); restore or re-create the run") from None
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror or e}); check the path and its permissions") from None
    if not isinstance(d, dict):
        raise RunError(f"{path}: expected a JSON object at the top level; restore or re-create the run")
    try:
        return TrainConfig.from_json(d, str(path))
    except (TypeError, ValueError, AttributeError) as e:  # a section that is not an object, a wrong field type
        raise RunError(f"{path}: invalid run configuration ({e}); restore or re-create the run") from None


def parse_duration(text: str | float | None) -> float | None:
    """'90', '90s', '5m', '1.5h' -> seconds."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text))
    if not m:
        raise ConfigError(f"cannot read duration '{text}'; write e.g. 90s, 5m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
