"""The viewer's side of a running training: status, pause/resume, and a render copy of the weights.

``TrainingLink`` is a trainer callback (``Trainer(..., callbacks=[link])``): after every step the
trainer calls ``link(trainer, record)`` from its own thread. There, between steps, the link copies
the weights into the viewer's render model when the viewer asked for fresh ones and no frame is
rendering (a non-blocking lock: training never waits for a frame), publishes step/loss/PSNR, and
holds the trainer while paused (the trainer's clock stops before the callback, so a pause does not
count as training time).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Callable

import torch


class TrainingLink:
    """Between the trainer thread and the viewer threads.

    ``model_lock`` guards ``render_model``: the viewer holds it while rendering a frame.
    ``refresh_s``: at most one weight copy per this many seconds (each copy is a state_dict copy).
    ``on_status(dict)``: called (in the trainer thread, at most every ``status_s``) with the
    latest status; ``on_weights()`` after a copy (e.g. to re-render the clients' views).
    """

    def __init__(self, refresh_s: float = 1.0, status_s: float = 0.5) -> None:
        self.model_lock = threading.RLock()
        self.render_model: torch.nn.Module | None = None
        self.refresh_s, self.status_s = refresh_s, status_s
        self.status: dict = {"step": 0, "loss": None, "psnr": None, "steps_per_s": None, "state": "starting"}
        self.on_status: Callable[[dict], None] = lambda s: None
        self.on_weights: Callable[[], None] = lambda: None
        self._resume = threading.Event()
        self._resume.set()
        self._last_copy = -1e9
        self._last_status = -1e9
        self._steps = []  # (monotonic time, step) of recent steps, for steps/s
        self.copies = 0

    # --- viewer side -----------------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def pause(self) -> None:
        self._resume.clear()
        self.status["state"] = "paused"
        self.on_status(dict(self.status))

    def resume(self) -> None:
        self.status["state"] = "training"
        self._resume.set()
        self.on_status(dict(self.status))

    def training(self) -> bool:
        """True while the trainer is stepping (not paused, not finished): the render time share applies."""
        return self.status["state"] == "training"

    def attach(self, model: torch.nn.Module) -> torch.nn.Module:
        """Make the render copy of ``model`` (call before training starts or between steps)."""
        with self.model_lock:
            self.render_model = copy.deepcopy(model).requires_grad_(False)
            self._last_copy = time.monotonic()
        return self.render_model

    def finished(self, model: torch.nn.Module) -> None:
        """Training ended: take the final weights (waiting for a frame in flight) and mark it done."""
        with self.model_lock:
            self._copy(model)
        self.status["state"] = "finished"
        self._resume.set()
        self.on_status(dict(self.status))
        self.on_weights()

    # --- trainer side ----------------------------------------------------------------------------
    def __call__(self, trainer, rec: dict) -> None:
        now = time.monotonic()
        if self.status["state"] == "starting":
            self.status["state"] = "training"
        self._steps = (self._steps + [(now, int(rec["step"]))])[-50:]
        dt = self._steps[-1][0] - self._steps[0][0]
        rate = (self._steps[-1][1] - self._steps[0][1]) / dt if dt > 0 else None
        self.status.update(step=int(rec["step"]), loss=float(rec["loss"]), psnr=float(rec["psnr"]), steps_per_s=rate,
                           train_time=float(rec.get("time", 0.0)))
        if now - self._last_status >= self.status_s:
            self._last_status = now
            self.on_status(dict(self.status))
        if self.render_model is not None and now - self._last_copy >= self.refresh_s:
            if self.model_lock.acquire(blocking=False):  # a frame is rendering: try again next step
                try:
                    self._copy(trainer.model)
                finally:
                    self.model_lock.release()
                self.on_weights()
        while not self._resume.wait(0.1):  # paused: hold the trainer here (Ctrl+C still works)
            pass

    def _copy(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            self.render_model.load_state_dict(model.state_dict())
        self._last_copy = time.monotonic()
        self.copies += 1
