"""Real spherical-harmonics encoding of view directions (as used by instant-ngp).

``SHEncoding(degree)`` maps unit directions ``d = (x, y, z)`` [..., 3] to the ``degree**2`` real
spherical harmonics of bands l = 0 .. degree-1, ordered by band and, within a band, by m = -l .. l.

Basis: the orthonormal real harmonics with the Condon-Shortley phase, i.e. the usual real
harmonics (``Y_l^m ∝ P_l^|m|(z) * cos(m phi)`` for m > 0, ``sin(|m| phi)`` for m < 0, with ``phi`` the
azimuth in the xy-plane) multiplied by ``(-1)^m``. So band 1 is ``c * (-y, z, -x)``, as in instant-ngp /
tiny-cuda-nn. Normalisation: ``∫_{S^2} Y_i Y_j dΩ = δ_ij``, hence over uniformly distributed unit
directions ``E[Y_i Y_j] = δ_ij / (4 pi)``.

Unlike tiny-cuda-nn (whose input is ``(d + 1) / 2`` in [0, 1]^3), the input here is the unit
direction itself, components in [-1, 1]. Directions are not re-normalised; pass unit vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MAX_DEGREE = 5

_PI = math.pi
# Normalisation constants, written as closed forms (band l, then |m|).
_C0 = 0.5 * math.sqrt(1.0 / _PI)
_C1 = math.sqrt(3.0 / (4.0 * _PI))
_C2 = (0.5 * math.sqrt(15.0 / _PI), 0.25 * math.sqrt(5.0 / _PI), 0.25 * math.sqrt(15.0 / _PI))
_C3 = (
    0.25 * math.sqrt(35.0 / (2.0 * _PI)),  # |m| = 3
    0.5 * math.sqrt(105.0 / _PI),  # |m| = 2, xyz term
    0.25 * math.sqrt(21.0 / (2.0 * _PI)),  # |m| = 1
    0.25 * math.sqrt(7.0 / _PI),  # m = 0
    0.25 * math.sqrt(105.0 / _PI),  # |m| = 2, z (x^2 - y^2) term
)
_C4 = (
    0.75 * math.sqrt(35.0 / _PI),  # m = -4
    0.75 * math.sqrt(35.0 / (2.0 * _PI)),  # |m| = 3
    0.75 * math.sqrt(5.0 / _PI),  # m = -2
    0.75 * math.sqrt(5.0 / (2.0 * _PI)),  # |m| = 1
    (3.0 / 16.0) * math.sqrt(1.0 / _PI),  # m = 0
    (3.0 / 8.0) * math.sqrt(5.0 / _PI),  # m = 2
    (3.0 / 16.0) * math.sqrt(35.0 / _PI),  # m = 4
)


def spherical_harmonics(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Real SH basis of unit directions ``dirs`` [..., 3] -> [..., degree**2] (see module docstring)."""
    if not 1 <= degree <= MAX_DEGREE:
        raise ValueError(f"SH degree must be in 1..{MAX_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree > 1:  # band 1, m = -1, 0, 1
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree > 2:  # band 2
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            -_C2[0] * y * z,
            _C2[1] * (3.0 * zz - 1.0),
            -_C2[0] * x * z,
            _C2[2] * (xx - yy),
        ]
    if degree > 3:  # band 3
        out += [
            -_C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            -_C3[2] * y * (5.0 * zz - 1.0),
            _C3[3] * z * (5.0 * zz - 3.0),
            -_C3[2] * x * (5.0 * zz - 1.0),
            _C3[4] * z * (xx - yy),
            -_C3[0] * x * (xx - 3.0 * yy),
        ]
    if degree > 4:  # band 4
        out += [
            _C4[0] * x * y * (xx - yy),
            -_C4[1] * y * z * (3.0 * xx - yy),
            _C4[2] * x * y * (7.0 * zz - 1.0),
            -_C4[3] * y * z * (7.0 * zz - 3.0),
            _C4[4] * (35.0 * zz * zz - 30.0 * zz + 3.0),
            -_C4[3] * x * z * (7.0 * zz - 3.0),
            _C4[5] * (xx - yy) * (7.0 * zz - 1.0),
            -_C4[1] * x * z * (xx - 3.0 * yy),
            _C4[6] * (xx * (xx - 3.0 * yy) - yy * (3.0 * xx - yy)),
        ]
    return torch.stack(out, dim=-1)


class SHEncoding(nn.Module):
    """``dirs`` [..., 3] unit directions -> [..., degree**2] real SH values; ``degree=4`` gives 16."""

    def __init__(self, degree: int = 4) -> None:
        super().__init__()
        if not 1 <= degree <= MAX_DEGREE:
            raise ValueError(f"SH degree must be in 1..{MAX_DEGREE}, got {degree}")
        self.degree = int(degree)

    @property
    def out_dim(self) -> int:
        return self.degree**2

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(dirs, self.degree)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"
