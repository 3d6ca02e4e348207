"""Ray marching through a multi-cascade occupancy bitfield: the pure-PyTorch specification.

Occupancy grid layout
---------------------
``bitfield``: uint8 [C, R^3 / 8], one bit per cell. Cascade ``c`` covers the box ``aabb`` scaled by
``2^c`` about its centre and is split into R^3 cells; cell (ix, iy, iz) of cascade c has the flat
index ``c R^3 + (ix R + iy) R + iz`` and lives in bit ``idx & 7`` of byte ``idx >> 3``.
A point p is looked up in the *finest* cascade that contains it::

    q = (p - centre) * inv_half          # float32; inv_half = 2 / (aabb[1] - aabb[0])
    a = max(|q_x|, |q_y|, |q_z|)
    c = #{j in 0..C-1 : a >= 2^j}        # a < 2^c; c == C (or a NaN) means "outside every cascade"
    i = clamp(floor((q * 2^-c + 1) * R/2), 0, R-1)

Step grid
---------
Samples are intervals of one global, ray-independent step grid ``g`` (float32 [K], g_0 = 0):
``g_{k+1} = g_k + clamp(g_k * cone_angle, step_size, max_step)`` (constant steps when cone_angle
is 0). Ray r has an offset u_r in [0, 1) (jitter, 0 without) and candidate intervals
``[s_k, s_{k+1}]`` with ``s_k = g_k + u_r (g_{k+1} - g_k)``; the sample point is the midpoint
``m_k = (s_k + s_{k+1}) * 0.5``. Candidate k is emitted iff ``t_near <= m_k < t_far`` and the cell
of ``o + m_k d`` is occupied; the first ``max_samples`` emitted candidates of each ray are kept.

Because the grid is global, marching again from ``t_near = `` (last ``t_end`` of a ray) with the
same offsets continues exactly where the previous march stopped (rendering in rounds).
Every expression above is evaluated in float32 in this order, so a compiled kernel that repeats
it produces bit-identical samples.
"""

from __future__ import annotations

import math

import torch

_MAX_TABLE = 1 << 24


def grid_resolution(bitfield: torch.Tensor) -> int:
    """Cells per axis R of a bitfield uint8 [C, R^3/8]."""
    n_cells = bitfield.shape[-1] * 8
    res = round(n_cells ** (1.0 / 3.0))
    if res ** 3 != n_cells:
        raise ValueError(f"bitfield rows hold {n_cells} bits, which is not a cube R^3")
    return res


def pack_bits(occupied: torch.Tensor) -> torch.Tensor:
    """bool [..., 8 n] -> uint8 [..., n]; bit j of byte b is element 8 b + j."""
    shifts = torch.arange(8, device=occupied.device, dtype=torch.uint8)
    b = occupied.reshape(*occupied.shape[:-1], -1, 8).to(torch.uint8) << shifts
    return b.sum(-1, dtype=torch.uint8)


def unpack_bits(bits: torch.Tensor) -> torch.Tensor:
    """uint8 [..., n] -> bool [..., 8 n] (inverse of :func:`pack_bits`)."""
    shifts = torch.arange(8, device=bits.device, dtype=torch.uint8)
    return ((bits[..., None] >> shifts) & 1).bool().reshape(*bits.shape[:-1], -1)


def grid_frame(aabb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 centre [3] and inverse half-extent [3] of the cascade-0 box (the lookup constants)."""
    aabb = aabb.to(torch.float32)
    return (aabb[0] + aabb[1]) * 0.5, 2.0 / (aabb[1] - aabb[0])


def cell_indices(points: torch.Tensor, aabb: torch.Tensor, n_cascades: int, resolution: int) -> torch.Tensor:
    """Flat cell index (see the module docstring) of points [P, 3]; -1 outside every cascade. int64 [P]."""
    centre, inv_half = grid_frame(aabb)
    q = (points.to(torch.float32) - centre) * inv_half
    a = q.abs().amax(-1)
    casc = torch.zeros(a.shape, dtype=torch.int64, device=a.device)
    for j in range(n_cascades):
        casc += (a >= float(2 ** j)).to(torch.int64)
    inside = a < float(2 ** (n_cascades - 1))  # False for NaN as well
    pow2 = torch.tensor([2.0 ** -j for j in range(n_cascades)], dtype=torch.float32, device=a.device)
    scale = pow2[casc.clamp_max(n_cascades - 1)]  # exact 2^-c
    f = (q * scale[:, None] + 1.0) * (resolution * 0.5)
    i = f.floor().clamp(0, resolution - 1).to(torch.int64)
    idx = (casc * resolution + i[:, 0]) * resolution + i[:, 1]
    idx = idx * resolution + i[:, 2]
    return torch.where(inside, idx, torch.full_like(idx, -1))


def lookup_bits(bitfield: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Occupancy (bool) of flat cell indices idx [P]; False where idx < 0."""
    flat = bitfield.reshape(-1)
    safe = idx.clamp_min(0)
    bit = (flat[safe >> 3] >> (safe & 7).to(torch.uint8)) & 1
    return bit.bool() & (idx >= 0)


def step_grid(t_max: float, step_size: float, cone_angle: float = 0.0, max_step: float | None = None) -> torch.Tensor:
    """The global step grid g (float32 [K], CPU), long enough that ``g[K-3] >= t_max``.

    ``g_0 = 0, g_{k+1} = g_k + clamp(g_k * cone_angle, step_size, max_step)`` (``max_step``
    defaults to ``step_size``). Built in float64 from the closed form of that recurrence (linear
    below ``step_size / cone_angle``, geometric up to ``max_step / cone_angle``, linear above) and
    rounded to float32 once, so every backend shares the same table.
    """
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    t_max = max(float(t_max), 0.0)
    dt_max = max(float(max_step if max_step is not None else step_size), step_size)
    parts = []

    def length_to(end: float, start: float, dt: float) -> int:  # linear steps from start past end, + margin
        n = max(0, math.ceil((end - start) / dt)) + 5
        if n > _MAX_TABLE:
            raise ValueError(f"t_far {t_max:g} needs {n} ray-marching steps; raise step_size or clip t_far")
        return n

    if cone_angle <= 0:
        parts.append(torch.arange(length_to(t_max, 0.0, step_size), dtype=torch.float64) * step_size)
    else:
        t_a, t_b = step_size / cone_angle, dt_max / cone_angle  # where the cone step leaves [min, max]
        k_a = math.ceil(t_a / step_size)  # first index of the linear part with g >= t_a
        n_a = min(k_a + 1, length_to(t_max, 0.0, step_size))
        parts.append(torch.arange(n_a, dtype=torch.float64) * step_size)
        last = (n_a - 1) * step_size
        if n_a == k_a + 1 and last < t_max + 5 * dt_max:
            lg = math.log1p(cone_angle)
            n_b = math.ceil(math.log(max(t_b, last) / last) / lg)  # geometric steps while g < t_b
            n_b = min(n_b, math.ceil(math.log(max(t_max, last) / last) / lg) + 5)
            if n_b > 0:
                parts.append(last * torch.exp(torch.arange(1, n_b + 1, dtype=torch.float64) * lg))
                last = float(parts[-1][-1])
            parts.append(last + torch.arange(1, length_to(t_max, last, dt_max) + 1, dtype=torch.float64) * dt_max)
    g = torch.cat(parts).to(torch.float32)
    idx = int(torch.searchsorted(g, torch.tensor([t_max], dtype=torch.float32))[0])
    if idx + 3 > g.numel():
        raise AssertionError("step grid too short")  # cannot happen: every part overshoots by 5 steps
    return g[: idx + 3].contiguous()


def march_rays_ref(
    origins: torch.Tensor, dirs: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
    bitfield: torch.Tensor, aabb: torch.Tensor, offsets: torch.Tensor, table: torch.Tensor,
    max_samples: int, chunk: int = 1 << 16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed samples of rays through occupied cells (the module docstring is the definition).

    ``origins, dirs``: [N, 3] float32; ``t_near, t_far, offsets``: [N]; ``bitfield``: uint8
    [C, R^3/8]; ``aabb``: [2, 3] (cascade 0); ``table``: the step grid g [K] from :func:`step_grid`
    (``g[K-3] >= max(t_far)`` over rays with t_near < t_far). Every candidate interval between
    t_near and t_far is tested, ``chunk`` candidates at a time.

    Returns ray_indices int64 [M] (sorted), t_starts [M], t_ends [M] (float32).
    """
    dev = origins.device
    n_cascades, res = bitfield.shape[0], grid_resolution(bitfield)
    g = table.to(device=dev, dtype=torch.float32)
    tn, tf = t_near.to(torch.float32), t_far.to(torch.float32)
    u = offsets.to(torch.float32)
    k_lo = (torch.searchsorted(g, tn.contiguous(), right=True) - 2).clamp_min(0)
    k_hi = torch.searchsorted(g, tf.contiguous(), right=False)  # first k with g_k >= t_far
    n_cand = torch.where(tf > tn, (k_hi - k_lo).clamp_min(0), torch.zeros_like(k_lo))
    ends = torch.cumsum(n_cand, 0)
    out_r, out_s, out_e = [], [], []
    first = 0
    n = origins.shape[0]
    while first < n:
        base = int(ends[first - 1]) if first > 0 else 0
        last = int(torch.searchsorted(ends, base + chunk, right=True))
        last = min(max(last, first + 1), n)  # at least one ray per chunk
        rays = torch.arange(first, last, device=dev)
        cnt = n_cand[first:last]
        total = int(cnt.sum())
        if total > 0:
            rid = torch.repeat_interleave(rays, cnt)
            start = ends[first:last] - cnt  # global position of each ray's first candidate
            pos = torch.arange(base, base + total, device=dev)
            k = k_lo[rid] + (pos - start[rid - first])
            g0, g1, g2 = g[k], g[k + 1], g[k + 2]
            ur = u[rid]
            s0 = g0 + ur * (g1 - g0)
            s1 = g1 + ur * (g2 - g1)
            m = (s0 + s1) * 0.5
            keep = (m >= tn[rid]) & (m < tf[rid])
            pts = origins[rid] + m[:, None] * dirs[rid]
            keep &= lookup_bits(bitfield, cell_indices(pts, aabb, n_cascades, res))
            # rank among the kept samples of the same ray; keep the first max_samples
            csum = torch.cumsum(keep.to(torch.int64), 0)
            first_pos = (start - base).clamp_max(total - 1)
            before = (csum - keep.to(torch.int64))[first_pos]  # kept samples before each ray
            keep &= (csum - before.repeat_interleave(cnt)) <= max_samples
            out_r.append(rid[keep])
            out_s.append(s0[keep])
            out_e.append(s1[keep])
        first = last
    if not out_r:
        empty = torch.empty(0, device=dev)
        return torch.empty(0, dtype=torch.int64, device=dev), empty, empty.clone()
    return torch.cat(out_r), torch.cat(out_s), torch.cat(out_e)
