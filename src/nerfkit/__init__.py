"""nerfkit: neural radiance fields in pure Python."""

__version__ = "0.1.0"
