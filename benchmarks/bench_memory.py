"""Bounded memory (issue 7): peak RSS of ``nerfkit train`` on a capture larger than the memory budget.

Generates N views (default 1000) of the built-in synthetic scene at W x H (default 1920x1080) as an
instant-ngp ``transforms.json`` dataset of JPEGs in a temporary folder: each view is ray traced at a
low resolution (``--render-width``, default 192 px wide) and upsampled with PIL's bicubic filter, so
generation stays cheap while decoding still costs N * W * H * 3 bytes (6.2 GB at the defaults). The
reader holds out every 8th frame as the test split. Then ``nerfkit train`` runs once per
configuration as a child process whose peak resident memory is measured, and ``nerfkit eval`` gives
the test PSNR on a few held-out images (optional).

    python benchmarks/bench_memory.py                       # 1000 x 1920x1080, configs default + budget_1GiB
    python benchmarks/bench_memory.py --n-images 24 --width 480 --height 270 --steps 30 \\
        --configs "default=" --name bounded_memory_small    # a quick smoke run

Configurations (``--configs``): ``name=flags;name=flags`` (flags split like a shell line) or a JSON
object ``{"name": "flags"}`` / ``{"name": ["--flag", "value"]}``; ``--train-args`` adds flags to every
configuration. Peak RSS per configuration is the child's own high-water mark: ``ru_maxrss`` from
``os.wait4`` on that child (exact, taken when it exits), cross-checked by polling ``VmHWM`` in
``/proc/<pid>/status`` every 0.2 s; the sum of the RSS over the child's process tree is polled too.

Writes benchmarks/results/<name>.json (default bounded_memory.json) after each configuration.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine, warmup_seconds, write_result

GIB = 1024 ** 3
TARGET_GIB = 8.0
DEFAULT_CONFIGS = "default=;budget_1GiB=--image-memory 1GiB"


# ----------------------------------------------------------------------------- dataset generation

_W: dict = {}  # per-worker state: scene, poses, sizes


def _init_worker(n: int, width: int, height: int, rw: int, rh: int, folder: str, quality: int) -> None:
    import torch

    from nerfkit.data.synthetic import SyntheticScene, train_cameras

    torch.set_num_threads(1)  # one core per worker; the pool gives the parallelism
    _W.update(scene=SyntheticScene(0), poses=train_cameras(n), size=(width, height), low=(rw, rh),
              folder=Path(folder), quality=quality)


def low_intrinsics(rw: int, rh: int):
    """Centred square-pixel camera whose *vertical* field of view is the Blender scenes' 39.6 degrees,
    so the whole scene stays in a landscape frame."""
    from nerfkit.cameras import Intrinsics
    from nerfkit.data.synthetic import CAMERA_ANGLE_X

    f = 0.5 * rh / math.tan(0.5 * CAMERA_ANGLE_X)
    return Intrinsics(f, f, rw / 2.0, rh / 2.0, rw, rh)


def _render_one(i: int) -> float:
    """Render view ``i`` at low resolution, upsample, write ``images/frame_XXXXX.jpg``; returns seconds."""
    import numpy as np
    from PIL import Image

    from nerfkit.data.synthetic import render_view

    t0 = time.perf_counter()
    rw, rh = _W["low"]
    rgba, _ = render_view(_W["scene"], _W["poses"][i], low_intrinsics(rw, rh), supersample=1)
    rgb = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])  # straight alpha over white   # [h, w, 3]
    img = Image.fromarray((rgb.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    img = img.resize(_W["size"], Image.BICUBIC)
    path = _W["folder"] / "images" / f"frame_{i:05d}.jpg"
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="JPEG", quality=_W["quality"])
    tmp.replace(path)
    return time.perf_counter() - t0


def generate_dataset(folder: Path, n: int, width: int, height: int, render_width: int, jobs: int,
                     quality: int = 90) -> dict:
    """Write the transforms.json dataset into ``folder``; returns generation statistics."""
    from nerfkit.cameras import opencv_to_opengl
    from nerfkit.data.synthetic import train_cameras

    rw = min(render_width, width)
    rh = max(1, round(rw * height / width))
    (folder / "images").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    args = (n, width, height, rw, rh, str(folder), quality)
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs, initializer=_init_worker, initargs=args) as pool:
            per = list(pool.imap_unordered(_render_one, range(n), chunksize=4))
    else:
        _init_worker(*args)
        per = [_render_one(i) for i in range(n)]
    seconds = time.perf_counter() - t0

    low = low_intrinsics(rw, rh)
    sx, sy = width / rw, height / rh  # pixel edges scale with the resize
    poses = train_cameras(n)  # [n, 4, 4] OpenCV c2w on a spiral around the scene
    doc = {"fl_x": low.fx * sx, "fl_y": low.fy * sy, "cx": low.cx * sx, "cy": low.cy * sy, "w": width, "h": height,
           "frames": [{"file_path": f"images/frame_{i:05d}.jpg",
                       "transform_matrix": opencv_to_opengl(poses[i]).tolist()} for i in range(n)]}
    (folder / "transforms.json").write_text(json.dumps(doc, indent=1))
    disk = sum(p.stat().st_size for p in (folder / "images").iterdir())
    return {"generation_s": round(seconds, 1), "render_size": [rw, rh], "jobs": jobs,
            "per_image_s_mean": round(sum(per) / len(per), 3), "per_image_s_max": round(max(per), 3),
            "dataset_bytes": disk, "dataset_mib": round(disk / 2 ** 20, 1)}


def eval_dataset(data: Path, folder: Path, factor: int) -> Path:
    """A copy of ``data`` whose test frames (every 8th, the reader's hold-out) are ``factor`` times smaller.

    ``nerfkit eval`` renders at the dataset's resolution and has no downscale flag, so it is pointed
    (``--data``) at this folder: the same frames in the same order (so the same split and the same
    normalisation), train frames through a symlink to the full images, test frames resized with PIL's
    box filter; the reader rescales the declared full-size intrinsics to each file's size.
    """
    from PIL import Image

    doc = json.loads((data / "transforms.json").read_text())
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "small").mkdir(parents=True)
    (folder / "full").symlink_to((data / "images").resolve(), target_is_directory=True)
    size = (max(1, round(doc["w"] / factor)), max(1, round(doc["h"] / factor)))
    for i, frame in enumerate(doc["frames"]):
        name = Path(frame["file_path"]).name
        if i % 8 == 0:
            with Image.open(data / frame["file_path"]) as im:
                im.resize(size, Image.BOX).save(folder / "small" / name, format="PNG")
            frame["file_path"] = f"small/{name}"
        else:
            frame["file_path"] = f"full/{name}"
    (folder / "transforms.json").write_text(json.dumps(doc, indent=1))
    return folder


# ----------------------------------------------------------------------------- child processes

def nerfkit_cmd() -> list[str]:
    script = Path(sys.executable).parent / "nerfkit"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from nerfkit.cli.main import main; sys.exit(main())"]


def _proc_status(pid: int) -> dict:
    out = {}
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, val = line.split(":", 1)
                out[key] = int(val.split()[0]) * 1024  # kB -> bytes
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (via /proc/<pid>/task/*/children)."""
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in open(f"/proc/{p}/task/{task}/children").read().split()]
        except OSError:
            pass
    return seen


def run_measured(cmd: list[str], log_stem: Path, poll_s: float = 0.2) -> dict:
    """Run ``cmd``; wall time, exit code, peak RSS (bytes) of the child and of its process tree, stderr tail."""
    with open(f"{log_stem}.stdout", "wb") as out, open(f"{log_stem}.stderr", "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        hwm = tree_peak = 0
        while True:
            hwm = max(hwm, _proc_status(proc.pid).get("VmHWM", 0))
            tree_peak = max(tree_peak, sum(_proc_status(p).get("VmRSS", 0) for p in _tree(proc.pid)))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps it ourselves: keeps its rusage
            if pid:
                break
            time.sleep(poll_s)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err_text = Path(f"{log_stem}.stderr").read_text(errors="replace")
    both = Path(f"{log_stem}.stdout").read_text(errors="replace") + "\n" + err_text
    notes = [x.strip() for x in both.splitlines() if x.strip().lower().startswith(("note", "warning"))]
    return {"exit_code": proc.returncode, "wall_s": round(wall, 1), "notes": notes,
            "peak_rss_bytes": max(usage.ru_maxrss * 1024, hwm),  # ru_maxrss is in KiB on Linux
            "ru_maxrss_bytes": usage.ru_maxrss * 1024, "polled_vmhwm_bytes": hwm, "polled_tree_rss_bytes": tree_peak,
            "stderr_tail": err_text[-2000:]}


def parse_configs(text: str) -> dict[str, list[str]]:
    """``name=flags;name=flags`` or a JSON object -> {name: [args]}."""
    text = text.strip()
    if text.startswith("{"):
        raw = json.loads(text)
        return {k: (shlex.split(v) if isinstance(v, str) else [str(x) for x in v]) for k, v in raw.items()}
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, flags = part.partition("=")
        out[name.strip()] = shlex.split(flags)
    if not out:
        raise SystemExit(f"--configs {text!r}: no configuration given")
    return out


def train_summary(run: Path) -> dict:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    recs = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    steps = [r for r in recs if "rays_per_s" in r]
    if not steps:
        return {}
    last = steps[-1]
    return {"steps": last["step"], "train_s": last.get("time"), "rays_per_s": last.get("rays_per_s"),
            "steps_per_s": round(last["step"] / last["time"], 3) if last.get("time") else None,
            "final_train_psnr": last.get("psnr"),
            "warmup_s": warmup_seconds(path.parent)}


# ----------------------------------------------------------------------------- main

def gib(b: float | None) -> float | None:
    return None if b is None else round(b / GIB, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-images", type=int, default=1000)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--render-width", type=int, default=192,
                    help="width the scene is ray traced at before the bicubic upsampling (default 192)")
    ap.add_argument("--jobs", type=int, default=2, help="processes generating images (default 2)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--configs", default=DEFAULT_CONFIGS,
                    help=f"name=flags;name=flags or a JSON object (default {DEFAULT_CONFIGS!r})")
    ap.add_argument("--train-args", default="", help="extra 'nerfkit train' flags for every configuration")
    ap.add_argument("--eval", action=argparse.BooleanOptionalAction, default=True,
                    help="run 'nerfkit eval' on each finished run (default on)")
    ap.add_argument("--eval-images", type=int, default=3,
                    help="held-out images to evaluate, spread over the test split (default 3; 0 = all)")
    ap.add_argument("--eval-downscale", type=int, default=8,
                    help="evaluate on test images this many times smaller than the training images (default 8: "
                         "240x135 for 1080p; rendering a 1080p image takes many minutes on a CPU); 1 = full size")
    ap.add_argument("--workdir", default=None, help="dataset and runs folder (default: a new folder under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (default: deleted at the end)")
    ap.add_argument("--name", default="bounded_memory", help="result file benchmarks/results/<name>.json")
    a = ap.parse_args()
    configs = parse_configs(a.configs)
    common_args = shlex.split(a.train_args)

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="nerfkit-bench-memory-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    data, runs, logs = work / "data", work / "runs", work / "logs"
    logs.mkdir(exist_ok=True)
    free = shutil.disk_usage(work).free
    print(f"work folder {work} ({free / GIB:.1f} GiB free)", flush=True)
    result = {
        "benchmark": "peak RSS of nerfkit train on a capture whose decoded images exceed the memory budget",
        "command": "python benchmarks/bench_memory.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
        "machine": machine(), "physical_ram_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "n_images": a.n_images, "width": a.width, "height": a.height,
        "decoded_bytes": a.n_images * a.width * a.height * 3,
        "decoded_gib": gib(a.n_images * a.width * a.height * 3), "steps": a.steps,
        "dataset_bytes": None, "generation_s": None, "dataset": None,
        "target_peak_rss_gib": TARGET_GIB, "configs": {},
    }
    try:
        if (data / "transforms.json").is_file():
            print(f"reusing the dataset in {data}", flush=True)
            result["dataset"] = {"reused": True,
                                 "dataset_bytes": sum(p.stat().st_size for p in (data / "images").iterdir())}
        else:
            print(f"generating {a.n_images} images of {a.width}x{a.height} ...", flush=True)
            result["dataset"] = generate_dataset(data, a.n_images, a.width, a.height, a.render_width, a.jobs)
            print(f"  {json.dumps(result['dataset'])}", flush=True)
        result["dataset_bytes"] = result["dataset"]["dataset_bytes"]
        result["generation_s"] = result["dataset"].get("generation_s")

        n_test = len(range(0, a.n_images, 8))
        every = max(1, n_test // a.eval_images) if a.eval_images > 0 else 1
        eval_data = None
        for name, flags in configs.items():
            run = runs / name
            shutil.rmtree(run, ignore_errors=True)
            cmd = nerfkit_cmd() + ["train", "--data", str(data), "--max-steps", str(a.steps), "--quiet",
                                   "--output", str(run), *common_args, *flags]
            print(f"[{name}] {' '.join(shlex.quote(x) for x in cmd)}", flush=True)
            r = run_measured(cmd, logs / f"train_{name}")
            entry = {"flags": flags + common_args, "exit_code": r["exit_code"], "wall_s": r["wall_s"],
                     "peak_rss_gib": gib(r["peak_rss_bytes"]), "ru_maxrss_gib": gib(r["ru_maxrss_bytes"]),
                     "polled_vmhwm_gib": gib(r["polled_vmhwm_bytes"]),
                     "polled_tree_rss_gib": gib(r["polled_tree_rss_bytes"]), **train_summary(run),
                     "messages": r["notes"]}  # e.g. the trainer's note that it streams or downscales images
            entry["under_target"] = r["exit_code"] == 0 and r["peak_rss_bytes"] < TARGET_GIB * GIB
            if r["exit_code"] != 0:
                entry["stderr_tail"] = r["stderr_tail"]
            elif a.eval:
                ecmd = nerfkit_cmd() + ["eval", str(run), "--quiet", "--every", str(every)]
                if a.eval_downscale > 1:
                    if eval_data is None:
                        eval_data = eval_dataset(data, work / "eval_data", a.eval_downscale)
                    ecmd += ["--data", str(eval_data)]
                if a.eval_images > 0:
                    ecmd += ["--max-images", str(a.eval_images)]
                e = run_measured(ecmd, logs / f"eval_{name}")
                entry["eval"] = {"exit_code": e["exit_code"], "wall_s": e["wall_s"], "downscale": a.eval_downscale,
                                 "peak_rss_gib": gib(e["peak_rss_bytes"])}
                mpath = run / "eval" / "metrics.json"
                if e["exit_code"] == 0 and mpath.is_file():
                    m = json.loads(mpath.read_text())
                    entry["test_psnr"] = round(m["psnr"], 3)
                    entry["test_ssim"] = round(m["ssim"], 4)
                    entry["eval"].update(n_images=m["n_images"], n_split=m["n_split"], every=m["every"],
                                         resolution=m["resolution"])
                else:
                    entry["eval"]["stderr_tail"] = e["stderr_tail"]
            result["configs"][name] = entry
            # max over every child so far (trainings and evaluations): context, not a per-config number
            result["children_ru_maxrss_gib_so_far"] = gib(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
            print(f"[{name}] {json.dumps({k: v for k, v in entry.items() if k != 'stderr_tail'})}", flush=True)
            if r["exit_code"] != 0:
                print(f"[{name}] failed; stderr tail:\n{r['stderr_tail']}", flush=True)
            write_result(a.name, result)
        result["all_under_target"] = all(c["under_target"] for c in result["configs"].values())
        write_result(a.name, result)
    finally:
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
