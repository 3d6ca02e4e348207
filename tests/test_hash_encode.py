"""Multiresolution hash encoding: reference vs the formula, gradcheck, fast-vs-reference parity.

Parity tolerances (fast C++ kernel vs the float32 reference):

| quantity        | rtol  | atol  | why                                                           |
|-----------------|-------|-------|---------------------------------------------------------------|
| forward         | 1e-5  | 1e-6  | same weights and corner order; only FMA contraction may differ |
| table gradient  | 1e-5  | 1e-5  | scatter-add sums contributions of many points in another order |
| input gradient  | 1e-4  | 1e-3  | sums 8 corners x L levels of terms scaled by R_l (up to ~1e3),  |
|                 |       |       | i.e. cancellation of large terms in a different order          |
"""

from __future__ import annotations

import math
import os

import pytest
import torch

from nerfkit.ops import hash_encode, hash_grid_resolutions
from nerfkit.ops._ref.hash_encode import hash_encode_ref
from nerfkit.ops.hash_encode import cpu_kernel_available

FWD_TOL = dict(rtol=1e-5, atol=1e-6)
GRAD_TABLE_TOL = dict(rtol=1e-5, atol=1e-5)
GRAD_X_TOL = dict(rtol=1e-4, atol=1e-3)

PRIMES = (1, 2654435761, 805459861)


def _loop_encode(x, table, resolutions):
    """Direct transcription of the definition: per point, per level, per corner (Python ints)."""
    n_levels, table_size, n_feat = table.shape
    out = torch.zeros(x.shape[0], n_levels * n_feat, dtype=torch.float64)
    for i in range(x.shape[0]):
        for level, res in enumerate(resolutions):
            p = [min(max(float(v), 0.0), 1.0) * res for v in x[i]]
            cell = [min(max(math.floor(v), 0), res - 1) for v in p]
            frac = [p[d] - cell[d] for d in range(3)]
            for bx in (0, 1):
                for by in (0, 1):
                    for bz in (0, 1):
                        v = (cell[0] + bx, cell[1] + by, cell[2] + bz)
                        if (res + 1) ** 3 <= table_size:
                            row = v[0] + v[1] * (res + 1) + v[2] * (res + 1) ** 2
                        else:
                            row = ((v[0] * PRIMES[0]) ^ (v[1] * PRIMES[1]) ^ (v[2] * PRIMES[2])) % 2**32 % table_size
                        w = 1.0
                        for d, b in enumerate((bx, by, bz)):
                            w *= frac[d] if b else 1.0 - frac[d]
                        out[i, level * n_feat : (level + 1) * n_feat] += w * table[level, row].double()
    return out


def _away_from_faces(n, resolutions, margin, generator, dtype=torch.float64):
    """[n, 3] random points whose fractions at every level stay ``margin`` away from cell faces."""
    pts = []
    while len(pts) < n:
        p = torch.rand(3, generator=generator, dtype=dtype)
        fr = torch.stack([(p * r) % 1.0 for r in resolutions])
        if bool(((fr > margin) & (fr < 1 - margin)).all()):
            pts.append(p)
    return torch.stack(pts)


def test_resolutions_follow_geometric_growth():
    res = hash_grid_resolutions(16, 16, 2048)
    assert res[0] == 16 and res[-1] == 2048 and len(res) == 16
    assert all(b > a for a, b in zip(res, res[1:]))
    assert hash_grid_resolutions(1, 8, 8) == [8]


def test_reference_matches_loop_definition():
    g = torch.Generator().manual_seed(0)
    resolutions = [2, 3, 5, 9]  # T = 64: (2+1)^3 = 27 and (3+1)^3 = 64 are dense, 5 and 9 are hashed
    table = torch.randn(4, 64, 3, generator=g)
    x = torch.rand(20, 3, generator=g)
    x[0] = torch.tensor([0.0, 1.0, 0.5])  # faces of the cube
    x[1] = torch.tensor([-0.2, 1.3, 0.25])  # outside: clamped
    out = hash_encode_ref(x, table, resolutions)
    assert out.shape == (20, 4 * 3)
    torch.testing.assert_close(out.double(), _loop_encode(x, table, resolutions), rtol=1e-5, atol=1e-6)


def test_reference_dense_level_is_exact_on_vertices():
    # At grid vertices the encoding returns the stored feature of that vertex.
    table = torch.randn(1, 125, 2, dtype=torch.float64)
    x = torch.tensor([[0.25, 0.5, 0.75], [1.0, 0.0, 0.25]], dtype=torch.float64)  # vertices of R=4
    out = hash_encode_ref(x, table, [4])
    rows = [1 + 2 * 5 + 3 * 25, 4 + 0 * 5 + 1 * 25]
    torch.testing.assert_close(out, table[0, rows])


def test_reference_gradcheck_table_and_input():
    g = torch.Generator().manual_seed(1)
    resolutions = [2, 3, 6]  # T = 32: level 0 dense, levels 1-2 hashed
    table = torch.randn(3, 32, 2, generator=g, dtype=torch.float64, requires_grad=True)
    x = _away_from_faces(5, resolutions, 0.05, g).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, t: hash_encode_ref(a, t, resolutions), (x, table))


needs_cpp = pytest.mark.skipif(
    not cpu_kernel_available(), reason="C++ hash-encoding kernel not built here (no compiler/ninja, or NERFKIT_NO_EXT=1)"
)


@needs_cpp
@pytest.mark.parametrize(
    "n_levels,log2_t,n_feat,max_res",
    [(16, 14, 2, 512), (4, 10, 4, 64), (3, 9, 3, 40), (8, 19, 2, 2048)],
)
def test_cpp_matches_reference(n_levels, log2_t, n_feat, max_res):
    g = torch.Generator().manual_seed(2)
    res = hash_grid_resolutions(n_levels, 4, max_res)
    table = (torch.rand(n_levels, 2**log2_t, n_feat, generator=g) * 2 - 1).requires_grad_()
    x = torch.rand(3000, 3, generator=g)
    x[:4] = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-0.1, 0.5, 1.2], [0.5, 0.5, 0.5]])
    x.requires_grad_()
    out = hash_encode(x, table, res, backend="cpp")
    ref = hash_encode(x, table, res, backend="ref")
    torch.testing.assert_close(out, ref, **FWD_TOL)
    v = torch.randn(ref.shape, generator=g)
    gx, gt = torch.autograd.grad((out * v).sum(), (x, table))
    rx, rt = torch.autograd.grad((ref * v).sum(), (x, table))
    torch.testing.assert_close(gt, rt, **GRAD_TABLE_TOL)
    torch.testing.assert_close(gx, rx, **GRAD_X_TOL)


@needs_cpp
def test_cpp_non_power_of_two_table_and_empty_batch():
    g = torch.Generator().manual_seed(3)
    res = [3, 7, 15]
    table = torch.rand(3, 100, 2, generator=g).requires_grad_()
    x = torch.rand(500, 3, generator=g)
    out = hash_encode(x, table, res, backend="cpp")
    torch.testing.assert_close(out, hash_encode_ref(x, table, res), **FWD_TOL)
    (gt,) = torch.autograd.grad(out.sum(), table)
    (rt,) = torch.autograd.grad(hash_encode_ref(x, table, res).sum(), table)
    torch.testing.assert_close(gt, rt, **GRAD_TABLE_TOL)
    empty = hash_encode(torch.zeros(0, 3), table, res, backend="cpp")
    assert empty.shape == (0, 6)


@needs_cpp
def test_auto_uses_cpp_for_float32_cpu_and_ref_otherwise():
    table = torch.rand(2, 64, 2, requires_grad=True)
    out = hash_encode(torch.rand(10, 3), table, [2, 5])
    assert "HashEncodeCPU" in type(out.grad_fn).__name__
    out64 = hash_encode(torch.rand(10, 3, dtype=torch.float64), table.detach().double(), [2, 5])
    assert out64.dtype == torch.float64


def test_no_ext_env_forces_reference(monkeypatch):
    monkeypatch.setenv("NERFKIT_NO_EXT", "1")
    assert not cpu_kernel_available()
    table = torch.rand(2, 64, 2, requires_grad=True)
    out = hash_encode(torch.rand(10, 3), table, [2, 5])
    assert "HashEncodeCPU" not in type(out.grad_fn).__name__
    with pytest.raises(RuntimeError):
        hash_encode(torch.rand(10, 3), table, [2, 5], backend="cpp")


def test_bad_shapes_raise():
    table = torch.rand(2, 64, 2)
    with pytest.raises(ValueError):
        hash_encode(torch.rand(10, 2), table, [2, 5])
    with pytest.raises(ValueError):
        hash_encode(torch.rand(10, 3), table, [2, 5, 7])
    with pytest.raises(ValueError):
        hash_encode(torch.rand(10, 3), table, [2, 5], backend="cuda-magic")



def _check_backend_parity(backend, device, n=2000):
    """``backend`` on ``device`` vs the CPU reference: forward, table and input gradients."""
    g = torch.Generator().manual_seed(4)
    res = hash_grid_resolutions(6, 4, 128)
    table_cpu = torch.rand(6, 2**12, 2, generator=g) * 2 - 1
    x_cpu = torch.rand(n, 3, generator=g)
    v_cpu = torch.randn(n, 12, generator=g)
    results = []
    for dev, be in ((device, backend), ("cpu", "ref")):
        table = table_cpu.to(dev).requires_grad_()
        x = x_cpu.to(dev).requires_grad_()
        out = hash_encode(x, table, res, backend=be)
        gx, gt = torch.autograd.grad((out * v_cpu.to(dev)).sum(), (x, table))
        results.append((out.cpu(), gt.cpu(), gx.cpu()))
    (out, gt, gx), (ref, rt, rx) = results
    torch.testing.assert_close(out, ref, **FWD_TOL)
    torch.testing.assert_close(gt, rt, **GRAD_TABLE_TOL)
    torch.testing.assert_close(gx, rx, **GRAD_X_TOL)


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("NERFKIT_TEST_COMPILE") != "1", reason="torch.compile on the CPU takes ~30 s; set NERFKIT_TEST_COMPILE=1"
)
def test_compiled_backend_matches_reference():
    _check_backend_parity("compile", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_reference_matches_cpu_reference():
    _check_backend_parity("ref", "cuda")


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_compiled_matches_cpu_reference():
    _check_backend_parity("compile", "cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_matches_cpu_reference():
    _check_backend_parity("auto", "cuda")  # Triton where it imports, else the compiled reference


TRITON_PARITY = r'''
import sys
import torch
from nerfkit.ops._ref.hash_encode import hash_encode_ref
from nerfkit.ops.hash_encode import _HashEncodeTriton, hash_grid_resolutions

failed = []
for n_levels, table_size, n_feat, rmin, rmax, seed in [(4, 2 ** 10, 2, 4, 64, 0), (3, 2 ** 12, 4, 2, 40, 1),
                                                       (2, 2 ** 8, 1, 3, 300, 2), (3, 1000, 2, 5, 90, 3)]:
    g = torch.Generator().manual_seed(seed)
    res = torch.tensor(hash_grid_resolutions(n_levels, rmin, rmax))
    table = (torch.rand(n_levels, table_size, n_feat, generator=g) * 2 - 1).requires_grad_(True)
    x = torch.rand(300, 3, generator=g) * 1.2 - 0.1  # some coordinates outside the cube (clamped)
    x[:5] = torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.25, 0.5, 0.75], [1.0, 0.3, 0.0]])
    x.requires_grad_(True)
    v = torch.randn(300, n_levels * n_feat, generator=g)
    ref = hash_encode_ref(x, table, res)
    rx, rt = torch.autograd.grad(ref, (x, table), v)
    out = _HashEncodeTriton.apply(x, table, res)
    gx, gt = torch.autograd.grad(out, (x, table), v)
    if not torch.equal(out, ref):  # same operations in the same order, no FMA: bit-identical
        failed.append(("forward", table_size, float((out - ref).abs().max())))
    if not torch.allclose(gt, rt, atol=1e-5, rtol=1e-5):
        failed.append(("table grad", table_size, float((gt - rt).abs().max())))
    if not torch.allclose(gx, rx, atol=1e-5 * float(rx.abs().max()), rtol=1e-4):
        failed.append(("input grad", table_size, float((gx - rx).abs().max())))
print(failed)
sys.exit(1 if failed else 0)
'''


def test_triton_kernels_match_the_reference_in_the_interpreter():
    """Forward (bit-identical), table and input gradients of the Triton kernels run by Triton's CPU
    interpreter, on dense and hashed levels, 1/2/4 features and a non-power-of-two table."""
    from conftest import run_in_triton_interpreter

    run_in_triton_interpreter(TRITON_PARITY)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_triton_matches_cpu_reference():
    pytest.importorskip("triton")
    _check_backend_parity("triton", "cuda")
