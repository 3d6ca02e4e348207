"""Evaluation of a trained run on a split: metrics.json and comparison pictures."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import torch
from tqdm import tqdm

from ..data.images import background_color, composite, load_image, save_png
from ..data.scene import SceneData
from ..render import render_image
from .metrics import LPIPS, psnr, ssim
from .pictures import comparison_strip
from .trainer import load_run, scene_camera


def evaluate_views(model, scene: SceneData, views: list[int], background: torch.Tensor,
                   pictures: Path | None = None, lpips: LPIPS | None = None, progress: bool = False) -> list[dict]:
    """Render ``views`` of ``scene`` and compare with their images: a list of per-image metrics.

    With ``pictures`` a folder, writes ``<name>.png`` (ground truth | render | error | depth) per view.
    """
    device = next(iter(model.buffers())).device
    per_image = []
    for v in tqdm(views, desc="eval", unit="img", disable=not progress, leave=False):
        out = render_image(model, scene_camera(scene, v), background=background.to(device))
        gt = composite(torch.from_numpy(load_image(scene.image_paths[v], scene.downscale)), background)
        pred = out["rgb"].clamp(0, 1)
        name = scene.image_paths[v].stem
        per_image.append({"name": name, "psnr": psnr(pred, gt), "ssim": ssim(pred, gt),
                          "lpips": lpips(pred, gt) if lpips is not None else None})
        if pictures is not None:
            save_png(Path(pictures) / f"{name}.png", comparison_strip(gt, pred, out["depth"], out["opacity"]))
    return per_image


def evaluate(run_dir: str | Path, split: str = "test", device: str = "auto", progress: bool = True,
             output: str | Path | None = None, max_images: int | None = None, every: int = 1) -> dict:
    """Render every image of ``split``, compare with the ground truth, write ``eval/metrics.json``.

    Per test image a picture ``eval/<name>.png`` shows ground truth | render | error map | depth.
    """
    run_dir = Path(run_dir)
    cfg, scene, model, ck = load_run(run_dir, device)
    out_dir = Path(output) if output else run_dir / "eval"
    views = scene.split(split)[::every][:max_images]
    bg = background_color(cfg.data.background, ())
    lp = LPIPS()
    per_image = evaluate_views(model, scene, views, bg, pictures=out_dir, lpips=lp, progress=progress)
    w, h = (int(x) for x in scene.sizes[views[0]])

    def mean(key):
        vals = [r[key] for r in per_image if r[key] is not None and math.isfinite(r[key])]
        return statistics.fmean(vals) if vals else None

    def std(key):
        vals = [r[key] for r in per_image if r[key] is not None and math.isfinite(r[key])]
        return statistics.pstdev(vals) if len(vals) > 1 else 0.0 if vals else None

    metrics = {
        "psnr": mean("psnr"), "ssim": mean("ssim"), "lpips": mean("lpips"),
        "psnr_std": std("psnr"), "ssim_std": std("ssim"),
        "lpips_note": None if lp.available else f"LPIPS unavailable: {lp.reason}",
        "n_images": len(per_image), "split": split, "resolution": [w, h], "background": cfg.data.background,
        "method": cfg.method, "step": int(ck["step"]), "train_time_s": round(float(ck["train_time"]), 2),
        "data": cfg.data.path, "downscale": cfg.data.downscale, "per_image": per_image,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    tmp.replace(out_dir / "metrics.json")
    metrics["output"] = str(out_dir)
    return metrics
