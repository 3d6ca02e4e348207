"""The viewer app: a viser server rendering the model from each browser's camera.

One :class:`Viewer` serves one model (a trained run or snapshot, or the render copy of a running
training through :class:`TrainingLink`). Each browser tab gets its own :class:`RenderLoop` thread;
every frame goes through :func:`nerfkit.render.render_image` under one model lock.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cameras.path_files import append_keyframe
from ..data.images import background_color, load_image, save_png
from ..data.scene import SceneData
from ..render import Camera, render_image
from .frames import OUTPUTS, colorize, crop_fields
from .render_loop import RenderLoop, TimeShare
from .training_link import TrainingLink
from .view_camera import camera_from_viser, fit_resolution, fov_y_of, scene_up, viser_pose_from_c2w

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ViewerOptions:
    """Viewer settings (the CLI flags of ``nerfkit view`` and ``nerfkit train --viewer``)."""

    host: str = "127.0.0.1"
    """Address to listen on; 127.0.0.1 keeps the viewer private to this machine."""
    port: int = 7007
    """Port; the next free one is used when it is taken."""
    max_res: int = 512
    """Longest side, in pixels, of a refined frame (the browser stretches it to the canvas)."""
    preview_res: int = 96
    """Longest side of the fast frame drawn while the camera moves."""
    share: float = 0.25
    """While training runs, rendering takes at most this share of the wall time."""
    output_dir: Path | None = None
    """Where saved views and camera_path.json go."""
    max_frustums: int = 100
    """Training cameras drawn (evenly strided when there are more)."""
    thumbnails: bool = True
    """Draw the training images inside their frustums."""


@dataclass
class View:
    """What a client wants to see: its camera, canvas size and display settings."""

    wxyz: np.ndarray
    position: np.ndarray
    fov_y: float
    width: int
    height: int
    output: str = "rgb"
    crop: tuple[np.ndarray, np.ndarray] | None = None
    max_res: int = 512

    def camera(self, max_side: int) -> Camera:
        w, h = fit_resolution(self.width, self.height, max_side)
        return camera_from_viser(self.wxyz, self.position, self.fov_y, w, h)


@dataclass
class Frame:
    """A rendered frame: the picture shown, the camera and raw outputs it came from."""

    image: np.ndarray  # [H, W, 3] uint8
    camera: Camera
    outputs: dict
    seconds: float
    view: View = field(repr=False, default=None)


class Viewer:
    """A viser app for one model. ``start()`` binds the port; ``stop()`` ends every thread."""

    def __init__(self, model: torch.nn.Module, scene: SceneData, *, background: str = "white",
                 options: ViewerOptions | None = None, link: TrainingLink | None = None, title: str = "nerfkit") -> None:
        self.opts = options or ViewerOptions()
        self.scene, self.link, self.title = scene, link, title
        self.model = link.render_model if link is not None and link.render_model is not None else model
        self.model_lock = link.model_lock if link is not None else threading.RLock()
        self.background = background_color(background, ())
        self.out_dir = Path(self.opts.output_dir or "viewer")
        self.share = TimeShare(self.opts.share, busy=(link.training if link is not None else (lambda: False)))
        self.loops: dict[int, RenderLoop] = {}
        self.views: dict[int, View] = {}
        self.saved: list[Path] = []
        self.server = None
        self._lock = threading.Lock()

    # --- rendering -------------------------------------------------------------------------------
    def render_view(self, view: View, max_side: int) -> Frame:
        """Render ``view`` at most ``max_side`` pixels wide/high (the render loops call this)."""
        cam = view.camera(min(max_side, view.max_res))
        t0 = time.perf_counter()
        with self.model_lock:
            model = self.link.render_model if self.link is not None else self.model
            if view.crop is not None:
                with crop_fields(model, *view.crop):
                    out = render_image(model, cam, background=self.background)
            else:
                out = render_image(model, cam, background=self.background)
        return Frame(colorize(out, view.output), cam, out, time.perf_counter() - t0, view)

    # --- server ----------------------------------------------------------------------------------
    def start(self) -> int:
        """Bind the port (the next free one if taken), draw the scene and the panel; returns the port."""
        import viser

        o = self.opts
        self.server = viser.ViserServer(host=o.host, port=o.port, label=self.title, verbose=False)
        port = self.server.get_port()
        if o.port != 0 and port != o.port:
            print(f"viewer: port {o.port} is in use; using port {port} instead", file=sys.stderr)
        if o.host not in LOCAL_HOSTS:
            print(f"warning: the viewer listens on {o.host}:{port} - anyone who can reach this machine can see the "
                  f"model and save files into {self.out_dir}; keep the default 127.0.0.1 (and use ssh -L) unless "
                  "you need that", file=sys.stderr)
        self.server.scene.set_up_direction(tuple(float(v) for v in scene_up(self.scene.c2w)))
        self._add_frustums()
        self._build_gui()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        return port

    @property
    def url(self) -> str:
        host = self.opts.host if self.opts.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.server.get_port()}"

    def stop(self) -> None:
        for loop in list(self.loops.values()):
            loop.stop(timeout=2.0)
        if self.server is not None:
            self.server.stop()

    def _add_frustums(self) -> None:
        sc = self.scene
        views = list(range(len(sc.image_paths)))
        stride = max(1, math.ceil(len(views) / max(1, self.opts.max_frustums)))
        size = float((sc.aabb[1] - sc.aabb[0]).norm())
        self.frustums = []
        for i in views[::stride]:
            w, h = (int(v) for v in sc.sizes[i])
            wxyz, pos = viser_pose_from_c2w(sc.c2w[i])
            thumb = self._thumbnail(i) if self.opts.thumbnails else None
            self.frustums.append(self.server.scene.add_camera_frustum(
                f"/training_cameras/{i:05d}", fov=fov_y_of(sc.intrinsics[i], h), aspect=w / h, scale=0.02 * size,
                image=thumb, format="jpeg", wxyz=wxyz, position=pos, color=(60, 90, 200)))

    def _thumbnail(self, i: int) -> np.ndarray | None:
        path = self.scene.image_paths[i]
        if not Path(path).is_file():  # a snapshot moved to another machine: frustum without picture
            return None
        from PIL import Image

        img = load_image(path, self.scene.downscale)
        if img.shape[-1] == 4:  # alpha is premultiplied: over the viewer's background
            a = img[..., 3:].astype(np.float32) / 255.0
            img = (img[..., :3] + (1 - a) * (self.background.numpy() * 255)).clip(0, 255).astype(np.uint8)
        pil = Image.fromarray(img)
        pil.thumbnail((96, 96))
        return np.asarray(pil)

    def _build_gui(self) -> None:
        gui, sc, o = self.server.gui, self.scene, self.opts
        self.gui_status = gui.add_markdown(self._status_text())
        if self.link is not None:
            self.gui_pause = gui.add_button("Pause training")
            self.gui_pause.on_click(lambda _e: self.toggle_pause())
            self.link.on_status = lambda _s: self._update_status()
            self.link.on_weights = self.refresh
        self.gui_output = gui.add_dropdown("Output", OUTPUTS, initial_value="rgb")
        self.gui_res = gui.add_slider("Max resolution", 64, 2048, 32, min(2048, max(64, o.max_res)))
        self.gui_cams = gui.add_checkbox("Training cameras", True)
        with gui.add_folder("Crop box", expand_by_default=False):
            self.gui_crop = gui.add_checkbox("Crop", False)
            lo, hi = sc.aabb[0].tolist(), sc.aabb[1].tolist()
            step = float((sc.aabb[1] - sc.aabb[0]).max()) / 100.0
            self.gui_crop_min = gui.add_vector3("Min", tuple(lo), step=step)
            self.gui_crop_max = gui.add_vector3("Max", tuple(hi), step=step)
        self.gui_save = gui.add_button("Save view PNG")
        self.gui_key = gui.add_button("Add keyframe")
        self.gui_save_h = gui.add_number("Save height", int(sc.sizes[0][1]), min=16, max=4096, step=1)
        self.gui_files = gui.add_markdown(f"files go to `{self.out_dir}`")
        for h in (self.gui_output, self.gui_res, self.gui_crop, self.gui_crop_min, self.gui_crop_max):
            h.on_update(lambda _e: self.refresh(refine_only=False))
        self.gui_cams.on_update(lambda _e: self._show_frustums(self.gui_cams.value))
        self.gui_save.on_click(lambda e: self.save_view(e.client.client_id))
        self.gui_key.on_click(lambda e: self.add_keyframe(e.client.client_id))

    def _show_frustums(self, visible: bool) -> None:
        for f in self.frustums:
            f.visible = visible

    # --- status and training control -----------------------------------------------------------
    def _status_text(self) -> str:
        if self.link is None:
            return f"**{self.title}** - trained model"
        s = self.link.status
        loss = "-" if s.get("loss") is None else f"{s['loss']:.4f}"
        psnr = "-" if s.get("psnr") is None else f"{s['psnr']:.2f} dB"
        rate = "-" if s.get("steps_per_s") is None else f"{s['steps_per_s']:.1f}"
        return f"**{s['state']}** - step {s['step']} - loss {loss} - PSNR {psnr} - {rate} steps/s"

    def _update_status(self) -> None:
        if self.server is None:
            return
        self.gui_status.content = self._status_text()
        if self.link is not None:
            self.gui_pause.label = "Resume training" if self.link.paused else "Pause training"
            self.gui_pause.disabled = self.link.status["state"] == "finished"

    def toggle_pause(self) -> None:
        if self.link is None:
            return
        self.link.resume() if self.link.paused else self.link.pause()

    # --- clients ---------------------------------------------------------------------------------
    def _connect(self, client) -> None:
        cid = client.client_id
        sc = self.scene
        first = (sc.splits.get("test") or sc.split("train") or [0])[0]
        c2w = sc.c2w[first]
        centre = 0.5 * (sc.aabb[0] + sc.aabb[1])
        dist = float(((centre - c2w[:3, 3]) @ c2w[:3, 2]).clamp_min(1e-3))
        with client.atomic():
            client.camera.fov = fov_y_of(sc.intrinsics[first], int(sc.sizes[first][1]))
            client.camera.position = c2w[:3, 3].double().numpy()
            client.camera.look_at = (c2w[:3, 3] + dist * c2w[:3, 2]).double().numpy()
            client.camera.up_direction = scene_up(sc.c2w)

        def show(frame: Frame, final: bool) -> None:
            if cid not in self.server.get_clients():
                raise ConnectionError(f"client {cid} disconnected")
            client.scene.set_background_image(frame.image, format="png" if final else "jpeg",
                                              jpeg_quality=None if final else 85)

        levels = sorted({min(self.opts.preview_res, self.opts.max_res), self.opts.max_res})
        loop = RenderLoop(self.render_view, show, levels=tuple(levels), share=self.share,
                          on_error=lambda e: print(f"viewer: render failed: {e}", file=sys.stderr),
                          name=f"nerfkit-viewer-client-{cid}")
        with self._lock:
            self.loops[cid] = loop
        client.camera.on_update(lambda cam: self._camera_moved(cid, cam))

    def _disconnect(self, client) -> None:
        with self._lock:
            loop = self.loops.pop(client.client_id, None)
            self.views.pop(client.client_id, None)
        if loop is not None:
            loop.stop(timeout=0)  # a frame in flight finishes in its thread and is dropped

    def _view_of(self, cam) -> View:
        crop = None
        if self.gui_crop.value:
            crop = (np.asarray(self.gui_crop_min.value, np.float32), np.asarray(self.gui_crop_max.value, np.float32))
        return View(np.array(cam.wxyz), np.array(cam.position), float(cam.fov), int(cam.image_width),
                    int(cam.image_height), self.gui_output.value, crop, int(self.gui_res.value))

    def _camera_moved(self, cid: int, cam) -> None:
        if cam.image_width <= 0 or cam.image_height <= 0:
            return
        view = self._view_of(cam)
        with self._lock:
            self.views[cid] = view
            loop = self.loops.get(cid)
        if loop is not None:
            loop.request(view)

    def refresh(self, refine_only: bool = True) -> None:
        """Re-render every client's view (new weights: ``refine_only``; new settings: from the fast level)."""
        for cid, client in list(self.server.get_clients().items()):
            try:
                self._camera_moved_refresh(cid, client, refine_only)
            except (AssertionError, KeyError):  # camera not reported yet
                continue

    def _camera_moved_refresh(self, cid: int, client, refine_only: bool) -> None:
        view = self._view_of(client.camera)
        with self._lock:
            self.views[cid] = view
            loop = self.loops.get(cid)
        if loop is not None:
            loop.request(view, refine_only=refine_only)

    # --- files ----------------------------------------------------------------------------------
    def _save_camera(self, cid: int) -> tuple[View, Camera]:
        client = self.server.get_clients()[cid]
        view = self._view_of(client.camera)
        h = int(self.gui_save_h.value)
        w = max(1, int(round(h * view.width / view.height)))
        return view, camera_from_viser(view.wxyz, view.position, view.fov_y, w, h)

    def save_view(self, cid: int) -> Path:
        """Render the client's view at the save height and write ``view_NNN.png`` (the selected output)."""
        view, cam = self._save_camera(cid)
        view.width, view.height, view.max_res = cam.width, cam.height, max(cam.width, cam.height)
        frame = self.render_view(view, view.max_res)
        with self._lock:
            n = 1
            while (self.out_dir / f"view_{n:03d}.png").exists():
                n += 1
            path = self.out_dir / f"view_{n:03d}.png"
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_png(path, frame.image)
            self.saved.append(path)
        print(f"viewer: saved {path} ({cam.width}x{cam.height}, {view.output})")
        self._notify(cid, "View saved", str(path))
        return path

    def add_keyframe(self, cid: int) -> Path:
        """Append the client's camera to ``camera_path.json`` (nerfkit camera path, scene frame)."""
        view, cam = self._save_camera(cid)
        path = self.out_dir / "camera_path.json"
        with self._lock:
            cp = append_keyframe(path, cam.c2w, math.degrees(view.fov_y), cam.width, cam.height, fps=30)
        print(f"viewer: keyframe {len(cp)} -> {path}")
        self._notify(cid, f"Keyframe {len(cp)} added", f"{path} - render it with: nerfkit render RUN --path {path}")
        return path

    def _notify(self, cid: int, title: str, body: str) -> None:
        client = self.server.get_clients().get(cid)
        if client is not None:
            client.add_notification(title, body, auto_close_seconds=4.0)

    # --- for tests and scripts ---------------------------------------------------------------------
    def wait_idle(self, cid: int, timeout: float = 60.0) -> Frame:
        """Block until the client's newest view is shown at the highest level; returns that frame."""
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            loop = self.loops.get(cid)
            if loop is not None and loop.idle():
                return loop.last_shown[2]
            time.sleep(0.05)
        raise TimeoutError(f"viewer client {cid}: no final frame within {timeout} s")
