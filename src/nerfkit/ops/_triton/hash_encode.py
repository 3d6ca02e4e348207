"""Multiresolution hash encoding in Triton: :func:`nerfkit.ops._ref.hash_encode.hash_encode_ref` for CUDA tensors.

Forward and table backward run one program per (block of points, level): the 8 corner rows are
found in registers (dense rows, or the XOR hash in wrapping uint32 arithmetic, which equals the
reference's int64-and-mask), the features gathered and blended in the reference's order (corner
0..7, weights multiplied x, y, z), so without FMA the forward is bit-identical to the reference.
The table gradient is scattered with atomic adds (order-dependent rounding, like the reference's
``index_add`` on a GPU). The input gradient, needed only when ``x`` requires it, loops over the
levels in one program per block of points (no atomics).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _corner(x_ptr, res_ptr, p, live, l, T):
    """Per point: scaled cell coordinates, fractions and the level's constants."""
    R = tl.load(res_ptr + l)
    Rf = R.to(tl.float32)
    px = tl.minimum(tl.maximum(tl.load(x_ptr + 3 * p, mask=live, other=0.0), 0.0), 1.0) * Rf
    py = tl.minimum(tl.maximum(tl.load(x_ptr + 3 * p + 1, mask=live, other=0.0), 0.0), 1.0) * Rf
    pz = tl.minimum(tl.maximum(tl.load(x_ptr + 3 * p + 2, mask=live, other=0.0), 0.0), 1.0) * Rf
    cx = tl.minimum(tl.maximum(tl.floor(px).to(tl.int64), 0), R - 1)
    cy = tl.minimum(tl.maximum(tl.floor(py).to(tl.int64), 0), R - 1)
    cz = tl.minimum(tl.maximum(tl.floor(pz).to(tl.int64), 0), R - 1)
    fx = px - cx.to(tl.float32)
    fy = py - cy.to(tl.float32)
    fz = pz - cz.to(tl.float32)
    side = R + 1
    dense = side * side * side <= T
    return cx, cy, cz, fx, fy, fz, side, dense, Rf


@triton.jit
def _row(cx, cy, cz, bx: tl.constexpr, by: tl.constexpr, bz: tl.constexpr, side, dense, T):
    vx = cx + bx
    vy = cy + by
    vz = cz + bz
    dense_row = vx + vy * side + vz * side * side
    h = (vx.to(tl.uint32) * 1) ^ (vy.to(tl.uint32) * 2654435761) ^ (vz.to(tl.uint32) * 805459861)
    hashed = (h % T.to(tl.uint32)).to(tl.int64)
    return tl.where(dense, dense_row, hashed)


@triton.jit
def _weight(fx, fy, fz, bx: tl.constexpr, by: tl.constexpr, bz: tl.constexpr):
    wx = fx if bx else 1.0 - fx
    wy = fy if by else 1.0 - fy
    wz = fz if bz else 1.0 - fz
    return wx * wy * wz


@triton.jit
def _fwd_kernel(x_ptr, table_ptr, res_ptr, out_ptr, n, T, L, F: tl.constexpr, BLOCK: tl.constexpr):
    l = tl.program_id(1)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = p < n
    cx, cy, cz, fx, fy, fz, side, dense, Rf = _corner(x_ptr, res_ptr, p, live, l, T)
    f = tl.arange(0, F)
    acc = tl.zeros([BLOCK, F], dtype=tl.float32)
    base = tl.cast(l, tl.int64) * T
    for c in tl.static_range(8):
        row = _row(cx, cy, cz, c & 1, (c >> 1) & 1, (c >> 2) & 1, side, dense, T)
        w = _weight(fx, fy, fz, c & 1, (c >> 1) & 1, (c >> 2) & 1)
        feats = tl.load(table_ptr + (base + row)[:, None] * F + f[None, :], mask=live[:, None], other=0.0)
        acc = acc + w[:, None] * feats
    tl.store(out_ptr + p.to(tl.int64)[:, None] * (L * F) + l * F + f[None, :], acc, mask=live[:, None])


@triton.jit
def _bwd_table_kernel(x_ptr, g_ptr, res_ptr, gt_ptr, n, T, L, F: tl.constexpr, BLOCK: tl.constexpr):
    l = tl.program_id(1)
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = p < n
    cx, cy, cz, fx, fy, fz, side, dense, Rf = _corner(x_ptr, res_ptr, p, live, l, T)
    f = tl.arange(0, F)
    g = tl.load(g_ptr + p.to(tl.int64)[:, None] * (L * F) + l * F + f[None, :], mask=live[:, None], other=0.0)
    base = tl.cast(l, tl.int64) * T
    for c in tl.static_range(8):
        row = _row(cx, cy, cz, c & 1, (c >> 1) & 1, (c >> 2) & 1, side, dense, T)
        w = _weight(fx, fy, fz, c & 1, (c >> 1) & 1, (c >> 2) & 1)
        tl.atomic_add(gt_ptr + (base + row)[:, None] * F + f[None, :], w[:, None] * g, mask=live[:, None])


@triton.jit
def _bwd_x_kernel(x_ptr, table_ptr, g_ptr, res_ptr, gx_ptr, n, T, L, F: tl.constexpr, BLOCK: tl.constexpr):
    p = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = p < n
    f = tl.arange(0, F)
    gx = tl.zeros([BLOCK], dtype=tl.float32)
    gy = tl.zeros([BLOCK], dtype=tl.float32)
    gz = tl.zeros([BLOCK], dtype=tl.float32)
    for l in range(L):
        cx, cy, cz, fx, fy, fz, side, dense, Rf = _corner(x_ptr, res_ptr, p, live, l, T)
        g = tl.load(g_ptr + p.to(tl.int64)[:, None] * (L * F) + l * F + f[None, :], mask=live[:, None], other=0.0)
        base = tl.cast(l, tl.int64) * T
        lx = tl.zeros([BLOCK], dtype=tl.float32)
        ly = tl.zeros([BLOCK], dtype=tl.float32)
        lz = tl.zeros([BLOCK], dtype=tl.float32)
        for c in tl.static_range(8):
            bx: tl.constexpr = c & 1
            by: tl.constexpr = (c >> 1) & 1
            bz: tl.constexpr = (c >> 2) & 1
            row = _row(cx, cy, cz, bx, by, bz, side, dense, T)
            feats = tl.load(table_ptr + (base + row)[:, None] * F + f[None, :], mask=live[:, None], other=0.0)
            s = tl.sum(feats * g, axis=1)  # dL/d(corner weight)
            wx = fx if bx else 1.0 - fx
            wy = fy if by else 1.0 - fy
            wz = fz if bz else 1.0 - fz
            sx = 1.0 if bx else -1.0
            sy = 1.0 if by else -1.0
            sz = 1.0 if bz else -1.0
            lx += s * (sx * wy * wz)
            ly += s * (wx * sy * wz)
            lz += s * (wx * wy * sz)
        gx += lx * Rf
        gy += ly * Rf
        gz += lz * Rf
    # clamp onto the cube: the gradient passes where 0 <= x <= 1 (torch.clamp's rule)
    for d in tl.static_range(3):
        xd = tl.load(x_ptr + 3 * p + d, mask=live, other=0.0)
        gd = gx if d == 0 else (gy if d == 1 else gz)
        tl.store(gx_ptr + 3 * p + d, tl.where((xd >= 0.0) & (xd <= 1.0), gd, 0.0), mask=live)


BLOCK = 128


def supported(x: torch.Tensor, table: torch.Tensor) -> bool:
    """Float32 CUDA tensors and a power-of-two feature count (Triton block shapes are powers of two)."""
    n_feat = table.shape[-1]
    return (x.is_cuda and table.is_cuda and x.dtype == torch.float32 and table.dtype == torch.float32
            and n_feat > 0 and n_feat & (n_feat - 1) == 0)


def hash_encode_fwd_triton(x: torch.Tensor, table: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """[N, L*F] features of contiguous ``x`` [N, 3] and ``table`` [L, T, F]; ``res`` int64 [L]."""
    n_levels, table_size, n_feat = table.shape
    n = x.shape[0]
    out = torch.empty(n, n_levels * n_feat, device=x.device, dtype=torch.float32)
    if n > 0:
        _fwd_kernel[(triton.cdiv(n, BLOCK), n_levels)](x, table, res, out, n, table_size, n_levels, F=n_feat,
                                                       BLOCK=BLOCK, enable_fp_fusion=False)
    return out


def hash_encode_bwd_table_triton(x, grad_out, res, table_shape) -> torch.Tensor:
    """Dense table gradient [L, T, F] (scatter of the corner weights times ``grad_out`` [N, L*F])."""
    n_levels, table_size, n_feat = table_shape
    n = x.shape[0]
    grad_table = torch.zeros(table_shape, device=x.device, dtype=torch.float32)
    if n > 0:
        _bwd_table_kernel[(triton.cdiv(n, BLOCK), n_levels)](x, grad_out, res, grad_table, n, table_size, n_levels,
                                                             F=n_feat, BLOCK=BLOCK, enable_fp_fusion=False)
    return grad_table


def hash_encode_bwd_x_triton(x, table, grad_out, res) -> torch.Tensor:
    """Input gradient [N, 3] (zero where a coordinate was clamped onto the cube)."""
    n_levels, table_size, n_feat = table.shape
    n = x.shape[0]
    grad_x = torch.empty_like(x)
    if n > 0:
        _bwd_x_kernel[(triton.cdiv(n, BLOCK),)](x, table, grad_out, res, grad_x, n, table_size, n_levels,
                                                F=n_feat, BLOCK=BLOCK, enable_fp_fusion=False)
    return grad_x
