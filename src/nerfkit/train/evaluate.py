"""Evaluation of a trained run or snapshot on a split: metrics.json, comparison pictures and a report."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.files import write_atomic
from ..data.images import background_color, composite, load_image, save_png
from ..data.scene import SceneData
from ..errors import RunError
from ..render import render_image
from .metrics import LPIPS, psnr, ssim
from .pictures import comparison_strip
from .trainer import scene_camera

REPORT_FILES = ("metrics.json", "report.md", "report.html")


def evaluate_views(model, scene: SceneData, views: list[int], background: torch.Tensor,
                   pictures: Path | None = None, lpips: LPIPS | None = None, progress: bool = False) -> list[dict]:
    """Render ``views`` of ``scene`` and compare with their images: a list of per-image metrics.

    Each entry holds name, view index, image file, size [W, H], psnr, ssim and lpips (None when
    unavailable). With ``pictures`` a folder, writes ``<name>.png`` (ground truth | render | error |
    depth) per view; the entry's ``picture`` is that file name.
    """
    device = next(iter(model.buffers())).device
    per_image, used = [], set()
    for v in tqdm(views, desc="eval", unit="img", disable=not progress, leave=False):
        out = render_image(model, scene_camera(scene, v), background=background.to(device))
        gt = composite(torch.from_numpy(load_image(scene.image_paths[v], scene.downscale)), background)
        pred = out["rgb"].clamp(0, 1).cpu()
        name = scene.image_paths[v].stem
        if name in used:  # two splits' folders may hold equal names
            name = f"{name}_{v}"
        used.add(name)
        w, h = (int(x) for x in scene.sizes[v])
        rec = {"name": name, "view": int(v), "file": scene.image_paths[v].name, "size": [w, h],
               "psnr": psnr(pred, gt), "ssim": ssim(pred, gt), "lpips": lpips(pred, gt) if lpips is not None else None}
        if pictures is not None:
            save_png(Path(pictures) / f"{name}.png",
                     comparison_strip(gt, pred, out["depth"].cpu(), out["opacity"].cpu()))
            rec["picture"] = f"{name}.png"
        per_image.append(rec)
    return per_image


def evaluate(run_dir: str | Path, split: str = "test", device: str = "auto", progress: bool = True,
             output: str | Path | None = None, max_images: int | None = None, every: int = 1,
             data: str | Path | None = None, overwrite: bool = False, report: bool = True) -> dict:
    """Render every ``every``-th image of ``split``, compare with the ground truth, write the results.

    ``run_dir``: a run directory or a snapshot file. ``data``: the dataset to compare against when it
    is no longer where training read it (required for a snapshot whose dataset is not on this machine).
    Writes to ``output`` (default ``RUN/eval`` or ``<snapshot stem>_eval`` beside the snapshot; ``_<split>``
    appended for splits other than test): ``metrics.json`` (per image, mean, std), a picture per image
    (ground truth | render | error map | depth) and, with ``report``, ``report.md`` and ``report.html``.
    Refuses to replace an earlier evaluation there unless ``overwrite``. Returns the metrics with
    ``output`` added.
    """
    from ..export.snapshot import load_trained

    source = Path(run_dir)
    out_dir = Path(output) if output else _default_output(source, split)
    _check_data_present(source, data)
    t = load_trained(source, device, data=data)
    cfg, scene = t.cfg, t.scene
    views = scene.split(split)[::max(1, int(every))][:max_images]
    if not views:
        raise RunError(f"{source}: no images to evaluate in split '{split}' with every={every}, "
                       f"max_images={max_images}")
    missing = [scene.image_paths[v] for v in views if not Path(scene.image_paths[v]).is_file()]
    if missing:
        hint = ("pass --data DATASET, the folder that holds it now" if data is None
                else f"check that {data} is the dataset this model was trained on")
        raise RunError(f"{source}: ground-truth image {missing[0]} not found ({len(missing)} of {len(views)} "
                       f"missing); {hint}")
    _check_output(out_dir, overwrite)
    bg = background_color(cfg.data.background, ())
    lp = LPIPS()
    per_image = evaluate_views(t.model, scene, views, bg, pictures=out_dir, lpips=lp, progress=progress)
    w, h = per_image[0]["size"]
    metrics = {
        "psnr": _mean(per_image, "psnr"), "ssim": _mean(per_image, "ssim"), "lpips": _mean(per_image, "lpips"),
        "psnr_std": _std(per_image, "psnr"), "ssim_std": _std(per_image, "ssim"), "lpips_std": _std(per_image, "lpips"),
        "lpips_note": None if lp.available else f"LPIPS unavailable: {lp.reason}",
        "n_images": len(per_image), "n_split": len(scene.split(split)), "split": split, "every": max(1, int(every)),
        "resolution": [w, h], "background": cfg.data.background, "downscale": scene.downscale,
        "method": cfg.method, "step": t.step, "train_time_s": round(t.train_time, 2),
        "source": str(source), "source_kind": "run" if source.is_dir() else "snapshot",
        "data": str(scene.root), "trained_on": cfg.data.path,
        "per_image": per_image,
    }
    _write_json(out_dir / "metrics.json", metrics)
    if report:
        from .report import write_reports

        write_reports(metrics, out_dir)
    metrics["output"] = str(out_dir)
    return metrics


def _default_output(source: Path, split: str) -> Path:
    tail = "" if split == "test" else f"_{split}"
    if source.is_file():
        return source.with_name(f"{source.stem}_eval{tail}")
    return source / f"eval{tail}"


def _check_output(out_dir: Path, overwrite: bool) -> None:
    """Fail before any rendering when ``out_dir`` holds an earlier evaluation or cannot be written."""
    if not overwrite:
        old = [n for n in REPORT_FILES if (out_dir / n).exists()]
        if old:
            raise RunError(f"{out_dir}: already holds an evaluation ({', '.join(old)}); pass --overwrite to "
                           "replace it or choose another --output")
    probe = out_dir / ".nerfkit-write-test"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RunError(f"{out_dir}: cannot write the evaluation there ({e.strerror or e}); "
                       "choose a writable --output") from None


def _check_data_present(source: Path, data: str | Path | None) -> None:
    """A run whose dataset moved: say so (and how to fix it) before trying to read it."""
    if data is not None:
        if not Path(data).exists():
            raise RunError(f"{data}: dataset not found; give --data the folder of the dataset the model was trained on")
        return
    if source.is_dir() and (source / "config.json").is_file():
        from .config import load_config

        path = load_config(source / "config.json").data.path
        if path and not Path(path).exists():
            raise RunError(f"{source}: its dataset {path} is not on this machine; pass --data DATASET, "
                           "the folder that holds it now")


def _finite(per_image: list[dict], key: str) -> list[float]:
    return [r[key] for r in per_image if r.get(key) is not None and math.isfinite(r[key])]


def _mean(per_image: list[dict], key: str) -> float | None:
    vals = _finite(per_image, key)
    return statistics.fmean(vals) if vals else None


def _std(per_image: list[dict], key: str) -> float | None:
    """Population standard deviation (0 for one image, None without values)."""
    vals = _finite(per_image, key)
    return statistics.pstdev(vals) if len(vals) > 1 else 0.0 if vals else None


def _write_json(path: Path, obj: dict) -> None:
    write_atomic(path, json.dumps(obj, indent=2) + "\n")
