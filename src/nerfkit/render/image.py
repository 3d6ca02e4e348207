"""render_image: the one path from a model and a camera to pictures (eval, video, viewer, export)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..cameras import generate_rays, pixel_grid


@dataclass
class Camera:
    """One camera: c2w [4, 4] (OpenCV axes), intrinsics [4] (fx, fy, cx, cy), size in pixels, and
    optionally a lens model with its distortion coefficients [P] (see ``nerfkit.cameras.distortion``)."""

    c2w: torch.Tensor
    intrinsics: torch.Tensor
    width: int
    height: int
    camera_model: str = "pinhole"
    distortion: torch.Tensor | None = None


@torch.no_grad()
def render_image(model, camera: Camera, chunk: int | None = None, background: torch.Tensor | None = None) -> dict:
    """Render a full image in chunks of rays, so memory stays bounded at any resolution.

    ``model.render_rays(origins, dirs, background)`` renders rays; ``background`` [3] or None.
    ``chunk``: rays per call (default: the model's ``render_chunk``, else 8192).
    Returns rgb [H, W, 3], depth [H, W] (z-depth along the optical axis, the convention of
    ground-truth depth maps), opacity [H, W] — float32 on the CPU.
    """
    device = next(iter(model.buffers()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    chunk = int(chunk or getattr(model, "render_chunk", 8192))
    x, y = pixel_grid(camera.width, camera.height)
    c2w = camera.c2w.to(device)
    k = camera.intrinsics.to(device)
    axis = c2w[:3, 2]  # optical axis in world space
    dist = None if camera.distortion is None else camera.distortion.to(device)
    out = {"rgb": [], "depth": [], "opacity": []}
    try:
        for s in range(0, x.numel(), chunk):
            o, d = generate_rays(c2w, k, x[s:s + chunk].to(device), y[s:s + chunk].to(device), dist,
                                 camera.camera_model)
            bad = ~torch.isfinite(d).all(-1)  # pixels outside the lens model's valid region
            if bool(bad.any()):
                d = torch.where(bad[:, None], axis.expand_as(d), d)
            bg = None if background is None else background.to(device).expand(o.shape[0], 3)
            r = model.render_rays(o, d, bg)
            if bool(bad.any()):  # show them as empty
                r = {k_: v.clone() for k_, v in r.items()}
                r["rgb"][bad] = bg[bad] if bg is not None else 0.0
                r["opacity"][bad] = 0.0
                r["depth"][bad] = 0.0
            out["rgb"].append(r["rgb"].float().cpu())
            out["depth"].append((r["depth"] * (d @ axis)).float().cpu())  # ray distance -> z-depth
            out["opacity"].append(r["opacity"].float().cpu())
    finally:
        model.train(was_training)
    h, w = camera.height, camera.width
    return {
        "rgb": torch.cat(out["rgb"]).view(h, w, 3),
        "depth": torch.cat(out["depth"]).view(h, w),
        "opacity": torch.cat(out["opacity"]).view(h, w),
    }
