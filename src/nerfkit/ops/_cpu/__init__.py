"""C++/OpenMP CPU kernels, built lazily on first use.

Each kernel is one ``<name>.cpp`` file beside this module exposing a plain C ABI
(``extern "C"`` functions on raw contiguous buffers) and no torch headers, so a build takes
seconds. :func:`load_cpu_library` compiles it with ``torch.utils.cpp_extension.load`` into
torch's extension cache (``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``;
rebuilt when the source changes) and opens it with ctypes. ctypes releases the GIL during calls.

Any failure (no compiler, no ninja, a compile error) is logged once at debug level and gives
``None``: callers then fall back to the pure-PyTorch reference. ``NERFKIT_NO_EXT=1`` forces that
fallback without trying to build.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path

_LOG = logging.getLogger(__name__)
_HERE = Path(__file__).resolve().parent
_CACHE: dict[str, ctypes.CDLL | None] = {}
_LOCK = threading.Lock()


def extensions_disabled() -> bool:
    """True when ``NERFKIT_NO_EXT`` is set to a non-empty value other than ``0``."""
    return os.environ.get("NERFKIT_NO_EXT", "") not in ("", "0")


def _build(name: str) -> ctypes.CDLL:
    from torch.utils import cpp_extension  # imported lazily: it pulls in setuptools

    source = _HERE / f"{name}.cpp"
    path = cpp_extension.load(
        name=f"nerfkit_{name}",
        sources=[str(source)],
        extra_cflags=["-O3", "-fopenmp", "-fno-math-errno"],
        extra_ldflags=["-fopenmp"],
        is_python_module=False,  # a plain shared library: we open it with ctypes
        verbose=False,
    )
    return ctypes.CDLL(str(path))


def load_cpu_library(name: str) -> ctypes.CDLL | None:
    """The compiled ``<name>.cpp`` as a ctypes library, or ``None`` when it is unavailable."""
    if extensions_disabled():
        return None
    with _LOCK:
        if name not in _CACHE:
            try:
                _CACHE[name] = _build(name)
            except Exception as exc:  # noqa: BLE001 - any build failure means "use the reference"
                _LOG.debug("nerfkit: C++ kernel %r unavailable, using the PyTorch reference (%s)", name, exc)
                _CACHE[name] = None
        return _CACHE[name]
