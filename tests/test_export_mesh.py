"""Mesh export: marching cubes of a trained field against the synthetic scene's exact surface.

Scene size for the tolerances: the diagonal of the synthetic scene's content box
(``SyntheticScene().aabb``, 3.25 units). The trained model is the shared ``trained_ngp`` run
(Instant-NGP, 600 steps at 64 px, whose pixels are ~0.045 units wide at the object).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from nerfkit.cli.main import main
from nerfkit.data.synthetic import SyntheticScene
from nerfkit.export.mesh import ExportError, MeshOptions, extract_mesh, fill_cavities
from nerfkit.export.snapshot import load_trained


@pytest.fixture(scope="module")
def trained(trained_ngp):
    return load_trained(trained_ngp, "cpu")


@pytest.fixture(scope="module")
def truth():
    return SyntheticScene()


def scene_size(truth) -> float:
    return float((truth.aabb[1] - truth.aabb[0]).norm())


def chamfer(mesh_vertices, faces, truth, n=60_000) -> float:
    """Symmetric Chamfer distance (mean of the two mean point-to-surface distances).

    Mesh -> truth uses the exact SDF at points sampled on the mesh; truth -> mesh the nearest of
    those samples (dense: ~0.01 units apart) from points sampled on the true surface.
    """
    tm = trimesh.Trimesh(mesh_vertices, faces, process=False)
    samples, _ = trimesh.sample.sample_surface(tm, n, seed=0)
    d_mt = truth.sdf(torch.from_numpy(samples).double()).abs().mean().item()
    true_pts = truth.sample_surface(n // 3, torch.Generator().manual_seed(0)).numpy()
    d_tm = cKDTree(samples).query(true_pts)[0].mean()
    return 0.5 * (d_mt + d_tm)


def test_mesh_matches_true_surface(trained, truth):
    mesh = extract_mesh(trained.model, trained.scene, MeshOptions(resolution=128))
    size = scene_size(truth)
    ch = chamfer(mesh.vertices, mesh.faces, truth)
    # measured 0.012 (0.38 % of the 3.25 diagonal) at threshold 10, resolution 128
    assert ch < 0.01 * size, f"Chamfer {ch:.4f} = {100 * ch / size:.2f}% of the scene diagonal"
    # four disjoint solids, some a grid cell or two apart (they may join at this resolution), no cloud of
    # floaters; normals point out of them
    assert 1 <= mesh.n_components <= 12  # measured 4 on one run, 2 on another (the box touching a sphere)
    v = torch.from_numpy(mesh.vertices).double()
    n = torch.from_numpy(mesh.normals).double()
    outward = (truth.sdf(v + 0.02 * n) > truth.sdf(v - 0.02 * n)).double().mean().item()
    assert outward > 0.98
    # the faces wind counter-clockwise seen from outside (viewers light and cull by the winding)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert ((tm.face_normals * mesh.normals[mesh.faces].mean(1)).sum(1) > 0).mean() > 0.99
    # vertex colours: the field seen along -normal vs the exact shading seen from that direction
    gt = truth.trace(v + 0.05 * n, -n)
    hit = gt["hit"].numpy()
    err = np.abs(mesh.colors[hit] / 255.0 - gt["rgb"][hit].numpy())
    assert hit.mean() > 0.9 and np.median(err) < 0.07, np.median(err)  # measured 0.057


def test_vertices_map_back_to_original_frame(trained, truth):
    """A scene whose world_transform is a similarity (scale 0.5, rotation about z, translation)."""
    c, s = math.cos(0.7), math.sin(0.7)
    world = torch.tensor([[0.5 * c, -0.5 * s, 0.0, 0.3], [0.5 * s, 0.5 * c, 0.0, -0.2], [0.0, 0.0, 0.5, 0.1],
                          [0.0, 0.0, 0.0, 1.0]])
    moved = dataclasses.replace(trained.scene, world_transform=world)
    opts = MeshOptions(resolution=64, colors=False)
    ref = extract_mesh(trained.model, trained.scene, opts)
    mesh = extract_mesh(trained.model, moved, opts)
    # original-frame vertices mapped by world_transform are the scene-frame vertices
    back = mesh.vertices.astype(np.float64) @ world[:3, :3].double().numpy().T + world[:3, 3].double().numpy()
    np.testing.assert_allclose(back, ref.vertices, atol=1e-5)
    assert np.abs(mesh.vertices).max() > 2.0  # in the original frame the scene is twice as large
    # normals rotate with the frame
    np.testing.assert_allclose(mesh.normals @ world[:3, :3].numpy().T / 0.5, ref.normals, atol=1e-4)
    # a crop box in the original frame: everything inside it (within a grid cell), and near the surface
    lo, hi = np.array([-2.0, -2.0, -1.0]), np.array([0.5, 2.0, 2.0])
    crop = extract_mesh(trained.model, moved, dataclasses.replace(opts, crop=(*lo, *hi)))
    cell = 3.0 / 63 / 0.5  # grid spacing in original units
    assert np.all(crop.vertices >= lo - cell) and np.all(crop.vertices <= hi + cell)
    assert len(crop.vertices) > 0 and not np.all((mesh.vertices >= lo) & (mesh.vertices <= hi))
    scene_pts = torch.from_numpy(crop.vertices.astype(np.float64) @ world[:3, :3].double().numpy().T
                                 + world[:3, 3].double().numpy())
    inside_crop = np.all((crop.vertices > lo + cell) & (crop.vertices < hi - cell), axis=1)
    d = truth.sdf(scene_pts).abs().numpy()[inside_crop]
    assert np.median(d) < 0.02


def test_fill_cavities_closes_hollow_shell():
    """A hollow ball (dense shell, empty inside) with a one-cell leak: filled; a wide hole: left open."""
    r = np.linalg.norm(np.stack(np.meshgrid(*[np.arange(40) - 19.5] * 3, indexing="ij")), axis=0)
    shell = np.where((r > 10) & (r < 14), 100.0, 0.0).astype(np.float32)
    leaky = shell.copy()
    leaky[19:21, 19:21, 30:] = 0.0  # 2-cell wide channel from the cavity out through the shell
    out = fill_cavities(leaky, 10.0, radius=2)
    assert np.all(out[r < 9] == 20.0)  # cavity raised to twice the threshold
    assert np.all(out[r > 15] == 0.0)  # outside untouched
    holed = shell.copy()
    holed[12:28, 12:28, 30:] = 0.0  # 16-cell wide opening: the inside is outside
    assert np.all(fill_cavities(holed, 10.0, radius=2)[r < 9] == 0.0)


def test_no_surface_error_suggests_threshold(trained):
    with pytest.raises(ExportError, match=r"threshold 1e\+09.*try --threshold") as e:
        extract_mesh(trained.model, trained.scene, MeshOptions(resolution=16, threshold=1e9, colors=False))
    suggested = float(str(e.value).rsplit("--threshold ", 1)[1])
    mesh = extract_mesh(trained.model, trained.scene, MeshOptions(resolution=32, threshold=suggested, colors=False))
    assert len(mesh.faces) > 0


def test_nerf_method_queries_its_fine_field():
    from nerfkit.methods import METHODS, SceneBounds

    klass = METHODS["nerf"]
    cfg = klass.make_config({"width": 16, "depth": 2, "n_coarse": 4, "n_fine": 4, "bf16": False})
    model = klass(cfg, SceneBounds(torch.tensor([[-1.0] * 3, [1.0] * 3]), 2.0, 6.0))
    pts = torch.rand(50, 3)
    dirs = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    sigma, rgb = model.fine(pts, dirs)
    torch.testing.assert_close(model.density(pts), sigma)
    torch.testing.assert_close(model.query_color(pts, dirs), rgb)


# ----------------------------------------------------------------------------- CLI

def test_cli_mesh_formats_and_overwrite(trained_ngp, tmp_path, capsys):
    out = tmp_path / "m.ply"
    assert main(["export", "mesh", str(trained_ngp), "--output", str(out), "--resolution", "48"]) == 0
    ply = trimesh.load(out, process=False)
    assert len(ply.vertices) > 100 and ply.visual.vertex_colors.shape[1] == 4
    assert np.abs(ply.vertices).max() < 1.5
    before = out.read_bytes()
    assert main(["export", "mesh", str(trained_ngp), "--output", str(out), "--resolution", "32"]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    for ext in ("obj", "glb"):
        p = tmp_path / f"m.{ext}"
        assert main(["export", "mesh", str(trained_ngp), "-o", str(p), "--resolution", "32", "--keep-largest"]) == 0
        loaded = trimesh.load(p, force="mesh", process=False)
        assert len(loaded.faces) > 50
    assert main(["export", "mesh", str(trained_ngp), "-o", str(out), "--resolution", "32", "--overwrite"]) == 0
    assert out.read_bytes() != before
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_cli_snapshot_then_mesh_from_it(trained_ngp, tmp_path):
    snap = tmp_path / "scene.nerfkit"
    assert main(["export", "snapshot", str(trained_ngp), "-o", str(snap)]) == 0
    a, b = tmp_path / "run.ply", tmp_path / "snap.ply"
    assert main(["export", "mesh", str(trained_ngp), "-o", str(a), "--resolution", "32", "--no-colors"]) == 0
    assert main(["export", "mesh", str(snap), "-o", str(b), "--resolution", "32", "--no-colors"]) == 0
    np.testing.assert_array_equal(trimesh.load(a, process=False).vertices, trimesh.load(b, process=False).vertices)


def test_cli_bad_input_exits_2(trained_ngp, tmp_path, capsys):
    # a run directory without a checkpoint
    empty = tmp_path / "run"
    empty.mkdir()
    (empty / "config.json").write_text((trained_ngp / "config.json").read_text())
    assert main(["export", "mesh", str(empty), "-o", str(tmp_path / "a.ply")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    # a threshold with no surface: names it, suggests one, writes nothing
    out = tmp_path / "none.ply"
    assert main(["export", "mesh", str(trained_ngp), "-o", str(out), "--resolution", "16", "--threshold", "1e9"]) == 2
    err = capsys.readouterr().err
    assert "threshold 1e+09" in err and "try --threshold" in err and not out.exists()
    # an output folder that cannot be written (its parent is a file)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", "mesh", str(trained_ngp), "-o", str(blocker / "m.ply")]) == 2
    assert "cannot write" in capsys.readouterr().err
    # unknown extension, existing output for points and snapshots
    assert main(["export", "mesh", str(trained_ngp), "-o", str(tmp_path / "m.stl")]) == 2
    assert "unknown output format" in capsys.readouterr().err
    keep = tmp_path / "keep.ply"
    keep.write_bytes(b"precious")
    assert main(["export", "points", str(trained_ngp), "-o", str(keep)]) == 2
    snap = tmp_path / "scene.nerfkit"
    snap.write_bytes(b"precious")
    assert main(["export", "snapshot", str(trained_ngp), "-o", str(snap)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert keep.read_bytes() == b"precious" and snap.read_bytes() == b"precious"


def test_export_error_is_nerfkit_error():
    from nerfkit.errors import NerfkitError

    assert issubclass(ExportError, NerfkitError)
