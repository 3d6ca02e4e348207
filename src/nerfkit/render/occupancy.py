"""Occupancy grid (instant-ngp style) for skipping empty space, and rendering with it.

``OccupancyGrid`` keeps, per cascade, an exponential moving maximum of the density in each of R^3
cells and a bitfield of the cells worth sampling. Cascade c covers the box scaled by 2^c about its
centre (1 cascade for bounded scenes such as Blender's). The layout is the one of
:mod:`nerfkit.ops._ref.march_rays`, so ``grid.bitfield`` feeds :func:`nerfkit.ops.march_rays.march_rays`.

Update rule (Müller et al. 2022, appendix E.2, and ``update_density_grid_nerf`` /
``grid_to_bitfield`` in NVlabs/instant-ngp ``src/testbed_nerf.cu``):

- every cell decays: ``density <- decay * density`` (decay 0.95 per update, an update every 16
  training steps);
- sampled cells take ``max(decayed, sigma(x))`` at a uniformly random point x of the cell;
- a cell is occupied iff ``density > min(threshold / step_size, mean_density)``: instant-ngp
  thresholds the optical thickness of the minimal ray-marching step, ``sigma * step_size``, at
  ``min(0.01, mean)``; with ``step_size = sqrt(3)/1024`` (unit box) the density threshold is the
  paper's ``0.01 * 1024 / sqrt(3)``. The mean is taken over cascade 0, as in instant-ngp.

Which cells are sampled (our choice, to bound the cost on a CPU): ``n_samples`` points per update
in total (default 2^18, split over the cascades). During warm-up (``step < warmup_steps``, 256)
and until every cell has been sampled once, the cells are visited in a fixed pseudo-random
sweep; cells not visited yet have density -1 and count as occupied. Afterwards half of the
samples go to uniformly random cells and half to random currently-occupied cells (instant-ngp:
R^3/4 of each per cascade per update, and all R^3 cells per update during warm-up).

Memory for R = 128: ``density`` 8 MiB and ``bitfield`` 256 KiB per cascade (a bool grid would
take 2 MiB); the marcher caches ~300 KiB of bitfield mips.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from nerfkit.cameras.rays import ray_aabb
from nerfkit.ops.composite import composite_packed, ray_offsets, weights_packed
from nerfkit.ops.march_rays import default_step_size, march_rays
from nerfkit.ops._ref.march_rays import cell_indices, lookup_bits, pack_bits

_POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int64)


class OccupancyGrid(nn.Module):
    """Multi-cascade occupancy grid; buffers only (saved in the state dict, no parameters).

    ``aabb``: [2, 3] box of cascade 0; ``n_cascades``: C; ``resolution``: R cells per axis;
    ``step_size``: the minimum marching step used to convert the opacity threshold into a density
    (default sqrt(3)/1024 times the largest side of ``aabb``).
    """

    def __init__(self, aabb: torch.Tensor, n_cascades: int = 1, resolution: int = 128,
                 step_size: float | None = None):
        super().__init__()
        if n_cascades < 1 or resolution < 2 or (resolution ** 3) % 8 != 0:
            raise ValueError(f"need n_cascades >= 1 and an even resolution, got {n_cascades}, {resolution}")
        aabb = torch.as_tensor(aabb, dtype=torch.float32).reshape(2, 3)
        self.n_cascades, self.resolution = int(n_cascades), int(resolution)
        self.step_size = float(step_size) if step_size is not None else default_step_size(aabb)
        n_cells = self.resolution ** 3
        self.register_buffer("aabb", aabb.clone())
        self.register_buffer("density", torch.full((n_cascades, n_cells), -1.0))  # -1: never sampled
        self.register_buffer("bitfield", torch.full((n_cascades, n_cells // 8), 255, dtype=torch.uint8))
        self.register_buffer("mean_density", torch.zeros(()))
        self.register_buffer("sweep_cursor", torch.zeros((), dtype=torch.int64))
        # sweep order: cell (a * j) mod R^3 for j = 0, 1, ...; a is coprime with R^3, near R^3 / golden ratio
        a = int(n_cells * 0.6180339887) | 1
        while math.gcd(a, n_cells) != 1:
            a += 2
        self._sweep_mult = a

    def host_aabb(self) -> torch.Tensor:
        """A CPU copy of ``aabb`` (what the marcher reads its constants from), cached until the buffer
        changes or moves, so marching rays on a GPU does not read the box back every call."""
        key = (self.aabb.device, self.aabb.data_ptr(), self.aabb._version)
        if getattr(self, "_host_key", None) != key:
            self._host = self.aabb.detach().to("cpu", copy=True)
            self._host_key = key
        return self._host

    def outer_aabb(self) -> torch.Tensor:
        """[2, 3] box of the coarsest cascade (what rays must be clipped to)."""
        centre, half = (self.aabb[0] + self.aabb[1]) * 0.5, (self.aabb[1] - self.aabb[0]) * 0.5
        scale = float(2 ** (self.n_cascades - 1))
        return torch.stack([centre - half * scale, centre + half * scale])

    def cell_points(self, cascade: int, idx: torch.Tensor, jitter: bool = True) -> torch.Tensor:
        """World points [P, 3] in cells idx [P] (flat index within ``cascade``): uniform in the cell or its centre."""
        r = self.resolution
        ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], -1).to(torch.float32)
        off = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        x = (ijk + off) / r * 2.0 - 1.0  # [-1, 1] within the cascade
        centre, half = (self.aabb[0] + self.aabb[1]) * 0.5, (self.aabb[1] - self.aabb[0]) * 0.5
        return centre + x * half * float(2 ** cascade)

    def threshold(self, threshold: float = 0.01) -> float:
        """The current density threshold ``min(threshold / step_size, mean_density)``."""
        return min(threshold / self.step_size, float(self.mean_density))

    @torch.no_grad()
    def update(self, step: int, density_fn: Callable[[torch.Tensor], torch.Tensor], decay: float = 0.95,
               threshold: float = 0.01, warmup_steps: int = 256, n_samples: int = 1 << 18,
               chunk: int = 1 << 16) -> None:
        """One grid update (call it every 16 training steps, see the module docstring).

        ``density_fn(points [P, 3]) -> [P] or [P, 1]`` densities (world coordinates), called on at
        most ``n_samples`` points in chunks of ``chunk``.
        """
        n_cells, dev = self.resolution ** 3, self.density.device
        sweeping = step < warmup_steps or int(self.sweep_cursor) < n_cells
        # the warm-up sweep gives every cascade the full budget, so nested grids are swept as fast as one
        # (unvisited cells count as occupied: a slow sweep keeps every outer cascade fully occupied)
        per_cascade = max(1, min(n_cells, n_samples if sweeping else n_samples // self.n_cascades))
        cells = []
        for c in range(self.n_cascades):
            if sweeping:
                j = int(self.sweep_cursor) + torch.arange(per_cascade, device=dev)
                idx = (j % n_cells) * self._sweep_mult % n_cells
            else:
                n_uni = per_cascade // 2
                idx = torch.randint(n_cells, (n_uni,), device=dev)
                occupied = (self.density[c] > self.threshold(threshold)).nonzero().squeeze(-1)
                n_occ = per_cascade - n_uni
                if occupied.numel() > 0:
                    pick = occupied[torch.randint(occupied.numel(), (n_occ,), device=dev)]
                else:
                    pick = torch.randint(n_cells, (n_occ,), device=dev)
                idx = torch.cat([idx, pick])
            cells.append(idx)
        if sweeping:
            self.sweep_cursor += per_cascade
        # decay every visited cell (unvisited ones keep -1), then take the max with the new samples
        new = torch.where(self.density < 0, self.density, self.density * decay)
        for c, idx in enumerate(cells):
            pts = self.cell_points(c, idx)
            sig = torch.cat([density_fn(p).reshape(-1).float() for p in pts.split(chunk)])
            sig = sig.nan_to_num(0.0).clamp_min(0.0)
            sampled = torch.full((n_cells,), -1.0, device=dev).scatter_reduce(0, idx, sig, "amax", include_self=False)
            new[c] = torch.where(sampled >= 0, torch.maximum(new[c].clamp_min(0.0), sampled), new[c])
        self.density.copy_(new)
        self.mean_density.copy_(self.density[0].clamp_min(0.0).mean())
        occ = (self.density > self.threshold(threshold)) | (self.density < 0)
        self.bitfield.copy_(pack_bits(occ))

    def is_occupied(self, points: torch.Tensor) -> torch.Tensor:
        """bool [P]: whether points [P, 3] fall in an occupied cell (False outside every cascade)."""
        idx = cell_indices(points, self.aabb, self.n_cascades, self.resolution)
        return lookup_bits(self.bitfield, idx)

    def occupied_fraction(self) -> float:
        """Fraction of occupied cells over all cascades."""
        return float(_POPCOUNT.to(self.bitfield.device)[self.bitfield.long()].sum()) / (8 * self.bitfield.numel())

    def march(self, origins: torch.Tensor, dirs: torch.Tensor, near: float = 0.0, *, cone_angle: float = 0.0,
              max_samples: int = 1024, jitter: bool | torch.Tensor = False, t_far: torch.Tensor | None = None,
              backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Packed samples (ray_indices, t_starts, t_ends) of rays [N, 3] clipped to the outer cascade box
        and to ``[near, t_far]``; see :func:`nerfkit.ops.march_rays.march_rays`."""
        t0, t1, _ = ray_aabb(origins, dirs, self.outer_aabb())
        t0 = t0.clamp_min(near)
        if t_far is not None:
            t1 = torch.minimum(t1, t_far)
        return march_rays(origins, dirs, t0, t1, self.bitfield, self.host_aabb(), step_size=self.step_size,
                          cone_angle=cone_angle, max_samples=max_samples, jitter=jitter, backend=backend)


@torch.no_grad()
def render_rays_in_rounds(
    grid: OccupancyGrid, origins: torch.Tensor, dirs: torch.Tensor,
    field_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]], *,
    near: float = 0.0, background: torch.Tensor | None = None, cone_angle: float = 0.0,
    max_samples: int = 1024, first_round: int = 16, min_transmittance: float = 1e-4,
    max_points: int = 1 << 19,
) -> dict[str, torch.Tensor]:
    """Inference rendering that never evaluates samples behind an opaque prefix.

    Marches ``first_round`` samples per ray (doubling each round, up to 128), evaluates
    ``field_fn(points [P, 3], dirs [P, 3]) -> (sigma [P], rgb [P, 3])`` on them, composites, and
    continues only the rays whose transmittance is still >= ``min_transmittance``. The samples are
    those of one un-jittered march with the same settings (the step grid is global, so a march
    resumed at the last ``t_end`` continues exactly), minus the ones behind the termination point;
    ``max_samples`` is checked between rounds, so a ray may exceed it by less than one round.
    The field sees at most ``max_points`` samples per call, which bounds memory while the occupancy
    grid is still dense (up to 128 samples for every ray of the chunk).
    Returns rgb [N, 3], opacity [N], depth [N] (sum of w t).
    """
    n = origins.shape[0]
    t_near, t_far, hit = ray_aabb(origins, dirs, grid.outer_aabb())
    cur = t_near.clamp_min(near)
    trans = torch.ones(n, device=origins.device)
    rgb = torch.zeros(n, 3, device=origins.device)
    depth = torch.zeros(n, device=origins.device)
    taken = torch.zeros(n, dtype=torch.int64, device=origins.device)
    active = torch.nonzero(hit & (t_far > cur)).squeeze(-1)
    per_round = first_round
    while active.numel() > 0:
        cap = min(per_round, max_samples)
        o, d = origins[active], dirs[active]
        ri, ts, te = march_rays(o, d, cur[active], t_far[active], grid.bitfield, grid.host_aabb(),
                                step_size=grid.step_size, cone_angle=cone_angle, max_samples=cap)
        if ri.numel() == 0:
            break
        mid = (ts + te) * 0.5
        parts = [field_fn(o[r] + m[:, None] * d[r], d[r])
                 for r, m in zip(ri.split(max_points), mid.split(max_points))]
        sigma = torch.cat([p[0].reshape(-1).float() for p in parts])
        col = torch.cat([p[1].float() for p in parts])
        del parts
        out = composite_packed(sigma, col, mid, te - ts, ri, active.numel())
        t_a = trans[active]
        rgb[active] += t_a[:, None] * out["rgb"]
        depth[active] += t_a * out["depth"]
        trans[active] = t_a * (1.0 - out["opacity"])
        counts = ray_offsets(ri, active.numel()).diff()
        last_end = torch.zeros(active.numel(), device=origins.device).scatter_reduce(0, ri, te, "amax")
        cur[active] = torch.where(counts > 0, last_end, cur[active])
        taken[active] += counts
        alive = (counts == cap) & (trans[active] >= min_transmittance) & (taken[active] < max_samples)
        active = active[alive]
        per_round = min(per_round * 2, 128)
    opacity = 1.0 - trans
    if background is not None:
        rgb = rgb + trans[:, None] * background
    return {"rgb": rgb, "opacity": opacity, "depth": depth}


@torch.no_grad()
def march_visible(
    grid: OccupancyGrid, origins: torch.Tensor, dirs: torch.Tensor,
    density_fn: Callable[[torch.Tensor], torch.Tensor], *, near: float = 0.0, cone_angle: float = 0.0,
    max_samples: int = 1024, jitter: torch.Tensor | None = None, first_round: int = 16,
    min_transmittance: float = 1e-4, max_points: int = 1 << 21,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed samples (ray_indices [M] sorted, t_starts [M], t_ends [M]) in front of each ray's
    termination point (transmittance < ``min_transmittance``), found in rounds like
    :func:`render_rays_in_rounds`: ``first_round`` samples per ray, then rounds of twice as many for the
    rays not finished. Small rounds evaluate few densities behind an opaque surface; one round
    (``first_round >= max_samples``) costs the fewest host syncs and operations.

    ``density_fn(points [P, 3]) -> [P]``, called on at most ``max_points`` points at a time (bounds memory
    when a large round meets a dense grid); ``jitter`` [N] per-ray offsets in [0, 1) (kept across rounds).
    The result is what one march with the same settings gives, cut at the termination point; with
    several rounds ``max_samples`` is checked between rounds, so a ray may exceed it by less than one round.
    """
    n, dev = origins.shape[0], origins.device
    t_near, t_far, hit = ray_aabb(origins, dirs, grid.outer_aabb())
    cur = t_near.clamp_min(near)

    def one_round(o, d, t0, t1, jit, cap, trans_in):
        """March ``cap`` samples per ray, evaluate their densities: samples, the weights and the
        transmittance in front of each sample (whole ray: ``trans_in`` [R] at t0), kept sample indices."""
        ri, ts, te = march_rays(o, d, t0, t1, grid.bitfield, grid.host_aabb(), step_size=grid.step_size,
                                cone_angle=cone_angle, max_samples=cap, jitter=jit if jit is not None else False)
        if ri.numel() == 0:
            return ri, ts, te, None, None
        mid = (ts + te) * 0.5
        sigma = torch.cat([density_fn(o[r] + m[:, None] * d[r]).reshape(-1).float()
                           for r, m in zip(ri.split(max_points), mid.split(max_points))])
        w, t_local = weights_packed(sigma, te - ts, ri, o.shape[0])
        t_abs = t_local if trans_in is None else trans_in[ri] * t_local
        return ri, ts, te, w, torch.nonzero(t_abs >= min_transmittance).squeeze(-1)  # one sync, three selections

    if first_round >= max_samples:  # one round over every ray: rays that miss get an empty interval
        ri, ts, te, _, keep = one_round(origins, dirs, cur, torch.where(hit, t_far, cur), jitter, max_samples, None)
        return (ri, ts, te) if keep is None else (ri[keep], ts[keep], te[keep])
    trans = torch.ones(n, device=dev)
    taken = torch.zeros(n, dtype=torch.int64, device=dev)
    active = torch.nonzero(hit & (t_far > cur)).squeeze(-1)
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    per_round = first_round
    while active.numel() > 0:
        cap = min(per_round, max_samples)
        ri, ts, te, w, keep = one_round(origins[active], dirs[active], cur[active], t_far[active],
                                        jitter[active] if jitter is not None else None, cap, trans[active])
        if ri.numel() == 0:
            break
        parts.append((active[ri[keep]], ts[keep], te[keep]))
        if cap >= max_samples:
            break  # every ray has had all its samples
        trans[active] = trans[active] * torch.ones(active.numel(), device=dev).index_add(
            0, ri, -w).clamp_min(0.0)
        counts = ray_offsets(ri, active.numel()).diff()
        last_end = torch.zeros(active.numel(), device=dev).scatter_reduce(0, ri, te, "amax")
        cur[active] = torch.where(counts > 0, last_end, cur[active])
        taken[active] += counts
        alive = (counts == cap) & (trans[active] >= min_transmittance) & (taken[active] < max_samples)
        active = active[alive]
        per_round = min(per_round * 2, max(128, first_round))
    if not parts:
        e = torch.zeros(0, device=dev)
        return torch.zeros(0, dtype=torch.int64, device=dev), e, e
    if len(parts) == 1:
        return parts[0]  # already sorted: active and each ray's samples are in increasing order
    ri = torch.cat([p[0] for p in parts])
    ts = torch.cat([p[1] for p in parts])
    te = torch.cat([p[2] for p in parts])
    order = torch.sort(ri, stable=True).indices  # rounds are in distance order, so a stable sort suffices
    return ri[order], ts[order], te[order]
