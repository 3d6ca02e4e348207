"""Triton kernels for CUDA tensors. Importing the kernel modules needs ``triton``; callers check
:func:`available` first. Each kernel reproduces its ``ops/_ref`` twin."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def _importable() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken install: the reference path is used
        return False
    return True


def available() -> bool:
    """True when Triton imports (CUDA builds of PyTorch on Linux ship it) and ``NERFKIT_NO_EXT`` is unset."""
    from .._cpu import extensions_disabled

    return not extensions_disabled() and _importable()
