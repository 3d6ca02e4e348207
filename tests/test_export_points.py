"""Point-cloud export: rendered depth of training views, against the synthetic scene's exact surface."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import trimesh

from nerfkit.cli.main import main
from nerfkit.data.images import load_image
from nerfkit.data.synthetic import SyntheticScene
from nerfkit.export.points import PointsOptions, extract_points, pick_views, view_points
from nerfkit.export.snapshot import load_trained
from nerfkit.render import render_image
from nerfkit.train.trainer import scene_camera


@pytest.fixture(scope="module")
def trained(trained_ngp):
    return load_trained(trained_ngp, "cpu")


def test_points_lie_on_surface_with_rendered_colours(trained):
    truth = SyntheticScene()
    view = trained.scene.split("train")[10]
    cam = scene_camera(trained.scene, view)
    pts, rgb, pix = view_points(trained.model, cam, min_opacity=0.9)
    assert len(pts) > 0.2 * cam.width * cam.height  # the objects fill a good part of the view
    d = truth.sdf(pts.double()).abs()
    # measured median 0.015 (a third of a 64 px pixel's footprint, 0.045 units, at the objects)
    assert d.median() < 0.025 and (d < 0.1).float().mean() > 0.9
    # colours: the rendered colour over a black background, un-premultiplied, at the same pixels
    ref = render_image(trained.model, cam, background=torch.zeros(3))
    alpha = ref["opacity"].reshape(-1)[pix]
    torch.testing.assert_close(rgb, (ref["rgb"].reshape(-1, 3)[pix] / alpha[:, None]).clamp(0, 1),
                               atol=2e-3, rtol=0)
    # ... and close to the training image at those pixels
    img = torch.from_numpy(load_image(trained.scene.image_paths[view])).reshape(-1, 4)[pix].float() / 255
    opaque = img[:, 3] == 1
    err = (rgb[opaque] - img[opaque, :3]).abs()
    assert opaque.float().mean() > 0.95 and err.median() < 0.07, err.median()  # measured 0.054 (64 px model)
    # each point projects back onto its own pixel
    w2c = torch.linalg.inv(cam.c2w.double())
    pc = pts.double() @ w2c[:3, :3].T + w2c[:3, 3]
    k = cam.intrinsics.double()
    u, v = k[0] * pc[:, 0] / pc[:, 2] + k[2], k[1] * pc[:, 1] / pc[:, 2] + k[3]
    torch.testing.assert_close(torch.stack([u, v], -1), torch.stack([pix % cam.width, pix // cam.width], -1).double()
                               + 0.5, atol=1e-3, rtol=0)


def test_points_map_back_and_subsample(trained):
    c, s = math.cos(-1.1), math.sin(-1.1)
    world = torch.tensor([[2 * c, 0.0, -2 * s, 1.0], [0.0, 2.0, 0.0, 0.0], [2 * s, 0.0, 2 * c, -3.0],
                          [0.0, 0.0, 0.0, 1.0]])  # scale 2, rotation about y, translation
    moved = dataclasses.replace(trained.scene, world_transform=world)
    opts = PointsOptions(views=1, max_points=200, downscale=2.0)
    ref = extract_points(trained.model, trained.scene, opts)
    cloud = extract_points(trained.model, moved, opts)
    assert len(cloud.points) == 200 and cloud.views == ref.views == [0]
    back = cloud.points.astype(np.float64) @ world[:3, :3].double().numpy().T + world[:3, 3].double().numpy()
    np.testing.assert_allclose(back, ref.points, atol=1e-4)
    np.testing.assert_array_equal(cloud.colors, ref.colors)
    assert pick_views(list(range(100)), 4) == [0, 33, 66, 99]


def test_cli_points_writes_ply(trained_ngp, tmp_path):
    out = tmp_path / "sub" / "points.ply"  # missing folders are created
    assert main(["export", "points", str(trained_ngp), "-o", str(out), "--views", "1", "--max-points", "200",
                 "--downscale", "2"]) == 0
    pc = trimesh.load(out)
    assert len(pc.vertices) == 200 and pc.colors.shape == (200, 4)
    d = SyntheticScene().sdf(torch.from_numpy(np.asarray(pc.vertices, dtype=np.float64))).abs()
    assert d.median() < 0.05
