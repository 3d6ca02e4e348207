"""Instant-NGP (method ``ngp``): hash-grid field, occupancy-grid ray marching, packed compositing.

Training step: march the batch's rays through the occupancy grid (jittered along the fixed step
grid), evaluate densities without gradients to find each ray's termination point (transmittance
< 1e-4) and drop samples behind it, then render the remaining samples with gradients. The batch
size adapts so each step costs about ``target_samples`` field evaluations. The occupancy grid is
updated every 16 steps (decay 0.95, threshold as the paper, warm-up over all cells first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import RunError
from ..fields import NGPField
from ..render import OccupancyGrid, composite_packed, march_visible, render_rays_in_rounds
from .base import Method, SceneBounds


def auto_cascades(bounds: SceneBounds, max_cascades: int = 8) -> int:
    """1 for a bounded scene; else the fewest cascades whose outer box reaches 2x the farthest camera."""
    if not bounds.unbounded:
        return 1
    half = float((bounds.aabb[1] - bounds.aabb[0]).min()) / 2
    k = 1
    while half * 2 ** (k - 1) < 2 * bounds.camera_extent and k < max_cascades:
        k += 1
    return k


class NGP(Method):
    name = "ngp"
    render_chunk = 1 << 16

    @dataclass
    class Config:
        n_levels: int = 16
        n_features: int = 2
        log2_table_size: int = 19
        min_resolution: int = 16
        max_resolution: int = 2048
        """Finest hash-grid resolution over the scene box (the paper: 2048 x scene scale)."""
        hidden: int = 64
        grid_resolution: int = 128
        grid_cascades: int = 0
        """Nested occupancy grids, each twice the size of the previous. 0 (auto): 1 for scenes with a
        transparent background; for real captures as many as make the outer box reach twice the farthest
        camera, so the background is modelled (instant-ngp's aabb_scale)."""
        grid_update_every: int = 16
        grid_warmup_steps: int = 256
        cone_angle: float = -1.0
        """0 for bounded scenes (fixed steps of sqrt(3)/1024 of the box); ~1/256 for large scenes.
        Negative (auto): ``unbounded_cone_angle`` when the grid has several cascades, else 0."""
        target_samples: int = 1 << 18
        """Field evaluations per training step; the ray batch adapts to keep this constant."""
        batch_rays: int = 256
        """Initial rays per step (adapted during training)."""
        max_batch_rays: int = 1 << 16
        lr: float = 1e-2
        weight_decay: float = 1e-6
        """L2 weight decay on the MLP weights (not on the hash table)."""
        lr_final_factor: float = 0.1
        """Learning rate at the end of the budget, relative to ``lr`` (exponential decay over the run)."""
        max_samples_per_ray: int = 0
        """0 (auto): 1024, or ``unbounded_max_samples`` when the grid has several cascades."""
        unbounded_cone_angle: float = 1 / 256
        """The auto cone angle of scenes with several cascades (instant-ngp's 1/256)."""
        unbounded_max_samples: int = 1024
        visibility_first_round: int = 0
        """Samples per ray marched in the first round of the training step's no-gradient visibility pass;
        rays not finished go on in rounds of twice as many. Each round costs host syncs and ~75 small
        operations; a large first round evaluates more densities behind the termination points. 0 (auto):
        twice the previous step's mean kept samples per ray, rounded up to a power of two (at least 16).
        GPUs default to 1024: every ray in one round (device_defaults)."""

    @classmethod
    def device_defaults(cls, device: torch.device) -> dict:
        # On a CPU a 2^17 table (1 MiB per level, cache-resident) and 32k samples per step reach a
        # higher PSNR in the same time than the paper's 2^19 / 2^18 (measured on lego 200x200 and the
        # synthetic scene: +2.7 dB at 90 s); GPUs keep the paper's values.
        # Real captures on a CPU: steps growing 4x faster with distance and at most 256 samples per
        # ray (fox, 90 s: 1490 steps and 26.7 dB; instant-ngp's 1/256 and 1024 leave far fewer steps).
        # The visibility pass: on a CPU, where evaluations dominate, rounds sized from the last step (lego
        # step 700: 59 ms per step against 62 with rounds from 16 and 57 in one round; the demo scene, whose
        # rays pass many occupied cells behind the surface: 67 ms against 68 and 102 in one round). On a
        # GPU, where launches and syncs dominate, one round (1 instead of 4-6 rounds of 3 syncs each).
        if device.type == "cpu":
            return {"log2_table_size": 17, "target_samples": 1 << 15, "unbounded_cone_angle": 1 / 64,
                    "unbounded_max_samples": 256}
        return {"target_samples": 1 << 18, "visibility_first_round": 1024}

    def __init__(self, config: "NGP.Config", bounds: SceneBounds) -> None:
        super().__init__(config, bounds)
        c = config
        cascades = c.grid_cascades or auto_cascades(bounds)
        self.cone_angle = c.cone_angle if c.cone_angle >= 0 else (c.unbounded_cone_angle if cascades > 1 else 0.0)
        self.max_samples = c.max_samples_per_ray or (c.unbounded_max_samples if cascades > 1 else 1024)
        self.grid = OccupancyGrid(bounds.aabb, n_cascades=cascades, resolution=c.grid_resolution)
        # the hash grid spans the outermost cascade, so content beyond the inner box is representable
        self.field = NGPField(self.grid.outer_aabb(), c.n_levels, c.n_features, c.log2_table_size, c.min_resolution,
                              c.max_resolution, c.hidden)
        self.register_buffer("rays_per_step", torch.tensor(float(c.batch_rays)))
        self._rays = None  # host mirror of rays_per_step (reading the buffer on a GPU would sync every step)
        self._last = {}
        self._lr_factor = 1.0

    # --- training --------------------------------------------------------------------------------
    def _host_rays(self) -> float:
        if self._rays is None:
            self._rays = float(self.rays_per_step)
        return self._rays

    def batch_rays(self) -> int:
        return int(self._host_rays())

    def _load_from_state_dict(self, *args, **kwargs):
        self._rays = None  # re-read from the loaded buffer
        super()._load_from_state_dict(*args, **kwargs)

    def warmup(self) -> None:
        """Run the field once with and once without gradients, march a few rays and render them as a
        training step does (builds the C++ kernels on a CPU; compiles the Triton kernels on CUDA), off
        the training clock. Leaves no gradients behind."""
        pts = torch.rand(4096, 3, device=self.aabb.device) * (self.aabb[1] - self.aabb[0]) + self.aabb[0]
        dirs = torch.nn.functional.normalize(torch.randn_like(pts), dim=-1)
        sigma, rgb = self.field(pts, dirs)
        (sigma.sum() + rgb.sum()).backward()
        self.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.field(pts, dirs)
            self.field.density(pts)
            centre = (self.aabb[0] + self.aabb[1]) * 0.5
            origins = centre - 3.0 * (self.aabb[1] - self.aabb[0]).max() * dirs[:64]  # outside, looking in
            march_visible(self.grid, origins, dirs[:64], self.field.density, near=self.near,
                          cone_angle=self.cone_angle, max_samples=self.max_samples, jitter=torch.rand_like(dirs[:64, 0]))
        # the training render and its backward (the compositing kernels with colour)
        was_training, last = self.training, self._last
        self.train()
        out = self.render_rays(origins, dirs[:64], torch.ones_like(origins))
        out["rgb"].sum().backward()
        self.zero_grad(set_to_none=True)
        self.train(was_training)
        self._last = last

    def before_step(self, step: int) -> None:
        c = self.config
        if step % c.grid_update_every == 0:
            self.grid.update(step, self.field.density, warmup_steps=c.grid_warmup_steps)
            if step >= c.grid_warmup_steps and self.grid.occupied_fraction() == 0.0:
                raise RunError(
                    "the occupancy grid emptied completely: the model sees no density anywhere in the scene box "
                    f"{self.aabb.tolist()}. Check the scene scale/box (aabb) and that the cameras look at the content")

    def render_rays(self, origins, dirs, background=None):
        if not self.training:
            out = render_rays_in_rounds(self.grid, origins, dirs, self.field, background=background,
                                        near=self.near, cone_angle=self.cone_angle,
                                        max_samples=self.max_samples)
            return out
        n = origins.shape[0]
        # pass 1 (no gradients): the samples in front of each ray's termination point
        ri, ts, te = march_visible(self.grid, origins, dirs, self.field.density, near=self.near, cone_angle=self.cone_angle,
                                   max_samples=self.max_samples, first_round=self._first_round(),
                                   jitter=torch.rand(n, device=origins.device))
        mid, delta = 0.5 * (ts + te), te - ts
        pts = origins[ri] + mid[:, None] * dirs[ri]
        sigma, rgb = self.field(pts, dirs[ri])
        out = composite_packed(sigma, rgb, mid, delta, ri, n, background=background, min_transmittance=0.0)
        self._last = {"samples": ri.numel(), "rays": n}
        return {"rgb": out["rgb"], "depth": out["depth"], "opacity": out["opacity"]}

    def _first_round(self) -> int:
        if self.config.visibility_first_round > 0:
            return self.config.visibility_first_round
        per_ray = self._last.get("samples", 0) / max(1, self._last.get("rays", 1))  # the previous step's
        return min(max(16, 1 << max(0, math.ceil(2 * per_ray) - 1).bit_length()), self.max_samples)

    def loss(self, outputs, target):
        mse = F.mse_loss(outputs["rgb"], target)
        return {"loss": mse, "mse": mse}

    def after_step(self, step: int, outputs: dict) -> None:
        c = self.config
        samples = max(1, self._last.get("samples", 0))
        rays = max(1, self._last.get("rays", 1))
        want = c.target_samples / (samples / rays)
        new = 0.8 * self._host_rays() + 0.2 * want  # smooth: one odd batch must not swing it
        self._rays = float(min(max(new, 256), c.max_batch_rays))
        self.rays_per_step.fill_(self._rays)

    def update_schedule(self, optimizer, progress: float) -> None:
        """Exponential decay from lr to lr * lr_final_factor over the run's budget (progress 0 -> 1)."""
        self._lr_factor = self.config.lr_final_factor ** min(max(progress, 0.0), 1.0)
        for g in optimizer.param_groups:
            g["lr"] = self.config.lr * self._lr_factor

    def state_for_log(self) -> dict:
        return {"rays": self._last.get("rays"), "samples": self._last.get("samples"),
                "occupied": round(self.grid.occupied_fraction(), 4)}

    def make_optimizer(self):
        mlp = self.field.mlp_parameters()
        ids = {id(p) for p in mlp}
        rest = [p for p in self.parameters() if id(p) not in ids]
        kw = dict(lr=self.config.lr, betas=(0.9, 0.99), eps=1e-15)
        groups = [{"params": rest, "weight_decay": 0.0}, {"params": mlp, "weight_decay": self.config.weight_decay}]
        try:
            opt = torch.optim.Adam(groups, fused=True, **kw)
        except (RuntimeError, TypeError):
            opt = torch.optim.Adam(groups, **kw)
        # the factor is set by update_schedule from the budget used; LambdaLR only applies it
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: self._lr_factor)
        return opt, sched
