"""Camera path files: nerfstudio ``camera_path.json``, instant-ngp ``base_cam.json`` and nerfkit's own.

Every reader returns a :class:`CameraPath` whose poses are OpenCV camera-to-world matrices in the
*scene* frame (the normalised frame the model was trained in). A file in the dataset's *original*
frame is mapped there with ``SceneData.world_transform``.

nerfstudio ``camera_path.json`` (written by the nerfstudio viewer's render panel). Keys used:
``camera_path``: one entry per video frame with ``camera_to_world`` (16 numbers, a row-major 4x4,
OpenGL camera axes: y up, z backward) and ``fov`` (vertical field of view in degrees); top level
``render_width``, ``render_height``, ``fps``, ``seconds``. ``keyframes``, ``camera_type`` (only
"perspective" is supported), ``aspect`` (implied by the size), ``render_time`` are not used. In
nerfstudio these poses live in the frame of its dataparser (its orientation, centring and scale
transform, saved in ``dataparser_transforms.json``), which nerfkit does not know. nerfkit reads
them in the dataset's **original** world frame (the frame of the dataset's pose files, e.g.
transforms.json / COLMAP) and applies ``world_transform``; pass ``frame="scene"`` when they are
already in nerfkit's scene frame. A path from the nerfstudio viewer lines up only when that
dataparser transform was the identity (e.g. ``--orientation-method none --center-method none
--auto-scale-poses False``).

instant-ngp ``base_cam.json`` (the testbed's camera path editor). ``path``: keyframes with ``R`` (a
unit quaternion stored ``[x, y, z, w]``, Eigen's coefficient order), ``T`` (camera centre) and
``fov`` (degrees, along the testbed's fov axis, vertical by default); ``slice``, ``scale``,
``aperture_size``/``dof`` and ``time`` are ignored. ``R``/``T`` describe instant-ngp's internal
camera: OpenCV-like camera axes, world positions ``p_ngp = cycle(scale * p + offset)`` where ``p``
is in the transforms.json frame, the axis cycle maps (x, y, z) -> (y, z, x), ``scale = 0.33`` and
``offset = (0.5, 0.5, 0.5)`` unless the dataset's transforms.json sets ``scale``/``offset``. The
reader undoes this to the transforms.json OpenGL matrix and then converts like the dataset reader.
The keyframes are returned with ``keyframes=True``: the renderer interpolates them with
:func:`nerfkit.cameras.paths.interpolate_poses` (a Catmull-Rom spline through the keyframes;
instant-ngp's own player uses a cubic B-spline that only approaches them).

nerfkit ``camera path`` (this module writes it; the viewer appends keyframes to it)::

    {"format": "nerfkit-camera-path", "version": 1, "frame": "scene" | "original",
     "width": 640, "height": 480, "fps": 30, "seconds": 4.0,        # all optional but frames
     "interpolate": false,                                          # true: frames are keyframes
     "frames": [{"c2w": [[...4 numbers...] x 4], "fov_y_deg": 50.0}, ...]}

``c2w`` is a 4x4 OpenCV camera-to-world matrix in the stated frame; ``fov_y_deg`` is optional
(the dataset camera's field of view is used when absent).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError, NerfkitError, PoseError
from .conventions import check_rigid, opengl_to_opencv
from .normalize import apply_to_poses
from .quaternions import matrix_to_quaternion, quaternion_to_matrix

FORMAT_NAME = "nerfkit-camera-path"
FORMAT_VERSION = 1
NGP_SCALE = 0.33  # instant-ngp's default nerf scale
NGP_OFFSET = (0.5, 0.5, 0.5)  # instant-ngp's default nerf offset


@dataclass
class CameraPath:
    """A camera path in the scene frame.

    c2w: [N, 4, 4] float32 OpenCV camera-to-world poses (scene frame).
    fov_y_deg: [N] vertical field of view in degrees per pose, or None (use the dataset camera's).
    width, height: frame size in pixels, or None (use the dataset's).
    fps, seconds: playback rate and duration, or None.
    keyframes: True when the poses are keyframes to interpolate, False when they are the frames.
    source: the file it was read from (for messages), or None.
    """

    c2w: torch.Tensor
    fov_y_deg: torch.Tensor | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    seconds: float | None = None
    keyframes: bool = False
    source: Path | None = None

    def __len__(self) -> int:
        return int(self.c2w.shape[0])


# --------------------------------------------------------------------------------------------- helpers

def _fail(path: Path, what: str) -> NerfkitError:
    return DataError(f"{path}: {what}")


def _number(value, path: Path, what: str, positive: bool = True) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _fail(path, f"{what} is {value!r}, not a number") from None
    if not math.isfinite(x) or (positive and x <= 0):
        raise _fail(path, f"{what} is {value!r}; it must be a finite{' positive' if positive else ''} number")
    return x


def _optional(meta: dict, key: str, path: Path, cast=float):
    if meta.get(key) is None:
        return None
    return cast(_number(meta[key], path, f"'{key}'"))


def _fovs(values: list, path: Path) -> torch.Tensor | None:
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise _fail(path, "some frames have a field of view and some do not; give it for all frames or none")
    fov = [_number(v, path, f"field of view of frame #{i}") for i, v in enumerate(values)]
    bad = [i for i, f in enumerate(fov) if f >= 180.0]
    if bad:
        raise _fail(path, f"frame #{bad[0]} has a field of view of {fov[bad[0]]} degrees; it must be below 180")
    return torch.tensor(fov, dtype=torch.float32)


def _matrix(value, path: Path, i: int, key: str) -> torch.Tensor:
    """A 4x4 float64 matrix from a nested 4x4 list or a flat row-major list of 16 numbers."""
    try:
        m = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise _fail(path, f"frame #{i}: '{key}' is not a list of numbers; fix the frame") from None
    if m.numel() == 16:
        return m.reshape(4, 4)
    if m.numel() == 12:
        return torch.cat([m.reshape(3, 4), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    raise _fail(path, f"frame #{i}: '{key}' has {m.numel()} numbers; expected a 4x4 matrix (16); fix the frame")


def _to_scene(c2w_original: torch.Tensor, world_transform: torch.Tensor | None) -> torch.Tensor:
    """OpenCV poses [N, 4, 4] in the dataset's original frame -> scene frame (a similarity transform)."""
    if world_transform is None:
        return c2w_original
    return apply_to_poses(torch.as_tensor(world_transform, dtype=torch.float32), c2w_original.float())


def _from_scene(c2w_scene: torch.Tensor, world_transform: torch.Tensor) -> torch.Tensor:
    return apply_to_poses(torch.linalg.inv(torch.as_tensor(world_transform, dtype=torch.float64)).float(),
                          c2w_scene.float())


def _load(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: camera path file not found; pass a nerfstudio camera_path.json, an instant-ngp "
                        "base_cam.json or a nerfkit camera path, or one of orbit, spiral, train")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e}); fix the file or export the camera path again") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object at the top level; fix the file or export the camera "
                        "path again")
    return meta


def _checked(c2w: list[torch.Tensor], path: Path) -> torch.Tensor:
    """Stack poses and validate them (finite, rigid); zero poses is an error naming the file."""
    if not c2w:
        raise DataError(f"{path}: the camera path has no frames (zero keyframes); add cameras to it")
    return check_rigid(torch.stack(c2w), str(path))


# ------------------------------------------------------------------------------------------------ readers

def detect_path_format(meta: dict) -> str | None:
    """'nerfkit', 'nerfstudio' or 'instant-ngp' from the keys of a parsed path file; None if unknown."""
    if meta.get("format") == FORMAT_NAME:
        return "nerfkit"
    if "camera_path" in meta:
        return "nerfstudio"
    if isinstance(meta.get("path"), list):
        return "instant-ngp"
    return None


def _frame_poses(frames: list, path: Path, pose_key: str, fov_key: str,
                 where: str = "") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Checked poses [N, 4, 4] (float64, the file's axes) and fields of view of a list of frame objects."""
    c2w, fovs = [], []
    for i, f in enumerate(frames):
        if not isinstance(f, dict) or pose_key not in f:
            raise _fail(path, f"frame #{i}{where} has no '{pose_key}'")
        c2w.append(_matrix(f[pose_key], path, i, pose_key))
        fovs.append(f.get(fov_key))
    return _checked(c2w, path), _fovs(fovs, path)


def read_camera_path(path: str | Path, world_transform: torch.Tensor | None = None, frame: str | None = None,
                     ngp_scale: float = NGP_SCALE, ngp_offset=NGP_OFFSET) -> CameraPath:
    """Read any supported camera path file (format detected from its keys) into the scene frame.

    ``world_transform`` [4, 4]: the scene's original -> scene transform (``SceneData.world_transform``).
    ``frame``: "original" or "scene" overrides the frame a nerfstudio / instant-ngp file is read in
    (default "original"); a nerfkit file states its own frame. ``ngp_scale``/``ngp_offset``: instant-ngp's
    nerf scale and offset of the dataset (defaults 0.33 and 0.5).
    """
    path = Path(path)
    meta = _load(path)
    kind = detect_path_format(meta)
    if kind == "nerfkit":
        return _read_nerfkit(meta, path, world_transform)
    if frame not in (None, "original", "scene"):
        raise DataError(f"{path}: unknown frame {frame!r}; use 'original' or 'scene'")
    wt = None if frame == "scene" else world_transform
    if kind == "nerfstudio":
        return _read_nerfstudio(meta, path, wt)
    if kind == "instant-ngp":
        return _read_ngp(meta, path, wt, ngp_scale, ngp_offset)
    raise DataError(f"{path}: unknown camera path format (no 'camera_path', 'path' or \"format\": "
                    f"\"{FORMAT_NAME}\" key); see the README section 'Camera paths'")


def _read_nerfstudio(meta: dict, path: Path, world_transform) -> CameraPath:
    frames = meta.get("camera_path")
    if not isinstance(frames, list):
        raise _fail(path, "'camera_path' must be a list of frames")
    if meta.get("camera_type", "perspective") != "perspective":
        raise _fail(path, f"camera_type {meta['camera_type']!r} is not supported; only 'perspective' cameras")
    gl, fovs = _frame_poses(frames, path, "camera_to_world", "fov", " of 'camera_path'")
    # nerfstudio stores OpenGL camera axes (y up, z backward); nerfkit uses OpenCV (y down, z forward)
    poses = _to_scene(opengl_to_opencv(gl), world_transform)
    return CameraPath(poses, fovs, _optional(meta, "render_width", path, int),
                      _optional(meta, "render_height", path, int), _optional(meta, "fps", path),
                      _optional(meta, "seconds", path), keyframes=False, source=path)


def ngp_to_transforms_matrix(r_xyzw, t, scale: float = NGP_SCALE, offset=NGP_OFFSET) -> torch.Tensor:
    """instant-ngp camera (quaternion [x, y, z, w], centre T in NGP space) -> the transforms.json matrix
    [4, 4] (float64, OpenGL camera axes) that instant-ngp's loader would map to that camera.

    The loader builds its camera from a transforms.json matrix by negating the camera y and z columns
    (OpenGL -> OpenCV-like axes), mapping the centre to ``scale * p + offset`` and cycling the world
    rows (x, y, z) -> (y, z, x). This undoes the three steps.
    """
    q = torch.as_tensor(r_xyzw, dtype=torch.float64)
    rot = quaternion_to_matrix(torch.stack([q[3], q[0], q[1], q[2]]))  # reorder to (w, x, y, z)
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3], m[:3, 3] = rot, torch.as_tensor(t, dtype=torch.float64)
    m[:3] = m[[2, 0, 1], :]  # undo the row cycle: NGP rows are (y, z, x) of the file frame
    m[:3, 3] = (m[:3, 3] - torch.as_tensor(offset, dtype=torch.float64)) / scale
    # the NGP camera has OpenCV-like axes; back to the file's OpenGL axes (the same flip, an involution)
    return opengl_to_opencv(m)


def transforms_matrix_to_ngp(c2w_gl: torch.Tensor, scale: float = NGP_SCALE, offset=NGP_OFFSET):
    """Inverse of :func:`ngp_to_transforms_matrix`: (quaternion [x, y, z, w], T [3]) of a transforms.json
    matrix [4, 4] (OpenGL axes), as instant-ngp would store it in base_cam.json."""
    m = opengl_to_opencv(torch.as_tensor(c2w_gl, dtype=torch.float64))
    m[:3, 3] = m[:3, 3] * scale + torch.as_tensor(offset, dtype=torch.float64)
    m[:3] = m[[1, 2, 0], :]  # cycle the world rows (x, y, z) -> (y, z, x)
    w, x, y, z = matrix_to_quaternion(m[:3, :3]).tolist()
    return [x, y, z, w], m[:3, 3].tolist()


def ngp_space(dataset_root: str | Path | None) -> tuple[float, tuple[float, float, float]]:
    """instant-ngp's (scale, offset) for a dataset: the ``scale``/``offset`` keys of its transforms.json
    (or transforms_train.json) when present, else instant-ngp's defaults 0.33 and (0.5, 0.5, 0.5)."""
    scale, offset = NGP_SCALE, NGP_OFFSET
    if dataset_root is None:
        return scale, offset
    for name in ("transforms.json", "transforms_train.json"):
        f = Path(dataset_root) / name
        if f.is_file():
            try:
                meta = json.loads(f.read_text())
                scale = float(meta.get("scale", scale))
                off = meta.get("offset", offset)
                offset = tuple(float(v) for v in (off if isinstance(off, (list, tuple)) else [off] * 3))
            except (OSError, ValueError, TypeError, AttributeError):
                pass  # unreadable: the dataset reader reports it; keep the defaults here
            break
    return scale, offset


def _read_ngp(meta: dict, path: Path, world_transform, scale: float, offset) -> CameraPath:
    frames = meta["path"]
    gl, fovs = [], []
    for i, f in enumerate(frames):
        if not isinstance(f, dict) or "R" not in f or "T" not in f:
            raise _fail(path, f"keyframe #{i} of 'path' needs 'R' (quaternion x, y, z, w) and 'T'")
        try:
            r = torch.tensor(f["R"], dtype=torch.float64).flatten()
            t = torch.tensor(f["T"], dtype=torch.float64).flatten()
        except (TypeError, ValueError):
            raise _fail(path, f"keyframe #{i}: 'R' and 'T' must be lists of numbers") from None
        if r.numel() != 4 or t.numel() != 3:
            raise _fail(path, f"keyframe #{i}: 'R' needs 4 numbers and 'T' 3 (got {r.numel()} and {t.numel()})")
        if not (torch.isfinite(r).all() and torch.isfinite(t).all()) or float(r.norm()) < 1e-8:
            raise PoseError(f"{path}: keyframe #{i} has a non-finite or zero quaternion/position; fix or remove it")
        gl.append(ngp_to_transforms_matrix(r, t, scale, offset))
        fovs.append(f.get("fov"))
    gl_t = _checked(gl, path)
    # the recovered transforms.json matrix has OpenGL camera axes; nerfkit uses OpenCV
    poses = _to_scene(opengl_to_opencv(gl_t), world_transform)
    return CameraPath(poses, _fovs(fovs, path), keyframes=True, source=path)


def _read_nerfkit(meta: dict, path: Path, world_transform) -> CameraPath:
    version = meta.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise _fail(path, f"camera path version {version!r} is not supported (this nerfkit reads version "
                          f"{FORMAT_VERSION}); upgrade nerfkit")
    frame = meta.get("frame", "scene")
    if frame not in ("scene", "original"):
        raise _fail(path, f"'frame' is {frame!r}; use 'scene' or 'original'")
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise _fail(path, "'frames' must be a list of {\"c2w\": 4x4, \"fov_y_deg\": ...}")
    poses, fovs = _frame_poses(frames, path, "c2w", "fov_y_deg")
    if frame == "original":
        if world_transform is None:
            raise _fail(path, "the path is in the dataset's original frame but no scene transform was given")
        poses = _to_scene(poses, world_transform)
    return CameraPath(poses, fovs, _optional(meta, "width", path, int),
                      _optional(meta, "height", path, int), _optional(meta, "fps", path),
                      _optional(meta, "seconds", path), keyframes=bool(meta.get("interpolate", False)),
                      source=path)


# ------------------------------------------------------------------------------------------------ writer

def camera_path_dict(cam_path: CameraPath, frame: str = "scene",
                     world_transform: torch.Tensor | None = None) -> dict:
    """The nerfkit JSON object of a :class:`CameraPath` (poses written in ``frame``)."""
    if frame not in ("scene", "original"):
        raise DataError(f"unknown frame {frame!r}; use 'scene' or 'original'")
    c2w = cam_path.c2w.float()
    if frame == "original":
        if world_transform is None:
            raise DataError("writing a camera path in the original frame needs the scene's world_transform")
        c2w = _from_scene(c2w, world_transform)
    frames = []
    for i in range(len(c2w)):
        f = {"c2w": [[round(float(v), 7) for v in row] for row in c2w[i]]}
        if cam_path.fov_y_deg is not None:
            f["fov_y_deg"] = float(cam_path.fov_y_deg[i])
        frames.append(f)
    out = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "frame": frame}
    for key, val in (("width", cam_path.width), ("height", cam_path.height), ("fps", cam_path.fps),
                     ("seconds", cam_path.seconds)):
        if val is not None:
            out[key] = val
    out["interpolate"] = bool(cam_path.keyframes)
    out["frames"] = frames
    return out


def write_camera_path(path: str | Path, cam_path: CameraPath, frame: str = "scene",
                      world_transform: torch.Tensor | None = None, overwrite: bool = True) -> Path:
    """Write ``cam_path`` as a nerfkit camera path file (temporary name, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise DataError(f"{path}: already exists; pass --overwrite or choose another file")
    text = json.dumps(camera_path_dict(cam_path, frame, world_transform), indent=1)
    from ..data.files import write_atomic  # same layer; imported here so cameras loads without data

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, text)
    except OSError as e:
        raise DataError(f"{path}: could not write the camera path ({e}); check the folder is writable") from None
    return path


def append_keyframe(path: str | Path, c2w: torch.Tensor, fov_y_deg: float | None = None,
                    width: int | None = None, height: int | None = None, fps: float | None = None) -> CameraPath:
    """Append one keyframe (OpenCV c2w [4, 4], scene frame) to a nerfkit camera path file, creating it
    (with ``interpolate: true``) when missing. Returns the updated path."""
    path = Path(path)
    c2w = check_rigid(torch.as_tensor(c2w, dtype=torch.float32)[None], str(path))
    fov = None if fov_y_deg is None else torch.tensor([float(fov_y_deg)])
    if not path.exists():
        new = CameraPath(c2w, fov, width, height, fps, keyframes=True, source=path)
        write_camera_path(path, new)
        return new
    meta = _load(path)
    if detect_path_format(meta) != "nerfkit" or meta.get("frame", "scene") != "scene":
        raise DataError(f"{path}: keyframes can only be appended to a nerfkit camera path in the scene frame; "
                        "choose a new file name")
    cur = _read_nerfkit(meta, path, None)
    if (cur.fov_y_deg is None) != (fov is None):
        raise DataError(f"{path}: give a field of view for every keyframe or for none")
    fovs = None if fov is None else torch.cat([cur.fov_y_deg, fov])
    new = CameraPath(torch.cat([cur.c2w, c2w]), fovs, cur.width or width, cur.height or height,
                     cur.fps or fps, cur.seconds, keyframes=cur.keyframes, source=path)
    write_camera_path(path, new)
    return new
