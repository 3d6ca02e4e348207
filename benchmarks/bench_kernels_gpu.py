"""The hot kernels on a GPU, each backend against the others: is the hand-written Triton kernel worth it?

- hash encoding, 2^18 points, L=16, F=2, T=2^19 (resolutions 16..2048): forward and forward+backward
  (table gradient) for ``ref``, ``compile`` (torch.compile of the reference; compile time reported
  separately) and ``triton``;
- packed compositing of 2^18 samples over 8192 rays: forward+backward, ``ref``, ``triton`` and
  ``compile`` (torch.compile of the reference);
- ray marching of 8192 rays through a 128^3 grid with 10% of the cells occupied: ``ref`` and ``triton``.

Rows are written as they are measured (a timeout keeps the finished ones), cheap ones first and the
torch.compile variants last. Writes benchmarks/results/kernels_gpu.json. Part of benchmarks/gpu_check.sh:

    python benchmarks/bench_kernels_gpu.py

``--device cpu`` runs the same table with the CPU backends (``cpp`` instead of ``triton``/``compile``).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from common import machine, write_result
from nerfkit.cameras.rays import ray_aabb
from nerfkit.ops import hash_encode, hash_grid_resolutions
from nerfkit.ops._ref.march_rays import pack_bits
from nerfkit.ops._ref.composite import composite_packed_ref
from nerfkit.ops.composite import composite_packed
from nerfkit.ops.march_rays import march_rays


def _time(fn, dev: torch.device, repeats: int = 10) -> float:
    """Median milliseconds of ``fn()`` after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1e3)
    return round(sorted(times)[len(times) // 2], 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    name = a.name or ("kernels_gpu" if cuda else "kernels_cpu_backends")
    g = torch.Generator().manual_seed(0)
    rows: list[dict] = []

    def record(kernel: str, backend: str, measure) -> None:
        """Append one row (or the error) and rewrite the JSON, so a timeout keeps what was measured."""
        try:
            rows.append({"kernel": kernel, "backend": backend, **measure()})
        except Exception as exc:  # noqa: BLE001 - report, keep measuring the others
            rows.append({"kernel": kernel, "backend": backend, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(json.dumps(rows[-1]), flush=True)
        write_result(name, {"benchmark": "hot kernels per backend", "command": "python benchmarks/bench_kernels_gpu.py",
                            "machine": machine(), "device": str(dev), "rows": rows})

    # hash encoding
    n = 1 << 18
    res = hash_grid_resolutions(16, 16, 2048)
    table = torch.empty(16, 1 << 19, 2).uniform_(-1e-4, 1e-4, generator=g).to(dev).requires_grad_()
    x = torch.rand(n, 3, generator=g).to(dev)
    cot = torch.randn(n, 32, generator=g).to(dev)

    def hash_rows(backend):
        t0 = time.perf_counter()
        hash_encode(x[:1000], table, res, backend=backend).sum().backward()
        first_ms = round((time.perf_counter() - t0) * 1e3, 1)
        return {"first_call_ms": first_ms,
                "fwd_ms": _time(lambda: hash_encode(x, table, res, backend=backend), dev),
                "fwd_bwd_ms": _time(lambda: torch.autograd.grad(hash_encode(x, table, res, backend=backend), table,
                                                                cot), dev)}

    # packed compositing
    n_rays = 8192
    counts = torch.randint(0, 64, (n_rays,), generator=g)
    ri = torch.repeat_interleave(torch.arange(n_rays), counts).to(dev)
    m = ri.numel()
    sig = (torch.rand(m, generator=g) * 30).to(dev).requires_grad_()
    rgb = torch.rand(m, 3, generator=g).to(dev).requires_grad_()
    tm = torch.rand(m, generator=g).to(dev)
    dt = (torch.rand(m, generator=g) * 0.01).to(dev)
    cb = torch.randn(n_rays, 3, generator=g).to(dev)

    def comp_rows(fn):
        def step():
            out = fn(sig, rgb, tm, dt, ri, n_rays)
            torch.autograd.grad((out["rgb"] * cb).sum(), (sig, rgb))
        t0 = time.perf_counter()
        step()
        return {"first_call_ms": round((time.perf_counter() - t0) * 1e3, 1), "fwd_bwd_ms": _time(step, dev)}

    def comp_backend(backend):
        return lambda *t: composite_packed(*t, min_transmittance=1e-4, backend=backend)

    # ray marching
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    bits = pack_bits(torch.rand(1, 128 ** 3, generator=g) < 0.1).to(dev)
    o = torch.nn.functional.normalize(torch.randn(n_rays, 3, generator=g), dim=-1) * 3
    d = torch.nn.functional.normalize(-o + torch.randn(n_rays, 3, generator=g) * 0.3, dim=-1)
    tn, tf, _ = ray_aabb(o, d, aabb)
    o, d, tn, tf = (t.to(dev) for t in (o, d, tn.clamp_min(0), tf))
    u = torch.rand(n_rays, generator=g).to(dev)

    def march_rows(backend):
        def march():
            return march_rays(o, d, tn, tf, bits, aabb, step_size=3 ** 0.5 / 1024 * 2, max_samples=1024,
                              jitter=u, backend=backend)
        return {"ms": _time(march, dev), "samples": march()[0].numel()}

    fast = "triton" if cuda else "cpp"
    comp_name = f"composite {m} samples over {n_rays} rays, fwd+bwd"
    march_name = f"march {n_rays} rays, 128^3 grid 10% occupied"
    # cheap rows first; torch.compile (slow to build) last
    for backend in (fast, "ref"):
        record("hash_encode 2^18 points, L=16 F=2 T=2^19", backend, lambda: hash_rows(backend))
        record(comp_name, backend, lambda: comp_rows(comp_backend(backend)))
        record(march_name, backend, lambda: march_rows(backend))
    if cuda:
        record("hash_encode 2^18 points, L=16 F=2 T=2^19", "compile", lambda: hash_rows("compile"))
        compiled = torch.compile(composite_packed_ref, dynamic=True)
        record(comp_name, "compile", lambda: comp_rows(
            lambda *t: compiled(*t, None, 1e-4)))


if __name__ == "__main__":
    main()
