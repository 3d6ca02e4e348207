"""Ray marching through the occupancy bitfield: brute force, properties, fast-vs-reference parity."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras.rays import ray_aabb
from nerfkit.ops.march_rays import cpu_kernel_available, march_rays
from nerfkit.ops._ref.march_rays import cell_indices, lookup_bits, pack_bits, step_grid, unpack_bits

AABB = torch.tensor([[-1.0, -0.5, -1.0], [1.0, 1.5, 1.0]])
needs_cpp = pytest.mark.skipif(not cpu_kernel_available(), reason="C++ kernel unavailable")


def random_bits(n_cascades: int, res: int, frac: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return pack_bits(torch.rand(n_cascades, res ** 3, generator=g) < frac)


def shell_bits(n_cascades: int, res: int) -> torch.Tensor:
    lin = (torch.arange(res) + 0.5) / res * 2 - 1
    x, y, z = torch.meshgrid(lin, lin, lin, indexing="ij")
    r = (x ** 2 + y ** 2 + z ** 2).sqrt().reshape(-1)
    return pack_bits(torch.stack([(r > 0.55) & (r < 0.75)] * n_cascades))


def random_rays(n: int, seed: int, radius: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    o = torch.randn(n, 3, generator=g)
    o = o / o.norm(dim=-1, keepdim=True) * radius + torch.tensor([0.0, 0.5, 0.0])
    d = torch.rand(n, 3, generator=g) * 2 - 1 - o * 0.3  # mostly towards the box, some missing
    return o, d / d.norm(dim=-1, keepdim=True)


def brute_force(o, d, tn, tf, bits, aabb, offsets, table, max_samples):
    """Dense march: every step of the grid, classified by the cell of its midpoint."""
    n_casc, res = bits.shape[0], round((bits.shape[1] * 8) ** (1 / 3))
    k = torch.arange(table.numel() - 2)
    rows = []
    for r in range(o.shape[0]):
        if not tf[r] > tn[r]:
            continue
        u = offsets[r]
        s0 = table[k] + u * (table[k + 1] - table[k])
        s1 = table[k + 1] + u * (table[k + 2] - table[k + 1])
        m = (s0 + s1) * 0.5
        ok = (m >= tn[r]) & (m < tf[r])
        ok &= lookup_bits(bits, cell_indices(o[r] + m[:, None] * d[r], aabb, n_casc, res))
        sel = ok.nonzero().squeeze(-1)[:max_samples]
        rows.append((torch.full_like(sel, r), s0[sel], s1[sel]))
    if not rows:
        return torch.empty(0, dtype=torch.int64), torch.empty(0), torch.empty(0)
    return tuple(torch.cat(x) for x in zip(*rows))


@pytest.mark.parametrize("n_casc,cone,max_samples", [(1, 0.0, 10_000), (2, 0.0, 7), (2, 1 / 64, 10_000)])
def test_matches_brute_force(n_casc, cone, max_samples):
    res = 16
    bits = random_bits(n_casc, res, 0.2, seed=n_casc)
    o, d = random_rays(40, seed=1)
    outer = torch.stack([AABB.mean(0) - (AABB[1] - AABB[0]) / 2 * 2 ** (n_casc - 1),
                         AABB.mean(0) + (AABB[1] - AABB[0]) / 2 * 2 ** (n_casc - 1)])
    tn, tf, hit = ray_aabb(o, d, outer)
    assert 0 < int(hit.sum()) < 40  # some rays miss the box
    offsets = torch.rand(40, generator=torch.Generator().manual_seed(2))
    step, max_step = 0.02, 0.1
    ref = march_rays(o, d, tn, tf, bits, AABB, step_size=step, cone_angle=cone, max_step=max_step,
                        max_samples=max_samples, jitter=offsets, backend="ref")
    t_max = float(tf[tf > tn].max())
    table = step_grid(t_max, step, cone, max_step)
    expect = brute_force(o, d, tn, tf, bits, AABB, offsets, table, max_samples)
    assert expect[0].numel() > 50
    for a, b in zip(ref, expect):
        assert torch.equal(a, b)
    assert not bool(torch.isin(ref[0], (~hit).nonzero().squeeze(-1)).any())  # misses get nothing
    if cpu_kernel_available():
        fast = march_rays(o, d, tn, tf, bits, AABB, step_size=step, cone_angle=cone, max_step=max_step,
                             max_samples=max_samples, jitter=offsets, backend="cpp")
        for a, b in zip(fast, expect):
            assert torch.equal(a, b)


def test_samples_are_in_occupied_cells_and_inside_the_interval():
    bits = random_bits(1, 32, 0.1, seed=5)
    o, d = random_rays(200, seed=3)
    tn, tf, _ = ray_aabb(o, d, AABB)
    ri, ts, te = march_rays(o, d, tn, tf, bits, AABB, step_size=0.01)
    assert ri.numel() > 0 and bool((ri[1:] >= ri[:-1]).all())
    mid = (ts + te) * 0.5
    assert bool((te > ts).all()) and bool((mid >= tn[ri]).all()) and bool((mid < tf[ri]).all())
    pts = o[ri] + mid[:, None] * d[ri]
    assert bool(lookup_bits(bits, cell_indices(pts, AABB, 1, 32)).all())
    same_ray = ri[1:] == ri[:-1]
    assert bool((ts[1:][same_ray] >= te[:-1][same_ray] - 1e-6).all())  # ordered, non-overlapping


@pytest.mark.parametrize("backend", ["ref", pytest.param("cpp", marks=needs_cpp)])
def test_ray_missing_the_box_gets_no_samples(backend):
    bits = pack_bits(torch.ones(1, 8 ** 3, dtype=torch.bool))
    o = torch.tensor([[5.0, 5.0, 5.0], [0.0, 0.5, -3.0]])
    d = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    tn, tf, hit = ray_aabb(o, d, AABB)
    assert hit.tolist() == [False, True]
    ri, _, _ = march_rays(o, d, tn, tf, bits, AABB, step_size=0.05, backend=backend)
    assert ri.numel() > 0 and bool((ri == 1).all())
    ri, _, _ = march_rays(o, d, tn, tf.clone().fill_(float("inf")), bits, AABB, step_size=0.05, backend=backend)
    assert ri.numel() == 0  # non-finite far bound: no samples


def test_cell_lookup_matches_geometry():
    g = torch.Generator().manual_seed(0)
    res, n_casc = 16, 3
    pts = (torch.rand(5000, 3, generator=g) * 2 - 1) * 4.5 * (AABB[1] - AABB[0]) / 2 + AABB.mean(0)
    idx = cell_indices(pts, AABB, n_casc, res)
    q = ((pts.double() - AABB.mean(0).double()) / ((AABB[1] - AABB[0]).double() / 2))
    a = q.abs().amax(-1)
    casc = torch.clamp(torch.ceil(torch.log2(a)), min=0).long()
    casc = torch.where(a < 1, torch.zeros_like(casc), casc)
    ijk = ((q / 2.0 ** casc[:, None] + 1) * res / 2).floor().long()
    expect = casc * res ** 3 + (ijk[:, 0] * res + ijk[:, 1]) * res + ijk[:, 2]
    expect = torch.where(a < 2 ** (n_casc - 1), expect, torch.full_like(expect, -1))
    frac = (q / 2.0 ** casc[:, None] + 1) * res / 2
    clear = ((frac - frac.round()).abs() > 1e-4).all(-1) & ((a - a.round()).abs() > 1e-4)  # off boundaries
    assert int(clear.sum()) > 4000
    assert torch.equal(idx[clear], expect[clear])
    bits = random_bits(1, 8, 0.5, seed=1)
    assert torch.equal(pack_bits(unpack_bits(bits)), bits)


def test_step_grid_follows_the_recurrence():
    g = step_grid(40.0, 0.01, 1 / 128, 0.25).double()
    nxt = g[:-1] + (g[:-1] / 128).clamp(0.01, 0.25)
    assert torch.allclose(nxt, g[1:], rtol=1e-6, atol=1e-6)
    assert g[-3] >= 40.0 and g[-4] < 40.0
    lin = step_grid(3.0, 0.1)
    assert torch.allclose(lin, torch.arange(lin.numel()) * 0.1) and lin[-3] >= 3.0


@pytest.mark.parametrize("backend", ["ref", pytest.param("cpp", marks=needs_cpp)])
def test_marching_in_rounds_resumes_exactly(backend):
    bits = shell_bits(1, 32)
    o, d = random_rays(64, seed=4)
    tn, tf, _ = ray_aabb(o, d, AABB)
    offsets = torch.rand(64, generator=torch.Generator().manual_seed(9))
    kw = dict(step_size=0.01, jitter=offsets, backend=backend)
    full = march_rays(o, d, tn, tf, bits, AABB, **kw)
    first = march_rays(o, d, tn, tf, bits, AABB, max_samples=5, **kw)
    last_end = tn.scatter_reduce(0, first[0], first[2], "amax", include_self=False)
    rest = march_rays(o, d, last_end, tf, bits, AABB, **kw)
    merged = torch.cat([first[0], rest[0]])
    order = torch.argsort(merged, stable=True)
    for part_a, part_b, whole in zip(first, rest, full):
        assert torch.equal(torch.cat([part_a, part_b])[order], whole)


@needs_cpp
@pytest.mark.parametrize("n_casc,cone", [(1, 0.0), (3, 1 / 256)])
def test_fast_path_is_bit_identical(n_casc, cone):
    bits = shell_bits(n_casc, 64)
    o, d = random_rays(512, seed=7, radius=2.5 * 2 ** (n_casc - 1))
    outer = AABB.mean(0) + (AABB - AABB.mean(0)) * 2 ** (n_casc - 1)
    tn, tf, _ = ray_aabb(o, d, outer)
    step = math.sqrt(3) / 1024 * 2
    kw = dict(step_size=step, cone_angle=cone, jitter=torch.rand(512, generator=torch.Generator().manual_seed(3)))
    ref = march_rays(o, d, tn, tf, bits, AABB, backend="ref", **kw)
    fast = march_rays(o, d, tn, tf, bits, AABB, backend="cpp", **kw)
    assert ref[0].numel() > 3000
    for a, b in zip(ref, fast):
        assert torch.equal(a, b)


@needs_cpp
def test_fast_path_sees_in_place_bitfield_updates():
    bits = shell_bits(1, 32)
    o, d = random_rays(128, seed=11)
    tn, tf, _ = ray_aabb(o, d, AABB)
    kw = dict(step_size=0.01)
    before = march_rays(o, d, tn, tf, bits, AABB, backend="cpp", **kw)
    bits.copy_(random_bits(1, 32, 0.3, seed=12))  # the cached skipping mips must be rebuilt
    after = march_rays(o, d, tn, tf, bits, AABB, backend="cpp", **kw)
    ref = march_rays(o, d, tn, tf, bits, AABB, backend="ref", **kw)
    assert before[0].numel() != after[0].numel()
    for a, b in zip(after, ref):
        assert torch.equal(a, b)


TRITON_PARITY = r'''
import sys
import torch
from nerfkit.ops._ref.march_rays import march_rays_ref, pack_bits, step_grid
from nerfkit.ops._triton.march_rays import march_rays_triton
from nerfkit.cameras.rays import ray_aabb

AABB = torch.tensor([[-1.0, -0.5, -1.2], [1.3, 0.8, 1.0]])
failed = []
for n_casc, res, cone, max_samples, seed in [(1, 16, 0.0, 1024, 0), (3, 16, 1 / 64, 1024, 1), (2, 8, 0.0, 7, 2),
                                             (1, 16, 1 / 32, 0, 3), (4, 8, 1 / 16, 3, 4)]:
    g = torch.Generator().manual_seed(seed)
    bits = pack_bits(torch.rand(n_casc, res ** 3, generator=g) < 0.2)
    o = torch.randn(48, 3, generator=g) * 3
    d = torch.nn.functional.normalize(-o + torch.randn(48, 3, generator=g) * 0.5, dim=-1)
    half = (AABB[1] - AABB[0]) / 2 * 2 ** (n_casc - 1)
    tn, tf, hit = ray_aabb(o, d, torch.stack([AABB.mean(0) - half, AABB.mean(0) + half]))
    tf = torch.where(hit & (tf > tn), tf, tn)
    u = torch.rand(48, generator=g)
    table = step_grid(float(tf[tf > tn].max()), 0.02, cone, 0.1)
    ref = march_rays_ref(o, d, tn, tf, bits, AABB, u, table, max_samples)
    tri = march_rays_triton(o, d, tn, tf, bits, AABB, u, table, max_samples)
    if not all(torch.equal(a, b) for a, b in zip(ref, tri)):
        failed.append((n_casc, res, cone, max_samples, ref[0].numel(), tri[0].numel()))
    elif max_samples > 0 and ref[0].numel() < 100:
        failed.append(("too few samples to test", ref[0].numel()))

# the public entry point caches the step grid on the device and grows it when a ray reaches past it:
# short rays, then longer ones (overflow -> rebuild), then short ones on the longer table
from nerfkit.ops.march_rays import march_rays
bits = pack_bits(torch.rand(2, 16 ** 3, generator=torch.Generator().manual_seed(5)) < 0.3)
o = torch.tensor([[-3.0, 0.1, 0.2]]).repeat(24, 1)
d = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.0]) + torch.randn(24, 3) * 0.05, dim=-1)
for length in (2.0, 6.0, 3.0):
    tn, tf = torch.full((24,), 0.5), torch.full((24,), length)
    kw = dict(step_size=0.01, cone_angle=1 / 64, max_samples=4096, jitter=torch.rand(24))
    ref = march_rays(o, d, tn, tf, bits, AABB, backend="ref", **kw)
    tri = march_rays(o, d, tn, tf, bits, AABB, backend="triton", **kw)
    if not all(torch.equal(a, b) for a, b in zip(ref, tri)) or ref[0].numel() < 50:
        failed.append(("cached step grid", length, ref[0].numel(), tri[0].numel()))
print(failed)
sys.exit(1 if failed else 0)
'''


def test_triton_kernel_is_bit_identical_to_the_reference_in_the_interpreter():
    """The Triton kernel run by Triton's CPU interpreter (numpy float32, no FMA), against the reference."""
    from conftest import run_in_triton_interpreter

    run_in_triton_interpreter(TRITON_PARITY)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_triton_kernel_matches_the_reference_on_the_gpu():
    pytest.importorskip("triton")
    bits = random_bits(3, 32, 0.2, seed=7).cuda()
    o, d = random_rays(4000, seed=8)
    half = (AABB[1] - AABB[0]) / 2 * 4
    tn, tf, _ = ray_aabb(o, d, torch.stack([AABB.mean(0) - half, AABB.mean(0) + half]))
    offsets = torch.rand(4000, generator=torch.Generator().manual_seed(9))
    args = [x.cuda() for x in (o, d, tn, tf)]
    kw = dict(step_size=0.01, cone_angle=1 / 128, max_samples=256, jitter=offsets.cuda())
    ref = march_rays(*args, bits, AABB.cuda(), backend="ref", **kw)
    tri = march_rays(*args, bits, AABB.cuda(), backend="triton", **kw)
    assert ref[0].numel() > 10000
    for a, b in zip(ref, tri):
        assert torch.equal(a, b)
