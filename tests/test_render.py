"""Volume rendering (batched and packed compositing) and samplers along rays.

Tolerances: float32 compositing vs closed forms atol 1e-6 (a few exp/cumsum roundings of O(1) values);
packed vs batched 1e-5 (values) and 1e-5 * max|grad| (gradients): same maths, different summation
order (and in float32 the packed path is the fused C++ kernel when it builds). float64: 1e-12.
Statistical tests use fixed seeds and reject at p < 1e-3 (or 4 standard errors).
"""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.render.compositing import composite_batched, composite_packed, weights_batched, weights_packed
from nerfkit.render.samplers import intervals, sample_pdf, stratified

# ------------------------------------------------------------------------------------ compositing


@pytest.mark.parametrize("sigma", [0.1, 1.0, 5.0, 30.0])
@pytest.mark.parametrize("length", [0.5, 2.0, 4.0])
def test_homogeneous_medium(sigma, length):
    g = torch.Generator().manual_seed(int(sigma * 100 + length * 10))
    n, s = 8, 16
    parts = torch.rand(n, s, generator=g) + 0.05
    deltas = parts / parts.sum(-1, keepdim=True) * length  # S random intervals covering length d
    sigmas = torch.full((n, s), sigma)
    w, trans = weights_batched(sigmas, deltas)
    opacity = 1.0 - math.exp(-sigma * length)
    torch.testing.assert_close(w.sum(-1), torch.full((n,), opacity), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(trans[:, 0], torch.ones(n), atol=0, rtol=0)
    # transmittance in front of each sample: exp(-sigma * distance travelled so far)
    travelled = torch.cumsum(deltas.double(), -1) - deltas.double()
    torch.testing.assert_close(trans.double(), torch.exp(-sigma * travelled), atol=1e-6, rtol=1e-5)

    out = composite_batched(sigmas, torch.rand(n, s, 3, generator=g), deltas.cumsum(-1), deltas)
    torch.testing.assert_close(out["opacity"], w.sum(-1), atol=0, rtol=0)  # weights sum to opacity
    torch.testing.assert_close(out["weights"], w, atol=0, rtol=0)

    # the same medium, packed into one ray per row
    ri = torch.arange(n).repeat_interleave(s)
    wp, tp = weights_packed(sigmas.reshape(-1), deltas.reshape(-1), ri, n)
    torch.testing.assert_close(wp.reshape(n, s).sum(-1), torch.full((n,), opacity), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(tp.reshape(n, s)[:, 0], torch.ones(n), atol=0, rtol=0)


def test_background_two_sample_ray_by_hand():
    # sigma (1, 2) over deltas (0.5, 0.25): tau = (0.5, 0.5); alpha = 1 - e^-0.5 for both samples;
    # T = (1, e^-0.5); w = (1 - e^-0.5, e^-0.5 (1 - e^-0.5)); opacity = 1 - e^-1.
    a = 1.0 - math.exp(-0.5)  # 0.3934693...
    w1, w2 = a, math.exp(-0.5) * a  # 0.3934693, 0.2386512
    rest = math.exp(-1.0)  # 1 - opacity = 0.3678794
    c1, c2, bg = (1.0, 0.0, 0.5), (0.0, 1.0, 0.25), (0.2, 0.4, 0.6)
    expected_rgb = [w1 * c1[k] + w2 * c2[k] + rest * bg[k] for k in range(3)]
    assert abs(expected_rgb[0] - (0.3934693 + 0.3678794 * 0.2)) < 1e-6  # spelt out once
    expected_depth = w1 * 1.0 + w2 * 1.5

    sig, dl, tm = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 0.25]]), torch.tensor([[1.0, 1.5]])
    rgbs, bgt = torch.tensor([[c1, c2]]), torch.tensor([bg])
    outs = [composite_batched(sig, rgbs, tm, dl, bgt),
            composite_packed(sig[0], rgbs[0], tm[0], dl[0], torch.zeros(2, dtype=torch.int64), 1, bgt)]
    for out in outs:
        torch.testing.assert_close(out["rgb"][0], torch.tensor(expected_rgb), atol=1e-6, rtol=0)
        assert abs(float(out["opacity"][0]) - (1.0 - rest)) < 1e-6
        assert abs(float(out["depth"][0]) - expected_depth) < 1e-6
        torch.testing.assert_close(out["weights"].reshape(-1), torch.tensor([w1, w2]), atol=1e-6, rtol=0)
        torch.testing.assert_close(out["transmittance"].reshape(-1), torch.tensor([1.0, math.exp(-0.5)]),
                                   atol=1e-6, rtol=0)
    # without a background the colour is the premultiplied sum of w c
    out = composite_batched(sig, rgbs, tm, dl)
    torch.testing.assert_close(out["rgb"][0], torch.tensor([w1 * c1[k] + w2 * c2[k] for k in range(3)]),
                               atol=1e-6, rtol=0)


def ragged_problem(dtype, seed=0, n=9, s_max=12):
    """Batched [N, S_max] samples padded with sigma = 0 and their packed equivalent (real samples only).

    Zero-density padding has weight 0 and leaves the transmittance unchanged, so both layouts describe
    the same rays. Ray 0 and ray 4 have no samples at all.
    """
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, s_max + 1, (n,), generator=g)
    counts[0] = counts[4] = 0
    counts[5] = s_max
    mask = torch.arange(s_max)[None] < counts[:, None]  # [N, S]
    sig = (torch.rand(n, s_max, generator=g) * 8.0).to(dtype) * mask
    rgbs = torch.rand(n, s_max, 3, generator=g).to(dtype)
    deltas = (torch.rand(n, s_max, generator=g) * 0.1 + 0.01).to(dtype)
    t_mid = (2.0 + deltas.cumsum(-1) - 0.5 * deltas).to(dtype)
    bg = torch.rand(n, 3, generator=g).to(dtype)
    ri = torch.arange(n).repeat_interleave(counts)
    return sig, rgbs, t_mid, deltas, bg, mask, ri


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_packed_matches_batched_values_and_gradients(dtype):
    sig, rgbs, t_mid, deltas, bg, mask, ri = ragged_problem(dtype)
    n = sig.shape[0]
    sig_b = sig.clone().requires_grad_()
    rgb_b = rgbs.clone().requires_grad_()
    sig_p = sig[mask].clone().requires_grad_()
    rgb_p = rgbs[mask].clone().requires_grad_()
    out_b = composite_batched(sig_b, rgb_b, t_mid, deltas, bg)
    # min_transmittance=0: no early termination, so the two must agree to rounding
    out_p = composite_packed(sig_p, rgb_p, t_mid[mask], deltas[mask], ri, n, bg, min_transmittance=0.0)
    tol = dict(atol=1e-5, rtol=0) if dtype == torch.float32 else dict(atol=1e-12, rtol=0)
    for key in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(out_p[key], out_b[key], **tol)
    torch.testing.assert_close(out_p["weights"], out_b["weights"][mask], **tol)
    torch.testing.assert_close(out_p["transmittance"], out_b["transmittance"][mask], **tol)
    # empty rays: nothing absorbed, the background shows through
    for r in (0, 4):
        assert float(out_p["opacity"][r].detach()) == 0.0 and float(out_p["depth"][r].detach()) == 0.0
        torch.testing.assert_close(out_p["rgb"][r], bg[r], atol=0, rtol=0)

    g = torch.Generator().manual_seed(1)
    cot = {k: torch.randn(out_b[k].shape, generator=g).to(dtype) for k in ("rgb", "opacity", "depth")}
    gb = torch.autograd.grad(sum((out_b[k] * cot[k]).sum() for k in cot), (sig_b, rgb_b))
    gp = torch.autograd.grad(sum((out_p[k] * cot[k]).sum() for k in cot), (sig_p, rgb_p))
    for a, b in zip(gp, gb):
        b = b[mask]
        scale = float(b.abs().max())
        torch.testing.assert_close(a, b, atol=(1e-5 if dtype == torch.float32 else 1e-12) * scale, rtol=0)

    # the default early termination (T < 1e-4) changes the result by less than 1e-4
    out_t = composite_packed(sig[mask], rgbs[mask], t_mid[mask], deltas[mask], ri, n, bg)
    for key in ("rgb", "opacity"):
        torch.testing.assert_close(out_t[key], out_b[key].detach(), atol=1e-4, rtol=0)


def test_gradcheck_composite_batched_float64():
    g = torch.Generator().manual_seed(2)
    n, s = 3, 5
    sig = (torch.rand(n, s, generator=g, dtype=torch.float64) * 5).requires_grad_()
    rgbs = torch.rand(n, s, 3, generator=g, dtype=torch.float64).requires_grad_()
    deltas = torch.rand(n, s, generator=g, dtype=torch.float64) * 0.3 + 0.01
    t_mid = deltas.cumsum(-1)
    bg = torch.rand(n, 3, generator=g, dtype=torch.float64)

    def fn(sig_, rgbs_):
        out = composite_batched(sig_, rgbs_, t_mid, deltas, bg)
        return out["rgb"], out["opacity"], out["depth"], out["weights"], out["transmittance"]

    assert torch.autograd.gradcheck(fn, (sig, rgbs))


def test_gradcheck_weights_packed_float64():
    g = torch.Generator().manual_seed(3)
    ri = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3])  # ray 1 is empty
    sig = (torch.rand(9, generator=g, dtype=torch.float64) * 5).requires_grad_()
    deltas = (torch.rand(9, generator=g, dtype=torch.float64) * 0.3 + 0.01).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: weights_packed(a, b, ri, 4), (sig, deltas))
    # values: per-ray exclusive products, by hand
    w, t = weights_packed(sig.detach(), deltas.detach(), ri, 4)
    tau = (sig * deltas).detach()
    exp_t = torch.exp(-torch.stack([tau[:0].sum(), tau[:1].sum(), tau[:2].sum(), 0 * tau[0], tau[3:4].sum(),
                                    0 * tau[0], tau[5:6].sum(), tau[5:7].sum(), tau[5:8].sum()]))
    torch.testing.assert_close(t, exp_t, atol=1e-14, rtol=0)
    torch.testing.assert_close(w, exp_t * (1 - torch.exp(-tau)), atol=1e-14, rtol=0)


# --------------------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("jitter", [True, False])
def test_stratified(jitter):
    g = torch.Generator().manual_seed(4)
    n, s = 64, 16
    near = torch.rand(n, generator=g) * 2
    far = near + 0.5 + torch.rand(n, generator=g) * 4
    t = stratified(near, far, s, jitter=jitter, generator=g)
    assert t.shape == (n, s)
    assert (t[:, 1:] >= t[:, :-1]).all()
    assert (t >= near[:, None]).all() and (t <= far[:, None]).all()
    frac = ((t - near[:, None]) / (far - near)[:, None]).double()
    bin_idx = torch.floor(frac * s).clamp(0, s - 1)
    torch.testing.assert_close(bin_idx, torch.arange(s, dtype=torch.float64).expand(n, s), atol=0, rtol=0)
    if not jitter:
        centres = near[:, None] + (far - near)[:, None] * (torch.arange(s) + 0.5) / s
        torch.testing.assert_close(t, centres, atol=1e-6, rtol=0)
    else:
        # jitter is uniform in the bin: mean offset 0.5 within 4 standard errors sqrt(1/12 / (n s))
        off = frac * s - bin_idx
        assert abs(float(off.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / (n * s))

    t2, deltas = intervals(t, far)
    assert t2 is t
    torch.testing.assert_close(deltas[:, :-1], t[:, 1:] - t[:, :-1], atol=0, rtol=0)
    torch.testing.assert_close(deltas[:, -1], (far - t[:, -1]).clamp_min(1e-4), atol=0, rtol=0)


EDGES = torch.tensor([0.0, 0.3, 0.5, 1.0, 1.2, 2.0, 2.1, 2.5, 3.0, 3.6, 4.0], dtype=torch.float64)  # 10 bins
WEIGHTS = torch.tensor([0.5, 1.0, 3.0, 0.7, 2.0, 5.0, 1.0, 0.2, 4.0, 2.0], dtype=torch.float64)


def test_sample_pdf_frequencies_follow_weights():
    n_rows, per_row = 50, 4000  # 200k samples
    g = torch.Generator().manual_seed(5)
    bins, weights = EDGES.expand(n_rows, -1), WEIGHTS.expand(n_rows, -1)
    t = sample_pdf(bins, weights, per_row, generator=g)
    assert t.shape == (n_rows, per_row) and not t.requires_grad
    assert (t[:, 1:] >= t[:, :-1]).all() and (t >= 0).all() and (t <= 4).all()
    flat = t.reshape(-1)
    idx = torch.bucketize(flat, EDGES[1:-1], right=True)
    counts = torch.bincount(idx, minlength=10).double()
    total = flat.numel()
    p = WEIGHTS / WEIGHTS.sum()
    try:
        from scipy import stats
    except ImportError:  # pragma: no cover - scipy is optional
        stats = None
    if stats is not None:
        assert stats.chisquare(counts.numpy(), (p * total).numpy()).pvalue > 1e-3
    se = torch.sqrt(p * (1 - p) / total)
    assert float(((counts / total - p).abs() / se).max()) < 4.0

    # uniform within each bin: the fractional position has mean 1/2 (standard error sqrt(1/12/count))
    lo, hi = EDGES[idx], EDGES[idx + 1]
    frac = (flat - lo) / (hi - lo)
    for b in range(10):
        fb = frac[idx == b]
        assert abs(float(fb.mean()) - 0.5) < 4 * math.sqrt(1 / 12 / fb.numel())
    if stats is not None:
        assert stats.kstest(frac.numpy(), "uniform").pvalue > 1e-3


def test_sample_pdf_zero_weight_bins_are_nearly_never_sampled():
    w = WEIGHTS.clone()
    w[[1, 6]] = 0.0
    g = torch.Generator().manual_seed(6)
    t = sample_pdf(EDGES.expand(20, -1), w.expand(20, -1), 5000, generator=g).reshape(-1)
    idx = torch.bucketize(t, EDGES[1:-1], right=True)
    # the sampler adds 1e-5 to every weight: expected count 1e-5 / 17.4 * 1e5 ~ 0.06 per empty bin
    assert int(((idx == 1) | (idx == 6)).sum()) <= 3


def test_sample_pdf_deterministic_is_inverse_cdf():
    n = 40
    t = sample_pdf(EDGES[None], WEIGHTS[None], n, deterministic=True)[0]
    assert t.shape == (n,) and (t[1:] > t[:-1]).all()
    u = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)  # evenly spaced, excluding 0 and 1
    import numpy as np

    def inverse_cdf(w):
        # piecewise-constant pdf -> piecewise-linear cdf: its inverse is linear interpolation of (cdf, edges)
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(w / w.sum(), 0)])
        return torch.from_numpy(np.interp(u.numpy(), cdf.numpy(), EDGES.numpy()))

    # the sampler adds 1e-5 to every weight (documented: keeps every bin reachable); with that, exact
    torch.testing.assert_close(t, inverse_cdf(WEIGHTS + 1e-5), atol=1e-12, rtol=0)
    # and within 5e-5 of the inverse cdf of the weights themselves
    torch.testing.assert_close(t, inverse_cdf(WEIGHTS), atol=5e-5, rtol=0)
    # a hand-computed point: one sample takes u = 1/2; cumulative weights 0.5 1.5 4.5 5.2 7.2 12.2 ... 19.4,
    # so 0.5 * 19.4 = 9.7 falls in bin 5 = [2.0, 2.1] (cumulative 7.2 -> 12.2): t = 2.0 + 2.5 / 5 * 0.1 = 2.05
    assert abs(float(WEIGHTS.sum()) - 19.4) < 1e-12
    t_half = sample_pdf(EDGES[None], WEIGHTS[None], 1, deterministic=True)[0, 0]
    assert abs(float(t_half) - 2.05) < 1e-5
