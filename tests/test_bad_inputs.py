"""The bad-input catalogue: every input a user can get wrong, and what nerfkit does with it.

Each case builds a small broken input in ``tmp_path`` (generated 8..32 px images, hand-written JSON,
COLMAP and LLFF files) and checks one of two outcomes:

- an error: a :class:`nerfkit.errors.NerfkitError` subclass whose message names the offending file
  and says what to do (a fix phrase is asserted); through the CLI, exit status 2, ``error: ...`` on
  stderr with the file name and no traceback;
- correct handling, where a user would expect the input to work (EXIF rotation, 16-bit, greyscale,
  palette, a JPEG named .png, ...), checked against reference numbers.

``CATALOGUE`` lists every case as (id, input, behaviour); ``test_catalogue_is_complete`` ties it to
the parametrised tests, so the table in the README and the tests cannot drift apart.
"""

from __future__ import annotations

import builtins
import errno
import json
import math
import os
import shutil
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cli.main import main
from nerfkit.data import read_scene
from nerfkit.data.blender import read_blender
from nerfkit.data.colmap_model import read_colmap_model
from nerfkit.data.images import image_header, read_image
from nerfkit.errors import DataError, NerfkitError, PoseError, RunError

TINY = ["--method", "nerf", "--set", "n_coarse=8", "--set", "n_fine=8", "--set", "width=32", "--set", "batch_rays=64",
        "--set", "bf16=False", "--quiet"]

# ------------------------------------------------------------------------------------------ builders


def pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """uint8 [h, w, 3] random colours."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_image(path: Path, w: int = 16, h: int = 16, seed: int = 0, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pattern(w, h, seed)).save(path, format=fmt)
    return path


def gl_pose(i: int, n: int = 3) -> list:
    """OpenGL camera-to-world 4x4 of camera i of n on a circle of radius 4 at height 1, looking at the origin."""
    a = 2 * math.pi * i / n
    pos = np.array([4 * math.cos(a), 4 * math.sin(a), 1.0])
    z = pos / np.linalg.norm(pos)  # OpenGL: the camera looks along -z
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, np.cross(z, x), z, pos
    return m.tolist()


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))  # allow_nan: NaN / Infinity are written as Python's json does
    return path


def blender(root: Path, edit: Callable | None = None, n: int = 3, size=(16, 16)) -> Path:
    """A Blender scene (transforms_train.json + train/r_i.png); ``edit(meta, root)`` breaks it."""
    for i in range(n):
        write_image(root / "train" / f"r_{i}.png", *size, seed=i)
    meta = {"camera_angle_x": 0.69,
            "frames": [{"file_path": f"./train/r_{i}", "transform_matrix": gl_pose(i, n)} for i in range(n)]}
    if edit is not None:
        edit(meta, root)
    write_json(root / "transforms_train.json", meta)
    return root


def tjson(root: Path, edit: Callable | None = None, n: int = 3, size=(16, 16)) -> Path:
    """An instant-ngp transforms.json scene (images/f_i.png, fl_x = fl_y = 20); ``edit(meta, root)`` breaks it."""
    for i in range(n):
        write_image(root / "images" / f"f_{i}.png", *size, seed=i)
    meta = {"fl_x": 20.0, "fl_y": 20.0,
            "frames": [{"file_path": f"images/f_{i}.png", "transform_matrix": gl_pose(i, n)} for i in range(n)]}
    if edit is not None:
        edit(meta, root)
    write_json(root / "transforms.json", meta)
    return root


def colmap_text(root: Path, cameras: str = "1 PINHOLE 16 16 20 20 8 8", camera_id: int = 1) -> Path:
    """A COLMAP workspace: images/{a,b}.png + sparse/0/*.txt (two images, no points)."""
    sp = root / "sparse" / "0"
    sp.mkdir(parents=True)
    (sp / "cameras.txt").write_text("# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n" + cameras + "\n")
    (sp / "images.txt").write_text(f"1 1 0 0 0 0 0 4 {camera_id} a.png\n\n2 1 0 0 0 1 0 4 {camera_id} b.png\n\n")
    (sp / "points3D.txt").write_text("")
    write_image(root / "images" / "a.png")
    write_image(root / "images" / "b.png", seed=1)
    return root


def png16(arr: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG of ``arr`` uint16 [H, W, C] (colour type 0 grey, 2 RGB, 4 grey+alpha, 6 RGBA).

    Rows cycle through the five PNG filters (none, sub, up, average, paeth) so the decoder's
    unfiltering is exercised too.
    """
    h, w, c = arr.shape
    raw = arr.astype(">u2").view(np.uint8).reshape(h, w * c * 2).astype(np.int32)
    bpp = 2 * c
    rows = []
    for y in range(h):
        x = raw[y]
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        up = raw[y - 1] if y else np.zeros_like(x)
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        ftype = y % 5
        if ftype == 0:
            pred = np.zeros_like(x)
        elif ftype == 1:
            pred = left
        elif ftype == 2:
            pred = up
        elif ftype == 3:
            pred = (left + up) // 2
        else:
            p = left + up - upleft
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        rows.append(bytes([ftype]) + ((x - pred) % 256).astype(np.uint8).tobytes())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def to8(v) -> np.ndarray:
    """The expected 8-bit value of 16-bit samples: round(v * 255 / 65535)."""
    return np.floor(np.asarray(v, dtype=np.float64) * 255.0 / 65535.0 + 0.5).astype(np.uint8)


def exif_jpeg(path: Path, img: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    return path


def blocks(w: int, h: int) -> np.ndarray:
    """uint8 [h, w, 3]: four flat 8x8-aligned quadrants (red, green, blue, white), easy for JPEG."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, : w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 255)
    return img


def rewrite_snapshot(src: Path, dst: Path, **meta_changes) -> Path:
    """Copy a snapshot with its safetensors metadata changed (the header JSON re-serialised, tensors untouched)."""
    raw = src.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    table = json.loads(raw[8: 8 + n])
    table["__metadata__"].update(meta_changes)
    head = json.dumps(table).encode()
    head += b" " * (-len(head) % 8)  # safetensors pads the header to 8 bytes
    dst.write_bytes(struct.pack("<Q", len(head)) + head + raw[8 + n:])
    return dst


def fake_run(tmp: Path, trained: Path, config: str | None = "copy", checkpoint: bytes | None = None) -> Path:
    """A run directory: config.json (copied from ``trained``, or the given text, or none) and one checkpoint."""
    run = tmp / "run"
    (run / "checkpoints").mkdir(parents=True)
    if config == "copy":
        shutil.copy(trained / "config.json", run / "config.json")
    elif config is not None:
        (run / "config.json").write_text(config)
    if checkpoint is not None:
        (run / "checkpoints" / "step_0000600.pt").write_bytes(checkpoint)
    return run


# ------------------------------------------------------------------------------------------ error cases


@dataclass
class ErrorCase:
    input: str  # what the user gave
    error: type  # the NerfkitError subclass expected
    fix: str  # a phrase of the message that says what to do
    build: Callable  # (tmp_path, request) -> (call, tokens): tokens must all appear in the message


ERRORS: dict[str, ErrorCase] = {}


def error_case(cid: str, input: str, error: type, fix: str):
    def register(build):
        ERRORS[cid] = ErrorCase(input, error, fix, build)
        return build
    return register


def _scene(root):
    return lambda: read_scene(root)


@error_case("truncated_png", "PNG cut off halfway (header intact)", DataError, "copy it again, re-export it")
def _(tmp, request):
    root = blender(tmp / "s")
    png = root / "train" / "r_1.png"
    write_image(png, 32, 32, seed=5)  # random content: the compressed data is large enough to cut
    data = png.read_bytes()
    png.write_bytes(data[: len(data) // 2])
    return (lambda: read_image(png)), ["r_1.png", "truncated"]


@error_case("corrupt_jpeg", "JPEG file of random bytes", DataError, "re-export or remove this frame")
def _(tmp, request):
    root = blender(tmp / "s")
    (root / "train" / "r_1.png").unlink()
    (root / "train" / "r_1.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    return _scene(root), ["r_1.jpg"]


@error_case("empty_image", "0-byte image file", DataError, "re-export or remove this frame")
def _(tmp, request):
    root = blender(tmp / "s")
    (root / "train" / "r_2.png").write_bytes(b"")
    return _scene(root), ["r_2.png"]


@error_case("image_1x1", "image smaller than 2x2 (1x1 PNG)", DataError, "re-export it larger or remove")
def _(tmp, request):
    root = tjson(tmp / "s")
    write_image(root / "images" / "f_1.png", 1, 1)
    return _scene(root), ["f_1.png", "1x1"]


@error_case("image_1x1_load", "1x1 PNG decoded directly", DataError, "re-export it larger or remove")
def _(tmp, request):
    path = write_image(tmp / "one.png", 1, 1)
    return (lambda: read_image(path)), ["one.png"]


@error_case("image_is_folder", "file_path naming a folder", DataError, "point file_path at the image")
def _(tmp, request):
    def edit(meta, root):
        (root / "train" / "r_9.png").mkdir(parents=True)
        meta["frames"][1]["file_path"] = "./train/r_9.png"
    return _scene(blender(tmp / "s", edit)), ["transforms_train.json", "r_9.png"]


@error_case("image_is_folder_load", "a folder passed as an image", DataError, "point the dataset entry at the image")
def _(tmp, request):
    (tmp / "pic.png").mkdir()
    return (lambda: read_image(tmp / "pic.png")), ["pic.png", "folder"]


@error_case("all_images_missing", "no image file of any frame exists", DataError, "check the file_path entries")
def _(tmp, request):
    root = blender(tmp / "s")
    shutil.rmtree(root / "train")
    return _scene(root), ["transforms_train.json", "./train/r_0"]


@error_case("image_size_mismatch", "mixed image sizes in a Blender scene", DataError, "resize or remove it")
def _(tmp, request):
    root = blender(tmp / "s")
    write_image(root / "train" / "r_2.png", 24, 16)
    return _scene(root), ["r_2.png", "24x16"]


@error_case("declared_size_mismatch", "transforms.json w/h with another aspect ratio than the file", DataError,
            "fix w/h or the image")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(w=32, h=16))), ["f_0.png", "32x16"]


@error_case("json_malformed", "transforms_train.json that is not valid JSON", DataError, "fix the file")
def _(tmp, request):
    root = blender(tmp / "s")
    (root / "transforms_train.json").write_text('{"camera_angle_x": 0.69, "frames": [')
    return _scene(root), ["transforms_train.json", "line 1"]


@error_case("json_top_level_list", "JSON whose top level is a list", DataError, "fix the file")
def _(tmp, request):
    root = tjson(tmp / "s")
    (root / "transforms.json").write_text("[1, 2, 3]")
    return _scene(root), ["transforms.json", "a list"]


@error_case("json_no_frames", "transforms_train.json without a 'frames' key", DataError, "fix the file")
def _(tmp, request):
    return _scene(blender(tmp / "s", lambda m, r: m.pop("frames"))), ["transforms_train.json", "'frames'"]


@error_case("frames_empty_blender", "Blender 'frames': []", DataError, "add the training views")
def _(tmp, request):
    return _scene(blender(tmp / "s", lambda m, r: m.update(frames=[]))), ["transforms_train.json", "empty"]


@error_case("frames_empty_tjson", "transforms.json 'frames': []", DataError, "add the views")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(frames=[]))), ["transforms.json", "empty"]


@error_case("frame_without_matrix", "a frame without transform_matrix", DataError, "add them or remove the frame")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m["frames"][1].pop("transform_matrix"))), ["transforms.json",
                                                                                          "frame #1"]


@error_case("matrix_3x3", "transform_matrix of shape 3x3", DataError, "fix it (4 rows of 4 numbers")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][0]["transform_matrix"] = np.eye(3).tolist()
    return _scene(blender(tmp / "s", edit)), ["transforms_train.json", "r_0", "(3, 3)"]


@error_case("matrix_4_rows_of_3", "transform_matrix of 4 rows of 3", DataError, "fix it (4 rows of 4 numbers")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][2]["transform_matrix"] = [row[:3] for row in meta["frames"][2]["transform_matrix"]]
    return _scene(tjson(tmp / "s", edit)), ["transforms.json", "f_2.png", "(4, 3)"]


@error_case("matrix_ragged", "transform_matrix with rows of different lengths", DataError, "fix it (4 rows")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][0]["transform_matrix"][1] = [0, 1]
    return _scene(tjson(tmp / "s", edit)), ["transforms.json", "f_0.png"]


@error_case("matrix_nan", "NaN in a transform_matrix", PoseError, "fix or remove that frame")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][1]["transform_matrix"][0][3] = float("nan")
    return _scene(blender(tmp / "s", edit)), ["transforms_train.json", "r_1", "NaN"]


@error_case("matrix_inf", "Infinity in a transform_matrix (transforms.json)", PoseError, "fix or remove that frame")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][2]["transform_matrix"][2][3] = float("inf")
    return _scene(tjson(tmp / "s", edit)), ["transforms.json", "f_2.png"]


@error_case("rotation_scaled", "rotation scaled by 1.5 (not orthonormal)", PoseError, "re-export the poses")
def _(tmp, request):
    def edit(meta, root):
        m = np.array(meta["frames"][0]["transform_matrix"])
        m[:3, :3] *= 1.5
        meta["frames"][0]["transform_matrix"] = m.tolist()
    return _scene(tjson(tmp / "s", edit)), ["transforms.json", "f_0.png", "rigid"]


@error_case("rotation_reflected", "rotation with determinant -1 (mirrored axis)", PoseError, "re-export the poses")
def _(tmp, request):
    def edit(meta, root):
        m = np.array(meta["frames"][1]["transform_matrix"])
        m[:3, 0] *= -1
        meta["frames"][1]["transform_matrix"] = m.tolist()
    return _scene(blender(tmp / "s", edit)), ["transforms_train.json", "r_1", "det -1"]


@error_case("focal_zero", "fl_x = 0", PoseError, "fix fl_x")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(fl_x=0.0))), ["transforms.json", "fl_x=0"]


@error_case("focal_negative", "fl_y < 0 in one frame", PoseError, "fix fl_y")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m["frames"][1].update(fl_y=-20.0))), ["transforms.json", "f_1.png"]


@error_case("fov_zero_blender", "camera_angle_x = 0", PoseError, "fix camera_angle_x")
def _(tmp, request):
    return _scene(blender(tmp / "s", lambda m, r: m.update(camera_angle_x=0.0))), ["transforms_train.json"]


@error_case("fov_missing_blender", "no camera_angle_x", DataError, "fix the file")
def _(tmp, request):
    return _scene(blender(tmp / "s", lambda m, r: m.pop("camera_angle_x"))), ["transforms_train.json",
                                                                            "camera_angle_x"]


@error_case("intrinsics_inf", "fl_x = Infinity", PoseError, "fix the camera parameters")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(fl_x=float("inf")))), ["transforms.json", "'fl_x' is inf"]


@error_case("intrinsics_nan", "cx = NaN", PoseError, "fix the camera parameters")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(cx=float("nan")))), ["transforms.json", "'cx' is nan"]


@error_case("camera_model_unknown", 'transforms.json camera_model "FOOBAR"', DataError, "undistort the images first")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m.update(camera_model="FOOBAR"))), ["transforms.json", "FOOBAR"]


@error_case("path_escapes", 'file_path "../../etc/passwd"', DataError, "use paths relative to the folder")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][1]["file_path"] = "../../etc/passwd"
    root = tjson(tmp / "s", edit)
    real_open = builtins.open

    def guarded(file, *a, **k):  # the refused file must not even be opened
        assert "passwd" not in str(file), "the escaping path was read"
        return real_open(file, *a, **k)

    request.getfixturevalue("monkeypatch").setattr(builtins, "open", guarded)
    return _scene(root), ["transforms.json", "../../etc/passwd", "outside"]


@error_case("path_absolute", 'file_path "/etc/hostname" (absolute, outside)', DataError,
            "use paths relative to the folder")
def _(tmp, request):
    return _scene(blender(tmp / "s", lambda m, r: m["frames"][0].update(file_path="/etc/hostname"))), [
        "transforms_train.json", "/etc/hostname"]


@error_case("duplicate_frames_blender", "two frames with the same file_path", DataError, "remove the duplicate frame")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][2]["file_path"] = meta["frames"][0]["file_path"]
    return _scene(blender(tmp / "s", edit)), ["transforms_train.json", "r_0.png", "#0 and #2"]


@error_case("duplicate_frames_tjson", "the same image named with and without extension", DataError,
            "remove the duplicate frame")
def _(tmp, request):
    def edit(meta, root):
        meta["frames"][1]["file_path"] = "images/f_0"
    return _scene(tjson(tmp / "s", edit)), ["transforms.json", "f_0.png"]


@error_case("mask_missing", "mask_path naming a missing file", DataError, "fix or remove it")
def _(tmp, request):
    return _scene(tjson(tmp / "s", lambda m, r: m["frames"][0].update(mask_path="masks/m_0.png"))), [
        "transforms.json", "masks/m_0.png"]


@error_case("split_file_missing_requested", "Blender splits=('train', 'test') without transforms_test.json",
            DataError, "add the file")
def _(tmp, request):
    root = blender(tmp / "s")
    return (lambda: read_blender(root, splits=("train", "test"))), ["transforms_test.json"]


@error_case("split_empty_used", "asking a train-only Blender scene for its test split", DataError,
            "use one of the splits present")
def _(tmp, request):
    scene = read_scene(blender(tmp / "s"))
    return (lambda: scene.split("test")), [str(tmp / "s"), "transforms_test.json", "train (3)"]


@error_case("folder_unreadable", "dataset folder without read permission (simulated PermissionError)", DataError,
            "check its permissions")
def _(tmp, request):
    root = blender(tmp / "s")
    real = os.listdir

    def listdir(path="."):
        if Path(path) == root:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    request.getfixturevalue("monkeypatch").setattr(os, "listdir", listdir)
    return _scene(root), [str(root), "Permission denied"]


def deny_open(request, suffix: str) -> None:
    """Simulate a file without read permission: opening a path ending in ``suffix`` raises EACCES
    (chmod does not stop root, who runs CI)."""
    real_open = builtins.open

    def guarded(file, *a, **k):
        if str(file).endswith(suffix):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *a, **k)

    request.getfixturevalue("monkeypatch").setattr(builtins, "open", guarded)


@error_case("json_unreadable", "transforms_train.json without read permission (simulated)", DataError,
            "check the path and permissions")
def _(tmp, request):
    root = blender(tmp / "s")
    deny_open(request, "transforms_train.json")
    return _scene(root), ["transforms_train.json", "Permission denied"]


@error_case("image_unreadable", "image without read permission (simulated)", DataError, "check the file's permissions")
def _(tmp, request):
    path = write_image(tmp / "locked.png")
    deny_open(request, "locked.png")
    return (lambda: read_image(path)), ["locked.png", "Permission denied"]


@error_case("folder_chmod_000", "dataset folder chmod 000 (real; skipped when running as root)", DataError,
            "check its permissions")
def _(tmp, request):
    if os.geteuid() == 0:  # root reads anything: chmod cannot stop it
        pytest.skip("running as root: chmod 000 does not stop reads (the simulated case covers this)")
    root = blender(tmp / "s")
    os.chmod(root, 0)
    request.addfinalizer(lambda: os.chmod(root, 0o755))
    return _scene(root), [str(root)]


@error_case("colmap_unknown_model_txt", "COLMAP cameras.txt with model FOOBAR", DataError, "fix line 2")
def _(tmp, request):
    return _scene(colmap_text(tmp / "c", cameras="1 FOOBAR 16 16 20 20 8 8")), ["cameras.txt", "FOOBAR"]


@error_case("colmap_unsupported_model", "COLMAP camera model FOV (known, not supported)", DataError,
            "undistort the images")
def _(tmp, request):
    return _scene(colmap_text(tmp / "c", cameras="1 FOV 16 16 20 20 8 8 0.1")), ["cameras.txt", "FOV"]


@error_case("colmap_camera_id_missing", "COLMAP images.txt naming camera 7, which is not defined", DataError,
            "re-export the model")
def _(tmp, request):
    return _scene(colmap_text(tmp / "c", camera_id=7)), ["images.txt", "camera 7", "cameras.txt"]


@error_case("colmap_focal_zero", "COLMAP PINHOLE camera with fx = 0", PoseError, "fix the camera")
def _(tmp, request):
    return _scene(colmap_text(tmp / "c", cameras="1 PINHOLE 16 16 0 20 8 8")), ["cameras.txt", "camera 1"]


@error_case("colmap_image_aspect", "COLMAP camera 32x16 but the image files are 16x16", DataError,
            "Re-run COLMAP on these images or restore the originals")
def _(tmp, request):
    return _scene(colmap_text(tmp / "c", cameras="1 PINHOLE 32 16 20 20 16 8")), ["a.png", "cameras.txt", "32x16"]


@error_case("colmap_bin_truncated", "COLMAP cameras.bin cut short", DataError, "re-export the model")
def _(tmp, request):
    sp = tmp / "c" / "sparse" / "0"
    sp.mkdir(parents=True)
    cams = struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 1, 16, 16) + struct.pack("<4d", 20, 20, 8, 8)
    (sp / "cameras.bin").write_bytes(cams[:-8])
    (sp / "images.bin").write_bytes(struct.pack("<Q", 0))
    (sp / "points3D.bin").write_bytes(struct.pack("<Q", 0))
    return (lambda: read_colmap_model(sp)), ["cameras.bin", "truncated"]


@error_case("llff_wrong_shape", "LLFF poses_bounds.npy of shape [3, 15]", DataError, "regenerate it")
def _(tmp, request):
    root = tmp / "l"
    for i in range(3):
        write_image(root / "images" / f"{i:03d}.png", seed=i)
    np.save(root / "poses_bounds.npy", np.zeros((3, 15)))
    return _scene(root), ["poses_bounds.npy", "(3, 15)"]


@error_case("llff_not_npy", "LLFF poses_bounds.npy of random bytes", DataError, "regenerate it")
def _(tmp, request):
    root = tmp / "l"
    for i in range(3):
        write_image(root / "images" / f"{i:03d}.png", seed=i)
    (root / "poses_bounds.npy").write_bytes(np.random.default_rng(1).bytes(300))
    return _scene(root), ["poses_bounds.npy"]


@error_case("unknown_format_api", "read_scene(format='FOOBAR')", DataError, "use one of")
def _(tmp, request):
    root = blender(tmp / "s")
    return (lambda: read_scene(root, format="FOOBAR")), [str(root), "FOOBAR"]


@error_case("camera_path_wrong_matrix", "nerfkit camera path whose c2w has 9 numbers", DataError, "fix the frame")
def _(tmp, request):
    from nerfkit.cameras.path_files import read_camera_path

    path = write_json(tmp / "p.json", {"format": "nerfkit-camera-path", "version": 1, "frame": "scene",
                                       "frames": [{"c2w": np.eye(3).tolist()}]})
    return (lambda: read_camera_path(path)), ["p.json", "9 numbers"]


@error_case("checkpoint_disk_full", "disk full (ENOSPC) while writing a checkpoint (simulated)", RunError,
            "free disk space")
def _(tmp, request):
    from nerfkit.train import checkpoint as ck

    run = tmp / "run"
    ck.save_checkpoint(run, 1, {"w": torch.arange(4.0)})
    before = (run / "checkpoints" / "step_0000001.pt").read_bytes()
    real_open = builtins.open

    class Full:
        """A file whose writes fill the disk after a few bytes."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[:16])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return Full(f) if "w" in mode else f

    request.getfixturevalue("monkeypatch").setattr(ck, "open", full_open, raising=False)

    def call():
        try:
            ck.save_checkpoint(run, 2, {"w": torch.arange(8.0)})
        finally:  # nothing lost, nothing half-written left behind
            assert (run / "checkpoints" / "step_0000001.pt").read_bytes() == before
            assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000001.pt"]
    return call, ["step_0000002.pt", "No space left", "step_0000001.pt is intact"]


@error_case("training_disk_full", "disk full (ENOSPC) while training writes a preview or log line (simulated)",
            RunError, "free disk space")
def _(tmp, request):
    from nerfkit.train import trainer as tr
    from nerfkit.train.config import DataConfig, LogConfig, RuntimeConfig, TrainConfig

    run = tmp / "run"
    cfg = TrainConfig(data=DataConfig(path=str(blender(tmp / "scene", size=(16, 16)))), method="nerf",
                      method_options={"n_coarse": 8, "n_fine": 8, "width": 32, "batch_rays": 64, "bf16": False},
                      runtime=RuntimeConfig(max_steps=6, threads=1),
                      log=LogConfig(eval_every=4, checkpoint_every=2, progress=False), output=str(run))

    def full(path, img):
        raise OSError(errno.ENOSPC, "No space left on device")

    request.getfixturevalue("monkeypatch").setattr(tr, "save_png", full)

    def call():
        try:
            tr.Trainer(cfg).train()
        finally:  # the checkpoints written before stay readable
            assert [p.name for p in (run / "checkpoints").glob("step_*.pt")] == ["step_0000002.pt"]
    return call, ["run", "No space left", "at step 4", "step_0000002.pt is intact", "--resume"]


@pytest.mark.parametrize("cid", list(ERRORS))
def test_bad_input_raises_clear_error(cid, tmp_path, request):
    case = ERRORS[cid]
    call, tokens = case.build(tmp_path, request)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NerfkitError) as exc:
            call()
    msg = str(exc.value)
    assert isinstance(exc.value, case.error), f"{type(exc.value).__name__}: {msg}"
    for token in tokens:
        assert token in msg, f"{token!r} not in {msg!r}"
    assert case.fix in msg, f"fix phrase {case.fix!r} not in {msg!r}"


# ------------------------------------------------------------------------------------------ CLI cases


@dataclass
class CliCase:
    input: str
    fix: str
    build: Callable  # (tmp_path, request) -> (argv, tokens)


CLI: dict[str, CliCase] = {}


def cli_case(cid: str, input: str, fix: str):
    def register(build):
        CLI[cid] = CliCase(input, fix, build)
        return build
    return register


def _train(data, tmp, *extra):
    return ["train", "--data", str(data), "--output", str(tmp / "run"), "--max-steps", "1", *TINY, *extra]


@cli_case("cli_data_missing", "nerfkit train --data <folder that does not exist>", "check --data")
def _(tmp, request):
    return _train(tmp / "nowhere", tmp), ["nowhere"]


@cli_case("cli_no_dataset", "nerfkit train --data <folder with no dataset>", "point --data at the scene folder")
def _(tmp, request):
    (tmp / "holiday").mkdir()
    write_image(tmp / "holiday" / "IMG_0001.png")
    return _train(tmp / "holiday", tmp), ["holiday"]


@cli_case("cli_unknown_format", "nerfkit train --format FOOBAR", "use one of blender")
def _(tmp, request):
    return _train(blender(tmp / "scene"), tmp, "--format", "FOOBAR"), ["scene", "FOOBAR"]


@cli_case("cli_downscale_zero", "nerfkit train --downscale 0", "pass --downscale 1 or more")
def _(tmp, request):
    return _train(blender(tmp / "scene"), tmp, "--downscale", "0"), ["scene", "got 0"]


@cli_case("cli_downscale_negative", "nerfkit train --downscale -2 (transforms.json)", "pass --downscale 1 or more")
def _(tmp, request):
    return _train(tjson(tmp / "scene"), tmp, "--downscale", "-2"), ["scene", "got -2"]


@cli_case("cli_image_memory_unreadable", "nerfkit train --image-memory lots", "write e.g. auto, 2GiB")
def _(tmp, request):
    return _train(blender(tmp / "scene"), tmp, "--image-memory", "lots"), ["image memory 'lots'"]


@cli_case("cli_output_holds_a_run", "nerfkit train --output <a finished run> (no --resume)", "pass --resume")
def _(tmp, request):
    run = tmp / "run"
    shutil.copytree(request.getfixturevalue("trained_ngp"), run)
    return _train(blender(tmp / "scene"), tmp), [str(run), "already holds a trained run"]


@cli_case("cli_truncated_png", "nerfkit train on a scene with a truncated PNG", "re-export it or remove this frame")
def _(tmp, request):
    root = blender(tmp / "scene", size=(32, 32))
    png = root / "train" / "r_2.png"
    png.write_bytes(png.read_bytes()[:-600])
    return _train(root, tmp), ["r_2.png"]


@cli_case("cli_eval_no_config", "nerfkit eval <run directory without config.json>", "Pass the folder made by")
def _(tmp, request):
    run = fake_run(tmp, tmp, config=None)
    return ["eval", str(run), "--quiet"], ["config.json"]


@cli_case("cli_render_no_config", "nerfkit render <run directory without config.json>", "Pass the folder made by")
def _(tmp, request):
    run = fake_run(tmp, tmp, config=None)
    return ["render", str(run), "--quiet", "--frames", "2"], ["config.json"]


@cli_case("cli_config_malformed", "nerfkit eval <run whose config.json is not JSON>", "restore or re-create the run")
def _(tmp, request):
    run = fake_run(tmp, tmp, config='{"method": "ngp",')
    return ["eval", str(run), "--quiet"], ["config.json", "malformed JSON"]


@cli_case("cli_config_not_object", "nerfkit render <run whose config.json is a list>", "restore or re-create the run")
def _(tmp, request):
    run = fake_run(tmp, tmp, config="[1, 2]")
    return ["render", str(run), "--quiet"], ["config.json"]


@cli_case("cli_config_bad_section", 'nerfkit render <run whose config.json has "data": 5>',
          "restore or re-create the run")
def _(tmp, request):
    cfg = json.loads((request.getfixturevalue("trained_ngp") / "config.json").read_text())
    cfg["data"] = 5
    run = fake_run(tmp, tmp, config=json.dumps(cfg))
    return ["render", str(run), "--quiet"], ["config.json"]


@cli_case("cli_checkpoints_corrupt", "nerfkit render <run whose only checkpoint is garbage>", "re-train the run")
def _(tmp, request):
    run = fake_run(tmp, request.getfixturevalue("trained_ngp"), checkpoint=b"\x80\x04 not a checkpoint")
    return ["render", str(run), "--quiet", "--output", str(tmp / "v.mp4")], ["run", "step_0000600.pt"]


@cli_case("cli_snapshot_newer", "nerfkit export mesh <snapshot with format_version 99>", "upgrade nerfkit")
def _(tmp, request):
    snap = rewrite_snapshot(request.getfixturevalue("snapshot_file"), tmp / "v99.nerfkit", format_version="99")
    return ["export", "mesh", str(snap), "-o", str(tmp / "m.ply")], ["v99.nerfkit", "format_version 99"]


@cli_case("cli_snapshot_older", "nerfkit eval <snapshot with format_version 0>", "re-export it from its run")
def _(tmp, request):
    snap = rewrite_snapshot(request.getfixturevalue("snapshot_file"), tmp / "v0.nerfkit", format_version="0")
    return ["eval", str(snap), "--quiet"], ["v0.nerfkit", "format_version 0"]


@cli_case("cli_snapshot_truncated", "nerfkit render <snapshot cut in half>", "copy it again")
def _(tmp, request):
    raw = request.getfixturevalue("snapshot_file").read_bytes()
    (tmp / "half.nerfkit").write_bytes(raw[: len(raw) // 2])
    return ["render", str(tmp / "half.nerfkit"), "--quiet"], ["half.nerfkit", "truncated"]


@cli_case("cli_not_a_snapshot", "nerfkit export points <a PNG renamed .nerfkit>", "pass a file made by")
def _(tmp, request):
    write_image(tmp / "x.png").rename(tmp / "scene.nerfkit")
    return ["export", "points", str(tmp / "scene.nerfkit"), "-o", str(tmp / "p.ply")], ["scene.nerfkit", "PNG"]


@cli_case("cli_camera_path_malformed", "nerfkit render --path <camera path that is not JSON>", "fix the file")
def _(tmp, request):
    (tmp / "path.json").write_text('{"camera_path": [')
    return ["render", str(request.getfixturevalue("trained_ngp")), "--path", str(tmp / "path.json"), "--quiet",
            "--output", str(tmp / "v.mp4"), "--no-frames"], ["path.json"]


@pytest.fixture(scope="module")
def snapshot_file(trained_ngp, tmp_path_factory):
    """A snapshot of the shared trained run, made with ``nerfkit export snapshot``."""
    out = tmp_path_factory.mktemp("bad_inputs_snap") / "ngp64.nerfkit"
    assert main(["export", "snapshot", str(trained_ngp), "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("cid", list(CLI))
def test_cli_bad_input_exits_2(cid, tmp_path, request, capsys):
    case = CLI[cid]
    argv, tokens = case.build(tmp_path, request)
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error:"), err
    assert "Traceback" not in err
    for token in tokens:
        assert token in err, f"{token!r} not in {err!r}"
    assert case.fix in err, f"fix phrase {case.fix!r} not in {err!r}"


# ------------------------------------------------------------------------------------------ handled inputs

HANDLED: dict[str, tuple[str, str]] = {
    "exif_rotated_jpeg": ("JPEG with EXIF orientation 6 (stored 32x16, shown 16x32)",
                          "loaded upright: 16x32, matches the rotated reference; intrinsics use the upright size"),
    "png_16bit_grey": ("16-bit greyscale PNG", "scaled to 8 bits with rounding (v * 255 / 65535), grey in all channels"),
    "png_16bit_rgb": ("16-bit RGB / RGBA / grey+alpha PNG",
                      "all 16 bits used, rounded to 8 (511 -> 2 and 65280 -> 254, where the high byte gives 1 and 255)"),
    "grey_png": ("8-bit greyscale PNG", "expanded to RGB with three equal channels"),
    "grey_jpeg": ("greyscale JPEG", "expanded to RGB with three equal channels"),
    "grey_alpha_png": ("greyscale + alpha PNG", "RGBA, colour premultiplied by alpha"),
    "palette_transparency": ("palette PNG with a transparent index", "RGBA: transparent pixels get alpha 0"),
    "jpeg_named_png": ("JPEG saved with a .png extension", "decoded by content, same pixels as the .jpg"),
    "cmyk_jpeg": ("CMYK JPEG", "converted to RGB"),
    "some_images_missing": ("1 of 3 image files missing", "frame skipped, one warning naming the JSON and the count"),
    "test_split_missing": ("Blender folder without transforms_test.json / transforms_val.json",
                           "read as a train-only scene (test and val empty); asking for the test split is an error"),
    "declared_size_double": ("transforms.json w/h twice the image file (same aspect)",
                             "intrinsics rescaled to the file (fl_x 20 at w 32 -> 10 at w 16)"),
    "colmap_images_resized": ("COLMAP camera 32x32, image files resized to 16x16",
                              "intrinsics scaled to the files (f 40 -> 20, c 16 -> 8)"),
    "newest_checkpoint_corrupt": ("run whose newest checkpoint is corrupt, an older one good",
                                  "loads the older checkpoint"),
}


def test_exif_rotated_jpeg(tmp_path):
    ref = blocks(32, 16)  # stored landscape; orientation 6: shown rotated 90 degrees clockwise
    root = tjson(tmp_path / "s", n=2)
    path = exif_jpeg(root / "images" / "f_1.png", ref, 6)
    path.rename(root / "images" / "f_1.jpg")
    path = root / "images" / "f_1.jpg"
    write_image(root / "images" / "f_0.png", 16, 32)
    meta = json.loads((root / "transforms.json").read_text())
    meta["frames"][1]["file_path"] = "images/f_1.jpg"
    write_json(root / "transforms.json", meta)

    img = read_image(path)
    upright = np.rot90(ref, k=-1)  # [32, 16, 3]
    assert img.shape == (32, 16, 3)
    assert np.abs(img.astype(int) - upright).max() <= 40  # JPEG ringing at the block edges
    centres = [(8, 4), (8, 12), (24, 4), (24, 12)]  # (row, col) inside each quadrant
    for r, c in centres:
        assert np.abs(img[r, c].astype(int) - upright[r, c]).max() <= 8
    # the top-left of the upright image is the stored bottom-left (blue); top-right is the stored top-left (red)
    assert tuple(upright[8, 4]) == (0, 0, 255) and tuple(upright[8, 12]) == (255, 0, 0)
    assert image_header(path) == (16, 32, False)
    scene = read_scene(root)
    assert scene.sizes[1].tolist() == [16, 32]
    assert scene.intrinsics[1].tolist() == pytest.approx([20.0, 20.0, 8.0, 16.0])


def test_png_16bit_grey(tmp_path):
    values = np.array([[0, 257, 511, 32767], [32768, 65280, 65534, 65535]], dtype=np.uint16)
    path = tmp_path / "g16.png"
    path.write_bytes(png16(values[..., None], 0))
    img = read_image(path)
    expect = np.array([[0, 1, 2, 127], [128, 254, 255, 255]], np.uint8)
    assert np.array_equal(expect, to8(values))
    assert img.shape == (2, 4, 3) and img.dtype == np.uint8
    assert np.array_equal(img, np.repeat(expect[..., None], 3, -1))


def test_png_16bit_rgb(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 65536, (6, 7, 3)).astype(np.uint16)
    rgb[0, :4] = [[0, 257, 511], [65280, 65535, 32767], [32768, 128, 129], [100 * 257, 200 * 257, 1]]
    (tmp_path / "c16.png").write_bytes(png16(rgb, 2))
    img = read_image(tmp_path / "c16.png")
    assert img.shape == (6, 7, 3)
    assert img[0, :4].tolist() == [[0, 1, 2], [254, 255, 127], [128, 0, 1], [100, 200, 0]]
    assert np.array_equal(img, to8(rgb))
    # RGBA: alpha scaled the same way, colour premultiplied
    rgba = np.concatenate([rgb, np.full((6, 7, 1), 65535, np.uint16)], -1)
    rgba[1, 1, 3] = 0
    (tmp_path / "c16a.png").write_bytes(png16(rgba, 6))
    img = read_image(tmp_path / "c16a.png")
    expect = to8(rgb)
    expect[1, 1] = 0
    assert img.shape == (6, 7, 4) and np.array_equal(img[..., :3], expect) and img[1, 1, 3] == 0
    # grey + alpha: grey in all three channels, premultiplied by the alpha
    grey = np.array([[0, 511, 65280, 65535]] * 2, np.uint16)
    alpha = np.array([[65535, 65535, 0, 32768]] * 2, np.uint16)
    (tmp_path / "la16.png").write_bytes(png16(np.stack([grey, alpha], -1), 4))
    img = read_image(tmp_path / "la16.png")
    assert img[0].tolist() == [[0, 0, 0, 255], [2, 2, 2, 255], [0, 0, 0, 0], [128, 128, 128, 128]]


def test_grey_png(tmp_path):
    grey = pattern(12, 10)[..., 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (10, 12, 3) and np.array_equal(img, np.repeat(grey[..., None], 3, -1))


def test_grey_jpeg(tmp_path):
    grey = np.kron(np.array([[0, 80], [160, 255]], np.uint8), np.ones((8, 8), np.uint8))  # flat 8x8 blocks
    Image.fromarray(grey, mode="L").save(tmp_path / "g.jpg", quality=95)
    img = read_image(tmp_path / "g.jpg")
    assert img.shape == (16, 16, 3)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])
    assert np.abs(img[..., 0].astype(int) - grey).max() <= 3


def test_grey_alpha_png(tmp_path):
    la = np.stack([np.full((4, 4), 200, np.uint8), np.array([[0, 255, 128, 64]] * 4, np.uint8)], -1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    expect = np.floor(200.0 * la[..., 1].astype(np.float64) / 255 + 0.5).astype(np.uint8)  # premultiplied
    assert img.shape == (4, 4, 4) and np.array_equal(img[..., 3], la[..., 1])
    assert np.array_equal(img[..., 0], expect) and np.array_equal(img[..., 2], expect)


def test_palette_transparency(tmp_path):
    idx = np.array([[0, 1], [2, 1]] * 2, np.uint8).repeat(2, 1)  # 4x4 indices
    im = Image.fromarray(idx, mode="P")
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 0, 255] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png", transparency=1)
    img = read_image(tmp_path / "p.png")
    assert img.shape == (4, 4, 4)
    assert img[0, 0].tolist() == [10, 20, 30, 255]
    assert img[0, 2].tolist() == [0, 0, 0, 0]  # transparent: alpha 0, premultiplied colour 0
    assert img[1, 0].tolist() == [0, 0, 255, 255]
    assert image_header(tmp_path / "p.png")[2] is True
    # a transforms.json scene with one palette image is an alpha scene (others: RGB)
    root = tjson(tmp_path / "s")
    assert not read_scene(root).has_alpha
    shutil.copy(tmp_path / "p.png", root / "images" / "f_1.png")
    assert read_scene(root).has_alpha


def test_jpeg_named_png(tmp_path):
    root = blender(tmp_path / "s")
    Image.fromarray(blocks(16, 16)).save(root / "train" / "r_1.png", format="JPEG", quality=95, subsampling=0)
    shutil.copy(root / "train" / "r_1.png", tmp_path / "same.jpg")
    scene = read_scene(root)
    assert len(scene) == 3 and scene.sizes[1].tolist() == [16, 16]
    img = read_image(root / "train" / "r_1.png")
    assert img.shape == (16, 16, 3)
    assert np.array_equal(img, read_image(tmp_path / "same.jpg"))
    assert np.abs(img.astype(int) - blocks(16, 16)).max() <= 40


def test_cmyk_jpeg(tmp_path):
    cmyk = np.zeros((16, 16, 4), np.uint8)
    cmyk[:, 8:, 0] = 255  # right half pure cyan, left half white (no ink)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=95)
    img = read_image(tmp_path / "c.jpg")
    assert img.shape == (16, 16, 3)
    assert np.abs(img[4, 2].astype(int) - [255, 255, 255]).max() <= 6
    assert np.abs(img[4, 13].astype(int) - [0, 255, 255]).max() <= 6


def test_some_images_missing(tmp_path):
    root = blender(tmp_path / "s")
    (root / "train" / "r_1.png").unlink()
    with pytest.warns(UserWarning, match=r"transforms_train\.json: 1 of 3 frames have no image file"):
        scene = read_scene(root)
    assert [p.name for p in scene.image_paths] == ["r_0.png", "r_2.png"]


def test_test_split_missing(tmp_path):
    root = blender(tmp_path / "s")
    scene = read_scene(root)
    assert scene.splits == {"train": [0, 1, 2], "val": [], "test": []}
    with pytest.raises(DataError, match="transforms_test.json"):
        scene.split("test")
    # an explicit request for a split file that does not exist is an error (ERRORS: split_file_missing_requested)
    assert read_blender(root, splits=("train",)).splits == {"train": [0, 1, 2]}


def test_declared_size_double(tmp_path):
    root = tjson(tmp_path / "s", lambda m, r: m.update(w=32, h=32, cx=16.0, cy=16.0))
    scene = read_scene(root, normalize=False)
    assert scene.sizes[0].tolist() == [16, 16]
    assert scene.intrinsics[0].tolist() == pytest.approx([10.0, 10.0, 8.0, 8.0])


def test_colmap_images_resized(tmp_path):
    scene = read_scene(colmap_text(tmp_path / "c", cameras="1 PINHOLE 32 32 40 40 16 16"))
    assert scene.sizes.tolist() == [[16, 16], [16, 16]]
    assert scene.intrinsics.tolist() == [pytest.approx([20.0, 20.0, 8.0, 8.0])] * 2


def test_newest_checkpoint_corrupt(trained_ngp, tmp_path):
    from nerfkit.export.snapshot import load_trained
    from nerfkit.train.checkpoint import list_checkpoints

    good = list_checkpoints(trained_ngp)[-1]
    run = fake_run(tmp_path, trained_ngp)
    shutil.copy(good, run / "checkpoints" / good.name)
    (run / "checkpoints" / "step_9999999.pt").write_bytes(good.read_bytes()[:1000])  # truncated newer one
    t = load_trained(run, device="cpu")
    assert t.step == int(good.stem.split("_")[1])


# ------------------------------------------------------------------------------------------ the table

CATALOGUE: list[tuple[str, str, str]] = (
    [(cid, c.input, f"{c.error.__name__}: ...{c.fix}...") for cid, c in ERRORS.items()]
    + [(cid, c.input, f"exit 2, error: ...{c.fix}...") for cid, c in CLI.items()]
    + [(cid, inp, behaviour) for cid, (inp, behaviour) in HANDLED.items()]
)


def test_catalogue_is_complete():
    ids = [c[0] for c in CATALOGUE]
    assert len(ids) == len(set(ids)) >= 32
    handled_tests = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    assert set(HANDLED) <= handled_tests, set(HANDLED) - handled_tests
    required = {"truncated_png", "jpeg_named_png", "png_16bit_grey", "grey_png", "exif_rotated_jpeg",
                "frames_empty_blender", "matrix_nan", "rotation_scaled", "focal_zero", "image_1x1",
                "split_file_missing_requested", "camera_model_unknown", "colmap_unknown_model_txt",
                "duplicate_frames_blender", "path_escapes", "folder_unreadable", "cli_snapshot_newer",
                "checkpoint_disk_full"}
    assert required <= set(ids), required - set(ids)


# ------------------------------------------------------------------------------------------ out of memory


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                                              "allocate memory: you tried to allocate 8589934592 bytes")],
                         ids=["MemoryError", "cuda_oom", "cpu_allocator"])
def test_cli_out_of_memory_is_explained(exc, tmp_path, monkeypatch, capsys):
    import nerfkit.cli.train as cli_train

    def boom(a):
        raise exc

    monkeypatch.setattr(cli_train, "cmd_train", boom)
    rc = main(["train", "--data", str(tmp_path), "--max-steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "Traceback" not in err
    assert "out of memory" in err and "--image-memory" in err and "--downscale 2" in err and "--resume" in err


def test_cli_other_runtime_errors_are_not_hidden(tmp_path, monkeypatch):
    import nerfkit.cli.train as cli_train

    def boom(a):
        raise RuntimeError("a bug, not the user's input")

    monkeypatch.setattr(cli_train, "cmd_train", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", "--data", str(tmp_path), "--max-steps", "1"])
