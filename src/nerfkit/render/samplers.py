"""Samplers along rays: stratified (uniform bins with jitter) and inverse-CDF importance sampling."""

from __future__ import annotations

import torch


def stratified(
    near: torch.Tensor, far: torch.Tensor, n_samples: int, jitter: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bin edges split [near, far] into ``n_samples`` equal bins; one sample per bin.

    ``near, far``: [N]. Returns sample distances t [N, S], sorted. With ``jitter`` each sample is
    uniform in its bin, otherwise at the bin centre.
    """
    n = near.shape[0]
    u = torch.linspace(0.0, 1.0, n_samples + 1, device=near.device, dtype=near.dtype)
    lo, hi = u[:-1], u[1:]
    if jitter:
        r = torch.rand(n, n_samples, device=near.device, dtype=near.dtype, generator=generator)
    else:
        r = torch.full((n, n_samples), 0.5, device=near.device, dtype=near.dtype)
    frac = lo + (hi - lo) * r
    return near[:, None] + (far - near)[:, None] * frac


def intervals(t: torch.Tensor, far: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interval lengths for point samples t [N, S]: delta_i = t_{i+1} - t_i, last one runs to ``far``.

    Returns (t, deltas), both [N, S]. (nerf-pytorch uses 1e10 for the last interval; running to the
    far bound keeps the last sample's opacity finite and is what the compositing tests assume.)
    """
    deltas = torch.cat([t[:, 1:] - t[:, :-1], (far[:, None] - t[:, -1:]).clamp_min(1e-4)], dim=-1)
    return t, deltas


def sample_pdf(
    bins: torch.Tensor, weights: torch.Tensor, n_samples: int, deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Inverse-CDF sampling of a piecewise-constant pdf.

    ``bins``: [N, B+1] edges; ``weights``: [N, B] non-negative (need not be normalised).
    Returns [N, n_samples] distances, sorted, distributed with density proportional to weights/bin width.
    Gradients do not flow through the samples.
    """
    weights = weights.detach() + 1e-5  # keep every bin reachable, avoid 0/0
    pdf = weights / weights.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # [N, B+1]
    cdf[:, -1] = 1.0
    n = bins.shape[0]
    if deterministic:
        u = torch.linspace(0.0, 1.0, n_samples + 2, device=bins.device, dtype=bins.dtype)[1:-1].expand(n, n_samples)
    else:
        u = torch.rand(n, n_samples, device=bins.device, dtype=bins.dtype, generator=generator)
        u, _ = u.sort(-1)
    u = u.contiguous()
    idx = torch.searchsorted(cdf, u, right=True)
    below = (idx - 1).clamp(0, cdf.shape[-1] - 1)
    above = idx.clamp(0, cdf.shape[-1] - 1)
    cdf_lo, cdf_hi = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_lo, bin_hi = bins.gather(-1, below), bins.gather(-1, above)
    denom = cdf_hi - cdf_lo
    frac = torch.where(denom < 1e-8, torch.zeros_like(denom), (u - cdf_lo) / denom.clamp_min(1e-8))
    return (bin_lo + frac * (bin_hi - bin_lo)).detach()
