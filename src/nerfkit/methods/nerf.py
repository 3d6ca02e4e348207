"""Vanilla NeRF (method ``nerf``): hierarchical sampling with a coarse and a fine field.

As nerf-pytorch: 64 stratified coarse samples, 128 importance samples drawn from the coarse
weights, the fine field evaluated on all 192; loss = MSE(coarse) + MSE(fine);
Adam lr 5e-4 decayed exponentially by 0.1 over ``lr_decay_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..fields import NeRFField
from ..render import composite_batched, intervals, sample_pdf, stratified
from .base import Method, SceneBounds


class NeRF(Method):
    name = "nerf"
    render_chunk = 1024  # rays per render call: 1024 x 192 samples keeps activations cache-friendly

    @dataclass
    class Config:
        n_coarse: int = 64
        """Stratified samples per ray for the coarse field."""
        n_fine: int = 128
        """Importance samples per ray for the fine field (0 disables the fine field)."""
        n_freq_pos: int = 10
        n_freq_dir: int = 4
        width: int = 256
        depth: int = 8
        batch_rays: int = 1024
        micro_batch_rays: int = 128
        """Rays per forward/backward pass; gradients of a step's micro-batches are summed (same result,
        but activations stay small: on a CPU this runs ~2x faster than one pass over 1024 rays)."""
        lr: float = 5e-4
        lr_decay_steps: int = 500_000
        """Steps over which the learning rate decays by a factor of 10 (nerf-pytorch: 500k)."""
        bf16: bool = True
        """Run the MLPs under bfloat16 autocast on CPUs with native bf16 matrix units (AMX)."""

    def __init__(self, config: "NeRF.Config", bounds: SceneBounds) -> None:
        super().__init__(config, bounds)
        kw = dict(n_freq_pos=config.n_freq_pos, n_freq_dir=config.n_freq_dir, width=config.width, depth=config.depth)
        self.coarse = NeRFField(**kw)
        self.fine = NeRFField(**kw) if config.n_fine > 0 else None

    def _autocast(self, device: torch.device):
        enabled = bool(self.config.bf16) and _bf16_fast(device)
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)

    def _eval_field(self, field, origins, dirs, t, deltas, far, background):
        pts = origins[:, None, :] + dirs[:, None, :] * t[..., None]  # [N, S, 3]
        n, s = t.shape
        with self._autocast(origins.device):
            sigma, rgb = field(pts.reshape(-1, 3), dirs[:, None, :].expand(n, s, 3).reshape(-1, 3))
        return composite_batched(sigma.view(n, s), rgb.view(n, s, 3), t, deltas, background)

    def render_rays(self, origins, dirs, background=None):
        n = origins.shape[0]
        near = torch.full((n,), self.near, device=origins.device)
        far = torch.full((n,), self.far, device=origins.device)
        t_c = stratified(near, far, self.config.n_coarse, jitter=self.training)
        t_c, d_c = intervals(t_c, far)
        out_c = self._eval_field(self.coarse, origins, dirs, t_c, d_c, far, background)
        if self.fine is None:
            return {"rgb": out_c["rgb"], "depth": out_c["depth"], "opacity": out_c["opacity"]}
        # bins between coarse sample midpoints; importance-sample the coarse weights (not the ends)
        mids = 0.5 * (t_c[:, 1:] + t_c[:, :-1])
        t_f = sample_pdf(mids, out_c["weights"][:, 1:-1], self.config.n_fine, deterministic=not self.training)
        t_all, _ = torch.sort(torch.cat([t_c, t_f], dim=-1), dim=-1)
        t_all, d_all = intervals(t_all, far)
        out_f = self._eval_field(self.fine, origins, dirs, t_all, d_all, far, background)
        return {"rgb": out_f["rgb"], "depth": out_f["depth"], "opacity": out_f["opacity"], "rgb_coarse": out_c["rgb"]}

    def _query(self, points, dirs):
        field = self.fine if self.fine is not None else self.coarse  # the field the image comes from
        with self._autocast(points.device):
            return field(points, dirs)

    def density(self, points):
        # NeRF's density does not depend on the direction; any unit vector will do
        return self._query(points, torch.nn.functional.normalize(torch.ones_like(points), dim=-1))[0]

    def query_color(self, points, dirs):
        return self._query(points, dirs)[1]

    def loss(self, outputs, target):
        mse = F.mse_loss(outputs["rgb"], target)
        total = mse
        if "rgb_coarse" in outputs:
            total = total + F.mse_loss(outputs["rgb_coarse"], target)
        return {"loss": total, "mse": mse}

    def make_optimizer(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.config.lr, betas=(0.9, 0.999))
        decay = 0.1 ** (1.0 / max(1, self.config.lr_decay_steps))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
        return opt, sched


def _bf16_fast(device: torch.device) -> bool:
    """True where bf16 matrix multiplies are native: CUDA, or a CPU with AMX (Sapphire Rapids and later)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch._C._cpu._is_amx_tile_supported())
        except AttributeError:
            return False
    return False
