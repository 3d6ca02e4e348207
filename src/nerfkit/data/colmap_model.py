"""COLMAP sparse models (``cameras``, ``images``, ``points3D``; binary ``.bin`` or text ``.txt``).

A pure numpy/struct reader and a text writer, following the layout in COLMAP's "Output Format"
documentation. All binary values are little-endian:

- ``cameras.bin``: uint64 count, then per camera: int32 id, int32 model id, uint64 width,
  uint64 height, float64 params[n] (n fixed by the model).
- ``images.bin``: uint64 count, then per image: uint32 id, float64 qvec[4] (w, x, y, z),
  float64 tvec[3], uint32 camera id, the name as NUL-terminated bytes, uint64 K, then K times
  (float64 x, float64 y, int64 point3D id; -1 when the keypoint has no 3D point).
- ``points3D.bin``: uint64 count, then per point: uint64 id, float64 xyz[3], uint8 rgb[3],
  float64 error, uint64 track length T, then T times (int32 image id, int32 point2D index).

Poses are world-to-camera: ``x_cam = R(qvec) @ x_world + tvec``, with OpenCV camera axes
(x right, y down, z forward). Those are nerfkit's camera axes, so no axis flip happens here.
Pixel coordinates put the centre of the top-left pixel at (0.5, 0.5), as in nerfkit.

Points are kept as arrays (:class:`ColmapPoints`), not one object per point, so that models with
millions of points stay cheap to hold and to index.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError, PoseError


class CameraModel(NamedTuple):
    """A COLMAP camera model: its id in the binary format, its name and its parameter names."""

    id: int
    name: str
    params: tuple[str, ...]


_MODELS = (
    CameraModel(0, "SIMPLE_PINHOLE", ("f", "cx", "cy")),
    CameraModel(1, "PINHOLE", ("fx", "fy", "cx", "cy")),
    CameraModel(2, "SIMPLE_RADIAL", ("f", "cx", "cy", "k")),
    CameraModel(3, "RADIAL", ("f", "cx", "cy", "k1", "k2")),
    CameraModel(4, "OPENCV", ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2")),
    CameraModel(5, "OPENCV_FISHEYE", ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4")),
    CameraModel(6, "FULL_OPENCV", ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
    CameraModel(7, "FOV", ("fx", "fy", "cx", "cy", "omega")),
    CameraModel(8, "SIMPLE_RADIAL_FISHEYE", ("f", "cx", "cy", "k")),
    CameraModel(9, "RADIAL_FISHEYE", ("f", "cx", "cy", "k1", "k2")),
    CameraModel(10, "THIN_PRISM_FISHEYE",
                ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "sx1", "sy1")),
)
CAMERA_MODELS: dict[str, CameraModel] = {m.name: m for m in _MODELS}
CAMERA_MODEL_IDS: dict[int, CameraModel] = {m.id: m for m in _MODELS}
# models camera_intrinsics() understands (all but the fisheye-only FOV / *_FISHEYE variants)
SUPPORTED_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "FULL_OPENCV")

_FIX = "re-export the model with COLMAP (e.g. `colmap model_converter`)"


@dataclass(eq=False)
class ColmapCamera:
    """One COLMAP camera (intrinsics shared by the images that name its id).

    ``params``: [n] float64 in the order of ``CAMERA_MODELS[model].params``.
    ``source``: the file it was read from (for error messages; empty when built by hand).
    """

    id: int
    model: str
    width: int
    height: int
    params: np.ndarray  # [n] float64
    source: str = field(default="", repr=False)


@dataclass(eq=False)
class ColmapImage:
    """One registered image: world-to-camera pose, camera id, file name and 2D keypoints.

    ``qvec``: [4] float64 unit quaternion (w, x, y, z) of the world-to-camera rotation.
    ``tvec``: [3] float64 world-to-camera translation.
    ``xys``: [K, 2] float64 keypoint pixel positions; ``point3d_ids``: [K] int64 (-1: no 3D point).
    """

    id: int
    qvec: np.ndarray  # [4]
    tvec: np.ndarray  # [3]
    camera_id: int
    name: str
    xys: np.ndarray  # [K, 2]
    point3d_ids: np.ndarray  # [K]

    def rotation(self) -> np.ndarray:
        """[3, 3] float64 world-to-camera rotation R (the quaternion is normalised first)."""
        return quaternion_to_rotation(self.qvec)

    def world_to_camera(self) -> np.ndarray:
        """[4, 4] float64 world-to-camera matrix [R | t], OpenCV camera axes."""
        m = np.eye(4)
        m[:3, :3] = self.rotation()
        m[:3, 3] = self.tvec
        return m

    def camera_to_world(self) -> np.ndarray:
        """[4, 4] float64 camera-to-world matrix [R^T | -R^T t].

        COLMAP's camera axes are OpenCV's (x right, y down, z forward), which are nerfkit's,
        so this is a nerfkit ``c2w`` without any axis flip.
        """
        r = self.rotation()
        m = np.eye(4)
        m[:3, :3] = r.T
        m[:3, 3] = -r.T @ np.asarray(self.tvec, dtype=np.float64)
        return m

    def center(self) -> np.ndarray:
        """[3] float64 camera centre in world coordinates, -R^T t."""
        return self.camera_to_world()[:3, 3]


@dataclass(eq=False)
class ColmapPoints:
    """The sparse 3D points as arrays (P points, T track entries in total).

    ``ids``: [P] int64 COLMAP point ids; ``xyz``: [P, 3] float64; ``rgb``: [P, 3] uint8;
    ``error``: [P] float64 mean reprojection error in pixels.
    Tracks are stored flat: the observations of point i are ``track[track_offsets[i]:track_offsets[i+1]]``,
    ``track``: [T, 2] int64 rows (image id, index into that image's ``xys``); ``track_offsets``: [P + 1] int64.
    """

    ids: np.ndarray
    xyz: np.ndarray
    rgb: np.ndarray
    error: np.ndarray
    track_offsets: np.ndarray
    track: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def track_of(self, i: int) -> np.ndarray:
        """[T_i, 2] observations (image id, point2D index) of the point in row ``i``."""
        return self.track[self.track_offsets[i]:self.track_offsets[i + 1]]

    def rows(self, point_ids) -> np.ndarray:
        """[K] int64 row indices of the given point ids (raises KeyError for an id not in the model)."""
        point_ids = np.asarray(point_ids, dtype=np.int64)
        order = np.argsort(self.ids, kind="stable")
        sorted_ids = self.ids[order]
        pos = np.clip(np.searchsorted(sorted_ids, point_ids), 0, max(len(sorted_ids) - 1, 0))
        if len(sorted_ids) == 0 or (sorted_ids[pos] != point_ids).any():
            missing = point_ids if len(sorted_ids) == 0 else point_ids[sorted_ids[pos] != point_ids]
            raise KeyError(f"point ids not in the model: {missing[:5].tolist()}")
        return order[pos]

    @classmethod
    def empty(cls) -> "ColmapPoints":
        return cls(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0),
                   np.zeros(1, np.int64), np.zeros((0, 2), np.int64))


@dataclass(eq=False)
class ColmapModel:
    """A COLMAP sparse model: cameras and images by id, the 3D points as arrays.

    ``folder``: the folder the files came from; ``format``: "bin" or "txt".
    """

    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points: ColmapPoints
    folder: Path | None = None
    format: str = ""


def quaternion_to_rotation(qvec) -> np.ndarray:
    """[3, 3] float64 rotation of a quaternion ``qvec`` [4] = (w, x, y, z), normalised first."""
    q = np.asarray(qvec, dtype=np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-12:
        raise PoseError(f"quaternion {q.tolist()} is zero or not finite; it is not a rotation")
    w, x, y, z = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def camera_intrinsics(cam: ColmapCamera) -> tuple[float, float, float, float, dict[str, float]]:
    """(fx, fy, cx, cy, distortion) in pixels for the models in ``SUPPORTED_MODELS``.

    ``distortion`` maps coefficient names to values, OpenCV-style: SIMPLE_RADIAL's ``k`` is
    reported as ``k1``; OPENCV_FISHEYE's k1..k4 are the fisheye (equidistant) coefficients.
    Pinhole models give an empty dict. Other models raise :class:`DataError`.
    """
    where = cam.source or "COLMAP model"
    if cam.model not in SUPPORTED_MODELS:
        raise DataError(f"{where}: camera {cam.id} uses model {cam.model}, which nerfkit does not support "
                        f"(supported: {', '.join(SUPPORTED_MODELS)}); undistort the images first with "
                        "`colmap image_undistorter`, which writes PINHOLE cameras")
    names = CAMERA_MODELS[cam.model].params
    p = [float(v) for v in cam.params]
    if len(p) != len(names):
        raise DataError(f"{where}: camera {cam.id} ({cam.model}) has {len(p)} params, expected {len(names)} "
                        f"({', '.join(names)})")
    vals = dict(zip(names, p))
    if "f" in vals:
        fx = fy = vals["f"]
    else:
        fx, fy = vals["fx"], vals["fy"]
    if not all(np.isfinite(p)) or fx <= 0 or fy <= 0:
        raise PoseError(f"{where}: camera {cam.id} ({cam.model}) has focal length ({fx:g}, {fy:g}) and params "
                        f"{p}; the focal length must be finite and positive and every parameter finite — fix the "
                        f"camera or {_FIX}")
    if cam.width < 2 or cam.height < 2:
        raise DataError(f"{where}: camera {cam.id} has image size {cam.width}x{cam.height} (needs at least 2x2); "
                        f"fix the camera or {_FIX}")
    dist = {k: v for k, v in vals.items() if k not in ("f", "fx", "fy", "cx", "cy")}
    if cam.model == "SIMPLE_RADIAL":
        dist = {"k1": dist["k"]}
    return fx, fy, vals["cx"], vals["cy"], dist


# ----------------------------------------------------------------------------------------------
# folder resolution


def find_colmap_model(path: str | Path) -> tuple[Path, str]:
    """The folder holding the model files and their format ("bin" or "txt").

    ``path`` holds ``cameras/images/points3D`` ``.bin`` or ``.txt`` directly, or in a ``0/``
    subfolder (COLMAP's ``sparse/0``). Binary wins when both complete sets are present.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; point at a COLMAP sparse model folder (e.g. sparse/0)")
    partial: list[tuple[Path, list[str]]] = []
    for folder in (path, path / "0"):
        for ext in ("bin", "txt"):
            names = [f"{n}.{ext}" for n in ("cameras", "images", "points3D")]
            present = [(folder / n).is_file() for n in names]
            if all(present):
                return folder, ext
            if any(present):
                partial.append((folder, [n for n, ok in zip(names, present) if not ok]))
    if partial:
        folder, missing = partial[0]
        raise DataError(f"{folder}: incomplete COLMAP model, missing {', '.join(missing)}; "
                        "a model needs cameras, images and points3D (all .bin or all .txt) — copy the missing "
                        "file(s) or re-export the model")
    raise DataError(f"{path}: no COLMAP model (cameras/images/points3D .bin or .txt) here or in {path / '0'}; "
                    "point at the sparse model folder (e.g. <scene>/sparse/0)")


def read_colmap_model(path: str | Path) -> ColmapModel:
    """Read a COLMAP sparse model (binary or text, detected) from ``path`` or ``path/0``.

    Raises :class:`DataError` for missing, truncated or malformed files and for images that
    refer to a camera id the model does not define; :class:`PoseError` for a zero or
    non-finite quaternion / translation.
    """
    folder, ext = find_colmap_model(path)
    if ext == "bin":
        cameras = _read_cameras_bin(folder / "cameras.bin")
        images = _read_images_bin(folder / "images.bin")
        points = _read_points_bin(folder / "points3D.bin")
    else:
        cameras = _read_cameras_txt(folder / "cameras.txt")
        images = _read_images_txt(folder / "images.txt")
        points = _read_points_txt(folder / "points3D.txt")
    img_file = folder / f"images.{ext}"
    for im in images.values():
        if im.camera_id not in cameras:
            raise DataError(f"{img_file}: image {im.id} ('{im.name}') refers to camera {im.camera_id}, which "
                            f"{folder / f'cameras.{ext}'} does not define; the model is inconsistent — {_FIX}")
        if not (np.isfinite(im.qvec).all() and np.isfinite(im.tvec).all()) or np.linalg.norm(im.qvec) < 1e-12:
            raise PoseError(f"{img_file}: image {im.id} ('{im.name}') has a zero or non-finite pose "
                            f"(qvec={im.qvec.tolist()}, tvec={im.tvec.tolist()}); remove the image or {_FIX}")
    return ColmapModel(cameras, images, points, folder=folder, format=ext)


# ----------------------------------------------------------------------------------------------
# binary


_STRUCTS: dict[str, struct.Struct] = {}


class _BinReader:
    """Sequential little-endian reader over a whole file whose errors name the file."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror}); check the path and permissions") from e
        self.pos = 0

    def _need(self, n: int, what: str) -> None:
        if self.pos + n > len(self.data):
            raise DataError(f"{self.path}: file ends after {len(self.data)} bytes while reading {what} "
                            f"({n} bytes needed at offset {self.pos}); the file is truncated — {_FIX}")

    def unpack(self, fmt: str, what: str) -> tuple:
        s = _STRUCTS.get(fmt) or _STRUCTS.setdefault(fmt, struct.Struct("<" + fmt))
        self._need(s.size, what)
        out = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return out

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        dtype = np.dtype(dtype)
        self._need(dtype.itemsize * count, what)
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += dtype.itemsize * count
        return out

    def cstring(self, what: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise DataError(f"{self.path}: file ends inside {what} (no terminating NUL after offset {self.pos}); "
                            f"the file is truncated — {_FIX}")
        raw = self.data[self.pos:end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{self.path}: {what} at offset {end - len(raw)} is not UTF-8 ({e.reason}); "
                            f"the file is corrupt — {_FIX}") from e

    def count(self, min_record: int, what: str) -> int:
        (n,) = self.unpack("Q", f"the {what} count")
        if n * min_record > len(self.data) - self.pos:
            raise DataError(f"{self.path}: header says {n} {what} but only {len(self.data) - self.pos} bytes follow "
                            f"(at least {min_record} per entry); the file is truncated or not a COLMAP "
                            f"{self.path.name} — {_FIX}")
        return n

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise DataError(f"{self.path}: {len(self.data) - self.pos} unexpected bytes after the last entry "
                            f"(offset {self.pos} of {len(self.data)}); the file is corrupt or was appended to "
                            f"— {_FIX}")


def _read_cameras_bin(path: Path) -> dict[int, ColmapCamera]:
    r = _BinReader(path)
    cams: dict[int, ColmapCamera] = {}
    for k in range(r.count(24, "cameras")):
        cid, mid, w, h = r.unpack("iiQQ", f"camera #{k}")
        model = CAMERA_MODEL_IDS.get(mid)
        if model is None:
            raise DataError(f"{path}: camera {cid} has unknown model id {mid} (known: 0..{len(_MODELS) - 1}); "
                            "it was written by a newer COLMAP or the file is corrupt — convert the model to text "
                            "with `colmap model_converter` and check its cameras")
        params = r.array("<f8", len(model.params), f"camera {cid} params").astype(np.float64)
        if cid in cams:
            raise DataError(f"{path}: camera id {cid} appears twice; the file is corrupt — {_FIX}")
        cams[cid] = ColmapCamera(cid, model.name, int(w), int(h), params, source=str(path))
    r.finish()
    return cams


_POINT2D = np.dtype([("xy", "<f8", (2,)), ("id", "<i8")])


def _read_images_bin(path: Path) -> dict[int, ColmapImage]:
    r = _BinReader(path)
    images: dict[int, ColmapImage] = {}
    for k in range(r.count(64 + 1 + 8, "images")):
        head = r.unpack("I4d3dI", f"image #{k}")
        iid, qvec, tvec, cid = head[0], np.array(head[1:5]), np.array(head[5:8]), head[8]
        name = r.cstring(f"the name of image {iid}")
        (n2d,) = r.unpack("Q", f"the keypoint count of image {iid} ('{name}')")
        pts = r.array(_POINT2D, n2d, f"the {n2d} keypoints of image {iid} ('{name}')")
        if iid in images:
            raise DataError(f"{path}: image id {iid} appears twice; the file is corrupt — {_FIX}")
        images[iid] = ColmapImage(iid, qvec, tvec, cid, name, pts["xy"].astype(np.float64),
                                  pts["id"].astype(np.int64))
    r.finish()
    return images


def _read_points_bin(path: Path) -> ColmapPoints:
    r = _BinReader(path)
    n = r.count(51, "points")
    ids = np.empty(n, np.int64)
    xyz = np.empty((n, 3))
    rgb = np.empty((n, 3), np.uint8)
    err = np.empty(n)
    offsets = np.zeros(n + 1, np.int64)
    tracks: list[np.ndarray] = []
    for k in range(n):
        vals = r.unpack("Q3d3BdQ", f"point #{k}")
        ids[k], xyz[k], rgb[k], err[k] = vals[0], vals[1:4], vals[4:7], vals[7]
        t = r.array("<i4", 2 * vals[8], f"the track of point {vals[0]}")
        tracks.append(t)
        offsets[k + 1] = offsets[k] + vals[8]
    r.finish()
    track = np.concatenate(tracks).astype(np.int64).reshape(-1, 2) if tracks else np.zeros((0, 2), np.int64)
    if len(np.unique(ids)) != n:
        raise DataError(f"{path}: some point ids appear more than once; the file is corrupt — {_FIX}")
    return ColmapPoints(ids, xyz, rgb, err, offsets, track)


# ----------------------------------------------------------------------------------------------
# text


def _text_lines(path: Path):
    """(line number, line without newline) of the non-comment lines of a text model file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); is this a COLMAP text model?") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check the path and permissions") from e
    for no, line in enumerate(text.splitlines(), 1):
        if not line.lstrip().startswith("#"):
            yield no, line


def _parse(path: Path, no: int, conv, tok: str, what: str):
    try:
        return conv(tok)
    except ValueError:
        raise DataError(f"{path}:{no}: {what} '{tok}' is not a valid {conv.__name__}; fix line {no}") from None


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cams: dict[int, ColmapCamera] = {}
    for no, line in _text_lines(path):
        t = line.split()
        if not t:
            continue
        if len(t) < 4:
            raise DataError(f"{path}:{no}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', got {len(t)} fields; "
                            f"fix line {no}")
        cid = _parse(path, no, int, t[0], "camera id")
        model = CAMERA_MODELS.get(t[1])
        if model is None:
            raise DataError(f"{path}:{no}: camera {cid} has unknown model '{t[1]}' "
                            f"(known: {', '.join(CAMERA_MODELS)}); fix line {no}")
        if len(t) - 4 != len(model.params):
            raise DataError(f"{path}:{no}: camera {cid} ({model.name}) has {len(t) - 4} params, expected "
                            f"{len(model.params)} ({', '.join(model.params)}); fix line {no}")
        w = _parse(path, no, int, t[2], "width")
        h = _parse(path, no, int, t[3], "height")
        params = np.array([_parse(path, no, float, v, "parameter") for v in t[4:]], dtype=np.float64)
        if cid in cams:
            raise DataError(f"{path}:{no}: camera id {cid} appears twice; remove one of the lines")
        cams[cid] = ColmapCamera(cid, model.name, w, h, params, source=str(path))
    return cams


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    images: dict[int, ColmapImage] = {}
    lines = _text_lines(path)
    for no, line in lines:
        if not line.strip():
            continue  # blank line between images; the keypoint line after a header may be blank, see below
        t = line.split(maxsplit=9)
        if len(t) != 10:
            raise DataError(f"{path}:{no}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {len(t)} "
                            f"fields; fix line {no} (every image takes two lines: this one, then its keypoints)")
        iid = _parse(path, no, int, t[0], "image id")
        vals = np.array([_parse(path, no, float, v, "pose value") for v in t[1:8]])
        cid = _parse(path, no, int, t[8], "camera id")
        name = t[9].strip()
        # the next line lists the keypoints as 'X Y POINT3D_ID' triples; it is blank for none
        no2, pline = next(lines, (no + 1, ""))
        p = pline.split()
        if len(p) % 3:
            raise DataError(f"{path}:{no2}: keypoint line of image {iid} has {len(p)} values, not a multiple of 3 "
                            f"(X Y POINT3D_ID per keypoint); fix line {no2}")
        xy = np.array([_parse(path, no2, float, v, "keypoint coordinate") for i, v in enumerate(p) if i % 3 != 2],
                      dtype=np.float64).reshape(-1, 2)
        pid = np.array([_parse(path, no2, int, v, "point3D id") for v in p[2::3]], dtype=np.int64)
        if iid in images:
            raise DataError(f"{path}:{no}: image id {iid} appears twice; remove one of the entries")
        images[iid] = ColmapImage(iid, vals[:4].copy(), vals[4:].copy(), cid, name, xy, pid)
    return images


def _read_points_txt(path: Path) -> ColmapPoints:
    ids, xyz, rgb, err, offsets, track = [], [], [], [], [0], []
    for no, line in _text_lines(path):
        t = line.split()
        if not t:
            continue
        if len(t) < 8 or (len(t) - 8) % 2:
            raise DataError(f"{path}:{no}: expected 'POINT3D_ID X Y Z R G B ERROR' then (IMAGE_ID POINT2D_IDX) pairs, "
                            f"got {len(t)} fields; fix line {no}")
        ids.append(_parse(path, no, int, t[0], "point id"))
        xyz.append([_parse(path, no, float, v, "coordinate") for v in t[1:4]])
        c = [_parse(path, no, int, v, "colour") for v in t[4:7]]
        if not all(0 <= v <= 255 for v in c):
            raise DataError(f"{path}:{no}: colour {c} is outside 0..255; fix line {no}")
        rgb.append(c)
        err.append(_parse(path, no, float, t[7], "error"))
        track.extend(_parse(path, no, int, v, "track entry") for v in t[8:])
        offsets.append(offsets[-1] + (len(t) - 8) // 2)
    if not ids:
        return ColmapPoints.empty()
    ids_a = np.array(ids, dtype=np.int64)
    if len(np.unique(ids_a)) != len(ids_a):
        raise DataError(f"{path}: some point ids appear more than once; remove the duplicate lines")
    return ColmapPoints(ids_a, np.array(xyz, dtype=np.float64), np.array(rgb, dtype=np.uint8),
                        np.array(err, dtype=np.float64), np.array(offsets, dtype=np.int64),
                        np.array(track, dtype=np.int64).reshape(-1, 2))


def _f(x) -> str:
    """Shortest text that parses back to exactly the same float64."""
    return repr(float(x))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def write_colmap_text(model: ColmapModel, folder: str | Path) -> Path:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` into ``folder`` (created if needed).

    Floats are written with Python's shortest round-trip repr, so reading the files back gives
    exactly the same float64 values. Each file is written to a temporary name and renamed.
    Returns the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = ["# Camera list with one line of data per camera:",
           "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
           f"# Number of cameras: {len(model.cameras)}"]
    for c in model.cameras.values():
        out.append(" ".join([str(c.id), c.model, str(int(c.width)), str(int(c.height))] + [_f(v) for v in c.params]))
    _write_atomic(folder / "cameras.txt", "\n".join(out) + "\n")

    n_obs = sum(len(im.point3d_ids) for im in model.images.values())
    out = ["# Image list with two lines of data per image:",
           "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
           "#   POINTS2D[] as (X, Y, POINT3D_ID)",
           f"# Number of images: {len(model.images)}, mean observations per image: "
           f"{n_obs / max(len(model.images), 1)}"]
    for im in model.images.values():
        out.append(" ".join([str(im.id)] + [_f(v) for v in im.qvec] + [_f(v) for v in im.tvec]
                            + [str(im.camera_id), im.name]))
        out.append(" ".join(f"{x!r} {y!r} {p}" for (x, y), p in zip(np.asarray(im.xys, np.float64).tolist(),
                                                                    np.asarray(im.point3d_ids).tolist())))
    _write_atomic(folder / "images.txt", "\n".join(out) + "\n")

    pts = model.points
    out = ["# 3D point list with one line of data per point:",
           "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
           f"# Number of points: {len(pts)}"]
    xyz, rgb, err, ids = pts.xyz.tolist(), pts.rgb.tolist(), pts.error.tolist(), pts.ids.tolist()
    track, offs = pts.track.tolist(), pts.track_offsets.tolist()
    for i in range(len(ids)):
        fields = [str(ids[i])] + [repr(v) for v in xyz[i]] + [str(v) for v in rgb[i]] + [repr(err[i])]
        fields += [f"{a} {b}" for a, b in track[offs[i]:offs[i + 1]]]
        out.append(" ".join(fields))
    _write_atomic(folder / "points3D.txt", "\n".join(out) + "\n")
    return folder
