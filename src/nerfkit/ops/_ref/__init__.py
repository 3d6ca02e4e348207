"""Pure-PyTorch reference kernels: the specification every fast backend is tested against."""

from nerfkit.ops._ref.hash_encode import hash_encode_ref

__all__ = ["hash_encode_ref"]
