"""Every CLI command runs once on a tiny synthetic scene; bad input exits 2 with a clear message."""

import json

import imageio.v2 as imageio
import pytest

from nerfkit.cli.main import main
from nerfkit.data.synthetic import generate_synthetic

TINY = ["--method", "nerf", "--set", "n_coarse=8", "--set", "n_fine=8", "--set", "width=32", "--set", "batch_rays=64",
        "--set", "bf16=False"]


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("scene") / "s16", resolution=16, n_train=8, n_test=3)


@pytest.fixture(scope="module")
def tiny_run(tiny_scene, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    rc = main(["train", "--data", str(tiny_scene), "--max-steps", "6", "--output", str(run), "--quiet",
               "--eval-every", "3", "--checkpoint-every", "3", *TINY])
    assert rc == 0
    return run


def test_train_writes_run_dir(tiny_run):
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["format_version"] == 1 and cfg["method"] == "nerf"
    assert cfg["method_options"]["n_coarse"] == 8
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_psnr" in x for x in lines) and any("loss" in x for x in lines)
    assert sorted(p.name for p in (tiny_run / "checkpoints").iterdir()) == ["step_0000003.pt", "step_0000006.pt"]
    assert list((tiny_run / "previews").glob("*.png"))


def test_resume_continues(tiny_run, tiny_scene):
    rc = main(["train", "--data", str(tiny_scene), "--output", str(tiny_run), "--resume", "--max-steps", "8",
               "--quiet"])
    assert rc == 0
    assert (tiny_run / "checkpoints" / "step_0000008.pt").is_file()


def test_train_refuses_to_overwrite(tiny_run, tiny_scene, capsys):
    rc = main(["train", "--data", str(tiny_scene), "--output", str(tiny_run), "--max-steps", "1", "--quiet", *TINY])
    assert rc == 2
    assert "--resume" in capsys.readouterr().err


def test_eval_metrics(tiny_run):
    assert main(["eval", str(tiny_run), "--quiet"]) == 0
    m = json.loads((tiny_run / "eval" / "metrics.json").read_text())
    for key in ("psnr", "ssim", "lpips", "n_images", "resolution", "background", "per_image"):
        assert key in m
    assert m["n_images"] == 3 and len(m["per_image"]) == 3 and m["resolution"] == [16, 16]
    assert m["psnr"] == pytest.approx(sum(r["psnr"] for r in m["per_image"]) / 3)
    assert (tiny_run / "eval" / "r_0.png").is_file()


def test_render_orbit_video(tiny_run):
    assert main(["render", str(tiny_run), "--frames", "5", "--quiet"]) == 0
    reader = imageio.get_reader(tiny_run / "renders" / "orbit.mp4")
    frames = [f for f in reader]
    assert len(frames) == 5 and frames[0].shape == (16, 16, 3)
    assert len(list((tiny_run / "renders" / "orbit").glob("rgb_*.png"))) == 5


def test_missing_data_exits_2(tmp_path, capsys):
    rc = main(["train", "--data", str(tmp_path / "nope"), "--max-steps", "1", "--output", str(tmp_path / "r")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err


def test_unknown_method_option_exits_2(tiny_scene, tmp_path, capsys):
    rc = main(["train", "--data", str(tiny_scene), "--max-steps", "1", "--output", str(tmp_path / "r"),
               "--method", "nerf", "--set", "bogus=1"])
    assert rc == 2 and "bogus" in capsys.readouterr().err


def test_eval_without_checkpoint_exits_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tiny_scene, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import torch

    run = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "nerfkit.cli.main", "train", "--data", str(tiny_scene),
                             "--max-steps", "100000", "--output", str(run), "--quiet", *TINY],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (log.is_file() and log.read_text().count("\n") >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    cks = list((run / "checkpoints").iterdir())
    assert len(cks) == 1 and cks[0].suffix == ".pt"  # no temporary file left behind
    ck = torch.load(cks[0], weights_only=True)
    assert ck["step"] >= 10
