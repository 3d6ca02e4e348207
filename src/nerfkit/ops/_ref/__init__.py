"""Pure-PyTorch reference kernels: the specification every fast backend is tested against."""

from nerfkit.ops._ref.composite import composite_packed_ref, weights_packed_ref
from nerfkit.ops._ref.hash_encode import hash_encode_ref
from nerfkit.ops._ref.march_rays import march_rays_ref

__all__ = ["hash_encode_ref", "march_rays_ref", "composite_packed_ref", "weights_packed_ref"]
