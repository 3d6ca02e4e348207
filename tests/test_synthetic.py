"""The analytic synthetic scene: exact tracer, SDF, surface samples and its Blender-format export."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras import focal_from_fov, generate_rays, pixel_grid
from nerfkit.data import read_blender
from nerfkit.data.synthetic import (
    CAMERA_ANGLE_X, LIGHTS, RADIUS, SyntheticScene, generate_synthetic, eval_cameras, train_cameras,
)
from nerfkit.errors import DataError

RES = 32


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "scene", resolution=RES)


@pytest.fixture(scope="module")
def scene():
    return SyntheticScene(seed=0)


def _rgba(path):
    """Straight-alpha RGBA as stored on disk, uint8 [H, W, 4]."""
    with Image.open(path) as im:
        assert im.mode == "RGBA"
        return np.asarray(im)


def test_reads_as_blender_and_poses_round_trip(scene_dir):
    data = read_blender(scene_dir)
    assert len(data.split("train")) == 100 and len(data.split("test")) == 25 and len(data.split("val")) == 5
    assert data.sizes.tolist() == [[RES, RES]] * len(data)
    torch.testing.assert_close(data.intrinsics[:, 0], torch.full((len(data),), focal_from_fov(CAMERA_ANGLE_X, RES)))
    torch.testing.assert_close(data.intrinsics[:, 2:], torch.full((len(data), 2), RES / 2))
    torch.testing.assert_close(data.c2w[data.split("train")], train_cameras(100), atol=1e-6, rtol=0)
    torch.testing.assert_close(data.c2w[data.split("test")], eval_cameras(25), atol=1e-6, rtol=0)
    assert data.depth_paths is not None and all(p is not None for p in data.depth_paths)


def test_cameras_face_origin_upright_and_distinct():
    tr, te = train_cameras(100), eval_cameras(25)
    for c2w in (tr, te):
        eyes = c2w[:, :3, 3]
        torch.testing.assert_close(eyes.norm(dim=-1), torch.full((len(c2w),), RADIUS))
        torch.testing.assert_close(c2w[:, :3, 2], -eyes / RADIUS, atol=1e-6, rtol=0)  # optical axis at origin
        assert (c2w[:, 2, 1] < 0).all()  # OpenCV image y (down) points to world -z: images are upright
        assert (c2w[:, 2, 0].abs() < 1e-6).all()  # no roll: image x stays horizontal
    assert (tr[:, 2, 3] < 0).sum() >= 10  # some views from below
    gap = torch.cdist(te[:, :3, 3], tr[:, :3, 3]).amin()
    assert gap > 0.05


def test_depth_lies_on_surface_and_alpha_matches(scene_dir, scene):
    data = read_blender(scene_dir)
    gen = torch.Generator().manual_seed(0)
    for v in (0, 57, data.split("test")[3]):
        rgba = _rgba(data.image_paths[v])
        depth = torch.from_numpy(np.load(data.depth_paths[v]))
        assert depth.shape == (RES, RES) and depth.dtype == torch.float32
        alpha = torch.from_numpy(rgba[..., 3].copy()).long()
        fg = depth > 0
        assert 0.15 < fg.float().mean() < 0.9
        assert (depth[alpha == 0] == 0).all()  # background: alpha 0 and depth 0
        # a pixel whose 3x3 neighbourhood is all foreground is fully covered
        inner = -torch.nn.functional.max_pool2d(-fg.float()[None], 3, 1, 1)[0] > 0
        assert inner.any() and (alpha[inner] == 255).all()
        # the z-depth of a pixel centre, converted to ray distance, lands on the analytic surface
        x, y = pixel_grid(RES, RES)
        sel = fg.reshape(-1).nonzero()[:, 0]
        sel = sel[torch.randperm(len(sel), generator=gen)[:20]]
        o, d = generate_rays(data.c2w[v], data.intrinsics[v], x[sel], y[sel])
        t = depth.reshape(-1)[sel] / (d @ data.c2w[v, :3, 2])
        pts = (o + t[:, None] * d).double()
        assert scene.sdf(pts).abs().max() < 1e-3


def test_trace_sphere_closed_form(scene):
    big = scene.solids[0]
    c = torch.tensor(big.center, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    o = c + 2.5 * torch.nn.functional.normalize(torch.randn(64, 3, generator=gen, dtype=torch.float64), dim=-1)
    t, normal = big.intersect(o, c - o)  # non-unit directions: t in units of |d|
    torch.testing.assert_close(t, torch.full((64,), (2.5 - big.radius) / 2.5, dtype=torch.float64))
    # the whole scene: from straight above, nothing is in front of the big sphere
    o1 = (c + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64))[None]
    out = scene.trace(o1, (c - o1) / 3.0)
    assert out["hit"].item() and out["object"].item() == 0
    assert out["t"].item() == pytest.approx((c - o1).norm().item() - big.radius, abs=1e-12)
    # a ray pointing away misses
    miss = scene.trace(o1, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    assert not miss["hit"].item() and math.isinf(miss["t"].item()) and miss["object"].item() == -1


def test_hits_lie_on_surface_with_unit_normals_matching_sdf_gradient(scene):
    gen = torch.Generator().manual_seed(2)
    o = RADIUS * torch.nn.functional.normalize(torch.randn(4000, 3, generator=gen, dtype=torch.float64), dim=-1)
    target = scene.aabb.double()[0] + torch.rand(4000, 3, generator=gen, dtype=torch.float64) * (
        scene.aabb[1] - scene.aabb[0]).double()
    out = scene.trace(o, target - o)
    hit = out["hit"]
    assert 0.3 < hit.float().mean() < 1.0 and set(out["object"][hit].tolist()) == {0, 1, 2, 3}
    p = o[hit] + out["t"][hit, None] * (target - o)[hit]
    assert scene.sdf(p).abs().max() < 1e-9
    n = out["normal"][hit]
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(len(n), dtype=torch.float64))
    assert (out["normal"][~hit] == 0).all() and (out["rgb"][~hit] == 0).all()
    # the normal is the SDF gradient just outside the surface (away from box/cylinder edges)
    q = (p + 1e-4 * n).requires_grad_(True)
    (grad,) = torch.autograd.grad(scene.sdf(q).sum(), q)
    assert ((grad * n).sum(-1) > 0.999).float().mean() > 0.98
    # the front face is hit: the normal faces the ray's origin
    assert ((n * (target - o)[hit]).sum(-1) < 0).all()
    rgb = out["rgb"][hit]
    assert rgb.min() >= 0 and rgb.max() <= 1 and rgb.std(0).min() > 0.05  # textured, not flat


def test_colour_depends_on_view_direction(scene):
    big = scene.solids[0]
    light = torch.nn.functional.normalize(torch.tensor(LIGHTS[0][0], dtype=torch.float64), dim=0)
    point = torch.tensor(big.center, dtype=torch.float64) + big.radius * light  # normal = light direction
    tilt = torch.nn.functional.normalize(light + torch.tensor([0.0, 0.0, 0.9], dtype=torch.float64), dim=0)
    rgbs = []
    for view in (light, tilt):  # mirror direction (highlight) and 30+ degrees off it
        eye = point + 3.0 * view
        out = scene.trace(eye[None], (point - eye)[None])
        assert out["t"].item() == pytest.approx(1.0, abs=1e-9)  # unoccluded: reaches that exact point
        rgbs.append(out["rgb"][0])
    assert (rgbs[0] - rgbs[1]).min() > 0.05  # the highlight brightens every channel


def test_sample_surface_on_surface_and_area_uniform(scene):
    pts = scene.sample_surface(4000, torch.Generator().manual_seed(3))
    assert pts.shape == (4000, 3) and pts.dtype == torch.float64
    assert scene.sdf(pts).abs().max() < 1e-4
    assert ((pts >= scene.aabb[0].double() - 1e-6) & (pts <= scene.aabb[1].double() + 1e-6)).all()
    owner = torch.stack([s.sdf(pts).abs() for s in scene.solids], -1).argmin(-1)
    areas = torch.tensor([s.area for s in scene.solids])
    frac = torch.bincount(owner, minlength=len(areas)).float() / len(pts)
    torch.testing.assert_close(frac, areas / areas.sum(), atol=0.03, rtol=0)
    torch.testing.assert_close(scene.sample_surface(4000, torch.Generator().manual_seed(3)), pts)  # reproducible


def test_regeneration_is_a_no_op_unless_parameters_change(tmp_path):
    out = tmp_path / "scene"
    assert generate_synthetic(out, resolution=16, n_train=4, n_test=2) == out
    stamps = {p: (out / p).stat().st_mtime_ns for p in ("synthetic.json", "train/r_0.png")}
    assert generate_synthetic(out, resolution=16, n_train=4, n_test=2) == out
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps
    generate_synthetic(out, resolution=24, n_train=4, n_test=2)
    assert _rgba(out / "train" / "r_0.png").shape == (24, 24, 4)
    assert len(read_blender(out).split("train")) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no temporary folders left behind
    # a folder that is not a synthetic scene is never replaced silently
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("data")
    with pytest.raises(DataError, match="overwrite=True"):
        generate_synthetic(other, resolution=16, n_train=2, n_test=1)
    assert (other / "keep.txt").read_text() == "data"
