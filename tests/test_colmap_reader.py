"""COLMAP workspace -> SceneData: intrinsics, poses, normalisation round trip, reprojection."""

import numpy as np
import pytest
import torch

from nerfkit.data import detect_format, read_colmap_model, read_scene


@pytest.fixture(scope="module")
def dense(shared_data):
    return shared_data / "colmap" / "test_colmap" / "dense" / "0"


def test_detected_and_read(dense):
    assert detect_format(dense) == "colmap"
    s = read_scene(dense, downscale=4)
    assert s.format == "colmap" and len(s) == 23
    assert s.splits["test"] == [0, 8, 16] and len(s.splits["train"]) == 20
    assert s.camera_model == "pinhole" and s.distortion is None
    m = read_colmap_model(dense / "sparse")
    first = sorted(m.images.values(), key=lambda i: i.name)[0]
    cam = m.cameras[first.camera_id]
    fx, fy, cx, cy = cam.params
    w, h = int(s.sizes[0, 0]), int(s.sizes[0, 1])
    assert (w, h) == (round(cam.width / 4), round(cam.height / 4))
    torch.testing.assert_close(s.intrinsics[0], torch.tensor([fx * w / cam.width, fy * h / cam.height,
                                                              cx * w / cam.width, cy * h / cam.height]).float())


def test_normalisation_round_trip_and_reprojection(dense):
    s = read_scene(dense)
    m = read_colmap_model(dense / "sparse")
    images = sorted(m.images.values(), key=lambda i: i.name)
    inv = torch.linalg.inv(s.world_transform.double())
    for v, im in enumerate(images):
        c2w = s.c2w[v].double()
        centre = inv[:3, :3] @ c2w[:3, 3] + inv[:3, 3]
        np.testing.assert_allclose(centre.numpy(), im.center(), atol=1e-4)
        np.testing.assert_allclose(c2w[:3, :3].numpy(), im.camera_to_world()[:3, :3], atol=1e-5)
    # cameras look at the normalised scene centre; the sparse points fill the unit box
    c, z = s.c2w[:, :3, 3], s.c2w[:, :3, 2]
    assert float(torch.nn.functional.cosine_similarity(z, -c).min()) > 0.95
    # observed sparse points reproject onto their keypoints with the SceneData cameras (< 1 px median)
    im = images[5]
    ok = im.point3d_ids != -1
    p = torch.from_numpy(m.points.xyz[m.points.rows(im.point3d_ids[ok])]).float()
    p = p @ s.world_transform[:3, :3].T + s.world_transform[:3, 3]
    w2c = torch.linalg.inv(s.c2w[5])
    pc = p @ w2c[:3, :3].T + w2c[:3, 3]
    k = s.intrinsics[5]
    uv = torch.stack([k[0] * pc[:, 0] / pc[:, 2] + k[2], k[1] * pc[:, 1] / pc[:, 2] + k[3]], -1)
    err = (uv - torch.from_numpy(im.xys[ok]).float()).norm(dim=-1)
    assert float(err.median()) < 1.0
