"""Multiresolution hash-grid encoding module (instant-ngp), over :func:`nerfkit.ops.hash_encode`."""

from __future__ import annotations

import torch
from torch import nn

from nerfkit.ops.hash_encode import hash_encode, hash_grid_resolutions


class HashGridEncoding(nn.Module):
    """Points [..., 3] in the unit cube -> [..., n_levels * n_features] learned features.

    Holds the table as a float32 ``nn.Parameter`` [L, T, F] with ``T = 2**log2_table_size``,
    initialised uniform(-init_scale, init_scale). Level l has resolution
    ``floor(min_resolution * b**l)`` with b chosen so the last level is ``max_resolution``
    (callers multiply the resolutions by the scene scale). Inputs must already be normalised
    from the scene box to [0, 1]^3; values outside are clamped onto the cube.
    Output channels are level-major (see :func:`nerfkit.ops.hash_encode`).

    The table gradient is dense (same shape as the table). ``backend`` is passed to
    ``hash_encode`` ("auto" picks the C++ kernel for float32 CPU tensors).
    """

    def __init__(
        self,
        n_levels: int = 16,
        n_features: int = 2,
        log2_table_size: int = 19,
        min_resolution: int = 16,
        max_resolution: int = 2048,
        init_scale: float = 1e-4,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.n_levels = int(n_levels)
        self.n_features = int(n_features)
        self.table_size = 2 ** int(log2_table_size)
        self.min_resolution = int(min_resolution)
        self.max_resolution = int(max_resolution)
        self.backend = backend
        res = hash_grid_resolutions(self.n_levels, self.min_resolution, self.max_resolution)
        # [L] int64; derived from the config, so not saved in the state dict
        self.register_buffer("resolutions", torch.tensor(res, dtype=torch.int64), persistent=False)
        table = torch.empty(self.n_levels, self.table_size, self.n_features, dtype=torch.float32)
        self.table = nn.Parameter(table.uniform_(-init_scale, init_scale))

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` [..., 3] in [0, 1]^3 -> [..., L*F]."""
        lead = x.shape[:-1]
        feats = hash_encode(x.reshape(-1, 3), self.table, self.resolutions, backend=self.backend)
        return feats.reshape(*lead, self.out_dim)

    def extra_repr(self) -> str:
        return (
            f"n_levels={self.n_levels}, n_features={self.n_features}, table_size={self.table_size}, "
            f"resolutions={self.min_resolution}..{self.max_resolution}, backend={self.backend!r}"
        )
