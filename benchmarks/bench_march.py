"""Benchmark ray marching through the occupancy grid and packed compositing (reference vs C++).

- marching: N = 4096 and 65536 jittered rays from cameras on a sphere of radius 4 towards a
  [-1.5, 1.5]^3 box with one 128^3 cascade whose occupied cells (~10%) form a spherical shell;
  step sqrt(3)/1024 * 3 (instant-ngp's bounded setting). Also one unbounded case (4 cascades,
  cone angle 1/256) at N = 4096.
- compositing: ``composite_packed`` (weights, colour, opacity, depth, background) and
  ``weights_packed`` forward + backward on M = 2^18 samples over 4096 rays.
- grid update overhead (an analytic density, so the network cost is excluded).

Writes ``benchmarks/results/march.json``. Times are medians in ms (``reps`` runs after a warm-up);
the machine may be shared, so the load average is recorded too.
Usage: ``python benchmarks/bench_march.py [--threads T] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from common import machine, write_result

from nerfkit.cameras.rays import ray_aabb
from nerfkit.ops import composite as oc
from nerfkit.ops.march_rays import cpu_kernel_available, march_rays
from nerfkit.ops._ref.march_rays import pack_bits
from nerfkit.render.occupancy import OccupancyGrid

BOX = 1.5


def timed(fn, reps: int) -> float:
    fn()
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(samples), 3)


def shell_bitfield(res: int, n_cascades: int = 1) -> torch.Tensor:
    lin = ((torch.arange(res) + 0.5) / res * 2 - 1) * BOX
    x, y, z = torch.meshgrid(lin, lin, lin, indexing="ij")
    r = (x ** 2 + y ** 2 + z ** 2).sqrt().reshape(-1)
    r_out = 1.0
    r_in = (r_out ** 3 - 0.1 * (2 * BOX) ** 3 * 3 / (4 * math.pi)) ** (1 / 3)  # shell = 10% of the box
    return pack_bits(torch.stack([(r > r_in) & (r < r_out)] * n_cascades))


def rays(n: int, gen: torch.Generator, radius: float = 4.0):
    o = torch.randn(n, 3, generator=gen)
    o = o / o.norm(dim=-1, keepdim=True) * radius
    target = (torch.rand(n, 3, generator=gen) * 2 - 1) * BOX * 0.8
    d = target - o
    return o, d / d.norm(dim=-1, keepdim=True)


def bench_march(reps: int, gen: torch.Generator) -> list[dict]:
    rows = []
    aabb = torch.tensor([[-BOX] * 3, [BOX] * 3])
    step = math.sqrt(3) / 1024 * 2 * BOX
    cases = [("bounded", 1, 0.0, 4096), ("bounded", 1, 0.0, 65536), ("unbounded", 4, 1 / 256, 4096)]
    for name, n_casc, cone, n in cases:
        bits = shell_bitfield(128, n_casc)
        o, d = rays(n, gen, radius=4.0 * 2 ** (n_casc - 1) if n_casc > 1 else 4.0)
        tn, tf, _ = ray_aabb(o, d, aabb * 2 ** (n_casc - 1))
        jitter = torch.rand(n, generator=gen)
        row = dict(case=name, cascades=n_casc, cone_angle=cone, n_rays=n,
                   occupied_fraction=round(float(pack_bits_fraction(bits)), 4))

        def run(backend):
            return march_rays(o, d, tn, tf, bits, aabb, step_size=step, cone_angle=cone, jitter=jitter,
                                 backend=backend)

        ri = run("ref")[0]
        row["samples"] = int(ri.numel())
        row["ref_ms"] = timed(lambda: run("ref"), max(1, reps // 4) if n > 10_000 else max(1, reps // 2))
        if cpu_kernel_available():
            row["cpp_ms"] = timed(lambda: run("cpp"), reps)
            row["speedup"] = round(row["ref_ms"] / row["cpp_ms"], 1)
        print(f"  march {row}", flush=True)
        rows.append(row)
    return rows


def pack_bits_fraction(bits: torch.Tensor) -> float:
    table = torch.tensor([bin(i).count("1") for i in range(256)])
    return float(table[bits.long()].sum()) / (8 * bits.numel())


def bench_composite(reps: int, gen: torch.Generator) -> list[dict]:
    n_rays, m = 4096, 1 << 18
    ri = torch.sort(torch.randint(0, n_rays, (m,), generator=gen)).values
    sig0, col0 = torch.rand(m, generator=gen) * 50, torch.rand(m, 3, generator=gen)
    deltas, t_mid, bg = torch.full((m,), 0.005), torch.rand(m, generator=gen), torch.rand(n_rays, 3, generator=gen)
    rows = []
    for backend in ("ref", "cpp") if oc.cpu_kernel_available() else ("ref",):
        def full():
            s, c = sig0.clone().requires_grad_(), col0.clone().requires_grad_()
            out = oc.composite_packed(s, c, t_mid, deltas, ri, n_rays, bg, min_transmittance=1e-4, backend=backend)
            (out["rgb"].sum() + out["depth"].sum()).backward()

        def weights_only():
            s = sig0.clone().requires_grad_()
            w, _ = oc.weights_packed(s, deltas, ri, n_rays, 1e-4, backend=backend)
            w.sum().backward()

        row = dict(backend=backend, n_samples=m, n_rays=n_rays, composite_fwd_bwd_ms=timed(full, reps),
                   weights_fwd_bwd_ms=timed(weights_only, reps))
        print(f"  composite {row}", flush=True)
        rows.append(row)
    return rows


def bench_update(reps: int) -> dict:
    grid = OccupancyGrid(torch.tensor([[-BOX] * 3, [BOX] * 3]), resolution=128)

    def density(p):
        return ((p.norm(dim=-1) - 0.8).abs() < 0.1).float() * 50

    grid.update(0, density)
    warm = timed(lambda: grid.update(0, density), max(1, reps // 2))
    late = timed(lambda: grid.update(10_000, density), max(1, reps // 2))
    row = dict(resolution=128, points_per_update=1 << 18, warmup_update_ms=warm, update_ms=late,
               occupied_fraction=round(grid.occupied_fraction(), 4))
    print(f"  occupancy update {row}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    info = dict(machine(), load_average_at_start=os.getloadavg(), cpp_available=cpu_kernel_available())
    print(f"march benchmark: {info}")
    result = dict(info=info, march=bench_march(args.repeats, gen), composite=bench_composite(args.repeats, gen),
                  occupancy_update=bench_update(args.repeats))
    result["info"]["load_average_at_end"] = os.getloadavg()
    write_result("march", result)


if __name__ == "__main__":
    main()
