"""Occupancy grid: update rule, lookups, marching through it and rendering in rounds."""

from __future__ import annotations

import math

import torch

from nerfkit.ops.composite import composite_packed, weights_packed
from nerfkit.render.occupancy import OccupancyGrid, march_visible, render_rays_in_rounds

AABB = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
CENTRE = torch.tensor([0.2, -0.1, 0.0])


def sphere_density(points: torch.Tensor, radius: float = 0.3, value: float = 100.0) -> torch.Tensor:
    return ((points - CENTRE).norm(dim=-1) < radius).float() * value


def test_sphere_is_occupied_and_far_cells_are_empty_after_warmup():
    grid = OccupancyGrid(AABB, resolution=32)
    assert grid.occupied_fraction() == 1.0  # nothing known yet: march everywhere
    for step in range(0, 64, 16):
        grid.update(step, sphere_density, warmup_steps=64)
    assert not bool((grid.density < 0).any())  # every cell sampled during warm-up
    far = torch.tensor([[-0.9, 0.9, 0.9], [0.9, -0.9, -0.9], [0.0, 0.8, 0.0]])
    occ = grid.is_occupied(torch.cat([CENTRE[None], CENTRE[None] + 0.1, far]))
    assert occ.tolist() == [True, True, False, False, False]
    sphere_frac = 4 / 3 * math.pi * 0.3 ** 3 / 8
    assert sphere_frac < grid.occupied_fraction() < 3 * sphere_frac
    # threshold: min(0.01 / step, mean density), the mean is far below 100
    assert grid.threshold() == float(grid.mean_density) < 100
    assert grid.is_occupied(torch.tensor([[5.0, 0.0, 0.0]])).tolist() == [False]  # outside the grid


def test_unvisited_cells_stay_occupied_and_random_updates_follow_changes():
    grid = OccupancyGrid(AABB, resolution=32)
    grid.update(0, sphere_density, n_samples=32 ** 3 // 4)
    unknown = grid.density < 0
    assert 0.7 < float(unknown.float().mean()) < 0.8
    assert grid.occupied_fraction() > 0.7  # unknown cells count as occupied
    for step in range(16, 256, 16):
        grid.update(step, sphere_density, n_samples=32 ** 3 // 4, warmup_steps=32)
    assert int(grid.sweep_cursor) >= 32 ** 3 and not bool((grid.density < 0).any())
    assert bool(grid.is_occupied(CENTRE[None])[0])
    # the object moves: random samples find it, and decay (0.95 per update) empties its old place
    # once its density falls below the mean (a uniform decay alone would not change the bits)
    moved = torch.tensor([-0.5, 0.5, 0.5])
    for step in range(256, 256 + 16 * 120, 16):
        grid.update(step, lambda p: sphere_density(p - moved + CENTRE), n_samples=32 ** 3 // 4)
    assert grid.is_occupied(torch.stack([CENTRE, moved])).tolist() == [False, True]


def test_cascades_and_state_dict():
    grid = OccupancyGrid(AABB, n_cascades=2, resolution=16)
    far = torch.tensor([1.4, 0.1, 0.1])
    grid.update(0, lambda p: sphere_density(p, 0.3) + sphere_density(p - far + CENTRE, 0.5))
    pts = torch.stack([far, -far, CENTRE, torch.tensor([3.0, 0.0, 0.0])])
    assert grid.is_occupied(pts).tolist() == [True, False, True, False]
    assert torch.allclose(grid.outer_aabb(), AABB * 2)
    other = OccupancyGrid(AABB, n_cascades=2, resolution=16)
    other.load_state_dict(grid.state_dict())
    assert torch.equal(other.bitfield, grid.bitfield) and list(dict(grid.named_parameters())) == []


def test_marching_and_rendering_in_rounds():
    grid = OccupancyGrid(AABB, resolution=32)
    grid.update(0, sphere_density)
    g = torch.Generator().manual_seed(0)
    o = torch.tensor([0.0, 0.0, -3.0]).expand(300, 3).contiguous()
    d = torch.cat([torch.rand(300, 2, generator=g) * 0.3 - 0.15, torch.ones(300, 1)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    ri, ts, te = grid.march(o, d)
    mid = (ts + te) * 0.5
    pts = o[ri] + mid[:, None] * d[ri]
    cell_diag = 2 / 32 * math.sqrt(3)
    assert ri.numel() > 0 and float((pts - CENTRE).norm(dim=-1).max()) < 0.3 + cell_diag

    def field(p, _dirs):
        return sphere_density(p), torch.stack([p[:, 0] * 0 + 0.2, p[:, 1] * 0 + 0.5, p[:, 2] * 0 + 0.9], -1)

    rounds = render_rays_in_rounds(grid, o, d, field, background=torch.ones(3), first_round=4)
    sig, col = field(pts, d[ri])
    full = composite_packed(sig, col, mid, te - ts, ri, 300, torch.ones(3), min_transmittance=1e-4)
    for k in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(rounds[k], full[k], atol=2e-4, rtol=1e-4)
    assert float(rounds["opacity"].max()) > 0.999 and float(rounds["opacity"].min()) < 1e-6


def test_visibility_pass_gives_the_same_samples_for_any_round_size():
    """march_visible = one march of all samples, cut where the transmittance in front of a sample falls
    under 1e-4; rounds starting at 4 or 16 samples, or one round of max_samples, must all give exactly that."""
    grid = OccupancyGrid(AABB, resolution=32)
    grid.update(0, lambda p: sphere_density(p, value=30.0))  # soft: rays cross it in several rounds
    g = torch.Generator().manual_seed(1)
    n = 200
    o = torch.tensor([0.0, 0.0, -3.0]).expand(n, 3).contiguous()
    d = torch.cat([torch.rand(n, 2, generator=g) * 0.4 - 0.2, torch.ones(n, 1)], -1)
    d = d / d.norm(dim=-1, keepdim=True)
    jitter = torch.rand(n, generator=g)
    density = lambda p: sphere_density(p, value=30.0)  # noqa: E731
    ri, ts, te = grid.march(o, d, jitter=jitter, max_samples=256)
    _, t_local = weights_packed(density(o[ri] + ((ts + te) * 0.5)[:, None] * d[ri]), te - ts, ri, n)
    keep = t_local >= 1e-4
    assert 0 < int((~keep).sum()) and int(keep.sum()) > 1000  # some rays do terminate inside the sphere
    expected = (ri[keep], ts[keep], te[keep])
    for first, max_points in ((4, 1 << 21), (16, 1 << 21), (256, 1 << 21), (256, 1000)):
        got = march_visible(grid, o, d, density, max_samples=256, jitter=jitter, first_round=first,
                            max_points=max_points)
        for a, b in zip(got, expected):
            assert torch.equal(a, b), (first, max_points)
