"""Packed volume-rendering weights: the pure-PyTorch specification.

Packed samples are flat [M] arrays with ``ray_indices`` [M] sorted (non-decreasing): the samples
of one ray are contiguous and ordered by distance. For sample i of a ray, with optical thickness
``tau_i = sigma_i delta_i``::

    T_i = exp(-sum_{j<i, same ray} tau_j)      (transmittance in front of the sample)
    w_i = T_i (1 - exp(-tau_i))                 if T_i >= min_transmittance, else 0

``min_transmittance`` (early termination, 1e-4 in instant-ngp and nerfacc) zeroes the weights of
samples behind an almost opaque prefix; the mask is a constant for differentiation.

The per-ray exclusive sums are taken from one global cumulative sum in float64 (minus the value
at each ray's first sample), so the subtraction loses nothing even for millions of samples.
"""

from __future__ import annotations

import torch


def segment_starts(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Index of the first packed sample of each ray, int64 [n_rays] (empty rays: the next start)."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    return torch.cumsum(counts, 0) - counts


def weights_packed_ref(
    sigmas: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor, n_rays: int,
    min_transmittance: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights w [M] and transmittance T [M] of packed samples (see the module docstring).

    ``sigmas, deltas``: [M] (any float dtype; differentiable); ``ray_indices``: int64 [M] sorted.
    The transmittance is returned unmasked.
    """
    tau = sigmas * deltas
    if tau.numel() == 0:
        return tau, tau
    tau64 = tau.to(torch.float64)
    excl = torch.cumsum(tau64, 0) - tau64  # global exclusive sum
    starts = segment_starts(ray_indices, n_rays).clamp_max(tau.numel() - 1)
    trans = torch.exp(-(excl - excl[starts][ray_indices])).to(tau.dtype)
    alphas = -torch.expm1(-tau)
    w = trans * alphas
    if min_transmittance > 0:
        w = torch.where(trans.detach() >= min_transmittance, w, torch.zeros_like(w))
    return w, trans


def accumulate_packed_ref(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Sum packed per-sample values [M, ...] into per-ray values [n_rays, ...]."""
    out = torch.zeros((n_rays,) + values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add(0, ray_indices, values)


def composite_packed_ref(
    sigmas: torch.Tensor, rgbs: torch.Tensor, t_mid: torch.Tensor, deltas: torch.Tensor,
    ray_indices: torch.Tensor, n_rays: int, background: torch.Tensor | None = None,
    min_transmittance: float = 0.0,
) -> dict[str, torch.Tensor]:
    """Render packed samples: rgb [n_rays, 3], opacity [n_rays], depth [n_rays] (sum w t),
    weights [M], transmittance [M]. ``rgbs``: [M, 3]; ``background``: [n_rays, 3] or [3] or None."""
    w, trans = weights_packed_ref(sigmas, deltas, ray_indices, n_rays, min_transmittance)
    opacity = accumulate_packed_ref(w, ray_indices, n_rays)
    rgb = accumulate_packed_ref(w[:, None] * rgbs, ray_indices, n_rays)
    if background is not None:
        rgb = rgb + (1.0 - opacity[:, None]) * background
    depth = accumulate_packed_ref(w * t_mid, ray_indices, n_rays)
    return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": w, "transmittance": trans}
