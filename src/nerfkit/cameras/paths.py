"""Camera paths for rendering videos."""

from __future__ import annotations

import math

import torch


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """OpenCV camera-to-world [4, 4] at ``eye`` looking at ``target`` with world ``up`` roughly up.

    OpenCV's camera y axis points down, so it is aligned with -up; x = z cross up points right.
    """
    eye, target, up = (torch.as_tensor(v, dtype=torch.float32) for v in (eye, target, up))
    z = target - eye
    z = z / z.norm()
    x = torch.linalg.cross(z, up)
    if x.norm() < 1e-6:  # looking straight along up: pick any perpendicular x
        x = torch.linalg.cross(z, torch.tensor([1.0, 0.0, 0.0]))
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def orbit(
    n_frames: int,
    radius: float,
    elevation_deg: float = 30.0,
    center=(0.0, 0.0, 0.0),
    up=(0.0, 0.0, 1.0),
) -> torch.Tensor:
    """Turntable around ``center``: [n_frames, 4, 4] OpenCV c2w, one full turn, camera at ``radius``.

    The orbit lies in the plane perpendicular to ``up`` raised by ``elevation_deg``.
    """
    up_t = torch.as_tensor(up, dtype=torch.float32)
    up_t = up_t / up_t.norm()
    center_t = torch.as_tensor(center, dtype=torch.float32)
    # an orthonormal basis (a, b) of the plane perpendicular to up
    helper = torch.tensor([1.0, 0.0, 0.0]) if abs(float(up_t[0])) < 0.9 else torch.tensor([0.0, 1.0, 0.0])
    a = torch.linalg.cross(up_t, helper)
    a = a / a.norm()
    b = torch.linalg.cross(up_t, a)
    el = math.radians(elevation_deg)
    poses = []
    for i in range(n_frames):
        th = 2.0 * math.pi * i / n_frames
        offset = radius * (math.cos(el) * (math.cos(th) * a + math.sin(th) * b) + math.sin(el) * up_t)
        poses.append(look_at(center_t + offset, center_t, up_t))
    return torch.stack(poses)


# ------------------------------------------------------------------------------------- mean pose / spiral

def mean_pose(c2w: torch.Tensor) -> torch.Tensor:
    """The average camera [4, 4] (OpenCV) of poses c2w [V, 4, 4]: mean centre, mean forward axis, and a down
    axis from the mean down axis made orthogonal to it (so the average camera is upright like the views)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    z = torch.nn.functional.normalize(c2w[:, :3, 2].mean(0), dim=0)
    y = c2w[:, :3, 1].mean(0)
    x = torch.nn.functional.normalize(torch.linalg.cross(y, z), dim=0)  # OpenCV: x = y cross z
    y = torch.linalg.cross(z, x)
    out = torch.eye(4, dtype=torch.float64)
    out[:3, 0], out[:3, 1], out[:3, 2], out[:3, 3] = x, y, z, c2w[:, :3, 3].mean(0)
    return out.float()


def spiral_focus_distance(near: float, far: float) -> float:
    """Depth the spiral cameras look at: LLFF's choice, a harmonic blend of the near bound and 5x the far
    bound weighted 1:3 (``1 / (0.25 / near + 0.75 / (5 far))``), which lands a little beyond ~4x the near bound."""
    return 1.0 / (0.25 / near + 0.75 / (5.0 * far))


def spiral(
    c2w: torch.Tensor,
    n_frames: int,
    focus_distance: float,
    n_rotations: float = 2.0,
    zrate: float = 0.5,
    percentile: float = 90.0,
    radii: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward-facing spiral [n_frames, 4, 4] (OpenCV c2w) around the mean of the cameras c2w [V, 4, 4].

    The camera centres circle ``n_rotations`` times in the average camera's image plane with radii
    (x, y) and bob along its optical axis with radius z at ``zrate`` times the angular speed; every
    camera looks at the point ``focus_distance`` in front of the average camera, with the average
    camera's up. ``radii`` [3] default: the ``percentile`` of the |offsets| of the camera centres from
    their mean, per axis of the average camera (LLFF's choice with 90). The path is closed: frame
    ``n_frames`` would equal frame 0.
    """
    c2w = torch.as_tensor(c2w, dtype=torch.float32)
    avg = mean_pose(c2w)
    rot, center = avg[:3, :3], avg[:3, 3]
    if radii is None:
        local = (c2w[:, :3, 3] - center) @ rot  # [V, 3] offsets in the average camera's axes
        radii = torch.quantile(local.abs(), percentile / 100.0, dim=0)
    radii = torch.as_tensor(radii, dtype=torch.float32)
    target = center + focus_distance * rot[:, 2]
    up = -rot[:, 1]  # OpenCV y points down
    poses = []
    for i in range(n_frames):
        th = 2.0 * math.pi * n_rotations * i / n_frames
        local = radii * torch.tensor([math.cos(th), math.sin(th), math.sin(zrate * th)])
        poses.append(look_at(center + rot @ local, target, up))
    return torch.stack(poses)


# ------------------------------------------------------------------------------------------ interpolation

def _catmull_rom(p0, p1, p2, p3, t):
    """Uniform Catmull-Rom segment between p1 (t=0) and p2 (t=1); points [..., D], t [..., 1]."""
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                  + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)


def interpolate_poses(keyframes: torch.Tensor, n_frames: int, fovs: torch.Tensor | None = None,
                      closed: bool = False):
    """A smooth path of ``n_frames`` poses [N, 4, 4] (OpenCV c2w) through keyframes [K, 4, 4].

    Camera centres follow a uniform Catmull-Rom spline (which passes through every keyframe; the
    end segments use mirrored ghost points), rotations a quaternion slerp between neighbouring
    keyframes (short way round). Keyframe k sits at parameter k; the frames sample the parameter
    uniformly from the first to the last keyframe (both included), so keyframe k is frame
    ``k (N - 1) / (K - 1)`` whenever that is a whole number. ``closed=True`` loops back from the
    last keyframe to the first (frame N would be frame 0).

    ``fovs`` [K] (optional, e.g. vertical field of view per keyframe) are interpolated linearly with
    the same parameter; then the result is ``(poses [N, 4, 4], fovs [N])``.
    """
    from .quaternions import matrix_to_quaternion, quaternion_to_matrix, slerp

    kf = torch.as_tensor(keyframes, dtype=torch.float64)
    k = kf.shape[0]
    if k == 0 or n_frames < 1:
        from ..errors import ConfigError

        raise ConfigError(f"cannot interpolate {k} keyframes into {n_frames} frames; give at least one of each")
    if k == 1:
        out = kf.expand(n_frames, 4, 4).float().clone()
        return out if fovs is None else (out, torch.as_tensor(fovs, dtype=torch.float32).expand(n_frames).clone())
    n_seg = k if closed else k - 1
    if closed:
        s = torch.arange(n_frames, dtype=torch.float64) * (n_seg / n_frames)
    else:
        s = torch.linspace(0.0, float(n_seg), n_frames, dtype=torch.float64) if n_frames > 1 else torch.zeros(1)
    seg = s.floor().long().clamp(0, n_seg - 1)  # [N] segment index
    t = (s - seg)[:, None]  # [N, 1] fraction in the segment

    pos = kf[:, :3, 3]
    if closed:
        ext = torch.cat([pos[-1:], pos, pos[:2]])  # ghost points wrap around
    else:
        ext = torch.cat([2 * pos[:1] - pos[1:2], pos, 2 * pos[-1:] - pos[-2:-1]])  # mirrored ghost points
    # ext[i + 1] is keyframe i: segment j uses ext[j], ext[j+1], ext[j+2], ext[j+3]
    centres = _catmull_rom(ext[seg], ext[seg + 1], ext[seg + 2], ext[seg + 3], t)  # [N, 3]

    q = matrix_to_quaternion(kf[:, :3, :3])  # [K, 4]
    nxt = (seg + 1) % k
    rots = quaternion_to_matrix(slerp(q[seg], q[nxt], t[:, 0]))  # [N, 3, 3]

    out = torch.eye(4, dtype=torch.float64).repeat(n_frames, 1, 1)
    out[:, :3, :3], out[:, :3, 3] = rots, centres
    if fovs is None:
        return out.float()
    f = torch.as_tensor(fovs, dtype=torch.float64)
    f_out = f[seg] + (f[nxt] - f[seg]) * t[:, 0]
    return out.float(), f_out.float()


def select_keyframes(c2w: torch.Tensor, n_keyframes: int = 10) -> list[int]:
    """Indices of up to ``n_keyframes`` cameras spread over c2w [V, 4, 4], in travel order.

    The cameras are picked by farthest-point sampling of their centres (starting from the camera
    closest to the mean centre) and ordered by a nearest-neighbour walk that starts at the picked
    camera farthest from the others' centroid, so consecutive keyframes are close.
    """
    pos = torch.as_tensor(c2w, dtype=torch.float64)[:, :3, 3]
    v = pos.shape[0]
    n = min(n_keyframes, v)
    picked = [int((pos - pos.mean(0)).norm(dim=-1).argmin())]
    dist = (pos - pos[picked[0]]).norm(dim=-1)
    while len(picked) < n:
        i = int(dist.argmax())
        picked.append(i)
        dist = torch.minimum(dist, (pos - pos[i]).norm(dim=-1))
    sel = pos[picked]
    start = int((sel - sel.mean(0)).norm(dim=-1).argmax())
    order, left = [start], set(range(n)) - {start}
    while left:
        cur = sel[order[-1]]
        nxt = min(left, key=lambda j: float((sel[j] - cur).norm()))
        order.append(nxt)
        left.remove(nxt)
    return [picked[j] for j in order]
