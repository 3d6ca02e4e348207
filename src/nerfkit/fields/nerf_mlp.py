"""The vanilla NeRF field (Mildenhall et al. 2020), laid out as nerf-pytorch.

Points: frequency encoding with 10 frequencies (input included, 63 channels) -> 8 ReLU layers of
width 256; the encoded input is concatenated again to the fifth layer's activation (skip).
Density: linear head on the last trunk layer, ReLU. Colour: a 256-d feature concatenated with the
encoded view direction (4 frequencies, 27 channels) -> one ReLU layer of 128 -> RGB (sigmoid).
"""

from __future__ import annotations

import torch
from torch import nn

from ..encodings.frequency import FrequencyEncoding


class NeRFField(nn.Module):
    """``forward(points [P, 3], dirs [P, 3]) -> (sigma [P], rgb [P, 3])``, both float32."""

    def __init__(self, n_freq_pos: int = 10, n_freq_dir: int = 4, width: int = 256, depth: int = 8,
                 skip: int = 4, width_dir: int = 128) -> None:
        super().__init__()
        self.pos_enc = FrequencyEncoding(n_freq_pos)
        self.dir_enc = FrequencyEncoding(n_freq_dir)
        pin, din = self.pos_enc.out_dim, self.dir_enc.out_dim
        self.skip = skip
        layers = []
        for i in range(depth):
            n_in = pin if i == 0 else width + (pin if i == skip + 1 else 0)
            layers.append(nn.Linear(n_in, width))
        self.trunk = nn.ModuleList(layers)
        self.sigma_head = nn.Linear(width, 1)
        self.feature = nn.Linear(width, width)
        self.dir_layer = nn.Linear(width + din, width_dir)
        self.rgb_head = nn.Linear(width_dir, 3)

    def forward(self, points: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pos_enc(points)
        h = x
        for i, layer in enumerate(self.trunk):
            if i == self.skip + 1:
                h = torch.cat([x, h], dim=-1)  # skip: re-inject the encoded point after the fifth layer
            h = torch.relu(layer(h))
        sigma = torch.relu(self.sigma_head(h)).squeeze(-1)
        feat = self.feature(h)
        g = torch.relu(self.dir_layer(torch.cat([feat, self.dir_enc(dirs).to(feat.dtype)], dim=-1)))
        rgb = torch.sigmoid(self.rgb_head(g))
        return sigma.float(), rgb.float()
