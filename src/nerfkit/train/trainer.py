"""The training loop: random rays across all training images, time/step budgets, logs, checkpoints."""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm import tqdm

from ..data import read_scene
from ..data.batching import make_pixel_bank
from ..data.images import background_color, composite, save_png
from ..data.scene import SceneData
from ..errors import ConfigError, RunError
from ..methods import METHODS, Method, SceneBounds
from ..render import Camera, render_image
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig, load_config, save_config
from .metrics import mse_to_psnr, psnr
from .pictures import comparison_strip


PREVIEW_MAX_SIDE = 1024
"""Longest side of the preview renders during training (larger test views are reduced)."""


def select_device(name: str) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device '{name}' ({e}); use cpu, cuda, mps or auto")


def build_model(cfg: TrainConfig, scene: SceneData) -> Method:
    if cfg.method not in METHODS:
        raise ConfigError(f"unknown method '{cfg.method}'; available: {', '.join(METHODS)}")
    klass = METHODS[cfg.method]
    extent = float((scene.c2w[:, :3, 3] - scene.aabb.mean(0)).norm(dim=-1).max())
    bounds = SceneBounds(scene.aabb, scene.near, scene.far, unbounded=not scene.has_alpha, camera_extent=extent)
    return klass(klass.make_config(cfg.method_options), bounds)


def read_run_scene(cfg: TrainConfig) -> SceneData:
    return read_scene(cfg.data.path, format=cfg.data.format, downscale=cfg.data.downscale)


def scene_camera(scene: SceneData, view: int) -> Camera:
    """The camera of one view of a scene, lens distortion included."""
    w, h = (int(v) for v in scene.sizes[view])
    dist = scene.distortion[view] if scene.distortion is not None else None
    return Camera(scene.c2w[view], scene.intrinsics[view], w, h, scene.camera_model, dist)


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[TrainConfig, SceneData, Method, dict]:
    """Config, scene, model with its newest weights, and the checkpoint dict of a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    cfg = load_config(run_dir / "config.json")
    dev = select_device(device)
    ck = load_checkpoint(run_dir, device="cpu")
    scene = read_run_scene(cfg)
    model = build_model(cfg, scene)
    model.load_state_dict(ck["model"])
    return cfg, scene, model.to(dev), ck


class Trainer:
    """Runs one training job described by a :class:`TrainConfig` in ``cfg.output``."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, callbacks: Sequence[Callable] = ()) -> None:
        self.cfg = cfg
        # called as cb(trainer, record) after every step, outside the training clock (the viewer's hook;
        # a callback may block, e.g. to pause training)
        self.callbacks = list(callbacks)
        self.run_dir = Path(cfg.output)
        if resume:
            if not (self.run_dir / "config.json").is_file():
                raise RunError(f"{self.run_dir}: nothing to resume (no config.json); start without --resume")
        elif list_checkpoints(self.run_dir):
            raise RunError(f"{self.run_dir}: already holds a trained run; pass --resume to continue it "
                           "or choose another --output")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.runtime.threads:
            torch.set_num_threads(cfg.runtime.threads)
        torch.manual_seed(cfg.runtime.seed)
        self.device = select_device(cfg.runtime.device)
        if not resume and cfg.method in METHODS:
            cfg.method_options = {**METHODS[cfg.method].device_defaults(self.device), **cfg.method_options}
        self.scene = read_run_scene(cfg)
        self.train_views = self.scene.split("train")
        self.test_views = self.scene.splits.get("test") or self.scene.splits.get("val") or self.train_views[:1]
        self.model = build_model(cfg, self.scene).to(self.device)
        self.optimizer, self.scheduler = self.model.make_optimizer()
        self.gen = torch.Generator().manual_seed(cfg.runtime.seed)
        self.step = 0
        self.train_time = 0.0
        self.skipped = 0  # steps skipped for a non-finite loss or gradient
        self.bad_streak = 0  # consecutive skipped steps
        self.lr_scale = 1.0  # lowered when non-finite steps repeat
        self._stop_signal = None  # set by SIGINT/SIGTERM; the loop stops at the end of the step
        self._clock = time.monotonic  # wall clock of the time-based checkpoints (tests replace it)
        self._last_save = self._clock()
        if resume:
            self._restore()
        else:
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        save_config(cfg, self.run_dir / "config.json")
        prog = (lambda it, **kw: tqdm(it, leave=False, **kw)) if cfg.log.progress else None
        self.bank = make_pixel_bank(self.scene, self.train_views, cfg.data.image_memory, seed=cfg.runtime.seed,
                                    progress=prog, with_depth=cfg.data.depth_weight > 0, log=self._note)

    def _note(self, text: str) -> None:
        """A message for the person at the terminal, also kept in the run's events log."""
        print(text, file=sys.stderr, flush=True)
        self._event("note", text=text)

    def _event(self, kind: str, **fields) -> None:
        """Append one line to ``events.jsonl`` (starts, resumes, interruptions, skipped steps, notes)."""
        rec = {"event": kind, "step": self.step, "wall": round(time.time(), 3), **fields}
        with open(self.run_dir / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict:
        state = {
            "format_version": 1, "method": self.cfg.method, "step": self.step, "train_time": self.train_time,
            "skipped_steps": self.skipped, "bad_streak": self.bad_streak, "lr_scale": self.lr_scale,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self) -> None:
        """Continue from the newest readable checkpoint (or from the start when the run died before its
        first one); drop log lines written after it, so the log reads as if the run never stopped."""
        for tmp in (self.run_dir / "checkpoints").glob(".step_*.tmp"):
            tmp.unlink(missing_ok=True)  # a write the previous process did not finish
        if list_checkpoints(self.run_dir):
            ck = load_checkpoint(self.run_dir, device="cpu")
            self.model.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
            self.scheduler.load_state_dict(ck["scheduler"])
            self.gen.set_state(ck["rng"])
            torch.set_rng_state(ck["torch_rng"])
            if "cuda_rng" in ck and self.device.type == "cuda":
                torch.cuda.set_rng_state(ck["cuda_rng"], self.device)
            self.step, self.train_time, self.skipped = int(ck["step"]), float(ck["train_time"]), int(ck["skipped_steps"])
            self.bad_streak, self.lr_scale = int(ck.get("bad_streak", 0)), float(ck.get("lr_scale", 1.0))
        trim_log(self.run_dir / "metrics.jsonl", self.step)
        self._event("resume", train_time=round(self.train_time, 3))

    def save(self) -> Path:
        path = save_checkpoint(self.run_dir, self.step, self._state(), keep=self.cfg.log.keep_checkpoints)
        self._last_save = self._clock()
        return path

    # --- evaluation during training ------------------------------------------------------------
    def quick_eval(self) -> dict:
        """Render the first test view, log its PSNR and save a preview picture. Views larger than
        ``PREVIEW_MAX_SIDE`` are previewed reduced (area filter), so a preview of a big capture stays quick."""
        from ..data.images import downscale_image, load_image

        view = self.test_views[0]
        bg = background_color(self.cfg.data.background, ())
        cam = scene_camera(self.scene, view)
        factor = max(1.0, max(cam.width, cam.height) / PREVIEW_MAX_SIDE)
        img = load_image(self.scene.image_paths[view], self.scene.downscale)
        if factor > 1:
            img = downscale_image(img, factor)
            h, w = img.shape[:2]
            sx, sy = w / cam.width, h / cam.height
            cam = Camera(cam.c2w, cam.intrinsics * torch.tensor([sx, sy, sx, sy]), w, h, cam.camera_model,
                         cam.distortion)
        out = render_image(self.model, cam, background=bg.to(self.device))
        gt = composite(torch.from_numpy(img), bg)
        p = psnr(out["rgb"].clamp(0, 1), gt)
        save_png(self.run_dir / "previews" / f"step_{self.step:07d}.png", comparison_strip(gt, out["rgb"], out["depth"], out["opacity"]))
        return {"eval_psnr": p, "eval_view": self.scene.image_paths[view].name, "eval_size": [cam.width, cam.height]}

    def split_eval(self) -> dict:
        """Mean PSNR/SSIM over the whole test split with the current model."""
        from .evaluate import evaluate_views

        views = self.test_views[::max(1, self.cfg.log.eval_stride)]
        per = evaluate_views(self.model, self.scene, views, background_color(self.cfg.data.background, ()))
        return {"test_psnr": sum(r["psnr"] for r in per) / len(per), "test_ssim": sum(r["ssim"] for r in per) / len(per),
                "n_test": len(per)}

    # --- the loop --------------------------------------------------------------------------------
    def _done(self) -> bool:
        rt = self.cfg.runtime
        return (rt.max_steps is not None and self.step >= rt.max_steps) or (
            rt.max_time is not None and self.train_time >= rt.max_time)

    def train(self) -> Path:
        """Train until the budget is used; returns the run directory.

        SIGINT (Ctrl+C) and SIGTERM stop at the end of the current step, write a checkpoint and raise
        ``KeyboardInterrupt``; a second Ctrl+C stops at once. A kill at any point loses at most the
        steps since the last checkpoint (see ``--resume``).
        """
        cfg, rt = self.cfg, self.cfg.runtime
        if rt.max_steps is None and rt.max_time is None:
            raise ConfigError("give --max-steps or --max-time (or both) so training knows when to stop")
        self._event("start" if self.step == 0 else "continue", max_steps=rt.max_steps, max_time=rt.max_time)
        log = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        bar = tqdm(total=rt.max_steps, initial=self.step, disable=not cfg.log.progress, unit="step",
                   dynamic_ncols=True, desc=f"train {cfg.method}")
        train_bg = cfg.data.train_background if self.bank.has_alpha else "white"
        next_eval_t = (self.train_time + cfg.log.eval_every_s) if cfg.log.eval_every_s else math.inf
        recent = []  # (rays, seconds) of recent steps, for rays/s
        pending_times = sorted(t for t in cfg.log.eval_times if t > self.train_time)
        t_warm = time.perf_counter()
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):  # a resumed run must draw the numbers an uninterrupted one draws
            self.model.warmup()  # kernel builds / compilation happen here, outside the training clock
        self._event("warmup", seconds=round(time.perf_counter() - t_warm, 2))
        self.bank.set_step(self.step)  # a streamed bank decodes its first working set here, off the clock
        restore_signals = self._catch_signals()
        try:
            while not self._done() and self._stop_signal is None:
                t0 = time.perf_counter()
                self.model.train()
                self.bank.set_step(self.step)
                self.model.before_step(self.step)
                self.model.update_schedule(self.optimizer, self._progress())
                n = self.model.batch_rays()
                batch = self.bank.sample(n, self.gen)
                origins, dirs, pix = batch[:3]
                depth_t = batch[3].to(self.device) if len(batch) > 3 else None
                n = origins.shape[0]
                bg = background_color(train_bg, (n,), generator=self.gen)
                target = composite(pix, bg).to(self.device)
                origins, dirs, bg = origins.to(self.device), dirs.to(self.device), bg.to(self.device)
                # micro-batches: the same gradient, with tensors small enough to stay out of page faults
                micro = int(getattr(self.model.config, "micro_batch_rays", 0) or n)
                self.optimizer.zero_grad(set_to_none=True)
                # losses stay on the device; one transfer per step reads them with the finiteness flag
                loss_sum = torch.zeros((), device=self.device)
                mse_sum = torch.zeros((), device=self.device)
                for s in range(0, n, micro):
                    sl = slice(s, min(n, s + micro))
                    out = self.model.render_rays(origins[sl], dirs[sl], bg[sl])
                    losses = self.model.loss(out, target[sl])
                    if depth_t is not None:  # L1 on rays with ground truth, as a share of all rays
                        has = (depth_t[sl] > 0).float()
                        l1 = ((out["depth"] - depth_t[sl]).abs() * has).sum() / has.sum().clamp_min(1.0)
                        losses["loss"] = losses["loss"] + cfg.data.depth_weight * l1
                    frac = (sl.stop - sl.start) / n
                    loss = losses["loss"] * frac
                    loss.backward()
                    loss_sum = loss_sum + loss.detach().float()
                    mse_sum = mse_sum + losses.get("mse", losses["loss"]).detach().float() * frac
                grads_ok = gradients_finite_flag(self.optimizer, self.device)
                loss_sum, mse_sum, grads_ok = torch.stack([loss_sum, mse_sum, grads_ok.float()]).tolist()
                bad = "loss" if not math.isfinite(loss_sum) else ("gradient" if grads_ok < 1 else None)
                if bad is not None:  # never let a non-finite loss or gradient touch the weights
                    self.optimizer.zero_grad(set_to_none=True)
                    self._non_finite(bar, bad)
                    continue
                self.bad_streak = 0
                lrs = [g["lr"] for g in self.optimizer.param_groups]
                for g in self.optimizer.param_groups:
                    g["lr"] = g["lr"] * self.lr_scale
                self.optimizer.step()
                for g, lr in zip(self.optimizer.param_groups, lrs):
                    g["lr"] = lr
                self.scheduler.step()
                self.model.after_step(self.step, out)
                # no device synchronize here: the optimiser step overlaps the next step's host work, and
                # the loss read above (and the next march's sample count) bound how far the host runs ahead
                dt = time.perf_counter() - t0
                self.train_time += dt
                self.step += 1
                recent = (recent + [(n, dt)])[-20:]
                rays_s = sum(r for r, _ in recent) / max(1e-9, sum(t for _, t in recent))
                rec = {"step": self.step, "time": round(self.train_time, 3), "loss": loss_sum,
                       "psnr": round(mse_to_psnr(mse_sum), 3), "lr": lrs[0] * self.lr_scale,
                       "rays_per_s": round(rays_s, 1), "skipped_steps": self.skipped}
                if self.step % 10 == 0 or self.step == 1:  # the method's numbers may cost a device sync
                    log.write(json.dumps({**rec, **self.model.state_for_log()}) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix_str(self._postfix(rec, rays_s), refresh=False)
                for cb in self.callbacks:
                    cb(self, rec)
                want_eval = (cfg.log.eval_every and self.step % cfg.log.eval_every == 0) or self.train_time >= next_eval_t
                if want_eval:
                    ev = self.quick_eval()
                    log.write(json.dumps({"step": self.step, "time": round(self.train_time, 3), **ev}) + "\n")
                    log.flush()
                    bar.write(f"step {self.step}: test view PSNR {ev['eval_psnr']:.2f} dB")
                    while next_eval_t <= self.train_time:
                        next_eval_t += cfg.log.eval_every_s
                while pending_times and self.train_time >= pending_times[0]:
                    at = pending_times.pop(0)
                    ev = self.split_eval()
                    log.write(json.dumps({"step": self.step, "time": round(self.train_time, 3), "at_s": at, **ev}) + "\n")
                    log.flush()
                    bar.write(f"{at:g} s (step {self.step}): test PSNR {ev['test_psnr']:.2f} dB, SSIM {ev['test_ssim']:.4f}")
                by_steps = cfg.log.checkpoint_every and self.step % cfg.log.checkpoint_every == 0
                by_time = cfg.log.checkpoint_every_s and self._clock() - self._last_save >= cfg.log.checkpoint_every_s
                if by_steps or by_time:
                    self.save()
            if self._stop_signal is not None:
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            # stopped by a signal (at a step boundary) or by a second Ctrl+C (anywhere in the step)
            at_boundary = self._stop_signal is not None
            ck = self.save() if at_boundary else self._save_previous_step()
            self._event("interrupt", signal=self._stop_signal or "SIGINT", checkpoint=ck.name if ck else None)
            if at_boundary:
                where = f"checkpoint {ck} written"
            else:
                where = (f"stopped inside a step, so the newest checkpoint {ck} is the one to resume from" if ck
                         else "stopped inside a step before the first checkpoint")
            bar.write(f"interrupted at step {self.step}: {where}; continue with "
                      f"nerfkit train --data {cfg.data.path} --output {self.run_dir} --resume", file=sys.stderr)
            raise
        except OSError as e:  # disk full or a folder made read-only while training (logs, previews)
            cks = list_checkpoints(self.run_dir)
            last = f"the last checkpoint {cks[-1].name} is intact" if cks else "no checkpoint was written yet"
            raise RunError(f"{e.filename or self.run_dir}: cannot write ({e.strerror or e}) at step {self.step}; "
                           f"{last}; free disk space (or make {self.run_dir} writable) and continue with "
                           "--resume") from e
        finally:
            restore_signals()
            bar.close()
            log.close()
            self.bank.close()
        self.save()
        self._event("finish", train_time=round(self.train_time, 3))
        return self.run_dir

    def _save_previous_step(self) -> Path | None:
        """After an interruption inside a step the weights may be half-updated: keep the last checkpoint."""
        cks = list_checkpoints(self.run_dir)
        return cks[-1] if cks else None

    def _catch_signals(self):
        """Turn the first SIGINT/SIGTERM into a stop at the end of the step; returns the undo function."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        old = {}

        def handler(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # second Ctrl+C: stop now
            self._stop_signal = signal.Signals(signum).name

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, handler)
            except (ValueError, OSError):  # pragma: no cover - platforms without the signal
                pass

        def restore():
            for sig, h in old.items():
                signal.signal(sig, h)
        return restore

    def _non_finite(self, bar, what: str) -> None:
        """Count a skipped step; halve the learning rate every ``lr_backoff_after`` skips in a row; give up
        after ``max_bad_steps`` in a row."""
        g = self.cfg.guard
        self.skipped += 1
        self.bad_streak += 1
        self._event("non_finite", what=what, streak=self.bad_streak, skipped=self.skipped)
        bar.write(f"step {self.step}: non-finite {what}, step skipped ({self.skipped} so far)", file=sys.stderr)
        if self.bad_streak >= g.max_bad_steps:
            cks = list_checkpoints(self.run_dir)
            last = f"the last good checkpoint is {cks[-1]}" if cks else "no checkpoint was written"
            self._event("diverged", lr_scale=self.lr_scale)
            raise RunError(
                f"{self.run_dir}: training diverged at step {self.step}: {self.bad_streak} steps in a row gave a "
                f"non-finite {what} even with the learning rate lowered to {self.lr_scale:g}x; {last}. Check the "
                "data for NaN/Inf (images, poses, depth maps) and train again with a lower learning rate "
                "(e.g. --set lr=...) or resume with --resume")
        if self.bad_streak % g.lr_backoff_after == 0:
            self.lr_scale *= g.lr_backoff
            self._event("lr_lowered", lr_scale=self.lr_scale)
            bar.write(f"step {self.step}: {self.bad_streak} non-finite steps in a row; learning rate lowered to "
                      f"{self.lr_scale:g}x", file=sys.stderr)

    def _progress(self) -> float:
        """Fraction of the budget used: the larger of steps and time."""
        rt = self.cfg.runtime
        fr = [0.0]
        if rt.max_steps:
            fr.append(self.step / rt.max_steps)
        if rt.max_time:
            fr.append(self.train_time / rt.max_time)
        return max(fr)

    def _postfix(self, rec: dict, rays_s: float) -> str:
        rt = self.cfg.runtime
        rate = self.step / max(self.train_time, 1e-9)
        eta = []
        if rt.max_steps is not None:
            eta.append((rt.max_steps - self.step) / max(rate, 1e-9))
        if rt.max_time is not None:
            eta.append(rt.max_time - self.train_time)
        e = max(0.0, min(eta)) if eta else 0.0
        skipped = f" skipped {self.skipped}" if self.skipped else ""
        return (f"loss {rec['loss']:.4f} psnr {rec['psnr']:.2f} {rays_s:,.0f} rays/s eta {int(e) // 60}:{int(e) % 60:02d}"
                f"{skipped}")


def gradients_finite_flag(optimizer: torch.optim.Optimizer, device=None) -> torch.Tensor:
    """A boolean scalar on the device: every gradient the optimiser would apply is finite (no sync).

    Tested on each gradient's sum, which a NaN or an infinity anywhere makes non-finite: one pass over
    the hash table's gradient instead of the four of ``isfinite(g).all()`` (9% of a CPU step). Finite
    gradients whose sum overflows float32 (entries around 1e31) also count as non-finite.
    """
    sums = [p.grad.sum() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return torch.isfinite(torch.stack(sums)).all() if sums else torch.ones((), dtype=torch.bool, device=device)


def read_log(path: Path) -> list[dict]:
    """The complete records of a JSON-lines log (``metrics.jsonl``, ``events.jsonl``); a line cut short
    by a kill is left out. An absent file reads as no records."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def trim_log(path: Path, step: int) -> None:
    """Keep the complete records of a JSON-lines log whose ``step`` is at most ``step`` (atomically)."""
    from ..data.files import write_atomic

    if not path.is_file():
        return
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in read_log(path) if r.get("step", 0) <= step))


def train(cfg: TrainConfig, resume: bool = False, callbacks: Sequence[Callable] = ()) -> Path:
    """Train a run; returns its directory. ``callbacks``: see :class:`Trainer`."""
    if resume:
        cfg = _merge_resume(cfg)
    return Trainer(cfg, resume=resume, callbacks=callbacks).train()


def _merge_resume(cfg: TrainConfig) -> TrainConfig:
    """On --resume keep the stored config but take the new budgets."""
    stored = load_config(Path(cfg.output) / "config.json")
    stored.runtime.max_steps = cfg.runtime.max_steps if cfg.runtime.max_steps is not None else stored.runtime.max_steps
    stored.runtime.max_time = cfg.runtime.max_time if cfg.runtime.max_time is not None else stored.runtime.max_time
    stored.log.progress = cfg.log.progress
    return stored
