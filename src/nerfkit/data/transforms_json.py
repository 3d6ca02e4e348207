"""Reader for ``transforms.json``: the instant-ngp and nerfstudio dialects of the Blender format.

File format (both dialects). One ``transforms.json`` whose ``frames`` each carry a ``file_path``
(relative to the file's folder, extension optional) and a camera-to-world ``transform_matrix``
with OpenGL camera axes (y up, z backward), like the Blender format. Camera keys may sit at the
top level (shared by all frames) or in a frame (that frame's override):

- focal length: ``fl_x``/``fl_y`` in pixels, or ``camera_angle_x``/``camera_angle_y`` (full field of
  view in radians, focal = 0.5 * w / tan(angle / 2)); a missing y focal equals the x focal. A frame
  that sets one key of a pair (``fl_x`` or ``camera_angle_x``) replaces both inherited ones.
- principal point ``cx``/``cy`` (default w/2, h/2) and size ``w``/``h`` (default: the image file's
  size). When the image file differs from the declared ``w``/``h`` (e.g. a downscaled image folder)
  the intrinsics are rescaled to the file; a different aspect ratio is an error.
- distortion: instant-ngp ``k1 k2 p1 p2`` (+ ``k3``) -> model ``"opencv"`` (``"pinhole"`` when every
  coefficient of every view is zero); ``is_fisheye: true`` or nerfstudio
  ``camera_model: "OPENCV_FISHEYE"`` with ``k1..k4`` -> ``"opencv_fisheye"``; nerfstudio
  ``camera_model`` ``"PINHOLE"``/``"OPENCV"`` follow the coefficients like instant-ngp. One model
  holds for the whole scene (views without coefficients get zeros); mixing fisheye and perspective
  views is an error.
- several files: a folder without ``transforms.json`` but with ``transforms*.json`` files (as
  instant-ngp loads them) is read as one scene; each file's own camera keys stay with its frames
  and files named ``transforms_train/val/test.json`` give the splits.
- nerfstudio ``mask_path`` -> ``SceneData.mask_paths``; ``sharpness``, instant-ngp ``scale``/``offset``
  and depth files are ignored.

Splits. nerfstudio ``train_filenames``/``val_filenames``/``test_filenames`` (matched against the
frames' ``file_path``, extension optional) when present. Otherwise (always for instant-ngp, which
has no split) every 8th view (indices 0, 8, 16, ...) is held out as ``"test"`` and the others are
``"train"`` - the LLFF / mip-NeRF hold-out convention; there is no ``"val"`` split.

Scene normalisation (``normalize=True``). instant-ngp maps positions into its unit cube with
``scale`` (0.33) and ``offset`` (0.5); nerfkit instead translates and uniformly scales the poses,
without rotating them (the file's up axis is kept):

- centre = the point closest, in least squares, to every camera's optical axis (c + t z), or the
  mean camera centre when that system is ill-conditioned (near-parallel axes, e.g. forward-facing
  captures) or the point lies behind most cameras;
- scale s so the mean camera distance to the centre becomes 4.0 (as in the Blender scenes);
- ``aabb`` = the cube of half-size 1.5 * ``aabb_scale`` (file value, default 1) around the origin;
  ``near`` = 0.05; ``far`` = 2 * the aabb's circumradius + the largest camera distance.

``world_transform`` is ``[[s I, -s centre], [0, 1]] @ A`` where A is nerfstudio's
``applied_transform`` (the transform ns-process-data already applied to the original, e.g. COLMAP,
poses; identity when absent). So ``world_transform`` maps the user's *original* frame to the scene
frame and its inverse maps scene points (and exports) back there. With ``normalize=False`` the
poses stay in the file frame, ``world_transform = A``, ``scale = 1`` and the same box / near / far
are expressed in file units.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from ..cameras import check_rigid, opengl_to_opencv
from ..cameras.normalize import axes_focus
from ..errors import DataError, PoseError
from .blender import _load_json, check_downscale, check_unique, frame_matrix, resolve_image
from .images import image_header
from .scene import SceneData

TARGET_DISTANCE = 4.0  # mean camera distance to the scene centre after normalisation
NEAR = 0.05
HOLDOUT_EVERY = 8
CAMERA_KEYS = ("fl_x", "fl_y", "camera_angle_x", "camera_angle_y", "cx", "cy", "w", "h",
               "k1", "k2", "k3", "k4", "p1", "p2", "is_fisheye", "camera_model")
# a frame setting one key of a group replaces every inherited key of that group
_GROUPS = (("fl_x", "camera_angle_x"), ("fl_y", "camera_angle_y"))
_MODEL_NAMES = {"PINHOLE": "perspective", "SIMPLE_PINHOLE": "perspective", "OPENCV": "perspective",
                "OPENCV_FISHEYE": "fisheye"}


def _camera(meta: dict, frame: dict) -> dict:
    """The camera keys of one frame: the file's, overridden by the frame's own."""
    cam = {k: meta[k] for k in CAMERA_KEYS if k in meta}
    for group in _GROUPS:
        if any(k in frame for k in group):
            for k in group:
                cam.pop(k, None)
    cam.update({k: frame[k] for k in CAMERA_KEYS if k in frame})
    return cam


def _num(cam: dict, key: str, where: str, default: float | None = None) -> float | None:
    if key not in cam or cam[key] is None:
        return default
    try:
        v = float(cam[key])
    except (TypeError, ValueError):
        raise DataError(f"{where}: '{key}' is {cam[key]!r}, expected a number") from None
    if not math.isfinite(v):
        raise PoseError(f"{where}: '{key}' is {v}; fix the camera parameters")
    return v


def _focal(cam: dict, axis: str, size: float, where: str) -> float | None:
    f = _num(cam, f"fl_{axis}", where)
    if f is None:
        angle = _num(cam, f"camera_angle_{axis}", where)
        if angle is None:
            return None
        if not 0 < angle < math.pi:
            raise PoseError(f"{where}: camera_angle_{axis}={angle} is not a field of view in (0, pi) radians; "
                            f"fix camera_angle_{axis}")
        f = 0.5 * size / math.tan(0.5 * angle)
    if f <= 0:
        raise PoseError(f"{where}: focal length fl_{axis}={f} must be positive; fix fl_{axis} (pixels) or "
                        f"camera_angle_{axis} (radians)")
    return f


def _lens(cam: dict, where: str) -> tuple[str, list[float]]:
    """(kind, coefficients): kind "fisheye" with [k1..k4] or "perspective" with [k1, k2, p1, p2, k3]."""
    model = cam.get("camera_model")
    if model is not None and str(model).upper() not in _MODEL_NAMES:
        raise DataError(f"{where}: camera_model {model!r} is not supported; supported: "
                        f"{', '.join(_MODEL_NAMES)} (undistort the images first, e.g. with COLMAP)")
    fisheye = bool(cam.get("is_fisheye", False)) or (model is not None and _MODEL_NAMES[str(model).upper()] == "fisheye")
    if fisheye:
        if any(_num(cam, k, where, 0.0) for k in ("p1", "p2")):
            raise DataError(f"{where}: a fisheye camera (k1..k4) cannot have tangential p1/p2 coefficients")
        return "fisheye", [_num(cam, k, where, 0.0) for k in ("k1", "k2", "k3", "k4")]
    if _num(cam, "k4", where, 0.0):
        raise DataError(f"{where}: k4 is set but the camera is not fisheye; set is_fisheye / camera_model "
                        "OPENCV_FISHEYE, or drop k4 (the opencv model takes k1 k2 p1 p2 [k3])")
    return "perspective", [_num(cam, k, where, 0.0) for k in ("k1", "k2", "p1", "p2", "k3")]


def _pose(frame: dict, where: str) -> torch.Tensor:
    mat = frame_matrix(frame, where)
    check_rigid(mat, where)  # finite, orthonormal, det +1 (raises PoseError naming the file and frame)
    if mat.shape == (3, 4):
        mat = torch.cat([mat, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    return mat


def _applied_transform(meta: dict, jpath: Path) -> torch.Tensor:
    if "applied_transform" not in meta:
        return torch.eye(4, dtype=torch.float64)
    try:
        a = torch.tensor(meta["applied_transform"], dtype=torch.float64)
    except (TypeError, ValueError):
        raise DataError(f"{jpath}: applied_transform is not a 3x4 or 4x4 list of numbers") from None
    if a.shape not in ((3, 4), (4, 4)):
        raise DataError(f"{jpath}: applied_transform has shape {tuple(a.shape)}, expected 3x4 or 4x4")
    check_rigid(a, f"{jpath} applied_transform")
    if a.shape == (3, 4):
        a = torch.cat([a, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    return a


def _splits(meta: dict, jpath: Path, file_paths: list[str]) -> dict[str, list[int]]:
    keys = [k for k in ("train", "val", "test") if f"{k}_filenames" in meta]
    n = len(file_paths)
    if not keys and n < 2:
        return {"train": list(range(n))}
    if not keys:
        test = list(range(0, n, HOLDOUT_EVERY))
        return {"train": [i for i in range(n) if i % HOLDOUT_EVERY], "test": test}

    def key(p: str) -> str:
        return os.path.splitext(os.path.normpath(p))[0]

    index = {key(p): i for i, p in enumerate(file_paths)}
    splits: dict[str, list[int]] = {}
    used: set[int] = set()
    for k in keys:
        names = meta[f"{k}_filenames"]
        if not isinstance(names, list):
            raise DataError(f"{jpath}: '{k}_filenames' must be a list of file paths")
        splits[k] = sorted({index[key(str(p))] for p in names if key(str(p)) in index})
        used.update(splits[k])
    if len(used) < n:
        warnings.warn(f"{jpath}: {n - len(used)} of {n} frames are in none of the {', '.join(keys)} file lists; "
                      "they are loaded but never used", stacklevel=3)
    return splits


def _merge_files(paths: list[Path], root: Path) -> dict:
    """Several ``transforms*.json`` of one folder (instant-ngp loads them all) -> one meta dict.

    Each file's shared camera keys are copied into its frames (as per-frame overrides), so files may
    describe different cameras. Files named ``transforms_train/val/test.json`` give the splits;
    ``aabb_scale`` is the largest of the files'; every file must agree on ``applied_transform``.
    """
    frames, lists, aabb, applied = [], {}, None, None
    for path in paths:
        meta = _load_json(path)
        for frame in meta["frames"]:
            if not isinstance(frame, dict):
                raise DataError(f"{path}: every entry of 'frames' must be an object")
            frames.append({**frame, **_camera(meta, frame)})
        name = path.stem.removeprefix("transforms").lstrip("_")
        if name in ("train", "val", "test"):
            lists.setdefault(f"{name}_filenames", []).extend(
                str(f.get("file_path")) for f in meta["frames"])
        if "aabb_scale" in meta:
            aabb = max(aabb or 0, _num(meta, "aabb_scale", str(path), 1.0))
        here = meta.get("applied_transform")
        if applied is not None and here != applied[1]:
            raise DataError(f"{path}: its applied_transform differs from {applied[0].name}'s; the files describe "
                            "different frames - keep one of them or re-export them together")
        applied = applied or (path, here)
    merged = {"frames": frames, **lists}
    if aabb is not None:
        merged["aabb_scale"] = aabb
    if applied[1] is not None:
        merged["applied_transform"] = applied[1]
    return merged


def read_transforms_json(root: str | Path, downscale: float = 1.0, split=None, normalize: bool = True) -> SceneData:
    """Read an instant-ngp / nerfstudio ``transforms.json`` scene (see the module docstring).

    ``root``: the scene folder (holding ``transforms.json``) or a ``.json`` file in it.
    ``downscale``: images are reduced by this factor when loaded; intrinsics follow (out size / in size).
    ``split``: None keeps every view; a name ("train", "val", "test") or a list of names keeps only
    those splits' views (the split indices are renumbered).
    ``normalize``: centre and scale the scene (module docstring); False keeps the file's frame.
    Frames whose image file is missing are skipped with one warning giving the count.
    """
    root = Path(root)
    check_downscale(root, downscale)
    if root.suffix == ".json" and root.is_file():
        jpath, root = root, root.parent
    else:
        jpath = root / "transforms.json"
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found; check --data")
        if not jpath.is_file():
            found = sorted(root.glob("transforms*.json"))
            if not found:
                raise DataError(f"{jpath}: not found; no transforms*.json found (is --data pointing at the scene "
                                "folder?)")
            jpath = root / "transforms*.json"  # names the set in messages
    meta = _merge_files(found, root) if not jpath.is_file() else _load_json(jpath)
    a = _applied_transform(meta, jpath)
    if not meta["frames"]:
        raise DataError(f"{jpath}: the 'frames' list is empty; add the views (file_path + transform_matrix) or "
                        "re-export the dataset")

    paths, masks, poses, intr, sizes, lenses, file_paths = [], [], [], [], [], [], []
    has_alpha = False
    missing, first_missing = 0, None
    for k, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise DataError(f"{jpath}: frame #{k} needs 'file_path' and 'transform_matrix'; add them or remove "
                            "the frame")
        where = f"{jpath} frame #{k} ({frame['file_path']})"
        img = resolve_image(root, str(frame["file_path"]), jpath)
        if img is None:
            missing += 1
            first_missing = first_missing or str(frame["file_path"])
            continue
        pose = _pose(frame, where)
        cam = _camera(meta, frame)
        iw, ih, alpha = image_header(img)
        w = _num(cam, "w", where, float(iw))
        h = _num(cam, "h", where, float(ih))
        if w <= 0 or h <= 0:
            raise PoseError(f"{where}: image size w={w} h={h} must be positive; fix w/h or drop them (the image "
                            "file's size is used)")
        if abs(iw / ih - w / h) > 0.01 * w / h:
            raise DataError(f"{img}: image is {iw}x{ih} but the camera is declared {w:g}x{h:g} (another aspect "
                            "ratio); fix w/h or the image")
        fx, fy = _focal(cam, "x", w, where), _focal(cam, "y", h, where)
        if fx is None and fy is None:
            raise DataError(f"{where}: no focal length; give fl_x/fl_y (pixels) or camera_angle_x (radians)")
        fx, fy = fx or fy, fy or fx
        cx, cy = _num(cam, "cx", where, w / 2), _num(cam, "cy", where, h / 2)
        out_w, out_h = max(1, int(round(iw / downscale))), max(1, int(round(ih / downscale)))
        sx, sy = out_w / w, out_h / h  # declared size -> loaded size (file size / downscale)
        intr.append([fx * sx, fy * sy, cx * sx, cy * sy])
        sizes.append([out_w, out_h])
        lenses.append(_lens(cam, where))
        mask = None
        if frame.get("mask_path") is not None:
            mask = resolve_image(root, str(frame["mask_path"]), jpath)
            if mask is None:
                raise DataError(f"{where}: mask_path '{frame['mask_path']}' does not exist; fix or remove it")
        masks.append(mask)
        poses.append(pose)
        paths.append(img)
        file_paths.append(str(frame["file_path"]))
        has_alpha |= alpha
    if missing:
        warnings.warn(f"{jpath}: {missing} of {len(meta['frames'])} frames have no image file and were skipped",
                      stacklevel=2)
    if not paths:
        raise DataError(f"{jpath}: no frames with existing images (none of the {len(meta['frames'])} image files exists; the first missing is "
                        f"'{first_missing}' under {root}); check the file_path entries")
    check_unique(paths, jpath, file_paths)

    # lens model: one for the scene
    kinds = {kind for kind, _ in lenses}
    if len(kinds) > 1:
        raise DataError(f"{jpath}: mixes fisheye and perspective cameras; nerfkit needs one lens model per scene")
    coeffs = torch.tensor([c for _, c in lenses], dtype=torch.float32)
    if kinds == {"fisheye"}:
        camera_model = "opencv_fisheye"
    elif coeffs.abs().amax() == 0:
        camera_model, coeffs = "pinhole", coeffs[:, :0]
    else:
        camera_model = "opencv"
        if coeffs[:, 4].abs().amax() == 0:
            coeffs = coeffs[:, :4]  # k3 unused: the 4-parameter form

    c2w_file = torch.stack(poses)  # [V, 4, 4] float64, OpenGL camera axes, file frame
    c2w = opengl_to_opencv(c2w_file)  # transforms.json uses OpenGL camera axes (y up, z backward)
    centre = axes_focus(c2w).to(c2w.dtype)
    dist = (c2w[:, :3, 3] - centre).norm(dim=-1)
    s = TARGET_DISTANCE / float(dist.mean()) if float(dist.mean()) > 0 else 1.0
    aabb_scale = _num(meta, "aabb_scale", str(jpath), 1.0)
    if aabb_scale <= 0:
        raise DataError(f"{jpath}: aabb_scale={aabb_scale} must be positive (instant-ngp uses 1, 2, 4, ... 128)")
    half = 1.5 * aabb_scale
    far = 2 * half * math.sqrt(3) + float(dist.max()) * s
    if normalize:
        norm = torch.eye(4, dtype=torch.float64)
        norm[:3, :3] *= s
        norm[:3, 3] = -s * centre
        c2w = norm @ c2w
        c2w[:, :3, :3] /= s  # scaling moves the centres only; the rotation stays orthonormal
        world = norm @ a
        aabb = torch.tensor([[-half] * 3, [half] * 3])
        near, scale = NEAR, s
    else:
        world = a
        aabb = torch.stack([centre - half / s, centre + half / s]).float()
        near, far, scale = NEAR / s, far / s, 1.0

    splits = _splits(meta, jpath, file_paths)
    scene = SceneData(
        root=root, format="transforms_json", image_paths=paths,
        intrinsics=torch.tensor(intr, dtype=torch.float32), sizes=torch.tensor(sizes, dtype=torch.int64),
        c2w=c2w.float(), splits=splits, aabb=aabb, near=near, far=far, world_transform=world.float(),
        scale=scale, downscale=downscale, has_alpha=has_alpha, camera_model=camera_model, distortion=coeffs,
        mask_paths=masks if any(m is not None for m in masks) else None,
    )
    return _select(scene, split) if split is not None else scene


def _select(scene: SceneData, split) -> SceneData:
    """Keep only the views of ``split`` (a name or names); indices are renumbered."""
    names = [split] if isinstance(split, str) else list(split)
    keep = sorted({i for n in names for i in scene.split(n)})
    new = {old: j for j, old in enumerate(keep)}
    scene.image_paths = [scene.image_paths[i] for i in keep]
    scene.intrinsics, scene.sizes, scene.c2w = scene.intrinsics[keep], scene.sizes[keep], scene.c2w[keep]
    scene.distortion = scene.distortion[keep]
    if scene.mask_paths is not None:
        scene.mask_paths = [scene.mask_paths[i] for i in keep]
    scene.splits = {k: [new[i] for i in v if i in new] for k, v in scene.splits.items() if k in names}
    return scene
