"""Reader for LLFF forward-facing captures: ``poses_bounds.npy`` + ``images[_k]/``.

``poses_bounds.npy`` is float64 [V, 17]. Row i is a row-major 3x5 matrix (15 values) followed by the
near and far depth bounds of view i (z-depth along the optical axis, in file units):

    [ R | t | hwf ]   R: 3x3 camera-to-world rotation, t: camera centre, hwf: (height, width, focal)
                      of the *full-resolution* images, whatever folder is loaded.

The rotation columns of LLFF are the camera axes in the order [down, right, backwards] ("DRB").
nerfkit uses OpenCV axes (x right, y down, z forward), so (columns c0, c1, c2 of the file's R):

    OpenCV x (right)   = c1
    OpenCV y (down)    = c0
    OpenCV z (forward) = -c2

Both frames are right-handed (down x right = backwards; right x down = forward), so the mapping is a
proper rotation of the camera frame and the camera centre is unchanged.

Images: ``images/`` holds full resolution, ``images_k/`` is reduced k times (LLFF's own tooling).
Images are sorted by file name and matched to the rows of ``poses_bounds.npy`` in order.

Normalisation (``normalize=True``), recorded in ``SceneData.world_transform`` and ``scale``:
  * centre: the mean camera centre moves to the origin;
  * scale: ``scale = 1 / (0.75 * min(near bounds))`` (the NeRF paper's ``bd_factor``), so the nearest
    content is at depth 1/0.75 = 1.33 from its camera and the NDC near plane (``near=1``) is in front of
    everything;
  * no rotation: the file's world axes, and so its up direction, are kept.
``near = 0.9 * min(near bounds)`` and ``far = max(far bounds)`` (scaled), as in NeRF's non-NDC LLFF setup.
``aabb``: the axis-aligned box of the corners of every camera's frustum truncated at that camera's own near
and far bounds; a truncated pyramid is the convex hull of its 8 corners, so the box covers every frustum.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch

from ..cameras import check_rigid
from ..cameras.conventions import llff_to_opencv, opencv_to_llff  # noqa: F401 - re-exported
from ..errors import DataError, PoseError
from .images import image_header
from .scene import SceneData

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
BD_FACTOR = 0.75  # nearest bound -> 1 / 0.75 after scaling (NeRF's LLFF convention)
_FOLDER = re.compile(r"images(?:_(\d+))?$")


# --- NDC ----------------------------------------------------------------------------------------

def ndc_points(points: torch.Tensor, focal: float, width: float, height: float, near: float = 1.0) -> torch.Tensor:
    """Map camera-frame points [N, 3] (OpenCV axes, z > 0 in front) to NDC [N, 3].

    ``x' = 2f/W * x/z``, ``y' = 2f/H * y/z``, ``z' = 1 - 2 near / z``: the image spans [-1, 1] in x' and y'
    (y' down, like the pixel rows) and z' goes from -1 at depth ``near`` to 1 at infinite depth.
    """
    x, y, z = points.unbind(-1)
    return torch.stack([2 * focal / width * x / z, 2 * focal / height * y / z, 1 - 2 * near / z], -1)


def ndc_rays(
    origins: torch.Tensor, dirs: torch.Tensor, focal: float, width: float, height: float, near: float = 1.0,
    ref_c2w: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays in normalised device coordinates for forward-facing scenes (NeRF paper, appendix C), OpenCV axes.

    ``origins, dirs``: [N, 3]. The NDC frame is a reference camera looking along +z (x right, y down):
    the rays are taken to be expressed in it, or, when ``ref_c2w`` ([3|4, 4] OpenCV c2w, e.g.
    :func:`average_pose` of the views) is given, they are first moved into it. ``focal``, ``width`` and
    ``height`` are that camera's, in pixels. Returns NDC origins [N, 3] and directions [N, 3] such that
    ``o' + t' d'`` for t' in [0, 1) covers the world ray from depth ``near`` (z' = -1) to infinity (z' = 1);
    t' = 1 is infinite depth. Rays must point forward (d_z > 0); others give inf/NaN.

    Derivation. The paper's formula uses OpenGL axes (camera looks down -z, y up):
      o'_gl = (-f/(W/2) o_x/o_z, -f/(H/2) o_y/o_z, 1 + 2n/o_z),
      d'_gl = (-f/(W/2) (d_x/d_z - o_x/o_z), -f/(H/2) (d_y/d_z - o_y/o_z), -2n/o_z),
    after sliding the origin onto the near plane o_z = -n. OpenCV coordinates are (x, -y, -z) of OpenGL
    ones. Substituting y -> -y, z -> -z (for o and d) gives x' = 2f/W o_x/o_z, y' = -2f/H o_y/o_z,
    z' = 1 - 2n/o_z; we then negate y' so NDC y points down like OpenCV's, and keep z' increasing with
    depth (the NDC camera looks along +z'). Hence, with the origin slid to o_z = +n (t = (n - o_z)/d_z):
      o' = (2f/W o_x/o_z, 2f/H o_y/o_z, 1 - 2n/o_z),
      d' = (2f/W (d_x/d_z - o_x/o_z), 2f/H (d_y/d_z - o_y/o_z), 2n/o_z),
    which is :func:`ndc_points` of the ray's points: as depth -> inf the point tends to o' + d'.
    NDC is a projective map, so straight world rays stay straight.
    """
    if ref_c2w is not None:
        rot = ref_c2w[:3, :3].to(origins.dtype)
        origins = (origins - ref_c2w[:3, 3].to(origins.dtype)) @ rot  # R^T (o - c), row vectors
        dirs = dirs @ rot
    t = (near - origins[..., 2]) / dirs[..., 2]  # slide the origin onto the near plane z = near
    o = origins + t[..., None] * dirs
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = dirs.unbind(-1)
    ax, ay = 2 * focal / width, 2 * focal / height
    o_ndc = torch.stack([ax * ox / oz, ay * oy / oz, 1 - 2 * near / oz], -1)
    d_ndc = torch.stack([ax * (dx / dz - ox / oz), ay * (dy / dz - oy / oz), 2 * near / oz], -1)
    return o_ndc, d_ndc


def average_pose(c2w: torch.Tensor) -> torch.Tensor:
    """Mean camera [4, 4] of [V, 3|4, 4] OpenCV poses: mean centre, mean forward (z) and mean down (y),
    re-orthonormalised (z kept, y made orthogonal to it, x = y cross z)."""
    c = c2w[:, :3, 3].mean(0)
    z = c2w[:, :3, 2].mean(0)
    z = z / z.norm()
    y = c2w[:, :3, 1].mean(0)
    y = y - (y @ z) * z
    y = y / y.norm()
    x = torch.linalg.cross(y, z)
    out = torch.eye(4, dtype=c2w.dtype)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = x, y, z, c
    return out


# --- reader -------------------------------------------------------------------------------------

def _image_folders(root: Path) -> dict[int, Path]:
    """Factor -> folder for ``images`` (factor 1) and every ``images_k``."""
    found = {}
    for p in root.iterdir() if root.is_dir() else ():
        m = _FOLDER.match(p.name)
        if m and p.is_dir():
            k = int(m.group(1) or 1)
            if k >= 1 and (k not in found or p.name == "images"):
                found[k] = p
    return found


def _pick_folder(root: Path, downscale: float | None) -> tuple[Path, float]:
    """The image folder to read and the extra factor to reduce its images by when loading."""
    folders = _image_folders(root)
    if not folders:
        raise DataError(f"{root}: no 'images' or 'images_<k>' folder next to poses_bounds.npy; "
                        "put the images there (LLFF layout)")
    if downscale is None:
        return folders[min(folders)], 1.0
    if not math.isfinite(downscale) or downscale < 1:
        raise DataError(f"{root}: downscale must be >= 1 or None, got {downscale}; pass --downscale 1 or more "
                        "(or leave it out to use the largest images present)")
    usable = [k for k in folders if k <= downscale]
    if not usable:
        have = ", ".join(folders[k].name for k in sorted(folders))
        raise DataError(f"{root}: no image folder for downscale={downscale:g} (found {have}); "
                        f"pass downscale={min(folders)} (or None to use the largest images present)")
    k = max(usable)  # images_k itself when present, else a larger folder reduced further at load time
    return folders[k], downscale / k


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _load_poses_bounds(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: not found; an LLFF scene needs poses_bounds.npy (run LLFF's imgs2poses.py)")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        why = "it is not a .npy array or holds Python objects, which are never loaded" if "pickle" in str(e) else str(e)
        raise DataError(f"{path}: cannot read as a .npy array ({why}); regenerate it with imgs2poses.py") from e
    if arr.ndim != 2 or arr.shape[1] != 17 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: array has shape {arr.shape} ({arr.dtype}), expected [V, 17] numbers "
                        "(3x5 pose-hwf matrix + near, far per image); regenerate it with imgs2poses.py")
    return arr.astype(np.float64)


def read_llff(root: str | Path, downscale: float | None = None, holdout: int = 8, normalize: bool = True) -> SceneData:
    """Read an LLFF forward-facing scene folder (``poses_bounds.npy`` + ``images[_k]/``).

    ``downscale``: k picks ``images_k`` (``images`` for 1); when that folder is missing, the largest
    folder with a smaller factor is reduced further at load time (``SceneData.downscale``). None: the
    largest images present, loaded as they are.
    ``holdout``: every ``holdout``-th view (0, holdout, 2*holdout, ...) is "test", the rest "train"
    (the usual LLFF protocol); 0 puts every view in "train".
    ``normalize``: centre on the mean camera and scale (see the module docstring); False keeps file units.
    """
    root = Path(root)
    pb_path = root / "poses_bounds.npy"
    arr = _load_poses_bounds(pb_path)
    n_views = arr.shape[0]
    folder, load_factor = _pick_folder(root, downscale)
    paths = _list_images(folder)
    if len(paths) != n_views:
        raise DataError(f"{folder}: {len(paths)} images but {pb_path} has {n_views} poses; each image "
                        "(sorted by name) needs one row: remove extra images or regenerate poses_bounds.npy")
    if holdout < 0:
        raise DataError(f"holdout must be >= 0, got {holdout}")

    mats = torch.from_numpy(arr[:, :15].reshape(n_views, 3, 5))
    bounds = torch.from_numpy(arr[:, 15:17])
    hwf = mats[:, :, 4]  # [V, 3] full-resolution height, width, focal
    bad = ~(torch.isfinite(hwf).all(-1) & (hwf > 0).all(-1))
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise PoseError(f"{pb_path}: view #{i} has height/width/focal {hwf[i].tolist()}; they must be finite "
                        "and positive (regenerate poses_bounds.npy)")
    bad = ~(torch.isfinite(bounds).all(-1) & (bounds[:, 0] > 0) & (bounds[:, 0] < bounds[:, 1]))
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise PoseError(f"{pb_path}: view #{i} has near/far bounds {bounds[i].tolist()}; they must be finite "
                        "with 0 < near < far (regenerate poses_bounds.npy)")
    # LLFF [down, right, backwards] -> OpenCV [right, down, forward]; see llff_to_opencv.
    c2w = check_rigid(llff_to_opencv(mats), f"{pb_path}").double()  # [V, 4, 4]

    # Image size from the file headers; hwf is at full resolution, so scale by actual / stored size.
    sizes = [image_header(p)[:2] for p in paths]
    w_img, h_img = sizes[0]
    for p, s in zip(paths, sizes):
        if s != (w_img, h_img):
            raise DataError(f"{p}: image is {s[0]}x{s[1]} but {paths[0]} is {w_img}x{h_img}; "
                            "all images of an LLFF scene must share one size")
    h_full, w_full, f_full = hwf[:, 0], hwf[:, 1], hwf[:, 2]
    # aspect check: the stored width, scaled to the actual height, must match the actual width (+-1 px rounding)
    bad = (w_full * h_img / h_full - w_img).abs() > 1.0
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise DataError(f"{paths[i]}: image is {w_img}x{h_img} but {pb_path} stores {w_full[i]:g}x{h_full[i]:g} "
                        "(width x height) for it: the aspect ratios differ; were the images cropped or rotated? "
                        "Regenerate poses_bounds.npy for these images")
    out_w, out_h = max(1, int(round(w_img / load_factor))), max(1, int(round(h_img / load_factor)))
    fx, fy = f_full * out_w / w_full, f_full * out_h / h_full
    intr = torch.stack([fx, fy, torch.full_like(fx, out_w / 2), torch.full_like(fy, out_h / 2)], -1)

    if normalize:
        centre = c2w[:, :3, 3].mean(0)
        scale = 1.0 / (BD_FACTOR * float(bounds[:, 0].min()))
    else:
        centre, scale = torch.zeros(3, dtype=torch.float64), 1.0
    world = torch.eye(4, dtype=torch.float64)
    world[:3, :3] *= scale
    world[:3, 3] = -scale * centre
    c2w_scene = c2w.clone()
    c2w_scene[:, :3, 3] = scale * (c2w[:, :3, 3] - centre)  # rotations unchanged: world_transform is scale+shift
    bounds_scene = bounds * scale

    # aabb: the 8 corners of every camera's frustum between its own near and far depth
    us = torch.tensor([0.0, out_w, 0.0, out_w], dtype=torch.float64)
    vs = torch.tensor([0.0, 0.0, out_h, out_h], dtype=torch.float64)
    k64 = intr.double()
    rays = torch.stack([(us - k64[:, 2:3]) / k64[:, 0:1], (vs - k64[:, 3:4]) / k64[:, 1:2],
                        torch.ones(n_views, 4, dtype=torch.float64)], -1)  # [V, 4, 3], z = 1
    corners = torch.cat([rays * bounds_scene[:, 0, None, None], rays * bounds_scene[:, 1, None, None]], 1)
    corners = corners @ c2w_scene[:, :3, :3].transpose(-1, -2) + c2w_scene[:, None, :3, 3]  # [V, 8, 3]
    corners = corners.reshape(-1, 3)
    aabb = torch.stack([corners.amin(0), corners.amax(0)]).float()

    test = list(range(0, n_views, holdout)) if holdout > 0 else []
    train = [i for i in range(n_views) if i not in set(test)]
    return SceneData(
        root=root, format="llff", image_paths=paths, intrinsics=intr.float(),
        sizes=torch.tensor([[out_w, out_h]] * n_views, dtype=torch.int64), c2w=c2w_scene.float(),
        splits={"train": train, "val": [], "test": test}, aabb=aabb,
        near=0.9 * float(bounds_scene[:, 0].min()), far=float(bounds_scene[:, 1].max()),
        world_transform=world.float(), scale=scale, downscale=load_factor, has_alpha=False,
    )
