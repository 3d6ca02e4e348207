"""An analytic demo scene, ray traced exactly, written in the Blender format.

The scene is a union of disjoint solids with procedural textures: a large sphere (latitude /
longitude checker), an axis-aligned box (3D checker), a capped cylinder (helical stripes, rings
on the caps) and a small sphere (smooth colour waves). Checker cells hold random colours from a
seeded palette, alternating light and dark, so features are distinctive (SIFT) yet a few pixels
wide at 128 px (learnable). Shading is Lambert under two directional lights plus ambient, with a
Blinn-Phong highlight, so colour depends on the view direction.

World frame as in Blender scenes: +z up, content inside about [-1, 1]^3, cameras on the sphere
of radius 4 looking at the origin. Cameras inside nerfkit use OpenCV axes; the files get OpenGL
axes through :func:`opencv_to_opengl`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..cameras import Intrinsics, generate_rays, opencv_to_opengl, pixel_grid, ray_aabb
from ..errors import ConfigError, DataError
from .images import save_png

FORMAT_VERSION = 1
CAMERA_ANGLE_X = 0.6911112070083618  # ~39.6 degrees, as in the original NeRF Blender scenes
RADIUS = 4.0
AMBIENT = 0.3
LIGHTS = (((0.5, -0.3, 0.8), 0.7), ((-0.6, 0.5, 0.3), 0.35))  # (direction towards the light, intensity)
SPECULAR, SHININESS = 0.4, 40.0


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _inf(like: torch.Tensor) -> torch.Tensor:
    return torch.full_like(like, math.inf)


# ----------------------------------------------------------------------------- solids
# Each solid: intersect(o [N,3], d [N,3]) -> (t [N], normal [N,3]) for the entry point of rays
# starting outside it (t = inf on a miss; t is in units of |d|); sdf(p [N,3]) -> [N] exact signed
# distance; sample(n, gen) -> [n,3] points uniform by area; area; bounds [2,3];
# texture(p [N,3], normal [N,3]) -> (kind, coords) with one texture cell per unit of coords.

@dataclass(frozen=True)
class Sphere:
    center: tuple[float, float, float]
    radius: float
    texture_kind: str = "checker"  # "checker" (latitude/longitude cells) or "waves"

    def intersect(self, o, d):
        q = o - o.new_tensor(self.center)
        a, b = (d * d).sum(-1), (q * d).sum(-1)
        disc = b * b - a * ((q * q).sum(-1) - self.radius ** 2)
        t = (-b - disc.clamp_min(0).sqrt()) / a
        t = torch.where((disc >= 0) & (t > 0), t, _inf(t))
        normal = (q + t.nan_to_num(posinf=0)[:, None] * d) / self.radius
        return t, normal

    def sdf(self, p):
        return (p - p.new_tensor(self.center)).norm(dim=-1) - self.radius

    def sample(self, n, gen):
        g = _unit(torch.randn(n, 3, generator=gen, dtype=torch.float64))
        return torch.tensor(self.center, dtype=torch.float64) + self.radius * g

    @property
    def area(self):
        return 4 * math.pi * self.radius ** 2

    @property
    def bounds(self):
        c = torch.tensor(self.center)
        return torch.stack([c - self.radius, c + self.radius])

    def texture(self, p, normal):
        if self.texture_kind == "waves":
            return "waves", p
        lon = torch.atan2(normal[:, 1], normal[:, 0]) / (2 * math.pi) + 0.5  # [0, 1]
        band = torch.floor(torch.acos(normal[:, 2].clamp(-1, 1)) / math.pi * 8).clamp(0, 7)
        cols = torch.where((band == 0) | (band == 7), 4.0, 16.0)  # fewer cells near the poles
        return "checker", torch.stack([lon * cols, band + 0.5], -1)


@dataclass(frozen=True)
class Box:
    center: tuple[float, float, float]
    half: tuple[float, float, float]  # half extents along x, y, z
    cell: float = 0.2

    def intersect(self, o, d):
        c, h = o.new_tensor(self.center), o.new_tensor(self.half)
        t_near, _, hit = ray_aabb(o, d, torch.stack([c - h, c + h]))
        t = torch.where(hit & (t_near > 0), t_near, _inf(t_near))
        # the face hit is the axis where the point lies furthest out, relative to the half extent
        rel = (o + t.nan_to_num(posinf=0)[:, None] * d - c) / h
        axis = rel.abs().argmax(-1, keepdim=True)
        normal = torch.zeros_like(o).scatter_(-1, axis, rel.gather(-1, axis).sign())
        return t, normal

    def sdf(self, p):
        q = (p - p.new_tensor(self.center)).abs() - p.new_tensor(self.half)
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)

    def sample(self, n, gen):
        h = torch.tensor(self.half, dtype=torch.float64)
        face_area = torch.stack([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)  # -x,-y,-z,+x,+y,+z
        face = torch.multinomial(face_area, n, replacement=True, generator=gen)
        p = (2 * torch.rand(n, 3, generator=gen, dtype=torch.float64) - 1) * h
        axis, sign = face % 3, torch.where(face < 3, -1.0, 1.0).double()
        p[torch.arange(n), axis] = sign * h[axis]
        return p + torch.tensor(self.center, dtype=torch.float64)

    @property
    def area(self):
        x, y, z = self.half
        return 8 * (x * y + y * z + x * z)

    @property
    def bounds(self):
        c, h = torch.tensor(self.center), torch.tensor(self.half)
        return torch.stack([c - h, c + h])

    def texture(self, p, normal):
        # nudge inwards so the face coordinate sits strictly inside one cell layer
        lo = p.new_tensor(self.center) - p.new_tensor(self.half)
        return "checker", (p - lo - 0.01 * normal) / self.cell


@dataclass(frozen=True)
class Cylinder:
    center: tuple[float, float, float]
    radius: float
    half_height: float  # axis along world z

    def intersect(self, o, d):
        q = o - o.new_tensor(self.center)
        r, h = self.radius, self.half_height
        # side: |q_xy + t d_xy| = r
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = q[:, 0] * d[:, 0] + q[:, 1] * d[:, 1]
        disc = b * b - a * (q[:, 0] ** 2 + q[:, 1] ** 2 - r * r)
        ts = (-b - disc.clamp_min(0).sqrt()) / a.clamp_min(1e-30)
        ok_s = (a > 0) & (disc >= 0) & (ts > 0) & ((q[:, 2] + ts * d[:, 2]).abs() <= h)
        # entry cap: the top cap for rays going down, the bottom cap for rays going up
        zc = -h * torch.sign(d[:, 2])
        tc = (zc - q[:, 2]) / d[:, 2]
        pc = q + tc.nan_to_num(0, 0, 0)[:, None] * d
        ok_c = (d[:, 2] != 0) & (tc > 0) & (pc[:, 0] ** 2 + pc[:, 1] ** 2 <= r * r)
        ts, tc = torch.where(ok_s, ts, _inf(ts)), torch.where(ok_c, tc, _inf(tc))
        side = ts <= tc
        t = torch.minimum(ts, tc)
        ps = q + ts.nan_to_num(posinf=0)[:, None] * d
        n_side = torch.stack([ps[:, 0] / r, ps[:, 1] / r, torch.zeros_like(t)], -1)
        n_cap = torch.stack([torch.zeros_like(t), torch.zeros_like(t), torch.sign(zc)], -1)
        return t, torch.where(side[:, None], n_side, n_cap)

    def sdf(self, p):
        q = p - p.new_tensor(self.center)
        dr = q[:, :2].norm(dim=-1) - self.radius
        dz = q[:, 2].abs() - self.half_height
        d2 = torch.stack([dr, dz], -1)
        return d2.amax(-1).clamp_max(0) + d2.clamp_min(0).norm(dim=-1)

    def sample(self, n, gen):
        r, h = self.radius, self.half_height
        part = torch.multinomial(torch.tensor([2 * math.pi * r * 2 * h, math.pi * r * r, math.pi * r * r]),
                                 n, replacement=True, generator=gen)  # side, top, bottom
        u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        theta = 2 * math.pi * u[:, 0]
        rad = torch.where(part == 0, torch.tensor(r, dtype=torch.float64), r * u[:, 1].sqrt())  # uniform disc
        z = torch.where(part == 0, (2 * u[:, 2] - 1) * h, torch.where(part == 1, h, -h)).double()
        p = torch.stack([rad * theta.cos(), rad * theta.sin(), z], -1)
        return p + torch.tensor(self.center, dtype=torch.float64)

    @property
    def area(self):
        return 2 * math.pi * self.radius * (2 * self.half_height + self.radius)

    @property
    def bounds(self):
        c = torch.tensor(self.center)
        e = torch.tensor([self.radius, self.radius, self.half_height])
        return torch.stack([c - e, c + e])

    def texture(self, p, normal):
        q = p - p.new_tensor(self.center)
        helix = torch.atan2(q[:, 1], q[:, 0]) / (2 * math.pi) * 12 + q[:, 2] / 0.25  # helical stripes
        rings = q[:, :2].norm(dim=-1) / 0.07 + 0.5 * torch.sign(q[:, 2])  # concentric rings on caps
        return "stripes", torch.where(normal[:, 2].abs() > 0.5, rings, helix)[:, None]


# ----------------------------------------------------------------------------- the scene

class SyntheticScene:
    """The demo scene: disjoint textured solids with exact ray tracing, SDF and surface sampling.

    ``seed`` picks the texture colours only; the geometry is fixed. ``aabb`` [2, 3] bounds the content.
    ``detail`` in [0, 1] multiplies the albedo by fine value noise (three octaves, cells of 1/16 to 1/64
    scene units), which gives SIFT many distinctive blobs for posing tests; 0 (the demo) leaves it off.
    """

    def __init__(self, seed: int = 0, detail: float = 0.0):
        self.seed = seed
        self.detail = float(detail)
        self.solids = (
            Sphere((-0.44, -0.33, 0.165), 0.605),
            Box((0.55, 0.385, -0.385), (0.385, 0.44, 0.495)),
            Cylinder((0.605, -0.66, 0.0), 0.33, 0.66),
            Sphere((-0.385, 0.605, -0.495), 0.385, texture_kind="waves"),
        )
        gen = torch.Generator().manual_seed(seed)
        self.palette = torch.rand(4096, 3, generator=gen, dtype=torch.float64)  # checker cell colours
        self.waves = _unit(torch.randn(3, 2, 3, generator=gen, dtype=torch.float64))  # per channel, 2 waves
        self.phases = 2 * math.pi * torch.rand(3, 2, generator=gen, dtype=torch.float64)
        b = torch.stack([s.bounds for s in self.solids])
        self.aabb = torch.stack([b[:, 0].amin(0), b[:, 1].amax(0)])  # [2, 3]

    def trace(self, origins: torch.Tensor, dirs: torch.Tensor) -> dict[str, torch.Tensor]:
        """First hit of rays ``origins, dirs`` [N, 3] (origins outside the solids; dirs need not be unit).

        Returns ``t`` [N] (distance in units of |dir|, inf on a miss), ``hit`` [N] bool, ``normal`` [N, 3]
        (unit, 0 on a miss), ``rgb`` [N, 3] shaded colour in [0, 1] seen along ``dirs`` (0 on a miss) and
        ``object`` [N] int64 (index into ``solids``, -1 on a miss). Computed in the dtype of ``origins``.
        """
        t_all, n_all = zip(*(s.intersect(origins, dirs) for s in self.solids))
        t, obj = torch.stack(t_all, -1).min(-1)  # [N]
        hit = torch.isfinite(t)
        normal = torch.stack(n_all, 1).gather(1, obj[:, None, None].expand(-1, 1, 3))[:, 0]
        normal = torch.where(hit[:, None], _unit(normal), torch.zeros_like(normal))
        rgb = torch.zeros_like(origins)
        for k, solid in enumerate(self.solids):  # shade each solid's rays together
            idx = (hit & (obj == k)).nonzero()[:, 0]
            if len(idx):
                p = origins[idx] + t[idx, None] * dirs[idx]
                rgb[idx] = self._shade(k, p, normal[idx], _unit(-dirs[idx]))
        return {"t": t, "hit": hit, "normal": normal, "rgb": rgb, "object": torch.where(hit, obj, -1)}

    def _albedo(self, k: int, p: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
        """Procedural colour [N, 3] of solid ``k`` at surface points ``p`` [N, 3]."""
        kind, coords = self.solids[k].texture(p, normal)
        if kind == "waves":  # smooth colour variation: two plane waves per channel
            phase = torch.einsum("nd,cwd->ncw", p, self.waves.to(p)) * 7.0 + self.phases.to(p)
            return 0.5 + 0.2 * phase.sin().sum(-1)
        cells = torch.floor(coords).long()  # [N, K]
        primes = torch.tensor([73856093, 19349663, 83492791][: cells.shape[1]], device=p.device)
        h = torch.remainder((cells * primes).sum(-1) + 7919 * k, 2 ** 31)
        h = torch.remainder((h ^ (h >> 11)) * 40503, 2 ** 31)
        colour = self.palette.to(p)[(h ^ (h >> 15)) % len(self.palette)]
        light = cells.sum(-1) % 2 == 0  # alternate light and dark cells for contrast at every edge
        return torch.where(light[:, None], 0.55 + 0.45 * colour, 0.1 + 0.35 * colour)

    def _noise(self, p: torch.Tensor) -> torch.Tensor:
        """Value noise [N] in [0, 1] at points ``p`` [N, 3]: three octaves of hashed lattice values,
        interpolated with a smoothstep (continuous, so the texture is a real surface pattern)."""
        total = torch.zeros_like(p[:, 0])
        for octave, (freq, weight) in enumerate(((16.0, 0.5), (32.0, 0.3), (64.0, 0.2))):
            q = p * freq
            cell = torch.floor(q)
            f = q - cell
            f = f * f * (3 - 2 * f)
            c = cell.long()
            val = torch.zeros_like(total)
            for corner in range(8):
                bits = torch.tensor([(corner >> i) & 1 for i in range(3)], device=p.device)
                h = ((c + bits) * torch.tensor([73856093, 19349663, 83492791], device=p.device)).sum(-1)
                h = torch.remainder(h + 104729 * (octave + 1) + 31 * self.seed, 2 ** 31)
                h = torch.remainder((h ^ (h >> 13)) * 1274126177, 2 ** 31)
                r = ((h ^ (h >> 16)) % 65536).to(p.dtype) / 65535.0
                w = torch.where(bits.bool(), f, 1 - f).prod(-1)
                val = val + w * r
            total = total + weight * val
        return total

    def _shade(self, k, p, normal, view):
        """Lambert + ambient + Blinn-Phong colour [N, 3]; ``view`` [N, 3] points from the surface to the eye."""
        albedo = self._albedo(k, p, normal)
        if self.detail > 0:
            albedo = albedo * (1 - 0.6 * self.detail + 1.2 * self.detail * self._noise(p)[:, None]).clamp(0, 1.5)
        diffuse = torch.full_like(p[:, :1], AMBIENT)
        spec = torch.zeros_like(p[:, :1])
        for direction, power in LIGHTS:
            to_light = _unit(p.new_tensor(direction))
            ndl = (normal @ to_light)[:, None]
            diffuse = diffuse + power * ndl.clamp_min(0)
            ndh = (normal * _unit(to_light + view)).sum(-1, keepdim=True).clamp_min(0)
            spec = spec + power * SPECULAR * torch.where(ndl > 0, ndh ** SHININESS, 0.0)
        return (albedo * diffuse + spec).clamp(0, 1)

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Exact signed distance [N] from ``points`` [N, 3] to the union of solids (negative inside)."""
        return torch.stack([s.sdf(points) for s in self.solids], -1).amin(-1)

    def sample_surface(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points [n, 3] (float64) on the surfaces, uniform by area (the solids are disjoint)."""
        areas = torch.tensor([s.area for s in self.solids])
        which = torch.multinomial(areas, n, replacement=True, generator=generator)
        out = torch.empty(n, 3, dtype=torch.float64)
        for k, solid in enumerate(self.solids):
            idx = (which == k).nonzero()[:, 0]
            if len(idx):
                out[idx] = solid.sample(len(idx), generator)
        return out


# ----------------------------------------------------------------------------- cameras and rendering

def train_cameras(n: int = 100, radius: float = RADIUS) -> torch.Tensor:
    """[n, 4, 4] OpenCV c2w on a Fibonacci spiral over the band z/radius in [-0.35, 0.95], facing the origin."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 0.95 - 1.3 * i / n  # equal steps in z are equal areas on the sphere
    az = i * math.pi * (3 - math.sqrt(5))  # golden angle
    return _ring_poses(z, az, radius)


def eval_cameras(n: int = 25, radius: float = RADIUS) -> torch.Tensor:
    """[n, 4, 4] OpenCV c2w on three orbits (elevation -10, 20, 45 degrees) facing the origin."""
    ring = torch.arange(n) * 3 // n  # 0, 1, 2
    pos = torch.arange(n) - torch.searchsorted(ring, ring)  # index within the ring
    count = torch.bincount(ring, minlength=3)[ring]
    el = torch.tensor([-10.0, 20.0, 45.0], dtype=torch.float64)[ring].deg2rad()
    az = 2 * math.pi * pos / count + 0.3 + 0.4 * ring  # offsets keep them off the training spiral
    return _ring_poses(el.sin(), az, radius)


def _ring_poses(z: torch.Tensor, az: torch.Tensor, radius: float) -> torch.Tensor:
    """OpenCV c2w [V, 4, 4] at height ``z`` * radius and azimuth ``az`` [V], facing the origin, world +z up."""
    rxy = (1 - z * z).clamp_min(0).sqrt()
    eyes = radius * torch.stack([rxy * az.cos(), rxy * az.sin(), z], -1)
    # A batched float64 cameras.look_at: OpenCV x = forward x up (right), y = forward x x (down).
    fwd = _unit(-eyes)
    right = _unit(torch.linalg.cross(fwd, eyes.new_tensor([0.0, 0.0, 1.0]).expand_as(fwd)))
    c2w = torch.eye(4, dtype=torch.float64).repeat(len(eyes), 1, 1)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2] = right, torch.linalg.cross(fwd, right), fwd
    c2w[:, :3, 3] = eyes
    return c2w.float()


def render_view(scene: SyntheticScene, c2w: torch.Tensor, intrinsics: Intrinsics, supersample: int = 3,
                chunk: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one OpenCV camera ``c2w`` [4, 4] with ``supersample``^2 (odd) sub-pixel rays per pixel.

    Returns straight-alpha RGBA [H, W, 4] float32 in [0, 1] and z-depth [H, W] float32 along the optical
    axis of the pixel-centre ray (0 where it hits nothing). ``chunk`` bounds the rays traced at once.
    """
    s = int(supersample)
    if s < 1 or s % 2 == 0:
        raise ValueError(f"supersample must be a positive odd number (the middle sample gives depth), got {s}")
    w, h, dev = intrinsics.width, intrinsics.height, c2w.device
    k = intrinsics.as_tensor().to(dev)
    offs = (torch.arange(s, device=dev) + 0.5) / s - 0.5  # sub-pixel offsets; the middle one is 0
    px, py = pixel_grid(w, h, dev)
    rgba, depth = torch.zeros(h * w, 4, device=dev), torch.zeros(h * w, device=dev)
    step = max(1, chunk // (s * s))
    for a in range(0, h * w, step):
        x = (px[a:a + step, None, None] + offs[None, None, :]).expand(-1, s, s).reshape(-1)
        y = (py[a:a + step, None, None] + offs[None, :, None]).expand(-1, s, s).reshape(-1)
        o, d = generate_rays(c2w, k, x, y)
        out = {key: v.reshape(-1, s * s, *v.shape[1:]) for key, v in _trace_in_box(scene, o, d).items()}
        hit = out["hit"].float()  # [P, s*s]
        cover = hit.sum(1, keepdim=True)
        rgba[a:a + step, :3] = (out["rgb"] * hit[..., None]).sum(1) / cover.clamp_min(1)
        rgba[a:a + step, 3] = cover[:, 0] / (s * s)
        mid = s * s // 2
        cos = d.reshape(-1, s * s, 3)[:, mid] @ c2w[:3, 2].float()  # z-depth = distance * cos(angle to axis)
        depth[a:a + step] = torch.where(out["hit"][:, mid], out["t"][:, mid] * cos, 0.0)
    return rgba.reshape(h, w, 4), depth.reshape(h, w)


def _trace_in_box(scene: SyntheticScene, o: torch.Tensor, d: torch.Tensor) -> dict[str, torch.Tensor]:
    """:meth:`SyntheticScene.trace`, skipping rays that miss the content's bounding box (faster)."""
    box = scene.aabb.to(o) + torch.tensor([[-1e-3], [1e-3]]).to(o)
    idx = ray_aabb(o, d, box)[2].nonzero()[:, 0]
    sub = scene.trace(o[idx], d[idx])
    out = {"t": _inf(o[:, 0]), "hit": torch.zeros_like(o[:, 0], dtype=torch.bool),
           "rgb": torch.zeros_like(o), "normal": torch.zeros_like(o),
           "object": torch.full_like(o[:, 0], -1, dtype=torch.long)}
    for key, v in out.items():
        v[idx] = sub[key]
    return out


# ----------------------------------------------------------------------------- Blender export

def generate_synthetic(out_dir: str | Path, resolution: int = 128, n_train: int = 100, n_test: int = 25,
                       seed: int = 0, overwrite: bool = False, supersample: int = 3) -> Path:
    """Render the demo scene into ``out_dir`` in the Blender format and return the folder.

    Writes ``transforms_{train,val,test}.json`` (val: every fifth test view), straight-alpha RGBA PNGs
    ``{train,test}/r_K.png`` of ``resolution``^2 pixels and z-depth ``r_K_depth.npy`` [H, W] float32 beside
    each, plus ``synthetic.json`` with the parameters. A folder already holding a scene with the same
    parameters is returned as is unless ``overwrite``. Rendering goes to a temporary folder beside
    ``out_dir`` that is renamed into place, so an interrupted run leaves nothing half written.
    """
    out = Path(out_dir)
    if resolution < 2 or n_train < 1 or n_test < 1:
        raise ConfigError(f"synthetic scene needs resolution >= 2 and at least one train and one test view, "
                          f"got resolution={resolution}, n_train={n_train}, n_test={n_test}")
    params = {"format_version": FORMAT_VERSION, "resolution": int(resolution), "n_train": int(n_train),
              "n_test": int(n_test), "seed": int(seed), "supersample": int(supersample),
              "camera_angle_x": CAMERA_ANGLE_X}
    meta_path = out / "synthetic.json"
    if out.exists() and not overwrite:
        try:
            if json.loads(meta_path.read_text()) == params:
                return out
        except (OSError, ValueError):
            if not out.is_dir() or any(out.iterdir()):
                raise DataError(f"{out}: exists and is not a synthetic scene folder; pass overwrite=True "
                                "to replace it or choose another folder") from None
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)  # left over from a crashed run
    tmp.mkdir(parents=True)
    try:
        _render_split_files(tmp, SyntheticScene(seed), params)
        (tmp / "synthetic.json").write_text(json.dumps(params, indent=2))  # last: marks the folder complete
        if out.exists():  # move the old folder aside first so the swap never loses both
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _render_split_files(root: Path, scene: SyntheticScene, params: dict) -> None:
    res = params["resolution"]
    intr = Intrinsics.from_fov(CAMERA_ANGLE_X, res, res)
    cams = {"train": train_cameras(params["n_train"]), "test": eval_cameras(params["n_test"])}
    frames: dict[str, list] = {}
    for split, c2ws in cams.items():
        frames[split] = []
        for i, c2w in enumerate(c2ws):
            rgba, depth = render_view(scene, c2w, intr, params["supersample"])
            save_png(root / split / f"r_{i}.png", (rgba.numpy() * 255 + 0.5).astype(np.uint8))
            np.save(root / split / f"r_{i}_depth.npy", depth.numpy().astype(np.float32))
            # Blender files store OpenGL camera axes (y up, z backward)
            frames[split].append({"file_path": f"./{split}/r_{i}",
                                  "transform_matrix": opencv_to_opengl(c2w).tolist()})
    frames["val"] = frames["test"][::5]
    for split, fr in frames.items():
        doc = {"camera_angle_x": CAMERA_ANGLE_X, "frames": fr}
        (root / f"transforms_{split}.json").write_text(json.dumps(doc, indent=1))
