"""`nerfkit process colmap|record3d` writes a transforms.json that reads back to the same cameras."""

import json

import numpy as np
import torch

from nerfkit.cli.main import main
from nerfkit.data import read_colmap_model, read_scene


def _original_frame(scene):
    """Camera centres [V, 3] and rotations [V, 3, 3] in the capture's own frame."""
    inv = torch.linalg.inv(scene.world_transform.double())
    s = float(torch.linalg.det(inv[:3, :3]).abs() ** (1 / 3))
    c2w = scene.c2w.double()
    centres = c2w[:, :3, 3] @ inv[:3, :3].T + inv[:3, 3]
    rots = inv[:3, :3] @ c2w[:, :3, :3] / s
    return centres, rots


def test_process_colmap_round_trip(shared_data, tmp_path):
    src = shared_data / "colmap" / "test_colmap" / "dense" / "0"
    out = tmp_path / "out"
    assert main(["process", "colmap", str(src), "--output", str(out)]) == 0
    meta = json.loads((out / "transforms.json").read_text())
    assert meta["camera_model"] == "PINHOLE" and len(meta["frames"]) == 23
    assert (out / "sparse_pc.ply").read_text().startswith("ply")
    a, b = read_scene(src), read_scene(out)
    assert b.format == "transforms_json"
    torch.testing.assert_close(a.intrinsics, b.intrinsics)
    assert [p.name for p in a.image_paths] == [p.name for p in b.image_paths]
    assert a.splits["test"] == b.splits["test"]
    ca, ra = _original_frame(a)
    cb, rb = _original_frame(b)
    torch.testing.assert_close(ca, cb, atol=1e-4, rtol=0)
    torch.testing.assert_close(ra, rb, atol=1e-5, rtol=0)
    m = read_colmap_model(src / "sparse")
    im = sorted(m.images.values(), key=lambda i: i.name)[0]
    np.testing.assert_allclose(ca[0].numpy(), im.center(), atol=1e-4)


def test_process_refuses_to_overwrite(shared_data, tmp_path, capsys):
    src = shared_data / "record3d" / "door_handle_detection" / "EXR_RGBD"
    out = tmp_path / "r3d"
    assert main(["process", "record3d", str(src), "--output", str(out), "--downscale", "8"]) == 0
    assert len(json.loads((out / "transforms.json").read_text())["frames"]) == 44
    assert main(["process", "record3d", str(src), "--output", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
