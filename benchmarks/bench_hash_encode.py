"""Benchmark the multiresolution hash encoding and the optimiser step on its table.

Times, per batch size N (default 2^16 and 2^18 points, L=16, F=2, T=2^19, resolutions 16..2048):

- ``hash_encode`` forward (grad mode on, table requires grad, as in training) and forward+backward
  (table gradient only) for the backends ``ref``, ``compile`` (torch.compile of the reference;
  its one-time compilation is reported separately) and ``cpp``;
- one optimiser step on the [16, 2^19, 2] table: dense ``torch.optim.Adam`` (foreach and fused),
  and ``torch.optim.SparseAdam`` on a sparse gradient holding only the rows touched this step
  (the cost of turning the dense gradient into that sparse one is timed too), for points drawn
  uniformly in the cube and for points on a thin spherical shell (closer to NeRF samples, which
  gather near surfaces).

Writes ``benchmarks/results/hash_encode.json`` (or ``--out``) and prints a table.
Usage: ``python benchmarks/bench_hash_encode.py [--sizes 65536 262144] [--variants ref compile cpp]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from nerfkit.ops import hash_encode, hash_grid_resolutions
from nerfkit.ops.hash_encode import cpu_kernel_available

L, F, LOG2_T = 16, 2, 19


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def _points(n: int, kind: str, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    """[n, 3] points in [0, 1]^3: ``uniform`` in the cube or on a shell of radius 0.35 +- 0.01."""
    if kind == "uniform":
        return torch.rand(n, 3, generator=gen).to(device)
    d = torch.randn(n, 3, generator=gen)
    d = d / d.norm(dim=-1, keepdim=True)
    r = 0.35 + 0.02 * (torch.rand(n, 1, generator=gen) - 0.5)
    return (0.5 + r * d).to(device)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_encode(sizes, variants, device, repeats, gen):
    rows = []
    res = hash_grid_resolutions(L, 16, 2048)
    table = torch.empty(L, 2**LOG2_T, F, device=device).uniform_(-1e-4, 1e-4).requires_grad_()
    for variant in variants:
        if variant == "cpp" and (device.type != "cpu" or not cpu_kernel_available()):
            continue
        compile_s = None
        if variant == "compile":
            t0 = time.perf_counter()
            y = hash_encode(_points(1000, "uniform", device, gen), table, res, backend="compile")
            y.sum().backward()
            _sync(device)
            compile_s = time.perf_counter() - t0
        for n in sizes:
            x = _points(n, "uniform", device, gen)
            cot = torch.randn(n, L * F, generator=gen).to(device)

            def fwd():
                return hash_encode(x, table, res, backend=variant)

            def fwd_bwd():
                out = hash_encode(x, table, res, backend=variant)
                (grad,) = torch.autograd.grad(out, table, cot)
                return grad

            reps = max(1, repeats // 3) if variant in ("ref", "compile") and device.type == "cpu" else repeats
            row = dict(variant=variant, n=n, fwd_ms=_time(fwd, device, reps), fwd_bwd_ms=_time(fwd_bwd, device, reps))
            if compile_s is not None:
                row["compile_s"] = round(compile_s, 1)
            rows.append(row)
            print(f"  {variant:8s} N={n:7d}  fwd {row['fwd_ms']:8.1f} ms   fwd+bwd {row['fwd_bwd_ms']:8.1f} ms", flush=True)
    return rows


def _sparse_rows_grad(grad: torch.Tensor) -> torch.Tensor:
    """Dense [L, T, F] gradient -> sparse COO (sparse dims L, T; dense dim F) of its non-zero rows."""
    touched = grad.abs().amax(dim=-1) != 0  # [L, T]
    idx = touched.nonzero().t()  # [2, K]
    return torch.sparse_coo_tensor(
        idx, grad[idx[0], idx[1]], grad.shape, is_coalesced=True, check_invariants=False
    )


def bench_optim(n, device, repeats, gen):
    rows = []
    res = hash_grid_resolutions(L, 16, 2048)
    for kind in ("uniform", "shell"):
        table = torch.nn.Parameter(torch.empty(L, 2**LOG2_T, F, device=device).uniform_(-1e-4, 1e-4))
        x = _points(n, kind, device, gen)
        out = hash_encode(x, table, res)
        (grad,) = torch.autograd.grad(out, table, torch.randn(n, L * F, generator=gen).to(device))
        touched = int((grad.abs().amax(dim=-1) != 0).sum())
        sparse = _sparse_rows_grad(grad)
        entry = dict(points=kind, n=n, rows_touched=touched, rows_total=L * 2**LOG2_T)
        for name, make in (
            ("adam_foreach", lambda p: torch.optim.Adam([p], lr=1e-2, eps=1e-15, foreach=True)),
            ("adam_fused", lambda p: torch.optim.Adam([p], lr=1e-2, eps=1e-15, fused=True)),
        ):
            try:
                opt = make(table)
            except (RuntimeError, ValueError) as exc:  # fused may be unavailable on some builds
                entry[name + "_ms"] = None
                print(f"  {name}: unavailable ({exc})")
                continue
            table.grad = grad

            def step():
                opt.step()

            entry[name + "_ms"] = _time(step, device, repeats)
        table.grad = None
        sparse_opt = torch.optim.SparseAdam([table], lr=1e-2, eps=1e-15)

        def sparse_step():
            table.grad = sparse
            sparse_opt.step()

        entry["sparse_adam_ms"] = _time(sparse_step, device, repeats)
        entry["dense_to_sparse_ms"] = _time(lambda: _sparse_rows_grad(grad), device, repeats)
        entry["zero_dense_grad_ms"] = _time(lambda: torch.zeros_like(table), device, repeats)
        rows.append(entry)
        print(
            f"  optim {kind:7s} N={n}: rows touched {touched}/{L * 2**LOG2_T}; "
            + ", ".join(f"{k} {v:.1f}" for k, v in entry.items() if k.endswith("_ms") and v is not None),
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2**16, 2**18])
    parser.add_argument("--variants", nargs="+", default=["ref", "compile", "cpp"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-optim", action="store_true", help="skip the optimiser-step benchmark")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "hash_encode.json"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    info = dict(
        torch=torch.__version__,
        device=str(device),
        gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        cpu=_cpu_name(),
        threads=torch.get_num_threads(),
        cores=os.cpu_count(),
        load_average_at_start=os.getloadavg() if hasattr(os, "getloadavg") else None,
        config=dict(L=L, F=F, T=2**LOG2_T, resolutions="16..2048"),
    )
    print(f"hash_encode benchmark: {info}")
    results = dict(info=info, encode=bench_encode(args.sizes, args.variants, device, args.repeats, gen))
    if not args.no_optim:
        results["optim"] = bench_optim(max(args.sizes), device, args.repeats, gen)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
