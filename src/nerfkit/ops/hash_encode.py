"""Multiresolution hash encoding: public entry point and fast backends.

``hash_encode(x, table, resolutions)`` computes the encoding defined in
:mod:`nerfkit.ops._ref.hash_encode` (read that docstring for the exact convention: ``p = x * R_l``,
dense rows when ``(R_l + 1)^3 <= T``, otherwise the XOR hash with primes 1, 2654435761, 805459861).

Backends (``backend=``):

- ``"cpp"``: C++/OpenMP kernel (``ops/_cpu/hash_encode.cpp``), float32 CPU tensors only. The
  forward is a gather + trilinear blend; the backward scatter-adds into a dense table gradient
  (one level per thread, no atomics) and computes the input gradient when ``x`` requires it.
  It is not twice differentiable.
- ``"triton"``: Triton kernels (``ops/_triton/hash_encode.py``) for float32 CUDA tensors with a
  power-of-two feature count: forward, table backward (atomic adds) and input backward. The forward
  is bit-identical to the reference (checked in Triton's CPU interpreter). Not twice differentiable.
- ``"compile"``: ``torch.compile`` of the reference (``dynamic=True``: one compilation serves
  every N). On a GPU it is 3-7x faster than the reference; on the CPU it is far slower than
  ``"cpp"`` (inductor's backward scatter is slow). The first call compiles (~25 s).
- ``"ref"``: the pure-PyTorch reference; any device and dtype, twice differentiable.
- ``"auto"`` (default): ``"cpp"`` for float32 CPU tensors when the kernel builds; ``"triton"`` for
  CUDA tensors it supports when Triton imports; else ``"compile"`` for CUDA tensors (falling back
  to ``"ref"`` for good if compiling fails); never a kernel inside an outer ``torch.compile``
  trace; ``"ref"`` otherwise.

Environment: ``NERFKIT_NO_EXT=1`` disables the C++ and Triton kernels, ``NERFKIT_NO_COMPILE=1``
keeps ``"auto"`` from compiling (both then use the reference).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from collections.abc import Sequence
from typing import Callable

import torch

from nerfkit.ops._cpu import load_cpu_library
from nerfkit.ops._ref.hash_encode import as_resolution_tensor, hash_encode_ref

_LOG = logging.getLogger(__name__)
_BACKENDS = ("auto", "cpp", "triton", "compile", "ref")
_compiled: Callable | None = None
_compile_failed = False  # set once when "auto" could not compile; later calls use the reference
_lib_configured = False


def hash_grid_resolutions(n_levels: int, min_resolution: int, max_resolution: int) -> list[int]:
    """Per-level resolutions ``R_l = floor(N_min * b^l)``, ``b = exp((ln N_max - ln N_min) / (L - 1))``.

    Returns a list of ``n_levels`` ints, from ``min_resolution`` up to ``max_resolution``
    (a relative 1e-9 slack keeps the last level at ``max_resolution`` despite rounding).
    """
    if n_levels < 1 or min_resolution < 1 or max_resolution < min_resolution:
        raise ValueError(
            f"need n_levels >= 1 and 1 <= min_resolution <= max_resolution, got "
            f"{n_levels}, {min_resolution}, {max_resolution}"
        )
    if n_levels == 1:
        return [int(min_resolution)]
    log_b = (math.log(max_resolution) - math.log(min_resolution)) / (n_levels - 1)
    return [int(math.floor(min_resolution * math.exp(l * log_b) * (1 + 1e-9))) for l in range(n_levels)]


def _cpu_library() -> ctypes.CDLL | None:
    """The compiled kernel with its ctypes signatures set, or None."""
    global _lib_configured
    lib = load_cpu_library("hash_encode")
    if lib is not None and not _lib_configured:
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.nerfkit_hash_encode_fwd.argtypes = [p, p, p, i64, i64, i64, i64, p, i64, i64, i32]
        lib.nerfkit_hash_encode_bwd_table.argtypes = [p, p, p, i64, i64, i64, i64, i64, i64, p, i32]
        lib.nerfkit_hash_encode_bwd_x.argtypes = [p, p, p, p, i64, i64, i64, i64, i64, i64, p, i32]
        for fn in (lib.nerfkit_hash_encode_fwd, lib.nerfkit_hash_encode_bwd_table, lib.nerfkit_hash_encode_bwd_x):
            fn.restype = ctypes.c_int
        _lib_configured = True
    return lib


def cpu_kernel_available() -> bool:
    """True when the C++ kernel is built (building it on first call) and not disabled."""
    return _cpu_library() is not None


def _check_call(status: int, what: str) -> None:
    if status != 0:
        raise RuntimeError(f"nerfkit C++ hash encoding {what} failed with status {status}")


class _HashEncodeCPU(torch.autograd.Function):
    """Autograd wrapper of the C++ kernel. Inputs must be contiguous float32 CPU tensors."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, table: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
        lib = _cpu_library()
        n_levels, table_size, n_feat = table.shape
        out = torch.empty(x.shape[0], n_levels * n_feat, dtype=torch.float32)
        status = lib.nerfkit_hash_encode_fwd(
            x.data_ptr(), table.data_ptr(), res.data_ptr(), x.shape[0], n_levels, table_size, n_feat,
            out.data_ptr(), n_levels * n_feat, n_feat, torch.get_num_threads(),
        )
        _check_call(status, "forward")
        ctx.save_for_backward(x, table, res)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        x, table, res = ctx.saved_tensors
        lib = _cpu_library()
        grad_out = grad_out.contiguous()
        n_levels, table_size, n_feat = table.shape
        n = x.shape[0]
        grad_x = grad_table = None
        if ctx.needs_input_grad[1]:
            grad_table = torch.empty_like(table)  # zeroed level by level inside the kernel
            status = lib.nerfkit_hash_encode_bwd_table(
                x.data_ptr(), grad_out.data_ptr(), res.data_ptr(), n, n_levels, table_size, n_feat,
                n_levels * n_feat, n_feat, grad_table.data_ptr(), torch.get_num_threads(),
            )
            _check_call(status, "table backward")
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(x)
            status = lib.nerfkit_hash_encode_bwd_x(
                x.data_ptr(), table.data_ptr(), grad_out.data_ptr(), res.data_ptr(), n, n_levels,
                table_size, n_feat, n_levels * n_feat, n_feat, grad_x.data_ptr(), torch.get_num_threads(),
            )
            _check_call(status, "input backward")
        return grad_x, grad_table, None


class _HashEncodeTriton(torch.autograd.Function):
    """Autograd wrapper of the Triton kernels. Inputs must be contiguous float32 CUDA tensors. With
    ``strict`` False a failing kernel falls back to the reference (see ``ops/_triton``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, table: torch.Tensor, res: torch.Tensor, strict: bool = True) -> torch.Tensor:
        from nerfkit.ops._triton import run_or_fall_back

        def fast():
            from nerfkit.ops._triton.hash_encode import hash_encode_fwd_triton

            return hash_encode_fwd_triton(x, table, res)

        ctx.save_for_backward(x, table, res)
        ctx.strict = strict
        return run_or_fall_back("hash_encode", fast, lambda: hash_encode_ref(x, table, res), strict)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        from nerfkit.ops._triton import run_or_fall_back

        x, table, res = ctx.saved_tensors
        grad_out = grad_out.contiguous().to(torch.float32)
        need_x, need_table = ctx.needs_input_grad[:2]

        def fast():
            from nerfkit.ops._triton.hash_encode import hash_encode_bwd_table_triton, hash_encode_bwd_x_triton

            return (hash_encode_bwd_x_triton(x, table, grad_out, res) if need_x else None,
                    hash_encode_bwd_table_triton(x, grad_out, res, table.shape) if need_table else None)

        def slow():
            xl, tb = x.detach().requires_grad_(need_x), table.detach().requires_grad_(need_table)
            with torch.enable_grad():
                out = hash_encode_ref(xl, tb, res)
            got = iter(torch.autograd.grad(out, [t for t in (xl, tb) if t.requires_grad], grad_out))
            return next(got) if need_x else None, next(got) if need_table else None

        grad_x, grad_table = run_or_fall_back("hash_encode", fast, slow, ctx.strict)
        return grad_x, grad_table, None, None


def _triton_eligible(x: torch.Tensor, table: torch.Tensor, kernel: str | None = None) -> bool:
    from nerfkit.ops._triton import available

    if not (x.is_cuda and table.is_cuda) or not available(kernel):
        return False
    from nerfkit.ops._triton.hash_encode import supported

    return supported(x, table)


def _cpp_eligible(x: torch.Tensor, table: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and table.device.type == "cpu"
        and x.dtype == torch.float32
        and table.dtype == torch.float32
    )


def _hash_encode_compiled(x: torch.Tensor, table: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(hash_encode_ref, dynamic=True)
    return _compiled(x, table, res)


def _auto_compile(x: torch.Tensor, table: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """The compiled encoding, or the reference once compiling has failed."""
    global _compile_failed
    if not _compile_failed:
        try:
            return _hash_encode_compiled(x, table, res)
        except Exception as exc:  # noqa: BLE001 - no compiler / Triton: the reference still works
            _LOG.debug("nerfkit: torch.compile of hash_encode failed, using the reference (%s)", exc)
            _compile_failed = True
    return hash_encode_ref(x, table, res)


def hash_encode(
    x: torch.Tensor,
    table: torch.Tensor,
    resolutions: torch.Tensor | Sequence[int],
    backend: str = "auto",
) -> torch.Tensor:
    """Multiresolution hash encoding of points.

    Args:
        x: [N, 3] points in the unit cube [0, 1]^3 (values outside are clamped onto it).
        table: [L, T, F] per-level feature tables (T rows per level; a power of two is fastest).
        resolutions: [L] ints, the grid resolution R_l of each level
            (see :func:`hash_grid_resolutions`).
        backend: ``"auto"``, ``"cpp"``, ``"triton"``, ``"compile"`` or ``"ref"`` (see the module docstring).

    Returns:
        [N, L*F] features, level-major (channels ``l*F : (l+1)*F`` belong to level l), on the
        device and in the dtype of ``table``. Differentiable w.r.t. ``table`` and ``x``.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown hash_encode backend {backend!r}; choose one of {_BACKENDS}")
    if x.dim() != 2 or x.shape[-1] != 3:
        raise ValueError(f"x must have shape [N, 3], got {tuple(x.shape)}")
    if table.dim() != 3:
        raise ValueError(f"table must have shape [L, T, F], got {tuple(table.shape)}")
    res = as_resolution_tensor(resolutions, x.device)
    if res.numel() != table.shape[0]:
        raise ValueError(f"resolutions has {res.numel()} entries but table has {table.shape[0]} levels")
    if res.device.type == "cpu" and bool((res < 1).any()):  # (skipped on GPUs: it would sync)
        raise ValueError(f"resolutions must be >= 1, got {res.tolist()}")

    if backend == "auto":
        if torch.compiler.is_compiling():
            backend = "ref"  # keep an outer torch.compile trace free of ctypes calls
        elif _cpp_eligible(x, table) and cpu_kernel_available():
            backend = "cpp"
        elif _triton_eligible(x, table, "hash_encode"):
            return _HashEncodeTriton.apply(x.contiguous(), table.contiguous(), res.contiguous(), False)
        elif x.is_cuda and table.is_cuda and os.environ.get("NERFKIT_NO_COMPILE", "") in ("", "0"):
            return _auto_compile(x, table, res)
        else:
            backend = "ref"
    if backend == "cpp":
        if not _cpp_eligible(x, table):
            raise ValueError("the 'cpp' hash_encode backend needs float32 CPU tensors")
        if not cpu_kernel_available():
            raise RuntimeError("the C++ hash_encode kernel could not be built (see debug log); use backend='ref'")
        return _HashEncodeCPU.apply(x.contiguous(), table.contiguous(), res.contiguous())
    if backend == "triton":
        if not _triton_eligible(x, table):
            raise ValueError("the 'triton' hash_encode backend needs float32 CUDA tensors, a power-of-two "
                             "feature count and an importable Triton")
        return _HashEncodeTriton.apply(x.contiguous(), table.contiguous(), res.contiguous())
    if backend == "compile":
        return _hash_encode_compiled(x, table, res)
    return hash_encode_ref(x, table, res)
