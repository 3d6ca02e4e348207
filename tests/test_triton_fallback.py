"""A Triton kernel that fails to compile or launch falls back to the PyTorch reference once, with a
warning, and the results are the reference's; asked for by name, the error is raised instead.

The kernels are replaced by functions that raise (as a Triton/driver mismatch would), so these run
on the CPU; the numbers are compared with the reference computed directly.
"""

from __future__ import annotations

import importlib

import pytest
import torch

pytest.importorskip("triton", reason="Triton is not installed (CUDA builds of PyTorch on Linux ship it)")

import nerfkit.ops._triton as tri  # noqa: E402
from nerfkit.ops._ref.composite import composite_packed_ref  # noqa: E402
from nerfkit.ops._ref.hash_encode import hash_encode_ref  # noqa: E402
from nerfkit.ops._ref.march_rays import pack_bits  # noqa: E402
from nerfkit.ops.composite import _Composite, ray_offsets  # noqa: E402
from nerfkit.ops.hash_encode import _HashEncodeTriton, hash_grid_resolutions  # noqa: E402

march_module = importlib.import_module("nerfkit.ops.march_rays")


def _boom(*args, **kwargs):
    raise RuntimeError("simulated Triton compile failure")


@pytest.fixture(autouse=True)
def fresh_failures():
    tri._FAILED.clear()
    yield
    tri._FAILED.clear()


def test_run_or_fall_back_rules():
    with pytest.warns(RuntimeWarning, match="Triton k1 kernel failed"):
        assert tri.run_or_fall_back("k1", _boom, lambda: 7) == 7
    assert not tri.available("k1") and "simulated" in tri._FAILED["k1"]
    assert tri.run_or_fall_back("k1", lambda: 1 / 0, lambda: 8) == 8  # never retried, no second warning
    with pytest.raises(RuntimeError, match="simulated"):
        tri.run_or_fall_back("k2", _boom, lambda: 7, strict=True)
    with pytest.raises(torch.OutOfMemoryError):  # out of memory is not a kernel failure

        def oom():
            raise torch.OutOfMemoryError("CUDA out of memory")

        tri.run_or_fall_back("k3", oom, lambda: 7)
    assert tri.available("k3")


def test_hash_encode_falls_back_forward_and_backward(monkeypatch):
    import nerfkit.ops._triton.hash_encode as kern

    monkeypatch.setattr(kern, "hash_encode_fwd_triton", _boom)
    monkeypatch.setattr(kern, "hash_encode_bwd_table_triton", _boom)
    g = torch.Generator().manual_seed(0)
    res = torch.tensor(hash_grid_resolutions(4, 4, 64))
    table = (torch.rand(4, 2 ** 10, 2, generator=g) - 0.5).requires_grad_(True)
    x = torch.rand(500, 3, generator=g).requires_grad_(True)
    v = torch.randn(500, 8, generator=g)
    with pytest.warns(RuntimeWarning, match="hash_encode"):
        out = _HashEncodeTriton.apply(x, table, res, False)
    gx, gt = torch.autograd.grad((out * v).sum(), (x, table))
    ref = hash_encode_ref(x, table, res)
    rx, rt = torch.autograd.grad((ref * v).sum(), (x, table))
    assert torch.equal(out, ref) and torch.equal(gt, rt) and torch.equal(gx, rx)


def test_composite_falls_back_forward_and_backward(monkeypatch):
    import nerfkit.ops._triton.composite as kern

    monkeypatch.setattr(kern, "composite_fwd_triton", _boom)
    monkeypatch.setattr(kern, "composite_bwd_triton", _boom)
    g = torch.Generator().manual_seed(1)
    counts = torch.randint(0, 20, (30,), generator=g)
    ri = torch.repeat_interleave(torch.arange(30), counts)
    m = ri.numel()
    inputs = [(torch.rand(m, generator=g) * 30), torch.rand(m, generator=g) * 0.05 + 1e-3,
              torch.rand(m, 3, generator=g), torch.rand(m, generator=g)]
    a = [t.clone().requires_grad_(True) for t in inputs]
    b = [t.clone().requires_grad_(True) for t in inputs]
    with pytest.warns(RuntimeWarning, match="composite"):
        w, trans, rgb, opacity, depth = _Composite.apply(*a, ray_offsets(ri, 30), 1e-4, "triton", False)
    ref = composite_packed_ref(b[0], b[2], b[3], b[1], ri, 30, min_transmittance=1e-4)
    for x, y in ((w, ref["weights"]), (trans, ref["transmittance"]), (rgb, ref["rgb"]),
                 (opacity, ref["opacity"]), (depth, ref["depth"])):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-6)
    cot = torch.randn(30, 3, generator=g)
    got = torch.autograd.grad((rgb * cot).sum() + depth.sum(), a)
    want = torch.autograd.grad((ref["rgb"] * cot).sum() + ref["depth"].sum(), b)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
    with pytest.raises(RuntimeError, match="simulated"):  # asked for by name: the error is not hidden
        tri._FAILED.clear()
        _Composite.apply(*inputs, ray_offsets(ri, 30), 1e-4, "triton", True)


def test_march_rays_auto_falls_back(monkeypatch):
    import nerfkit.ops._triton.march_rays as kern

    monkeypatch.setattr(kern, "march_rays_triton", _boom)
    monkeypatch.setattr(march_module, "_wants_triton", lambda dev: tri.available("march_rays"))
    aabb = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    bits = pack_bits(torch.rand(1, 16 ** 3, generator=torch.Generator().manual_seed(2)) < 0.3)
    o = torch.tensor([[-3.0, 0.1, 0.2]]).repeat(16, 1)
    d = torch.nn.functional.normalize(torch.tensor([1.0, 0.0, 0.0]) + torch.randn(16, 3) * 0.1, dim=-1)
    tn, tf = torch.full((16,), 1.5), torch.full((16,), 4.5)
    kw = dict(step_size=0.01, max_samples=1024)
    with pytest.warns(RuntimeWarning, match="march_rays"):
        got = march_module.march_rays(o, d, tn, tf, bits, aabb, backend="auto", **kw)
    want = march_module.march_rays(o, d, tn, tf, bits, aabb, backend="ref", **kw)
    assert want[0].numel() > 100
    assert all(torch.equal(x, y) for x, y in zip(got, want))
    with pytest.raises(RuntimeError, match="simulated"):
        march_module.march_rays(o, d, tn, tf, bits, aabb, backend="triton", **kw)
