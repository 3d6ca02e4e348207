"""Ray marching in Triton: the samples of :func:`nerfkit.ops._ref.march_rays.march_rays_ref`, bit for bit.

One lane per ray marches its candidate intervals of the global step grid in order and keeps the ones
whose midpoint lies in ``[t_near, t_far)`` and in an occupied cell, at most ``max_samples``. Two
launches: the first counts each ray's samples, an exclusive prefix sum places them, the second
writes them. Everything stays in registers; the reference instead materialises every candidate.
Floating-point contraction (FMA) is disabled so each expression rounds as in the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._ref.march_rays import grid_frame, grid_resolution


@triton.jit
def _march_kernel(o_ptr, d_ptr, tn_ptr, tf_ptr, u_ptr, klo_ptr, khi_ptr, g_ptr, bits_ptr,
                  cx, cy, cz, hx, hy, hz, outer, n_rays, max_samples,
                  count_ptr, start_ptr, ray_out, ts_out, te_out,
                  RES: tl.constexpr, N_CASC: tl.constexpr, WRITE: tl.constexpr, BLOCK: tl.constexpr):
    r = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = r < n_rays
    ox = tl.load(o_ptr + r * 3, mask=live, other=0.0)
    oy = tl.load(o_ptr + r * 3 + 1, mask=live, other=0.0)
    oz = tl.load(o_ptr + r * 3 + 2, mask=live, other=0.0)
    dx = tl.load(d_ptr + r * 3, mask=live, other=0.0)
    dy = tl.load(d_ptr + r * 3 + 1, mask=live, other=0.0)
    dz = tl.load(d_ptr + r * 3 + 2, mask=live, other=0.0)
    tn = tl.load(tn_ptr + r, mask=live, other=0.0)
    tf = tl.load(tf_ptr + r, mask=live, other=0.0)
    u = tl.load(u_ptr + r, mask=live, other=0.0)
    k = tl.load(klo_ptr + r, mask=live, other=0)
    k_hi = tl.load(khi_ptr + r, mask=live, other=0)
    if WRITE:
        base = tl.load(start_ptr + r, mask=live, other=0)
    n_kept = tl.zeros([BLOCK], dtype=tl.int64)
    active = live & (tf > tn) & (k < k_hi) & (n_kept < max_samples)
    half_res = RES * 0.5
    while tl.max(active.to(tl.int32), axis=0) > 0:
        g0 = tl.load(g_ptr + k, mask=active, other=0.0)
        g1 = tl.load(g_ptr + k + 1, mask=active, other=0.0)
        g2 = tl.load(g_ptr + k + 2, mask=active, other=0.0)
        s0 = g0 + u * (g1 - g0)
        s1 = g1 + u * (g2 - g1)
        m = (s0 + s1) * 0.5
        qx = (ox + m * dx - cx) * hx
        qy = (oy + m * dy - cy) * hy
        qz = (oz + m * dz - cz) * hz
        a = tl.maximum(tl.maximum(tl.abs(qx), tl.abs(qy)), tl.abs(qz))
        casc = tl.zeros([BLOCK], dtype=tl.int64)
        scale = tl.full([BLOCK], 1.0, tl.float32)
        thr = 1.0
        for j in tl.static_range(N_CASC):  # c = #{j : a >= 2^j}; scale = 2^-min(c, N_CASC - 1), exact
            above = a >= thr
            casc += above.to(tl.int64)
            if j < N_CASC - 1:
                scale = tl.where(above, scale * 0.5, scale)
            thr = thr * 2.0
        inside = a < outer  # False for NaN too
        ix = tl.minimum(tl.maximum(tl.floor((qx * scale + 1.0) * half_res), 0.0), RES - 1.0).to(tl.int64)
        iy = tl.minimum(tl.maximum(tl.floor((qy * scale + 1.0) * half_res), 0.0), RES - 1.0).to(tl.int64)
        iz = tl.minimum(tl.maximum(tl.floor((qz * scale + 1.0) * half_res), 0.0), RES - 1.0).to(tl.int64)
        idx = ((casc * RES + ix) * RES + iy) * RES + iz
        look = active & inside
        byte = tl.load(bits_ptr + (idx >> 3), mask=look, other=0).to(tl.int64)
        occupied = ((byte >> (idx & 7)) & 1) != 0
        keep = look & occupied & (m >= tn) & (m < tf)
        if WRITE:
            at = base + n_kept
            tl.store(ray_out + at, r.to(tl.int64), mask=keep)
            tl.store(ts_out + at, s0, mask=keep)
            tl.store(te_out + at, s1, mask=keep)
        n_kept += keep.to(tl.int64)
        k += 1
        active = active & (k < k_hi) & (n_kept < max_samples)
    if not WRITE:
        tl.store(count_ptr + r, n_kept, mask=live)


BLOCK = 64


def march_rays_triton(origins, dirs, t_near, t_far, bitfield, aabb, offsets, table, max_samples: int,
                      return_overflow: bool = False):
    """Same arguments and results as :func:`march_rays_ref` (tensors on one device, float32; ``aabb`` may
    be on the CPU). With ``return_overflow``: ``(results, overflow)``, where ``overflow`` tells that some
    ray reaches past ``table[-3]`` (its samples are then cut short: rebuild the table and march again);
    the flag is read in the same host sync as the sample count."""
    dev = origins.device
    n = origins.shape[0]
    n_casc, res = bitfield.shape[0], grid_resolution(bitfield)
    g = table.to(device=dev, dtype=torch.float32).contiguous()
    tn, tf = t_near.contiguous(), t_far.contiguous()
    k_lo = (torch.searchsorted(g, tn, right=True) - 2).clamp_min(0)
    k_hi = torch.searchsorted(g, tf, right=False).clamp_max(max(g.numel() - 3, 0))  # never read past the table
    over = ((tf > g[-3]) & (tf > tn)).any() if n > 0 and g.numel() >= 3 else torch.zeros((), dtype=torch.bool,
                                                                                          device=dev)
    centre, inv_half = grid_frame(aabb.detach().cpu())  # float32, as the reference computes them
    args = (origins.contiguous(), dirs.contiguous(), tn, tf, offsets.contiguous(), k_lo, k_hi, g,
            bitfield.contiguous(), *centre.tolist(), *inv_half.tolist(), float(2 ** (n_casc - 1)), n,
            int(max_samples))
    grid = (triton.cdiv(max(n, 1), BLOCK),)
    counts = torch.zeros(n, dtype=torch.int64, device=dev)
    empty_i = torch.empty(0, dtype=torch.int64, device=dev)
    empty_f = torch.empty(0, dtype=torch.float32, device=dev)
    opts = dict(RES=res, N_CASC=n_casc, BLOCK=BLOCK, enable_fp_fusion=False)
    if n > 0:
        _march_kernel[grid](*args, counts, empty_i, empty_i, empty_f, empty_f, WRITE=False, **opts)
    ends = torch.cumsum(counts, 0)
    total, overflow = 0, False
    if n > 0:
        total, overflow = torch.stack([ends[-1], over.to(ends.dtype)]).tolist()
        if overflow and return_overflow:
            return (None, None, None), True
    ray_indices = torch.empty(total, dtype=torch.int64, device=dev)
    t_starts = torch.empty(total, dtype=torch.float32, device=dev)
    t_ends = torch.empty(total, dtype=torch.float32, device=dev)
    if total > 0:
        _march_kernel[grid](*args, counts, ends - counts, ray_indices, t_starts, t_ends, WRITE=True, **opts)
    if return_overflow:
        return (ray_indices, t_starts, t_ends), bool(overflow)
    return ray_indices, t_starts, t_ends
