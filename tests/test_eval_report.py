"""``nerfkit eval`` of runs and snapshots: metrics equal direct metric calls, reports list every image worst first."""

from __future__ import annotations

import json
import re
import shutil
import statistics

import pytest
import torch

from nerfkit.cli.main import main
from nerfkit.data.images import background_color, composite, load_image
from nerfkit.export.snapshot import load_trained
from nerfkit.render import render_image
from nerfkit.train.metrics import psnr, ssim
from nerfkit.train.trainer import scene_camera


@pytest.fixture(scope="module")
def evaluated(orphan_snapshot, synthetic_64):
    """``nerfkit eval SNAPSHOT --data DATASET`` over the whole test split (25 views)."""
    out = orphan_snapshot.parent / "eval"
    assert main(["eval", str(orphan_snapshot), "--data", str(synthetic_64), "--output", str(out), "--quiet"]) == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_metrics_equal_direct_metric_calls(evaluated, orphan_snapshot, synthetic_64):
    out, m = evaluated
    t = load_trained(orphan_snapshot, device="cpu", data=synthetic_64)
    bg = background_color(t.cfg.data.background, ())
    test = t.scene.split("test")
    assert [r["view"] for r in m["per_image"]] == test and m["n_images"] == 25
    for rec in m["per_image"][::8]:  # views 0, 8, 16, 24 of the split
        v = rec["view"]
        pred = render_image(t.model, scene_camera(t.scene, v), background=bg)["rgb"].clamp(0, 1)
        gt = composite(torch.from_numpy(load_image(t.scene.image_paths[v], t.scene.downscale)), bg)
        assert rec["psnr"] == psnr(pred, gt) and rec["ssim"] == ssim(pred, gt), rec["name"]
    ps = [r["psnr"] for r in m["per_image"]]
    ss = [r["ssim"] for r in m["per_image"]]
    assert m["psnr"] == pytest.approx(statistics.fmean(ps), abs=1e-12)
    assert m["psnr_std"] == pytest.approx(statistics.pstdev(ps), abs=1e-12)
    assert m["ssim"] == pytest.approx(statistics.fmean(ss), abs=1e-12)
    assert m["ssim_std"] == pytest.approx(statistics.pstdev(ss), abs=1e-12)
    assert m["psnr"] > 20.0  # the trained model, not an empty one
    assert (m["split"], m["resolution"], m["background"], m["source_kind"]) == ("test", [64, 64], "white", "snapshot")
    assert m["data"] == str(synthetic_64.resolve()) and m["step"] == 600
    assert m["lpips"] is not None or m["lpips_note"].startswith("LPIPS unavailable")


def test_reports_list_every_image_worst_first(evaluated):
    out, m = evaluated
    worst_first = [r["name"] for r in sorted(m["per_image"], key=lambda r: r["psnr"])]
    assert sorted(worst_first) == sorted(f"r_{i}" for i in range(25))

    md = (out / "report.md").read_text()
    assert md.index("PSNR (dB)") < md.index("## Worst")  # summary on top
    table = re.findall(r"^\| (\d+) \| \[([^\]]+)\]\(([^)]+)\) \| ([\d.]+) \|", md, flags=re.M)
    assert [name for _, name, _, _ in table] == worst_first
    assert [int(i) for i, *_ in table] == list(range(1, 26))
    assert all((out / pic).is_file() for _, _, pic, _ in table)
    assert f"{m['psnr']:.2f} ± {m['psnr_std']:.2f}" in md

    page = (out / "report.html").read_text()
    rows = re.findall(r'<tr><td class="n">\d+</td><td><a href="([^"]+)">([^<]+)</a>', page)
    assert [name for _, name in rows] == worst_first
    worst = re.findall(r'<figure><img src="([^"]+)"', page)
    assert worst == [f"{n}.png" for n in worst_first[:5]]
    srcs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert srcs and all(not s.startswith(("http:", "https:", "/", "file:")) for s in srcs)  # relative only
    assert "<script" not in page and "<link" not in page


def test_snapshot_without_its_dataset_needs_data(orphan_snapshot, capsys):
    assert main(["eval", str(orphan_snapshot), "--quiet", "--output", str(orphan_snapshot.parent / "x")]) == 2
    err = capsys.readouterr().err
    assert "--data" in err and "not found" in err and "Traceback" not in err
    assert not (orphan_snapshot.parent / "x").exists()


def test_run_dir_default_output_and_overwrite(trained_ngp, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_ngp, run)
    args = ["eval", str(run), "--quiet", "--max-images", "1"]
    assert main(args) == 0
    m = json.loads((run / "eval" / "metrics.json").read_text())
    assert m["n_images"] == 1 and m["n_split"] == 25 and m["source_kind"] == "run"
    assert (run / "eval" / "report.html").is_file() and (run / "eval" / "r_0.png").is_file()
    before = (run / "eval" / "metrics.json").read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (run / "eval" / "metrics.json").read_bytes() == before
    assert main([*args, "--overwrite", "--split", "train", "--output", str(run / "eval")]) == 0
    assert json.loads((run / "eval" / "metrics.json").read_text())["split"] == "train"


def test_run_without_checkpoint_exits_2(trained_ngp, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(trained_ngp / "config.json", run / "config.json")
    assert main(["eval", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint" in err and str(run) in err and "Traceback" not in err
    assert not (run / "eval").exists()


def test_unwritable_output_exits_2(orphan_snapshot, synthetic_64, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    rc = main(["eval", str(orphan_snapshot), "--data", str(synthetic_64), "--output", str(blocker / "eval"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "--output" in err and str(blocker / "eval") in err


def test_missing_data_folder_exits_2(orphan_snapshot, tmp_path, capsys):
    assert main(["eval", str(orphan_snapshot), "--data", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "nowhere" in capsys.readouterr().err
