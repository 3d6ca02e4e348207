"""Hot kernels behind one signature each; ``ops._ref`` holds their pure-PyTorch specifications."""

from nerfkit.ops.hash_encode import hash_encode, hash_grid_resolutions

__all__ = ["hash_encode", "hash_grid_resolutions"]
