"""Ray marching through an occupancy bitfield into packed samples: entry point and fast backend.

``march_rays`` produces the samples defined in :mod:`nerfkit.ops._ref.march_rays` (read that
docstring for the bitfield layout, the global step grid and the midpoint rule).

Backends (``backend=``):

- ``"cpp"``: C++/OpenMP kernel (``ops/_cpu/march_rays.cpp``) for CPU tensors. Marches each ray
  sequentially, jumps over empty blocks of up to 32^3 cells (bitfield mips, cached per bitfield
  version) and emits the samples of an occupied cell without re-looking them up; one pass into
  per-chunk buffers, then one copy. Bit-identical to the reference, ~14x faster on the benchmark.
- ``"triton"``: Triton kernel (``ops/_triton/march_rays.py``) for CUDA tensors: one lane per ray,
  candidates tested in registers, two launches (count, then write). Bit-identical to the reference
  (checked in Triton's interpreter on the CPU, and on the GPU where one is present).
- ``"ref"``: the vectorised pure-PyTorch reference (tests every candidate step; any device).
- ``"auto"`` (default): ``"cpp"`` for CPU tensors when the kernel builds, ``"triton"`` for CUDA
  tensors when Triton imports, else ``"ref"``.

``NERFKIT_NO_EXT=1`` disables the C++ kernel.
"""

from __future__ import annotations

import ctypes
import math
import weakref

import torch

from nerfkit.ops._cpu import load_cpu_library
from nerfkit.ops._ref.march_rays import grid_frame, grid_resolution, march_rays_ref, step_grid

_BACKENDS = ("auto", "cpp", "triton", "ref")
_MAX_MIP_LEVELS = 5
_lib_configured = False
_mip_cache: list[tuple] = []  # (weakref to bitfield, version, levels, mips), most recent last


def _cpu_library() -> ctypes.CDLL | None:
    global _lib_configured
    lib = load_cpu_library("march_rays")
    if lib is not None and not _lib_configured:
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        lib.nerfkit_occupancy_mips.argtypes = [p, i64, i64, i64, p, i32]
        lib.nerfkit_march_rays_run.argtypes = [i64, p, p, p, p, p, p, i64, p, p, i64, i64, i64, i32, p, i64, p, i32]
        lib.nerfkit_march_rays_run.restype = ctypes.c_void_p
        lib.nerfkit_march_rays_take.argtypes = [p, p, p, p, i32]
        lib.nerfkit_occupancy_mips.restype = lib.nerfkit_march_rays_take.restype = ctypes.c_int
        _lib_configured = True
    return lib


def cpu_kernel_available() -> bool:
    """True when the C++ marching kernel is built (building it on first call) and not disabled."""
    return _cpu_library() is not None


def _mip_levels(n_cascades: int, res: int) -> int:
    """Mip levels usable for skipping: blocks must not straddle the next finer cascade's box
    (which starts at cell R/4 of a coarser cascade), so 2^L must divide R/4 when C > 1. -1: no skipping."""
    span = res if n_cascades == 1 else (res // 4 if res % 4 == 0 else 0)
    if span == 0:
        return -1
    levels = 0
    while levels < _MAX_MIP_LEVELS and span % (2 ** (levels + 1)) == 0 and res >> (levels + 1) >= 1:
        levels += 1
    return levels


def _mips(lib: ctypes.CDLL, bitfield: torch.Tensor, res: int, levels: int) -> torch.Tensor:
    """Mip bytes of the bitfield, cached while the bitfield is unchanged (same tensor object and
    version counter: in-place updates such as ``copy_`` invalidate the entry)."""
    for ref, version, lv, mips in _mip_cache:
        if ref() is bitfield and version == bitfield._version and lv == levels:
            return mips
    n_casc = bitfield.shape[0]
    size = sum(n_casc * (res >> l) ** 3 for l in range(1, levels + 1))
    mips = torch.empty(max(size, 1), dtype=torch.uint8)
    if levels > 0:
        lib.nerfkit_occupancy_mips(bitfield.data_ptr(), n_casc, res, levels, mips.data_ptr(), torch.get_num_threads())
    _mip_cache[:] = [e for e in _mip_cache if e[0]() is not None and e[0]() is not bitfield][-3:]
    _mip_cache.append((weakref.ref(bitfield), bitfield._version, levels, mips))
    return mips


def _march_cpu(lib, origins, dirs, t_near, t_far, offsets, table, bitfield, aabb, max_samples):
    n_casc, res = bitfield.shape[0], grid_resolution(bitfield)
    levels = _mip_levels(n_casc, res)
    mips = _mips(lib, bitfield, res, max(levels, 0))
    centre, inv_half = grid_frame(aabb.cpu())
    half = (aabb[1] - aabb[0]).to(torch.float32).cpu() * 0.5
    frame = torch.cat([centre, inv_half, half]).contiguous()
    n = origins.shape[0]
    nt = torch.get_num_threads()
    total = ctypes.c_int64(0)
    handle = lib.nerfkit_march_rays_run(
        n, origins.data_ptr(), dirs.data_ptr(), t_near.data_ptr(), t_far.data_ptr(), offsets.data_ptr(),
        table.data_ptr(), table.numel(), bitfield.data_ptr(), mips.data_ptr(), n_casc, res, max(levels, 0),
        int(levels >= 0), frame.data_ptr(), max_samples, ctypes.byref(total), nt)
    if not handle:
        raise RuntimeError("the C++ march_rays kernel rejected its inputs")
    try:
        ray_indices = torch.empty(total.value, dtype=torch.int64)
        t_starts = torch.empty(total.value, dtype=torch.float32)
        t_ends = torch.empty(total.value, dtype=torch.float32)
    except BaseException:
        lib.nerfkit_march_rays_take(handle, None, None, None, nt)  # free the buffers
        raise
    lib.nerfkit_march_rays_take(handle, ray_indices.data_ptr(), t_starts.data_ptr(), t_ends.data_ptr(), nt)
    return ray_indices, t_starts, t_ends


def march_rays(
    origins: torch.Tensor, dirs: torch.Tensor, t_near: torch.Tensor, t_far: torch.Tensor,
    bitfield: torch.Tensor, aabb: torch.Tensor, *, step_size: float, cone_angle: float = 0.0,
    max_step: float | None = None, max_samples: int = 1024, jitter: bool | torch.Tensor = False,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """March rays through the occupied cells of a bitfield; returns packed sample intervals.

    Args:
        origins, dirs: [N, 3] ray origins and unit directions.
        t_near, t_far: [N] the interval to march (e.g. from ``ray_aabb``); rays with
            ``t_far <= t_near`` or a non-finite bound get no samples.
        bitfield: uint8 [C, R^3/8] occupancy bits (``OccupancyGrid.bitfield``).
        aabb: [2, 3] box of cascade 0 (cascade c covers it scaled by 2^c about its centre); it may stay
            on the CPU when the rays are on a GPU (saves host syncs).
        step_size: the minimum step (instant-ngp: sqrt(3)/1024 times the box size).
        cone_angle: 0 for constant steps; > 0 for steps ``clamp(t * cone_angle, step_size, max_step)``.
        max_step: the step cap for cone stepping (default: the coarsest cascade's cell size).
        max_samples: at most this many samples per ray (the nearest ones).
        jitter: False (samples on the step grid), True (one uniform offset per ray, shifting that
            ray's samples by a fraction of a step) or a tensor [N] of offsets in [0, 1).
        backend: ``"auto"``, ``"cpp"``, ``"triton"`` or ``"ref"`` (see the module docstring).

    Returns:
        ray_indices int64 [M] (sorted; samples of a ray are contiguous and ordered by distance),
        t_starts [M], t_ends [M] (float32); the sample point is the midpoint. No gradients.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"unknown march_rays backend {backend!r}; choose one of {_BACKENDS}")
    n = origins.shape[0]
    if origins.shape != (n, 3) or dirs.shape != (n, 3) or t_near.shape != (n,) or t_far.shape != (n,):
        raise ValueError("march_rays needs origins/dirs [N, 3] and t_near/t_far [N]")
    if bitfield.dtype != torch.uint8 or bitfield.dim() != 2:
        raise ValueError(f"bitfield must be uint8 [C, R^3/8], got {bitfield.dtype} {tuple(bitfield.shape)}")
    n_casc, res = bitfield.shape[0], grid_resolution(bitfield)
    dev = origins.device
    with torch.no_grad():
        if isinstance(jitter, torch.Tensor):
            offsets = jitter.to(device=dev, dtype=torch.float32)
        elif jitter:
            offsets = torch.rand(n, device=dev)
        else:
            offsets = torch.zeros(n, device=dev)
        o, d = origins.detach().to(torch.float32), dirs.detach().to(torch.float32)
        tn, tf = t_near.detach().to(torch.float32), t_far.detach().to(torch.float32)
        ok = torch.isfinite(tn) & torch.isfinite(tf) & (tf > tn)
        tf = torch.where(ok, tf, tn)  # non-finite or empty interval: no samples
        aabb = aabb.detach()
        if max_step is None:
            max_step = float((aabb[1] - aabb[0]).max()) * 2 ** (n_casc - 1) / res

        def reference():
            # on a GPU, test many candidates at once (each chunk costs host syncs); on a CPU stay cache-sized
            table = _step_table(tf, ok, n, step_size, cone_angle, max_step)
            return march_rays_ref(o, d, tn, tf, bitfield.to(dev), aabb.to(dev), offsets, table.to(dev),
                                  int(max_samples), chunk=1 << 23 if dev.type == "cuda" else 1 << 16)

        use_triton = backend == "triton" or (backend == "auto" and _wants_triton(dev))
        if use_triton:
            if not _triton_available():
                raise RuntimeError("the Triton march_rays kernel needs the triton package")
            from ._triton import run_or_fall_back

            def fast():
                from ._triton.march_rays import march_rays_triton

                # the step grid is cached on the device and grown when a ray reaches past it (grids built for
                # different lengths are prefixes of one another, so the samples do not depend on the length)
                key = (str(dev), float(step_size), float(cone_angle), float(max_step))
                table = _TRITON_TABLES.get(key)
                while True:
                    if table is None:
                        table = _step_table(tf, ok, n, step_size, cone_angle, max_step).to(dev)
                        _TRITON_TABLES[key] = table
                    out, overflow = march_rays_triton(o, d, tn, tf, bitfield.to(dev), aabb, offsets, table,
                                                      int(max_samples), return_overflow=True)
                    if not overflow:
                        return out
                    table = None

            return run_or_fall_back("march_rays", fast, reference, strict=backend == "triton")

        use_cpp = backend == "cpp"
        if backend == "auto":
            eligible = dev.type == "cpu" and bitfield.device.type == "cpu"
            use_cpp = eligible and cpu_kernel_available()
        if use_cpp:
            lib = _cpu_library()
            if lib is None or dev.type != "cpu":
                raise RuntimeError("the C++ march_rays kernel is unavailable (or inputs are not on the CPU)")
            table = _step_table(tf, ok, n, step_size, cone_angle, max_step)
            return _march_cpu(lib, o.contiguous(), d.contiguous(), tn.contiguous(), tf.contiguous(),
                              offsets.contiguous(), table, bitfield.contiguous(), aabb, int(max_samples))
        return reference()


_TRITON_TABLES: dict[tuple, torch.Tensor] = {}  # (device, step, cone, max step) -> step grid on the device


def _step_table(tf: torch.Tensor, ok: torch.Tensor, n: int, step_size, cone_angle, max_step) -> torch.Tensor:
    """The step grid (CPU) long enough for the farthest ``t_far`` of the rays with an interval (one host sync)."""
    t_max = float(torch.where(ok, tf, torch.zeros_like(tf)).amax()) if n > 0 else 0.0
    return step_grid(t_max, float(step_size), float(cone_angle), float(max_step))


def _wants_triton(dev: torch.device) -> bool:
    """"auto" on this device picks the Triton kernel (CUDA, Triton importable, the kernel has not failed)."""
    return dev.type == "cuda" and _triton_available("march_rays")


def _triton_available(kernel: str | None = None) -> bool:
    from ._triton import available

    return available(kernel)


def default_step_size(aabb: torch.Tensor) -> float:
    """instant-ngp's minimum step for a bounded scene: sqrt(3)/1024 times the largest box side."""
    return math.sqrt(3.0) / 1024.0 * float((aabb[1] - aabb[0]).max())
