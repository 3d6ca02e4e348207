"""Frequency (positional) encoding of vanilla NeRF (Mildenhall et al. 2020).

For an input ``x`` [..., D] and ``n_freqs`` frequencies, the output is

    [x, sin(2^0 x), cos(2^0 x), sin(2^1 x), cos(2^1 x), ..., sin(2^(n-1) x), cos(2^(n-1) x)]

concatenated along the last axis, each entry a D-vector (D = 3 for points and directions), so the
output has ``D * (include_input + 2 * n_freqs)`` channels. There is no factor of pi: like
nerf-pytorch, the caller's scene scale decides the lowest frequency.
"""

from __future__ import annotations

import torch
from torch import nn


class FrequencyEncoding(nn.Module):
    """``x`` [..., in_dim] -> [..., out_dim], ``out_dim = in_dim * (include_input + 2 * n_freqs)``."""

    def __init__(self, n_freqs: int, include_input: bool = True, in_dim: int = 3) -> None:
        super().__init__()
        if n_freqs < 0:
            raise ValueError(f"n_freqs must be >= 0, got {n_freqs}")
        self.n_freqs = int(n_freqs)
        self.include_input = bool(include_input)
        self.in_dim = int(in_dim)
        # [n_freqs] powers of two; a buffer so it follows the module's device and dtype
        self.register_buffer("freqs", 2.0 ** torch.arange(self.n_freqs, dtype=torch.float32), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.in_dim * (int(self.include_input) + 2 * self.n_freqs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., in_dim] -> [..., out_dim] in the order documented in the module docstring."""
        parts = [x] if self.include_input else []
        if self.n_freqs > 0:
            scaled = x.unsqueeze(-2) * self.freqs.to(x.dtype).unsqueeze(-1)  # [..., n_freqs, in_dim]
            # interleave per frequency: [sin(2^k x), cos(2^k x)] -> [..., n_freqs, 2, in_dim]
            sc = torch.stack([torch.sin(scaled), torch.cos(scaled)], dim=-2)
            parts.append(sc.flatten(-3))
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"n_freqs={self.n_freqs}, include_input={self.include_input}, in_dim={self.in_dim}"
