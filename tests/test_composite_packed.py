"""Packed compositing: reference maths, agreement with the batched renderer, fast-vs-reference parity.

Tolerances (float32 unless noted):
  fast vs reference, values     atol 1e-5 — the kernel multiplies transmittances sample by sample in
                                 float32, the reference exponentiates float64 prefix sums;
  fast vs reference, gradients  rtol 1e-4, atol 1e-5 * max|grad| — both sum ~100 terms of either sign
                                 in float32 (reverse suffix sums vs cumsum backward); both are ~1e-6
                                 of max|grad| from a float64 evaluation;
  packed vs batched             atol 1e-5 — same maths, different summation order.
"""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.ops import composite as oc
from nerfkit.ops._ref.composite import composite_packed_ref, weights_packed_ref
from nerfkit.render import compositing

needs_cpp = pytest.mark.skipif(not oc.cpu_kernel_available(), reason="C++ kernel unavailable")
KEYS = ("rgb", "opacity", "depth", "weights", "transmittance")


def packed_problem(n_rays: int, max_s: int, seed: int, sigma_scale: float = 30.0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_s + 1, (n_rays,), generator=g)
    counts[0] = 0  # an empty ray
    ray_indices = torch.repeat_interleave(torch.arange(n_rays), counts)
    m = ray_indices.numel()
    sigmas = (torch.rand(m, generator=g) * sigma_scale).to(dtype)
    rgbs = torch.rand(m, 3, generator=g).to(dtype)
    deltas = (torch.rand(m, generator=g) * 0.05 + 0.001).to(dtype)
    t_mid = (torch.rand(m, generator=g) + torch.arange(m) * 0.01).to(dtype)
    background = torch.rand(n_rays, 3, generator=g).to(dtype)
    return sigmas, rgbs, t_mid, deltas, ray_indices, background


def grads_with_cotangent(fn, inputs, seed=0):
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = fn(*inputs)
    g = torch.Generator().manual_seed(seed)
    loss = sum((out[k] * torch.randn(out[k].shape, generator=g).to(out[k].device, out[k].dtype)).sum() for k in KEYS)
    return out, torch.autograd.grad(loss, inputs)


def test_reference_gradcheck_float64():
    s, c, t, d, ri, bg = packed_problem(5, 6, seed=1, sigma_scale=20.0, dtype=torch.float64)
    for eps in (0.0, 1e-4):
        def fn(s_, c_, t_, d_, bg_):
            out = composite_packed_ref(s_, c_, t_, d_, ri, 5, bg_, eps)
            return out["rgb"], out["opacity"], out["depth"], out["weights"], out["transmittance"]
        inputs = [x.clone().requires_grad_() for x in (s, c, t, d, bg)]
        assert torch.autograd.gradcheck(fn, inputs)


def test_homogeneous_medium_and_weights_sum_to_opacity():
    sigma, n, dt = 3.0, 50, 0.01
    ri = torch.zeros(n, dtype=torch.int64)
    w, trans = weights_packed_ref(torch.full((n,), sigma), torch.full((n,), dt), ri, 1)
    assert torch.allclose(trans, torch.exp(-sigma * dt * torch.arange(n)), atol=1e-6)
    assert math.isclose(float(w.sum()), 1 - math.exp(-sigma * dt * n), rel_tol=1e-5)


def test_packed_matches_batched_values_and_gradients():
    g = torch.Generator().manual_seed(3)
    n, s = 7, 9
    sig, col = torch.rand(n, s, generator=g) * 20, torch.rand(n, s, 3, generator=g)
    t, dl, bg = torch.rand(n, s, generator=g).cumsum(-1), torch.rand(n, s, generator=g) * 0.1, torch.rand(n, 3)
    ri = torch.arange(n).repeat_interleave(s)
    flat = [sig.reshape(-1), col.reshape(-1, 3), t.reshape(-1), dl.reshape(-1)]

    def batched(a, b, c, d):
        return compositing.composite_batched(a.reshape(n, s), b.reshape(n, s, 3), c.reshape(n, s), d.reshape(n, s), bg)

    for backend in ("ref",) + (("cpp",) if oc.cpu_kernel_available() else ()):
        def packed(a, b, c, d):
            out = oc.composite_packed(a, b, c, d, ri, n, bg, backend=backend)
            return {**out, "weights": out["weights"].reshape(n, s), "transmittance": out["transmittance"].reshape(n, s)}
        ref_out, ref_g = grads_with_cotangent(batched, flat)
        out, grads = grads_with_cotangent(packed, flat)
        for k in KEYS:
            torch.testing.assert_close(out[k], ref_out[k], atol=1e-5, rtol=1e-5)
        for a, b in zip(grads, ref_g):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@needs_cpp
@pytest.mark.parametrize("eps,scale", [(0.0, 30.0), (1e-4, 300.0)])
def test_fast_matches_reference(eps, scale):
    s, c, t, d, ri, bg = packed_problem(300, 120, seed=4, sigma_scale=scale)
    n = 300
    out_r, g_r = grads_with_cotangent(lambda *x: composite_packed_ref(*x[:4], ri, n, x[4], eps), [s, c, t, d, bg])
    out_f, g_f = grads_with_cotangent(lambda *x: oc.composite_packed(*x[:4], ri, n, x[4], eps, backend="cpp"),
                                      [s, c, t, d, bg])
    if eps > 0:
        assert float((out_r["transmittance"] < eps).float().mean()) > 0.2  # early stop is exercised
    for k in KEYS:
        torch.testing.assert_close(out_f[k], out_r[k], atol=1e-5, rtol=1e-4)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a, b, atol=1e-5 * float(b.abs().max()), rtol=1e-4)
    w_f, tr_f = oc.weights_packed(s, d, ri, n, eps, backend="cpp")
    torch.testing.assert_close(w_f, out_r["weights"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["ref", pytest.param("cpp", marks=needs_cpp)])
def test_early_termination(backend):
    ri = torch.zeros(40, dtype=torch.int64)
    sig = torch.full((40,), 100.0)
    out = oc.composite_packed(sig, torch.rand(40, 3), torch.arange(40.0), torch.full((40,), 0.05), ri, 1,
                              min_transmittance=1e-4, backend=backend)
    dead = out["transmittance"] < 1e-4
    assert bool(dead.any()) and bool((out["weights"][dead] == 0).all())
    assert abs(float(out["opacity"][0]) - 1.0) < 1e-4
    default = compositing.composite_packed(sig, torch.rand(40, 3), torch.arange(40.0), torch.full((40,), 0.05), ri, 1)
    assert bool((default["weights"][dead] == 0).all())  # the render-layer default terminates early


@pytest.mark.parametrize("backend", ["ref", pytest.param("cpp", marks=needs_cpp)])
def test_no_samples(backend):
    empty = torch.empty(0)
    out = oc.composite_packed(empty, torch.empty(0, 3), empty, empty, torch.empty(0, dtype=torch.int64), 3,
                              torch.ones(3, 3), backend=backend)
    assert torch.equal(out["rgb"], torch.ones(3, 3)) and torch.equal(out["opacity"], torch.zeros(3))


TRITON_PARITY = r'''
import sys
import torch
from nerfkit.ops._ref.composite import composite_packed_ref, weights_packed_ref
from nerfkit.ops.composite import _Composite, ray_offsets

failed = []
for n_rays, eps, seed in [(40, 0.0, 0), (33, 1e-4, 1)]:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 30, (n_rays,), generator=g)
    counts[3] = 0  # a ray without samples
    ri = torch.repeat_interleave(torch.arange(n_rays), counts)
    m = ri.numel()
    sig = torch.rand(m, generator=g) * 40
    sig[:3] = torch.tensor([0.0, 1e-6, 500.0])  # tiny optical thickness (series branch) and an opaque sample
    delta = torch.rand(m, generator=g) * 0.05 + 1e-3
    rgb, tm = torch.rand(m, 3, generator=g), torch.cumsum(delta, 0)
    inputs = [t.clone().requires_grad_(True) for t in (sig, delta, rgb, tm)]
    ref = composite_packed_ref(*[inputs[i] for i in (0, 2, 3, 1)], ri, n_rays, min_transmittance=eps)
    ref = [ref[k] for k in ("weights", "transmittance", "rgb", "opacity", "depth")]
    out = list(_Composite.apply(*inputs, ray_offsets(ri, n_rays), eps, "triton"))
    if eps > 0 and not bool((ref[1] < eps).any()):
        failed.append("early termination not exercised")
    cot = [torch.randn(o.shape, generator=g) for o in ref]
    g_ref = torch.autograd.grad(sum((o * c).sum() for o, c in zip(ref, cot)), inputs)
    g_out = torch.autograd.grad(sum((o * c).sum() for o, c in zip(out, cot)), inputs)
    for name, a, b in zip(("w", "trans", "rgb", "opacity", "depth"), out, ref):
        if not torch.allclose(a, b, atol=1e-5 * max(1.0, float(b.abs().max())), rtol=1e-5):
            failed.append((name, eps, float((a - b).abs().max())))
    for name, a, b in zip(("d_sigma", "d_delta", "d_rgb", "d_t"), g_out, g_ref):
        if not torch.allclose(a, b, atol=1e-5 * float(b.abs().max()), rtol=1e-4):
            failed.append((name, eps, float((a - b).abs().max())))
    w, trans, _, _, _ = _Composite.apply(sig, delta, None, None, ray_offsets(ri, n_rays), eps, "triton")
    w_ref, trans_ref = weights_packed_ref(sig, delta, ri, n_rays, eps)
    if not (torch.allclose(w, w_ref, atol=1e-6) and torch.allclose(trans, trans_ref, atol=1e-6)):
        failed.append(("weights only", eps))
print(failed)
sys.exit(1 if failed else 0)
'''


def test_triton_kernels_match_the_reference_in_the_interpreter():
    """Values and all four input gradients of the Triton compositing kernels (run by Triton's CPU
    interpreter) against the reference, with and without early termination, an empty ray included."""
    from conftest import run_in_triton_interpreter

    run_in_triton_interpreter(TRITON_PARITY)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("eps", [0.0, 1e-4])
def test_triton_matches_reference_on_the_gpu(eps):
    pytest.importorskip("triton")
    s, c, t, d, ri, bg = packed_problem(3000, 120, seed=5, sigma_scale=300.0 if eps else 30.0)
    n = 3000
    out_r, g_r = grads_with_cotangent(lambda *x: composite_packed_ref(*x[:4], ri, n, x[4], eps), [s, c, t, d, bg])
    dev = [x.cuda() for x in (s, c, t, d, bg)]
    out_f, g_f = grads_with_cotangent(
        lambda *x: oc.composite_packed(*x[:4], ri.cuda(), n, x[4], eps, backend="triton"), dev)
    for k in KEYS:
        torch.testing.assert_close(out_f[k].cpu(), out_r[k], atol=1e-5, rtol=1e-4)
    for a, b in zip(g_f, g_r):
        torch.testing.assert_close(a.cpu(), b, atol=1e-5 * float(b.abs().max()), rtol=1e-4)


def test_ray_offsets_match_bincount():
    ri = torch.tensor([0, 0, 2, 2, 2, 5])
    off = oc.ray_offsets(ri, 7)
    assert off.tolist() == [0, 2, 2, 5, 5, 5, 6, 6]
    assert torch.equal(off.diff(), torch.bincount(ri, minlength=7))
    assert oc.ray_offsets(torch.zeros(0, dtype=torch.int64), 3).tolist() == [0, 0, 0, 0]
