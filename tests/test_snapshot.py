"""Snapshots: one safetensors file that reloads a trained scene exactly and rejects anything else clearly."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
import torch

from nerfkit.errors import RunError
from nerfkit.export import snapshot as snap
from nerfkit.export.snapshot import load_trained, read_snapshot, save_snapshot
from nerfkit.render import render_image
from nerfkit.train.trainer import scene_camera


@pytest.fixture(scope="module")
def snapshot_file(trained_ngp, tmp_path_factory):
    return save_snapshot(trained_ngp, tmp_path_factory.mktemp("snap") / f"ngp64{snap.SUFFIX}")


@pytest.fixture(scope="module")
def from_run(trained_ngp):
    return load_trained(trained_ngp, device="cpu")


@pytest.fixture(scope="module")
def from_snapshot(snapshot_file):
    return load_trained(snapshot_file, device="cpu")


def test_render_is_identical(from_run, from_snapshot):
    view = from_run.scene.split("test")[3]
    bg = torch.ones(3)
    a = render_image(from_run.model, scene_camera(from_run.scene, view), background=bg)
    b = render_image(from_snapshot.model, scene_camera(from_snapshot.scene, view), background=bg)
    for key in ("rgb", "depth", "opacity"):
        assert torch.equal(a[key], b[key]), key
    assert float(a["opacity"].mean()) > 0.05  # the view shows content, so the comparison means something


def test_state_scene_and_config_round_trip(from_run, from_snapshot, snapshot_file):
    ra, rb = from_run.model.state_dict(), from_snapshot.model.state_dict()
    assert ra.keys() == rb.keys() and "grid.bitfield" in ra and "grid.density" in ra  # occupancy grid included
    for k in ra:
        assert ra[k].dtype == rb[k].dtype and torch.equal(ra[k], rb[k]), k
    sa, sb = from_run.scene, from_snapshot.scene
    for k in ("intrinsics", "sizes", "c2w", "aabb", "world_transform"):
        assert torch.equal(getattr(sa, k), getattr(sb, k)), k
    assert (sa.near, sa.far, sa.scale, sa.downscale, sa.camera_model, sa.has_alpha, sa.format) == (
        sb.near, sb.far, sb.scale, sb.downscale, sb.camera_model, sb.has_alpha, sb.format)
    assert sa.splits == sb.splits
    assert [p.resolve() for p in sa.image_paths] == [p.resolve() for p in sb.image_paths]
    assert from_snapshot.cfg.to_json() == from_run.cfg.to_json()
    assert (from_snapshot.step, from_snapshot.train_time) == (from_run.step, from_run.train_time)
    assert from_snapshot.step == 600
    assert from_snapshot.source == snapshot_file


def test_file_is_plain_safetensors_without_pickle(snapshot_file, from_run):
    from safetensors import safe_open

    raw = snapshot_file.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    table = json.loads(raw[8:8 + n])
    spans = sorted(tuple(v["data_offsets"]) for k, v in table.items() if k != "__metadata__")
    # nothing but the JSON header and back-to-back raw tensor bytes: no room for a pickle anywhere
    assert spans[0][0] == 0 and all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and 8 + n + spans[-1][1] == len(raw)
    assert all(v["dtype"] in ("F32", "I64", "U8", "BOOL") for k, v in table.items() if k != "__metadata__")
    with safe_open(str(snapshot_file), framework="pt") as f:  # safetensors alone reads it
        meta = f.metadata()
        keys = set(f.keys())
        weights = f.get_tensor("model/field.encoding.table")
    assert meta["format"] == "nerfkit-snapshot" and meta["format_version"] == "1"
    header = json.loads(meta["header"])
    assert header["method"] == "ngp" and header["step"] == 600
    assert header["scene"]["images"][0] == "train/r_0.png" and header["scene"]["root"] == str(from_run.scene.root)
    assert {"scene/c2w", "scene/intrinsics", "scene/aabb", "scene/world_transform"} <= keys
    assert torch.equal(weights, from_run.model.field.encoding.table.detach())


def test_loads_without_the_dataset_and_relocates(orphan_snapshot, synthetic_64):
    path = orphan_snapshot
    t = load_trained(path, device="cpu")  # dataset gone: cameras and model still load
    assert not t.scene.image_paths[0].exists() and len(t.scene) == 130 and len(t.scene.split("test")) == 25
    moved = load_trained(path, device="cpu", data=synthetic_64)
    assert moved.scene.image_paths[0] == synthetic_64.resolve() / "train" / "r_0.png"
    assert all(p.is_file() for p in moved.scene.image_paths)


def test_never_overwrites_unless_asked(trained_ngp, tmp_path):
    out = tmp_path / "a.nerfkit"
    out.write_bytes(b"keep me")
    with pytest.raises(RunError, match="--overwrite"):
        save_snapshot(trained_ngp, out)
    assert out.read_bytes() == b"keep me"
    save_snapshot(trained_ngp, out, overwrite=True)
    assert read_snapshot(out)[0]["step"] == 600
    assert [p.name for p in tmp_path.iterdir()] == ["a.nerfkit"]  # no temporary file left


def test_run_without_checkpoint_fails_clearly(tmp_path, trained_ngp):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_ngp / "config.json", run / "config.json")
    with pytest.raises(RunError, match="no checkpoint"):
        save_snapshot(run, tmp_path / "x.nerfkit")
    assert not (tmp_path / "x.nerfkit").exists()


def _rewrite_metadata(src, dst, **changes):
    """Copy a snapshot with its metadata changed (tensors untouched)."""
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as f:
        meta = f.metadata()
    save_file(load_file(str(src)), str(dst), metadata={**meta, **changes})
    return dst


def test_future_version_fails_clearly(snapshot_file, tmp_path):
    bad = _rewrite_metadata(snapshot_file, tmp_path / "v999.nerfkit", format_version="999")
    with pytest.raises(RunError, match=r"v999\.nerfkit: snapshot format_version 999 is newer .*upgrade nerfkit"):
        load_trained(bad, device="cpu")


def test_older_version_fails_clearly_or_migrates(snapshot_file, tmp_path, monkeypatch):
    old = _rewrite_metadata(snapshot_file, tmp_path / "v0.nerfkit", format_version="0")
    with pytest.raises(RunError, match=r"v0\.nerfkit: snapshot format_version 0 is older .*re-export"):
        load_trained(old, device="cpu")

    # a migration table entry 0 -> 1 is applied on load
    def from_v0(header, tensors):
        return {**header, "step": header["step"] + 1}, tensors

    monkeypatch.setitem(snap.MIGRATIONS, 0, from_v0)
    assert load_trained(old, device="cpu").step == 601


@pytest.mark.parametrize("kind", ["truncated_data", "truncated_header", "png", "torch_pt", "random", "empty",
                                  "foreign_safetensors"])
def test_other_files_fail_clearly(kind, snapshot_file, tmp_path):
    raw = snapshot_file.read_bytes()
    path = tmp_path / f"{kind}.nerfkit"
    if kind == "truncated_data":
        path.write_bytes(raw[: len(raw) // 2])
        expect = "truncated"
    elif kind == "truncated_header":
        path.write_bytes(raw[:100])
        expect = "truncated"
    elif kind == "png":
        from nerfkit.data.images import save_png
        import numpy as np

        save_png(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
        (tmp_path / "x.png").rename(path)
        expect = "not a nerfkit snapshot \\(a PNG image\\)"
    elif kind == "torch_pt":
        torch.save({"model": {"w": torch.zeros(3)}}, path)
        expect = "not a nerfkit snapshot \\(a zip archive, e.g. a PyTorch .pt checkpoint\\)"
    elif kind == "random":
        path.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                       dtype=torch.uint8).numpy().tobytes())
        expect = "not a nerfkit snapshot"
    elif kind == "empty":
        path.write_bytes(b"")
        expect = "truncated"
    else:
        from safetensors.torch import save_file

        save_file({"w": torch.zeros(3)}, str(path))
        expect = "a safetensors file, but not a nerfkit snapshot"
    with pytest.raises(RunError, match=expect) as e:
        load_trained(path, device="cpu")
    assert str(path) in str(e.value) and ("export snapshot" in str(e.value) or "copy it again" in str(e.value))


def test_missing_path_fails_clearly(tmp_path):
    with pytest.raises(RunError, match="neither a run directory nor a snapshot"):
        load_trained(tmp_path / "nothing.nerfkit")
