"""The Instant-NGP field (Müller et al. 2022): hash-grid features and two tiny MLPs.

Density MLP: hash features (L*F) -> 64 (ReLU) -> 16 outputs; the first, through a truncated
exponential, is the density; all 16 feed the colour MLP. Colour MLP: those 16 + the degree-4
spherical harmonics of the view direction (16) -> 64 -> 64 (ReLU) -> RGB (sigmoid). As in the
paper, the MLP layers have no biases.
"""

from __future__ import annotations

import torch
from torch import nn

from ..encodings.hash_grid import HashGridEncoding
from ..encodings.spherical_harmonics import SHEncoding


class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)): keeps early training from exploding."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


def _mlp(n_in: int, hidden: int, n_layers: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(n_layers):
        layers += [nn.Linear(d, hidden, bias=False), nn.ReLU(inplace=True)]
        d = hidden
    layers.append(nn.Linear(d, n_out, bias=False))
    return nn.Sequential(*layers)


class NGPField(nn.Module):
    """``forward(points [P, 3], dirs [P, 3]) -> (sigma [P], rgb [P, 3])``; ``density(points) -> [P]``.

    Points are in world coordinates and normalised with ``aabb`` [2, 3] to the unit cube.
    """

    def __init__(self, aabb: torch.Tensor, n_levels: int = 16, n_features: int = 2, log2_table_size: int = 19,
                 min_resolution: int = 16, max_resolution: int = 2048, hidden: int = 64, geo_features: int = 16,
                 sh_degree: int = 4) -> None:
        super().__init__()
        self.register_buffer("aabb", torch.as_tensor(aabb, dtype=torch.float32).clone())
        self.encoding = HashGridEncoding(n_levels, n_features, log2_table_size, min_resolution, max_resolution)
        self.density_mlp = _mlp(self.encoding.out_dim, hidden, 1, geo_features)
        self.dir_encoding = SHEncoding(sh_degree)
        self.color_mlp = _mlp(geo_features + self.dir_encoding.out_dim, hidden, 2, 3)

    def _normalise(self, points: torch.Tensor) -> torch.Tensor:
        return ((points - self.aabb[0]) / (self.aabb[1] - self.aabb[0])).clamp(0.0, 1.0)

    def _geometry(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.density_mlp(self.encoding(self._normalise(points)))
        return trunc_exp(h[:, 0]), h

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """[P, 3] world points -> [P] densities."""
        return self._geometry(points)[0]

    def forward(self, points: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, h = self._geometry(points)
        rgb = torch.sigmoid(self.color_mlp(torch.cat([h, self.dir_encoding(dirs)], dim=-1)))
        return sigma, rgb

    def mlp_parameters(self) -> list[nn.Parameter]:
        return list(self.density_mlp.parameters()) + list(self.color_mlp.parameters())
