"""Multiresolution hash encoding (Müller et al. 2022, "Instant Neural Graphics Primitives").

This pure-PyTorch module is the specification; fast backends are tested against it.

Definition. Points ``x`` [N, 3] in the unit cube [0, 1]^3 (callers normalise from the scene box;
coordinates outside are clamped onto the cube). The table ``table`` [L, T, F] holds, per level l,
T feature vectors of length F. Level l has resolution R_l (``resolutions[l]``, an int >= 1):

1. scale: ``p = x * R_l``, so the cube spans R_l cells and R_l + 1 vertices per axis, vertex 0
   at x = 0 and vertex R_l at x = 1 (the paper's convention; tiny-cuda-nn instead uses
   ``x * (R_l - 1) + 0.5``, a half-cell shift, so its tables are not interchangeable with ours);
2. cell: ``c = clamp(floor(p), 0, R_l - 1)`` (int), fraction ``w = p - c`` in [0, 1]
   (a point on the far face x = 1 lies in the last cell with w = 1);
3. the 8 corners ``v = c + b``, b in {0, 1}^3, are mapped to table rows by
   - dense indexing ``v_x + v_y (R_l+1) + v_z (R_l+1)^2`` when the level fits the table,
     i.e. ``(R_l + 1)^3 <= T`` (no collisions; rows past (R_l+1)^3 are unused);
   - otherwise the spatial hash ``(v_x * 1 XOR v_y * 2654435761 XOR v_z * 805459861) mod 2^32 mod T``
     (uint32 wrap-around, emulated in int64 with ``& 0xFFFFFFFF``);
4. trilinear interpolation: ``sum_b prod_d (w_d if b_d else 1 - w_d) * table[l, row(v)]``.

The output [N, L*F] is level-major: channels ``l*F .. l*F + F - 1`` belong to level l.

Gradients flow to ``table`` (scatter-add of the corner weights) and to ``x`` through the
fractions ``w`` (piecewise-smooth; zero outside the cube, undefined on cell faces).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# Primes of the spatial hash (one per axis), as in the paper.
HASH_PRIMES = (1, 2654435761, 805459861)
_UINT32_MASK = 0xFFFFFFFF


def as_resolution_tensor(resolutions: torch.Tensor | Sequence[int], device: torch.device) -> torch.Tensor:
    """``resolutions`` (tensor or sequence) [L] -> int64 tensor [L] on ``device``."""
    return torch.as_tensor(resolutions, dtype=torch.int64, device=device).reshape(-1)


def dense_level_mask(resolutions: torch.Tensor, table_size: int) -> torch.Tensor:
    """[L] bool: True where level l is indexed densely, i.e. ``(R_l + 1)^3 <= T``."""
    return (resolutions + 1) ** 3 <= table_size


def corner_rows(
    corner: torch.Tensor, resolutions: torch.Tensor, dense: torch.Tensor, table_size: int
) -> torch.Tensor:
    """Table rows of integer grid vertices.

    ``corner`` [..., L, 3] int64 vertex coordinates, ``resolutions`` [L] int64, ``dense`` [L] bool.
    Returns [..., L] int64 rows in [0, T).
    """
    vx, vy, vz = corner.unbind(-1)
    side = resolutions + 1  # vertices per axis, [L]
    dense_row = vx + vy * side + vz * side * side
    hashed = (vx * HASH_PRIMES[0]) ^ (vy * HASH_PRIMES[1]) ^ (vz * HASH_PRIMES[2])
    hashed = (hashed & _UINT32_MASK) % table_size
    return torch.where(dense, dense_row, hashed)


def hash_encode_ref(
    x: torch.Tensor, table: torch.Tensor, resolutions: torch.Tensor | Sequence[int]
) -> torch.Tensor:
    """Reference multiresolution hash encoding.

    Args:
        x: [N, 3] points in [0, 1]^3 (clamped onto the cube), any float dtype.
        table: [L, T, F] feature table (same dtype as ``x``).
        resolutions: [L] ints, the grid resolution R_l of each level.

    Returns:
        [N, L*F] features, level-major. Differentiable w.r.t. ``table`` and ``x``.
    """
    n_levels, table_size, n_feat = table.shape
    res = as_resolution_tensor(resolutions, x.device)
    if res.numel() != n_levels:
        raise ValueError(f"resolutions has {res.numel()} entries but table has {n_levels} levels")
    dense = dense_level_mask(res, table_size)

    pos = x.clamp(0.0, 1.0).unsqueeze(-2) * res.to(x.dtype).unsqueeze(-1)  # [N, L, 3]
    cell = pos.detach().floor().to(torch.int64)
    cell = torch.minimum(cell.clamp_min(0), (res - 1).unsqueeze(-1))  # [N, L, 3]
    frac = pos - cell.to(x.dtype)  # [N, L, 3], carries the gradient w.r.t. x

    flat_table = table.reshape(n_levels * table_size, n_feat)
    level_base = torch.arange(n_levels, device=x.device, dtype=torch.int64) * table_size  # [L]
    out = x.new_zeros(x.shape[0], n_levels, n_feat)
    for corner_id in range(8):
        bits = [(corner_id >> d) & 1 for d in range(3)]
        offset = torch.tensor(bits, device=x.device, dtype=torch.int64)
        rows = corner_rows(cell + offset, res, dense, table_size) + level_base  # [N, L]
        weight = torch.ones_like(frac[..., 0])
        for d in range(3):
            weight = weight * (frac[..., d] if bits[d] else 1.0 - frac[..., d])
        feats = flat_table.index_select(0, rows.reshape(-1)).reshape(rows.shape + (n_feat,))
        out = out + weight.unsqueeze(-1) * feats
    return out.reshape(x.shape[0], n_levels * n_feat)
