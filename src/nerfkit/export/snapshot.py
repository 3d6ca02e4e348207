"""Snapshots: one self-describing file holding a trained scene, and one loader for runs and snapshots.

File layout (``.nerfkit`` by convention; a safetensors file, so loading never executes code):

- tensors ``model/<name>``: the method's whole ``state_dict`` (weights and buffers; for Instant-NGP
  this includes the occupancy grid's density, bitfield and counters);
- tensors ``scene/<name>``: ``intrinsics`` [V, 4], ``sizes`` [V, 2], ``c2w`` [V, 4, 4], ``aabb`` [2, 3],
  ``world_transform`` [4, 4] and, when the dataset has one, ``distortion`` [V, P];
- metadata (safetensors' string -> string header): ``format`` = ``nerfkit-snapshot``,
  ``format_version``, and ``header``: plain JSON with the method name, the resolved run config,
  step, training time, and the scene's non-tensor part (root folder, image/depth/mask file names
  relative to it, splits, near/far, scale, downscale, camera model).

The file is written to a temporary name and renamed. A file whose ``format_version`` is older than
this nerfkit's is passed through ``MIGRATIONS`` (version -> function upgrading the header and
tensors by one version); newer or unknown versions fail with a :class:`RunError`.
"""

from __future__ import annotations

import datetime
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..data.files import write_atomic
from ..data.scene import SceneData
from ..errors import RunError
from ..methods import Method
from ..train.config import TrainConfig

MAGIC = "nerfkit-snapshot"
FORMAT_VERSION = 1
SUFFIX = ".nerfkit"

# version v -> function(header, tensors) -> (header, tensors) in version v + 1. Empty while only
# version 1 exists; the loader applies the chain, so adding version 2 is one function here.
MIGRATIONS: dict[int, Callable[[dict, dict], tuple[dict, dict]]] = {}

_MAX_HEADER = 100 << 20  # a safetensors header larger than this is not one of ours


@dataclass
class Trained:
    """A trained scene ready to render: config, cameras of its dataset, model on its device.

    ``scene`` carries the dataset's cameras, splits, box and normalisation. For a snapshot its
    image files may not exist on this machine: rendering and export never read them.
    """

    cfg: TrainConfig
    scene: SceneData
    model: Method
    step: int
    train_time: float
    source: Path


def load_trained(path: str | Path, device: str = "auto", data: str | Path | None = None) -> Trained:
    """A run directory or a snapshot file -> :class:`Trained` (newest checkpoint of a run).

    ``data``: where the dataset lives now, when it moved since training. For a run directory the
    scene is read from there (same format and downscale as the run); for a snapshot the stored
    cameras are kept and only the image (depth, mask) files are looked up under ``data``.
    """
    from ..train.trainer import build_model, load_run, select_device

    path = Path(path)
    if path.is_dir():
        if data is None:
            cfg, scene, model, ck = load_run(path, device)
        else:
            from ..data import read_scene
            from ..train.checkpoint import load_checkpoint
            from ..train.config import load_config

            cfg = load_config(path / "config.json")
            ck = load_checkpoint(path, device="cpu")
            scene = read_scene(str(data), format=cfg.data.format, downscale=cfg.data.downscale)
            model = build_model(cfg, scene)
            model.load_state_dict(ck["model"])
            model = model.to(select_device(device))
        return Trained(cfg, scene, model, int(ck["step"]), float(ck["train_time"]), path)
    if path.is_file():
        header, tensors = read_snapshot(path)
        cfg = TrainConfig.from_json(header["config"], f"{path} (config)")
        scene = _scene_from(header["scene"], tensors, Path(data) if data is not None else None)
        model = build_model(cfg, scene)
        state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise RunError(f"{path}: the stored weights do not fit method '{cfg.method}' ({e}); "
                           "re-export the snapshot with this nerfkit version") from None
        model = model.to(select_device(device))
        return Trained(cfg, scene, model, int(header["step"]), float(header["train_time"]), path)
    raise RunError(f"{path}: neither a run directory nor a snapshot file; pass a folder made by "
                   "'nerfkit train' or a file made by 'nerfkit export snapshot'")


# --- writing ---------------------------------------------------------------------------------------

def save_snapshot(run_dir: str | Path, output: str | Path, overwrite: bool = False) -> Path:
    """Write the newest checkpoint of ``run_dir`` (or a snapshot, re-written) as one snapshot file.

    Returns the path written. Refuses to replace an existing ``output`` unless ``overwrite``.
    """
    output = Path(output)
    if output.is_dir():
        raise RunError(f"{output}: is a folder; give a file name for the snapshot, e.g. {output / ('scene' + SUFFIX)}")
    if output.exists() and not overwrite:
        raise RunError(f"{output}: already exists; pass --overwrite to replace it or choose another name")
    trained = load_trained(run_dir, device="cpu")
    data = snapshot_bytes(trained)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomic(output, data)
    except OSError as e:
        raise RunError(f"{output}: cannot write the snapshot ({e.strerror or e}); choose a writable location") from e
    return output


def snapshot_bytes(trained: Trained) -> bytes:
    """The snapshot file's content for a loaded run."""
    from safetensors.torch import save

    scene = trained.scene
    tensors = {f"model/{k}": v for k, v in trained.model.state_dict().items()}
    tensors.update({
        "scene/intrinsics": scene.intrinsics.float(), "scene/sizes": scene.sizes.long(),
        "scene/c2w": scene.c2w.float(), "scene/aabb": scene.aabb.float(),
        "scene/world_transform": torch.as_tensor(scene.world_transform).float(),
    })
    if scene.distortion is not None:
        tensors["scene/distortion"] = scene.distortion.float()
    # safetensors refuses views sharing memory: one contiguous CPU copy each
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    header = {
        "method": trained.cfg.method,
        "config": trained.cfg.to_json(),
        "step": int(trained.step),
        "train_time": float(trained.train_time),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nerfkit_version": _version(),
        "source": str(Path(trained.source).resolve()),
        "scene": _scene_header(scene),
    }
    meta = {"format": MAGIC, "format_version": str(FORMAT_VERSION), "header": json.dumps(header)}
    return save(tensors, metadata=meta)


def _scene_header(scene: SceneData) -> dict:
    root = os.path.abspath(scene.root)

    def rel(p):
        return None if p is None else Path(os.path.relpath(os.path.abspath(p), root)).as_posix()

    return {
        "root": root, "format": scene.format,
        "images": [rel(p) for p in scene.image_paths],
        "depths": None if scene.depth_paths is None else [rel(p) for p in scene.depth_paths],
        "masks": None if scene.mask_paths is None else [rel(p) for p in scene.mask_paths],
        "splits": {k: [int(i) for i in v] for k, v in scene.splits.items()},
        "near": float(scene.near), "far": float(scene.far), "scale": float(scene.scale),
        "downscale": float(scene.downscale), "has_alpha": bool(scene.has_alpha),
        "camera_model": scene.camera_model,
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("nerfkit")
    except Exception:
        return "unknown"


# --- reading ---------------------------------------------------------------------------------------

def read_snapshot(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(header, tensors on the CPU) of a snapshot file, migrated to the current format version.

    Raises :class:`RunError` for a file from another tool, a truncated file or an unsupported version.
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path)
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise RunError(f"{path}: format_version {meta.get('format_version')!r} is not a number; the file is "
                       "damaged: re-export it with 'nerfkit export snapshot'") from None
    if version > FORMAT_VERSION or (version < FORMAT_VERSION and not _migratable(version)):
        newer = "newer" if version > FORMAT_VERSION else "older"
        raise RunError(f"{path}: snapshot format_version {version} is {newer} than this nerfkit reads "
                       f"(version {FORMAT_VERSION}{_migration_note()}); "
                       + ("upgrade nerfkit to read it" if version > FORMAT_VERSION else
                          "re-export it from its run directory, or load it with the nerfkit version that wrote it"))
    try:
        header = json.loads(meta["header"])
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (KeyError, ValueError) as e:
        raise RunError(f"{path}: snapshot header is missing or not JSON ({e}); re-export the snapshot") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error type for damaged files
        raise RunError(f"{path}: cannot read the snapshot's tensors ({e}); the file is damaged: "
                       "copy it again or re-export it") from None
    for v in range(version, FORMAT_VERSION):
        header, tensors = MIGRATIONS[v](header, tensors)
    missing = [k for k in ("config", "scene", "step", "train_time") if k not in header]
    if missing:
        raise RunError(f"{path}: snapshot header lacks {missing}; re-export the snapshot")
    return header, tensors


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors metadata of ``path``, after checking that it is a complete nerfkit snapshot."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            raw = f.read(n) if n is not None and 0 < n <= min(_MAX_HEADER, size - 8) else None
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror or e}); check the path and permissions") from e
    what = _looks_like(head)
    if raw is None:
        if size < 8 or (what is None and n is not None and n > size - 8 and n <= _MAX_HEADER):
            raise RunError(f"{path}: not a complete nerfkit snapshot (file of {size} bytes ends inside its "
                           "header): it is truncated; copy it again or re-export it with 'nerfkit export snapshot'")
        raise RunError(f"{path}: not a nerfkit snapshot ({what or 'unknown file type'}); pass a file made by "
                       "'nerfkit export snapshot' or a run directory")
    try:
        table = json.loads(raw)
        meta = table.get("__metadata__") or {}
        ends = [int(v["data_offsets"][1]) for k, v in table.items() if k != "__metadata__"]
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):
        raise RunError(f"{path}: not a nerfkit snapshot ({what or 'no safetensors header'}); pass a file made by "
                       "'nerfkit export snapshot' or a run directory") from None
    if meta.get("format") != MAGIC:
        raise RunError(f"{path}: a safetensors file, but not a nerfkit snapshot (no format={MAGIC} in its "
                       "metadata); pass a file made by 'nerfkit export snapshot' or a run directory")
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise RunError(f"{path}: truncated nerfkit snapshot ({size} of {need} bytes); copy it again or "
                       "re-export it with 'nerfkit export snapshot'")
    return meta


def _looks_like(head: bytes) -> str | None:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, e.g. a PyTorch .pt checkpoint"
    if head.startswith(b"\x89PNG"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head[:1] in (b"{", b"["):
        return "a JSON file"
    if head.startswith(b"\x80"):
        return "a Python pickle"
    return None


def _migratable(version: int) -> bool:
    return all(v in MIGRATIONS for v in range(version, FORMAT_VERSION))


def _migration_note() -> str:
    return f", and migrates {sorted(MIGRATIONS)}" if MIGRATIONS else ""


def _scene_from(h: dict, tensors: dict[str, torch.Tensor], data: Path | None) -> SceneData:
    """SceneData from a snapshot's scene header; file names resolve under ``data`` if given, else the stored root."""
    root = Path(data).resolve() if data is not None else Path(h["root"])

    def where(names):
        return None if names is None else [None if r is None else root / r for r in names]

    return SceneData(
        root=root, format=h["format"], image_paths=where(h["images"]),
        intrinsics=tensors["scene/intrinsics"], sizes=tensors["scene/sizes"], c2w=tensors["scene/c2w"],
        splits={k: list(v) for k, v in h["splits"].items()}, aabb=tensors["scene/aabb"],
        near=float(h["near"]), far=float(h["far"]), world_transform=tensors["scene/world_transform"],
        scale=float(h["scale"]), downscale=float(h["downscale"]), depth_paths=where(h.get("depths")),
        has_alpha=bool(h["has_alpha"]), camera_model=h["camera_model"],
        distortion=tensors.get("scene/distortion"), mask_paths=where(h.get("masks")),
    )


def snapshot_info(path: str | Path) -> dict:
    """Header of a snapshot (method, step, config, scene) without loading its tensors."""
    meta = read_metadata(Path(path))
    return {"format_version": meta.get("format_version"), **json.loads(meta.get("header", "{}"))}

