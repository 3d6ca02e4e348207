"""Triton kernels for CUDA tensors. Importing the kernel modules needs ``triton``; callers check
:func:`available` first. Each kernel reproduces its ``ops/_ref`` twin.

A kernel that fails to compile or launch (an old GPU, a Triton/driver mismatch) must not stop a
run: :func:`run_or_fall_back` catches the error the first time, warns once, and from then on that
kernel's callers use the PyTorch reference (out-of-memory errors are raised as they are).
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, TypeVar

import torch

_T = TypeVar("_T")
_FAILED: dict[str, str] = {}  # kernel name -> the error that disabled it


@functools.lru_cache(maxsize=1)
def _importable() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - missing or broken install: the reference path is used
        return False
    return True


def available(kernel: str | None = None) -> bool:
    """True when Triton imports (CUDA builds of PyTorch on Linux ship it), ``NERFKIT_NO_EXT`` is unset and
    ``kernel`` (when named) has not failed before."""
    from .._cpu import extensions_disabled

    return not extensions_disabled() and _importable() and (kernel is None or kernel not in _FAILED)


def run_or_fall_back(kernel: str, fast: Callable[[], _T], slow: Callable[[], _T], strict: bool = False) -> _T:
    """``fast()`` (a Triton path) unless ``kernel`` failed before; if it raises, remember the failure,
    warn once and return ``slow()`` (the reference). ``strict`` (the backend was asked for by name)
    always tries ``fast()`` and re-raises its errors."""
    if strict or kernel not in _FAILED:
        try:
            return fast()
        except torch.OutOfMemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - compile/launch errors of any kind
            if strict:
                raise
            _FAILED[kernel] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"nerfkit: the Triton {kernel} kernel failed ({_FAILED[kernel][:300]}); using the "
                          "PyTorch reference from now on (slower, same results)", RuntimeWarning, stacklevel=2)
    return slow()
