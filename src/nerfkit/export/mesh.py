"""Mesh export: marching cubes over a trained model's density, coloured by its radiance field.

1. The density is sampled on a regular grid over the scene box (or a crop box) in chunks, so
   memory is bounded by the grid itself (4 bytes per cell).
2. Cavities are filled: trained fields are often hollow behind an opaque shell, and marching cubes
   would wrap the hollow with an inner wall. Low-density space that is not connected to the box's
   border through openings wider than ``gap`` is raised above the threshold (:func:`fill_cavities`).
3. scikit-image's marching cubes extracts the iso-surface at ``threshold``.
4. Vertex colours are what a camera looking straight at the surface renders there: a short ray along
   the inward normal, across the vertex, volume rendered with ``color_samples`` samples.
5. Vertices are mapped back to the dataset's original frame with the inverse of
   ``scene.world_transform`` and written with trimesh (PLY, OBJ or GLB by the file extension).

Density units: the density is per unit length of the *scene* frame. A threshold ``s`` marks where a
ray loses about ``1 - exp(-s * L)`` of its light over a length ``L``; the default 10 is where a
ray crossing 0.1 scene units (~2% of the synthetic scenes' box diagonal) is ~63% blocked. On the
synthetic scene thresholds 5 to 20 all give a Chamfer distance under 0.6% of the content diagonal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import files
from ..errors import ConfigError, NerfkitError

MESH_FORMATS = (".ply", ".obj", ".glb")


class ExportError(NerfkitError):
    """An export cannot be produced (no surface, bad output path, unwritable folder)."""


@dataclass
class MeshOptions:
    resolution: int = 256
    """Grid samples along the longest side of the box; the other sides get the same spacing."""
    threshold: float = 10.0
    """Density level of the surface (scene units; see the module docstring)."""
    crop: tuple[float, float, float, float, float, float] | None = None
    """(xmin, ymin, zmin, xmax, ymax, zmax) in the dataset's original frame; None: the whole scene box."""
    fill_cavities: bool = True
    """Fill low-density space that the outside does not reach through openings wider than ``gap``
    (trained fields are often hollow behind their opaque shell; without this the mesh gets inner walls)."""
    gap: float = 1 / 32
    """Narrowest opening, as a fraction of the box's longest side, through which outside space is
    followed into the model when filling cavities (narrower leaks in the shell are closed)."""
    keep_largest: bool = False
    """Keep only the connected component with the most faces (drops floaters)."""
    chunk: int = 1 << 18
    """Points per density / colour query (bounds memory)."""
    colors: bool = True
    """Colour the vertices from the radiance field."""
    color_samples: int = 16
    """Samples of the short ray rendered along each vertex's inward normal (1: the colour at the vertex)."""


@dataclass
class MeshResult:
    """``vertices`` [V, 3] float32 in the original frame, ``faces`` [F, 3] int64, ``colors`` [V, 3] uint8
    or None, ``normals`` [V, 3] (outward, original frame), ``n_components`` before any filtering and the
    largest component's share of the faces."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None
    normals: np.ndarray
    n_components: int
    largest_share: float


def model_device(model) -> torch.device:
    return next(iter(model.buffers()), torch.empty(0)).device


def to_original(points: np.ndarray | torch.Tensor, world_transform: torch.Tensor) -> np.ndarray:
    """Scene-frame points [P, 3] -> the dataset's original frame (inverse of ``world_transform`` [4, 4])."""
    inv = torch.linalg.inv(world_transform.double()).numpy()
    p = np.asarray(points, dtype=np.float64)
    return p @ inv[:3, :3].T + inv[:3, 3]


def to_scene(points: np.ndarray, world_transform: torch.Tensor) -> np.ndarray:
    """Original-frame points [P, 3] -> scene frame (``world_transform`` [4, 4])."""
    t = world_transform.double().numpy()
    return np.asarray(points, dtype=np.float64) @ t[:3, :3].T + t[:3, 3]


def grid_box(aabb: torch.Tensor, world_transform: torch.Tensor, crop=None) -> np.ndarray:
    """The scene-frame box [2, 3] to sample: ``aabb``, or the scene-frame bounds of the original-frame
    ``crop`` box (its 8 corners mapped by ``world_transform``) clipped to ``aabb``."""
    box = aabb.double().cpu().numpy()
    if crop is None:
        return box
    c = np.asarray(crop, dtype=np.float64).reshape(2, 3)
    if not np.all(c[1] > c[0]):
        raise ConfigError(f"--crop {list(crop)}: every max must exceed its min (xmin ymin zmin xmax ymax zmax)")
    corners = np.stack(np.meshgrid(*c.T, indexing="ij"), -1).reshape(-1, 3)  # [8, 3]
    sc = to_scene(corners, world_transform)
    lo, hi = np.maximum(sc.min(0), box[0]), np.minimum(sc.max(0), box[1])
    if not np.all(hi > lo):
        raise ConfigError(f"--crop {list(crop)}: the crop box does not overlap the scene box "
                          f"{to_original(box, world_transform).round(3).tolist()} (original frame)")
    return np.stack([lo, hi])


@torch.no_grad()
def density_grid(model, box: np.ndarray, resolution: int, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``model.density`` on a grid over ``box`` [2, 3] (scene frame).

    The longest side gets ``resolution`` samples (corners included), the others the same spacing.
    Returns the densities [X, Y, Z] float32 and the spacing [3]. Evaluated ``chunk`` points at a time.
    """
    if resolution < 8:
        raise ConfigError(f"--resolution {resolution}: use at least 8 samples per side (default 256)")
    ext = box[1] - box[0]
    step = float(ext.max()) / (resolution - 1)
    counts = np.maximum(2, np.round(ext / step).astype(int) + 1)
    spacing = ext / (counts - 1)
    axes = [torch.linspace(float(box[0, i]), float(box[1, i]), int(counts[i])) for i in range(3)]
    dev = model_device(model)
    out = np.empty(tuple(counts), dtype=np.float32)
    yz = torch.stack(torch.meshgrid(axes[1], axes[2], indexing="ij"), -1).reshape(-1, 2)  # [Y*Z, 2]
    slabs = max(1, chunk // yz.shape[0])  # x-slices per query
    was_training = model.training
    model.eval()
    try:
        for i in range(0, int(counts[0]), slabs):
            xs = axes[0][i:i + slabs]
            pts = torch.cat([xs[:, None, None].expand(-1, yz.shape[0], 1),
                             yz[None].expand(len(xs), -1, -1)], -1).reshape(-1, 3)  # [s*Y*Z, 3]
            sig = torch.cat([model.density(p.to(dev)).float().cpu() for p in pts.split(chunk)])
            out[i:i + len(xs)] = sig.view(len(xs), int(counts[1]), int(counts[2])).numpy()
    finally:
        model.train(was_training)
    return out, spacing


def _density_summary(grid: np.ndarray) -> str:
    q = np.percentile(grid, [50, 90, 99, 99.9])
    return (f"densities in the box range {grid.min():.3g} .. {grid.max():.3g} "
            f"(50th/90th/99th/99.9th percentiles {q[0]:.3g} / {q[1]:.3g} / {q[2]:.3g} / {q[3]:.3g})")


def suggest_threshold(grid: np.ndarray) -> float:
    """A threshold that certainly crosses the field: the geometric middle of the 99.9th percentile and the max
    (the surface encloses the densest ~0.1% of the box or less)."""
    hi, top = float(np.percentile(grid, 99.9)), float(grid.max())
    lo = max(hi, 1e-3 * top, 1e-6)
    return float(np.sqrt(lo * top)) if top > lo else top / 2


def fill_cavities(grid: np.ndarray, threshold: float, radius: int) -> np.ndarray:
    """``grid`` [X, Y, Z] with the low-density space (< ``threshold``) that is not outside raised above it.

    Outside is the low-density space connected to the grid's border after an erosion by ``radius``
    cells (so leaks narrower than about 2 ``radius`` cells do not connect), grown back by ``radius``
    cells within the low-density space. Everything else below the threshold is a cavity and is set to
    twice the threshold, so marching cubes keeps only the outer surface.
    """
    from scipy import ndimage

    free = grid < threshold
    step = ndimage.generate_binary_structure(3, 1)
    core = ndimage.binary_erosion(free, step, iterations=radius, border_value=1)
    labels, _ = ndimage.label(core)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(),
                                       labels[:, :, [0, -1]].ravel()]))
    outside = np.isin(labels, border[border > 0])
    del labels, core
    outside = ndimage.binary_dilation(outside, step, iterations=radius, mask=free)
    cavity = free & ~outside
    if not cavity.any():
        return grid
    out = grid.copy()
    out[cavity] = 2 * threshold
    return out


def _components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Connected-component label of each face [F] (faces sharing a vertex are connected)."""
    from scipy.sparse import bmat, coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = len(faces)
    rows = np.repeat(np.arange(f), 3)
    m = coo_matrix((np.ones(3 * f, dtype=np.int8), (rows, faces.reshape(-1))), shape=(f, n_vertices)).tocsr()
    g = bmat([[None, m], [m.T, None]]).tocsr()  # faces and vertices in one bipartite graph
    _, labels = connected_components(g, directed=False)
    return labels[:f]


@torch.no_grad()
def vertex_colors(model, vertices: torch.Tensor, normals: torch.Tensor, reach: float, samples: int = 16,
                  chunk: int = 1 << 18) -> np.ndarray:
    """Colour [V, 3] uint8 that a camera looking straight at the surface renders at each vertex.

    A short ray through each scene-frame vertex [V, 3] along its inward normal (``-normals``, outward unit
    normals [V, 3]) from ``reach`` outside to ``reach`` inside is volume rendered with ``samples`` samples
    (density and colour of the field, normalised by the opacity gathered). ``samples`` = 1 queries the
    colour at the vertex itself.
    """
    dev = model_device(model)
    k = max(1, int(samples))
    t = torch.linspace(-reach, reach, k, device=dev) if k > 1 else torch.zeros(1, device=dev)  # [K] inward
    delta = 2 * reach / max(1, k - 1)
    per = max(1, chunk // k)
    was_training = model.training
    model.eval()
    out = []
    try:
        for v, n in zip(vertices.split(per), normals.split(per)):
            v, n = v.to(dev), n.to(dev)
            pts = (v[:, None] - n[:, None] * t[None, :, None]).reshape(-1, 3)  # [B*K, 3]
            dirs = (-n)[:, None].expand(-1, k, 3).reshape(-1, 3)
            rgb = model.query_color(pts, dirs).float().view(-1, k, 3)
            if k == 1:
                out.append(rgb[:, 0].cpu())
                continue
            alpha = 1 - torch.exp(-model.density(pts).float().view(-1, k) * delta)  # [B, K]
            trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], 1), 1)
            w = alpha * trans
            mean = rgb.mean(1)  # where the short ray gathers nothing (never at a surface vertex)
            col = (w[..., None] * rgb).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-6)
            out.append(torch.where(w.sum(1, keepdim=True) > 1e-3, col, mean).cpu())
    finally:
        model.train(was_training)
    rgb = torch.cat(out) if out else torch.zeros(0, 3)
    return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def extract_mesh(model, scene, options: MeshOptions | None = None) -> MeshResult:
    """Marching cubes of ``model``'s density over ``scene``'s box -> :class:`MeshResult` in the original frame.

    Raises :class:`ExportError` when the density never crosses ``options.threshold`` in the box.
    """
    from skimage import measure

    o = options or MeshOptions()
    box = grid_box(scene.aabb, scene.world_transform, o.crop)
    grid, spacing = density_grid(model, box, o.resolution, o.chunk)
    if o.crop is not None:  # zero the cells outside the crop box (an oriented box in the scene frame)
        grid = _mask_crop(grid, box, spacing, o.crop, scene.world_transform)
    if not np.isfinite(grid).all():
        raise ExportError("the model's density is not finite everywhere in the box; the checkpoint is damaged")
    if not (grid.min() < o.threshold < grid.max()):
        raise ExportError(f"no surface at density threshold {o.threshold:g}: {_density_summary(grid)}; "
                          f"try --threshold {suggest_threshold(grid):.3g}")
    if o.fill_cavities:
        radius = max(1, int(round(o.gap * (max(grid.shape) - 1))))
        grid = fill_cavities(grid, o.threshold, radius)
        if not grid.min() < o.threshold:
            raise ExportError(f"no surface at density threshold {o.threshold:g}: no low-density space in the box "
                              "is connected to its border; enlarge --crop or raise --threshold")
    verts, faces, normals, _ = measure.marching_cubes(grid, level=o.threshold, spacing=tuple(spacing),
                                                      gradient_direction="descent", allow_degenerate=False)
    verts = verts + box[0]
    # skimage's normals follow the descending density: outward from the dense inside
    normals = normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    faces = np.ascontiguousarray(faces[:, ::-1]).astype(np.int64)  # counter-clockwise seen from outside
    labels = _components(faces, len(verts))
    sizes = np.bincount(labels)
    n_comp, share = int(len(sizes)), float(sizes.max() / max(1, len(faces)))
    if o.keep_largest and n_comp > 1:
        faces = faces[labels == sizes.argmax()]
        used = np.unique(faces)
        remap = np.full(len(verts), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        verts, normals, faces = verts[used], normals[used], remap[faces]
    colors = None
    if o.colors:
        colors = vertex_colors(model, torch.from_numpy(verts).float(), torch.from_numpy(normals).float(),
                               reach=2 * float(spacing.max()), samples=o.color_samples, chunk=o.chunk)
    rot = torch.linalg.inv(scene.world_transform.double())[:3, :3].numpy()
    n_orig = normals @ rot.T  # a similarity keeps directions up to scale
    n_orig /= np.linalg.norm(n_orig, axis=1, keepdims=True).clip(1e-12)
    return MeshResult(to_original(verts, scene.world_transform).astype(np.float32), faces, colors,
                      n_orig.astype(np.float32), n_comp, share)


def _mask_crop(grid: np.ndarray, box: np.ndarray, spacing: np.ndarray, crop, world_transform) -> np.ndarray:
    """``grid`` with zero density at the samples whose original-frame position lies outside ``crop``."""
    c = np.asarray(crop, dtype=np.float64).reshape(2, 3)
    axes = [box[0, i] + spacing[i] * np.arange(grid.shape[i]) for i in range(3)]
    out = grid.copy()
    yz = np.stack(np.meshgrid(axes[1], axes[2], indexing="ij"), -1).reshape(-1, 2)  # [Y*Z, 2]
    for i, x in enumerate(axes[0]):  # one x-slice at a time keeps the extra memory small
        p = np.concatenate([np.full((len(yz), 1), x), yz], 1)
        q = to_original(p, world_transform)
        inside = np.all((q >= c[0]) & (q <= c[1]), axis=1).reshape(grid.shape[1:])
        out[i][~inside] = 0.0
    return out


# ----------------------------------------------------------------------------- writing files

def check_output(path: str | Path, overwrite: bool, formats: tuple[str, ...]) -> Path:
    """Validate an output file before any work: known extension, no clobbering, writable folder.

    Creates the parent folder when missing; probes it by creating (and removing) a temporary file.
    """
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise ExportError(f"{path}: unknown output format '{path.suffix}'; use one of {', '.join(formats)}")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name ending in {', '.join(formats)}")
    if path.exists() and not overwrite:
        raise ExportError(f"{path}: already exists; pass --overwrite to replace it or choose another --output")
    probe = path.with_name(f".{path.name}.probe-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ExportError(f"{path}: cannot write to the folder {path.parent} ({e.strerror or e}); "
                          "choose a writable --output") from None
    return path


def write_atomic(path: Path, data: bytes) -> Path:
    """:func:`nerfkit.data.files.write_atomic` with the export's error message."""
    try:
        return files.write_atomic(path, data)
    except OSError as e:
        raise ExportError(f"{path}: could not be written ({e.strerror or e}); choose a writable --output") from None


def save_mesh(mesh: MeshResult, path: str | Path) -> Path:
    """Write ``mesh`` to ``path`` as PLY (binary), OBJ or GLB by the extension, atomically."""
    import trimesh

    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if f".{kind}" not in MESH_FORMATS:
        raise ExportError(f"{path}: unknown mesh format '{path.suffix}'; use one of {', '.join(MESH_FORMATS)}")
    tm = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, vertex_normals=mesh.normals,
                         vertex_colors=mesh.colors, process=False)
    data = tm.export(file_type=kind)
    return write_atomic(path, data.encode() if isinstance(data, str) else data)


def export_mesh(model, scene, output: str | Path, options: MeshOptions | None = None,
                overwrite: bool = False) -> tuple[Path, MeshResult]:
    """Check ``output``, extract the mesh and write it; returns the path and the mesh."""
    out = check_output(output, overwrite, MESH_FORMATS)
    mesh = extract_mesh(model, scene, options)
    return save_mesh(mesh, out), mesh
