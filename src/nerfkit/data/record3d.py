"""Reader for Record3D "EXR + JPG" exports (iPhone / iPad LiDAR captures).

File format. A folder holding

- ``metadata.json``: ``w``, ``h`` (RGB image size), ``dw``, ``dh`` (depth map size), ``fps``, ``K`` (the
  3x3 intrinsics of the RGB image as 9 numbers in COLUMN-major order: ``[fx, 0, 0, 0, fy, 0, cx, cy, 1]``)
  and ``poses``: one camera-to-world pose per recorded frame, 7 numbers ``qx qy qz qw tx ty tz`` (a unit
  quaternion, scalar LAST, then the camera centre in metres);
- ``rgb/N.jpg``: the colour frames; ``N`` is the frame's index into ``poses``. An export may keep only
  some frames (e.g. every 8th), so frames are matched to poses by the integer file name, never by
  position in the listing;
- ``depth/N.exr`` (optional): LiDAR depth of frame ``N`` in metres, one float16 channel ``R`` of
  ``dw`` x ``dh`` pixels (lower resolution than the RGB image). Listed in ``SceneData.depth_paths``;
  :func:`read_depth_exr` decodes one.

Conventions, and where they come from:

- ``K`` is column-major: nerfstudio's ``record3d_utils.record3d_to_json`` reads it as
  ``reshape(3, 3).T``, and only then does the principal point land near the image centre (w/2, h/2) -
  the tests check that on real data.
- pose layout ``qx qy qz qw tx ty tz``: nerfstudio (same file) feeds ``poses[:, :4]`` to
  ``scipy.spatial.transform.Rotation.from_quat`` (scalar-last) and uses ``poses[:, 4:]`` as the
  translation; the file's own ``initPose`` ``[0, 0, 0, 1, 0, 0, 0]`` is the identity only in that
  order, and the first four numbers of every pose have unit norm.
- camera axes: Record3D stores ARKit camera transforms, whose camera axes are OpenGL-style (x right,
  y up, z backward: the camera looks along -z; Apple ARKit ``ARCamera.transform`` documentation).
  nerfstudio writes the poses unchanged into a ``transforms.json`` (an OpenGL-axes format), and
  instant-ngp's ``record3d2nerf.py`` likewise treats them as OpenGL. The reader converts them to
  nerfkit's OpenCV axes with :func:`nerfkit.cameras.opengl_to_opencv`. The world frame is ARKit's
  (y up, gravity aligned); it is kept (no rotation).

Normalisation: :func:`nerfkit.cameras.normalize.normalize_scene` without points - the centre is the
point closest to every optical axis and the mean camera distance becomes 4. ``aabb`` is the fixed
cube [-1.5, 1.5]^3 (the method box of that convention); for a handheld indoor capture the true
content extent is unknown without decoding depth, so the box is a default, not a measurement.
``near`` = 0.05 and ``far`` = 2 * the box's circumradius + the largest camera distance, as in
:mod:`nerfkit.data.transforms_json`.

Splits: every ``holdout``-th view (0, holdout, 2*holdout, ... in sorted frame order) is ``"test"``,
the others ``"train"``; ``holdout=0`` keeps every view in ``"train"``.
"""

from __future__ import annotations

import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from ..cameras import check_rigid, opengl_to_opencv
from ..cameras.normalize import normalize_scene
from ..errors import DataError, PoseError
from .scene import SceneData
from .blender import check_downscale
from .files import read_json_object
from .images import image_header

NEAR = 0.05
AABB_HALF = 1.5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG", ".png", ".PNG")


def _load_metadata(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"{path}: not found; a Record3D export folder holds metadata.json, rgb/ and depth/ "
                        "(is --data pointing at the EXR_RGBD folder?)")
    meta = read_json_object(path, "a JSON object (is this a Record3D metadata.json?)")
    for key in ("w", "h", "K", "poses"):
        if key not in meta:
            raise DataError(f"{path}: missing '{key}'; re-export the capture from Record3D (EXR + JPG)")
    return meta


def _positive(meta: dict, key: str, path: Path) -> float:
    try:
        v = float(meta[key])
    except (TypeError, ValueError):
        raise DataError(f"{path}: '{key}' is {meta[key]!r}, expected a number") from None
    if not math.isfinite(v) or v <= 0:
        raise DataError(f"{path}: '{key}' is {v}, expected a positive size in pixels")
    return v


def _intrinsics(meta: dict, path: Path) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of the RGB image from the column-major ``K``."""
    try:
        k = np.asarray(meta["K"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: 'K' is not a list of 9 numbers") from None
    if k.shape != (9,):
        raise DataError(f"{path}: 'K' has shape {k.shape}, expected 9 numbers (a 3x3 matrix, column-major)")
    if not np.isfinite(k).all():
        raise PoseError(f"{path}: 'K' contains NaN or infinity; fix the intrinsics")
    k = k.reshape(3, 3).T  # column-major storage -> K[row, col]
    if abs(k[2, 0]) > 1e-6 or abs(k[2, 1]) > 1e-6 or abs(k[2, 2] - 1) > 1e-6:
        raise DataError(f"{path}: 'K' read column-major has last row {k[2].tolist()}, expected [0, 0, 1]; "
                        "is it stored row-major?")
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    if fx <= 0 or fy <= 0:
        raise PoseError(f"{path}: focal lengths fx={fx} fy={fy} in 'K' must be positive")
    return float(fx), float(fy), float(cx), float(cy)


def quaternion_pose(pose) -> torch.Tensor:
    """4x4 float64 camera-to-world from 7 numbers ``qx qy qz qw tx ty tz`` (quaternion normalised)."""
    p = torch.as_tensor(pose, dtype=torch.float64)
    q = p[:4] / p[:4].norm()
    x, y, z, w = q.tolist()
    rot = torch.tensor([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ], dtype=torch.float64)
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = rot
    out[:3, 3] = p[4:7]
    return out


def _pose(poses: list, index: int, path: Path, image: Path) -> torch.Tensor:
    where = f"{path} poses[{index}] (frame {image.name})"
    try:
        p = torch.tensor(poses[index], dtype=torch.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected 7 numbers qx qy qz qw tx ty tz") from None
    if p.shape != (7,):
        raise DataError(f"{where}: has shape {tuple(p.shape)}, expected 7 numbers qx qy qz qw tx ty tz")
    if not torch.isfinite(p).all():
        raise PoseError(f"{where}: contains NaN or infinity; drop rgb/{image.name} or re-export the capture")
    qn = float(p[:4].norm())
    if abs(qn - 1) > 1e-2:
        raise PoseError(f"{where}: quaternion has norm {qn:.4g}, expected a unit quaternion; the pose is corrupt")
    mat = quaternion_pose(p)
    check_rigid(mat, where)  # finite, orthonormal, det +1 (raises PoseError naming the file and frame)
    return mat


def _frames(root: Path) -> list[tuple[int, Path]]:
    """(frame index, image) for every integer-named image of ``rgb/``, sorted by index."""
    rgb = root / "rgb"
    if not rgb.is_dir():
        raise DataError(f"{rgb}: folder not found; a Record3D export keeps its colour frames in rgb/N.jpg")
    frames, skipped = [], []
    for p in rgb.iterdir():
        if p.suffix not in IMAGE_SUFFIXES or not p.is_file():
            continue
        try:
            n = int(p.stem)
        except ValueError:
            skipped.append(p.name)
            continue
        if n < 0 or not p.stem.isdigit():
            skipped.append(p.name)
            continue
        frames.append((n, p))
    if skipped:
        warnings.warn(f"{rgb}: {len(skipped)} images without an integer frame number were skipped "
                      f"(e.g. {sorted(skipped)[0]})", stacklevel=3)
    frames.sort()
    for (a, pa), (b, pb) in zip(frames, frames[1:]):
        if a == b:
            raise DataError(f"{rgb}: {pa.name} and {pb.name} both claim frame {a}; remove one")
    if not frames:
        raise DataError(f"{rgb}: no frames named N.jpg; is this a Record3D EXR + JPG export?")
    return frames


def read_record3d(root: str | Path, downscale: float = 1.0, holdout: int = 8) -> SceneData:
    """Read a Record3D "EXR + JPG" export folder (see the module docstring).

    ``root``: the folder holding ``metadata.json``, ``rgb/`` and (optionally) ``depth/``.
    ``downscale``: images are reduced by this factor when loaded; intrinsics follow.
    ``holdout``: every ``holdout``-th view is in the ``"test"`` split (0: no test split).
    """
    root = Path(root)
    check_downscale(Path(root), downscale)
    if holdout < 0 or holdout == 1:
        raise DataError(f"holdout must be 0 (no test split) or >= 2, got {holdout}")
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found; check --data")
    mpath = root / "metadata.json"
    meta = _load_metadata(mpath)
    w, h = _positive(meta, "w", mpath), _positive(meta, "h", mpath)
    fx, fy, cx, cy = _intrinsics(meta, mpath)
    poses = meta["poses"]
    if not isinstance(poses, list):
        raise DataError(f"{mpath}: 'poses' must be a list of [qx, qy, qz, qw, tx, ty, tz] entries")

    frames = _frames(root)
    paths, c2w, intr, sizes, depths = [], [], [], [], []
    for n, img in frames:
        if n >= len(poses):
            raise DataError(f"{img}: frame {n} has no pose ({mpath} lists {len(poses)} poses, 0..{len(poses) - 1}); "
                            "remove the image or use the metadata.json of the same export")
        c2w.append(_pose(poses, n, mpath, img))
        iw, ih, _ = image_header(img)
        if abs(iw / ih - w / h) > 0.01 * w / h:
            raise DataError(f"{img}: image is {iw}x{ih} but {mpath} declares {w:g}x{h:g} (another aspect ratio); "
                            "rotated or cropped frames are not supported")
        out_w, out_h = max(1, int(round(iw / downscale))), max(1, int(round(ih / downscale)))
        sx, sy = out_w / w, out_h / h  # declared size -> loaded size (file size / downscale)
        intr.append([fx * sx, fy * sy, cx * sx, cy * sy])
        sizes.append([out_w, out_h])
        d = root / "depth" / f"{n}.exr"
        depths.append(d if d.is_file() else None)
        paths.append(img)

    # Record3D poses are ARKit camera transforms: OpenGL camera axes (y up, z backward), see module docstring
    c2w_cv = opengl_to_opencv(torch.stack(c2w))
    c2w_n, world, scale = normalize_scene(c2w_cv.float())
    far = 2 * AABB_HALF * math.sqrt(3) + float(c2w_n[:, :3, 3].norm(dim=-1).max())
    v = len(paths)
    if holdout and v >= 2:
        splits = {"train": [i for i in range(v) if i % holdout], "test": list(range(0, v, holdout))}
    else:
        splits = {"train": list(range(v))}
    return SceneData(
        root=root, format="record3d", image_paths=paths,
        intrinsics=torch.tensor(intr, dtype=torch.float32), sizes=torch.tensor(sizes, dtype=torch.int64),
        c2w=c2w_n.float(), splits=splits, aabb=torch.tensor([[-AABB_HALF] * 3, [AABB_HALF] * 3]),
        near=NEAR, far=far, world_transform=world.float(), scale=float(scale), downscale=downscale,
        depth_paths=depths if any(d is not None for d in depths) else None,
        camera_model="pinhole", distortion=torch.zeros(v, 0),
    )


# --- OpenEXR (scanline images, NO/ZIPS/ZIP compression): enough for Record3D depth maps ---------------

_EXR_MAGIC = 20000630
_EXR_TYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_EXR_LINES = {0: 1, 2: 1, 3: 16}  # compression -> scanlines per chunk (NONE, ZIPS, ZIP)


def _exr_header(data: bytes, path: Path) -> tuple[dict, int]:
    """(attributes name -> (type, raw bytes), offset just past the header)."""
    if len(data) < 8 or struct.unpack_from("<i", data, 0)[0] != _EXR_MAGIC:
        raise DataError(f"{path}: not an OpenEXR file (bad magic number)")
    if data[5] & 0x1E:  # tiled, long names, deep data or multi-part
        raise DataError(f"{path}: tiled / deep / multi-part EXR is not supported; export scanline EXR")
    pos, attrs = 8, {}
    while data[pos] != 0:
        end = data.index(b"\0", pos)
        name = data[pos:end].decode()
        tend = data.index(b"\0", end + 1)
        typ = data[end + 1:tend].decode()
        size = struct.unpack_from("<i", data, tend + 1)[0]
        attrs[name] = (typ, data[tend + 5:tend + 5 + size])
        pos = tend + 5 + size
    return attrs, pos + 1


def _unzip_exr(raw: bytes, size: int) -> bytes:
    """Undo OpenEXR ZIP: zlib, then the byte-delta predictor, then the two-halves byte interleave."""
    t = np.frombuffer(zlib.decompress(raw), dtype=np.uint8)
    if t.size != size:
        raise ValueError(f"decompressed {t.size} bytes, expected {size}")
    d = t.astype(np.int64)
    d[1:] -= 128
    t = (np.cumsum(d) & 0xFF).astype(np.uint8)
    out = np.empty_like(t)
    half = (size + 1) // 2
    out[0::2] = t[:half]
    out[1::2] = t[half:]
    return out.tobytes()


def read_depth_exr(path: str | Path, channel: str = "R") -> np.ndarray:
    """Decode one channel of a scanline OpenEXR file (Record3D depth: float16 ``R`` in metres).

    Returns a float32 array [H, W]. Supports NONE, ZIPS and ZIP compression (what Record3D writes);
    other compressions raise DataError.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check the path") from e
    try:
        attrs, pos = _exr_header(data, path)
        chlist = attrs["channels"][1]
        channels, p = [], 0
        while chlist[p] != 0:
            end = chlist.index(b"\0", p)
            ptype = struct.unpack_from("<i", chlist, end + 1)[0]
            channels.append((chlist[p:end].decode(), _EXR_TYPES[ptype]))
            p = end + 17  # pixel type, pLinear + 3 reserved, x and y sampling
        comp = attrs["compression"][1][0]
        x0, y0, x1, y1 = struct.unpack("<4i", attrs["dataWindow"][1])
    except (KeyError, ValueError, IndexError, struct.error) as e:
        raise DataError(f"{path}: malformed OpenEXR header ({e!r})") from e
    names = [c for c, _ in channels]
    if channel not in names:
        raise DataError(f"{path}: no channel '{channel}' (channels: {', '.join(names)})")
    if comp not in _EXR_LINES:
        raise DataError(f"{path}: EXR compression {comp} is not supported (only NONE, ZIPS, ZIP)")
    width, height, lines = x1 - x0 + 1, y1 - y0 + 1, _EXR_LINES[comp]
    nchunks = -(-height // lines)
    offsets = struct.unpack_from(f"<{nchunks}Q", data, pos)
    out = np.empty((height, width), dtype=np.float32)
    row_bytes = sum(width * dt.itemsize for _, dt in channels)
    try:
        for off in offsets:
            y, size = struct.unpack_from("<2i", data, off)
            raw = data[off + 8:off + 8 + size]
            n = min(lines, y1 + 1 - y)
            if comp != 0 and size < n * row_bytes:
                raw = _unzip_exr(raw, n * row_bytes)
            if len(raw) != n * row_bytes:
                raise ValueError(f"chunk at line {y} holds {len(raw)} bytes, expected {n * row_bytes}")
            q = 0
            for r in range(n):
                for name, dt in channels:  # channels are stored in the chlist (alphabetical) order
                    if name == channel:
                        out[y - y0 + r] = np.frombuffer(raw, dtype=dt, count=width, offset=q)
                    q += width * dt.itemsize
    except (ValueError, zlib.error, struct.error) as e:
        raise DataError(f"{path}: corrupt OpenEXR data ({e}); re-export the depth") from e
    return out
