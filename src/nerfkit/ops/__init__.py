"""Hot kernels behind one signature each; ``ops._ref`` holds their pure-PyTorch specifications.

Each dispatcher picks a fast path when it is available (C++/OpenMP on CPU, built lazily; Triton on
CUDA) and falls back to the reference otherwise; ``NERFKIT_NO_EXT=1`` forces the reference.
"""

from nerfkit.ops.composite import composite_packed, ray_offsets, weights_packed
from nerfkit.ops.hash_encode import hash_encode, hash_grid_resolutions
from nerfkit.ops.march_rays import default_step_size, march_rays

__all__ = ["hash_encode", "hash_grid_resolutions", "composite_packed", "weights_packed", "ray_offsets",
           "march_rays", "default_step_size"]
