"""Volume rendering (emission-absorption compositing) for batched and packed samples.

For samples i along a ray with density sigma_i over interval length delta_i:
  alpha_i = 1 - exp(-sigma_i delta_i),  T_i = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j),
  w_i = T_i alpha_i,  opacity = sum_i w_i = 1 - T_final,  colour = sum_i w_i c_i,  depth = sum_i w_i t_i.
Compositing over a background b: colour + (1 - opacity) b.

Batched samples have shape [N, S]. Packed samples are a flat [M] list with ``ray_indices`` [M]
(sorted, non-decreasing: samples of one ray are contiguous and in order of distance).
"""

from __future__ import annotations

import torch

from nerfkit.ops import composite as ops_composite


def weights_batched(sigmas: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and transmittance for batched samples.

    ``sigmas, deltas``: [N, S]. Returns weights [N, S] and transmittance before each sample [N, S].
    """
    tau = sigmas * deltas  # optical thickness of each interval
    # exclusive cumulative sum: thickness in front of each sample
    acc = torch.cumsum(tau, dim=-1)
    trans = torch.exp(-torch.cat([torch.zeros_like(acc[..., :1]), acc[..., :-1]], dim=-1))
    alphas = 1.0 - torch.exp(-tau)
    return trans * alphas, trans


def weights_packed(
    sigmas: torch.Tensor, deltas: torch.Tensor, ray_indices: torch.Tensor, n_rays: int,
    min_transmittance: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and transmittance for packed samples.

    ``sigmas, deltas, ray_indices``: [M] (ray_indices sorted). Returns weights [M], transmittance [M].
    Samples behind a transmittance below ``min_transmittance`` get weight 0 (early termination).
    Computed by :func:`nerfkit.ops.composite.weights_packed` (fused C++ kernel on the CPU when available).
    """
    return ops_composite.weights_packed(sigmas, deltas, ray_indices, n_rays, min_transmittance)


def accumulate_packed(values: torch.Tensor, ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Sum packed per-sample values [M, ...] into per-ray values [n_rays, ...]."""
    out = torch.zeros((n_rays,) + values.shape[1:], dtype=values.dtype, device=values.device)
    return out.index_add(0, ray_indices, values)


def composite_batched(
    sigmas: torch.Tensor, rgbs: torch.Tensor, t_mid: torch.Tensor, deltas: torch.Tensor,
    background: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Render batched samples: sigmas/t_mid/deltas [N, S], rgbs [N, S, 3], background [N, 3] or None.

    Returns dict with rgb [N, 3], opacity [N], depth [N] (expected distance along the ray, with the
    missing mass placed nowhere, i.e. sum w t), weights [N, S], transmittance [N, S].
    """
    w, trans = weights_batched(sigmas, deltas)
    opacity = w.sum(-1)
    rgb = (w[..., None] * rgbs).sum(-2)
    if background is not None:
        rgb = rgb + (1.0 - opacity[..., None]) * background
    depth = (w * t_mid).sum(-1)
    return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": w, "transmittance": trans}


def composite_packed(
    sigmas: torch.Tensor, rgbs: torch.Tensor, t_mid: torch.Tensor, deltas: torch.Tensor,
    ray_indices: torch.Tensor, n_rays: int, background: torch.Tensor | None = None,
    min_transmittance: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """Render packed samples: sigmas/t_mid/deltas/ray_indices [M], rgbs [M, 3], background [n_rays, 3].

    Same outputs as :func:`composite_batched`, with weights/transmittance of shape [M]. Samples
    behind a transmittance below ``min_transmittance`` (default 1e-4, as in instant-ngp) get weight 0,
    so the result differs from :func:`composite_batched` by less than that. Computed by
    :func:`nerfkit.ops.composite.composite_packed` (fused C++ kernel on the CPU when available).
    """
    return ops_composite.composite_packed(sigmas, rgbs, t_mid, deltas, ray_indices, n_rays, background,
                                          min_transmittance)
