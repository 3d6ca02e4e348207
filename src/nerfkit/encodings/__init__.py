"""Input encodings as nn.Modules: frequency (positional), spherical harmonics, multiresolution hash grid."""

from nerfkit.encodings.frequency import FrequencyEncoding
from nerfkit.encodings.hash_grid import HashGridEncoding
from nerfkit.encodings.spherical_harmonics import SHEncoding, spherical_harmonics

__all__ = ["FrequencyEncoding", "HashGridEncoding", "SHEncoding", "spherical_harmonics"]
