"""Progressive rendering for one browser client, in its own thread, within a share of the time.

While the camera moves, each new camera gets a fast low-resolution frame (the first level); once it
has been still for ``settle_s`` the loop renders the higher levels, each one only if the camera has
not moved meanwhile. A request made while a frame renders is picked up right after it: the loop
never queues stale cameras, it always renders the newest one.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class TimeShare:
    """Keeps rendering at most ``share`` of the wall time while ``busy()`` is true (training runs).

    Shared by all clients: after a render of ``t`` seconds the next one may start only
    ``t * (1 / share - 1)`` seconds later, so over any stretch of time training keeps >= 1 - share of it.
    """

    def __init__(self, share: float = 0.25, busy: Callable[[], bool] = lambda: False) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError(f"render time share must be in (0, 1], got {share}")
        self.share, self.busy = float(share), busy
        self._next = 0.0
        self._lock = threading.Lock()

    def charge(self, seconds: float) -> None:
        """Account a render that took ``seconds``."""
        if not self.busy():
            return
        with self._lock:
            self._next = max(self._next, time.monotonic()) + seconds * (1.0 / self.share - 1.0)

    def wait_s(self) -> float:
        """Seconds to wait before the next render may start (0 when idle or when training is paused)."""
        if not self.busy():
            return 0.0
        with self._lock:
            return max(0.0, self._next - time.monotonic())


class RenderLoop:
    """One client's render thread.

    ``render(view, max_side) -> frame`` renders the view (anything the caller uses to describe camera
    and settings) with its longer side at most ``max_side``; ``show(frame, final)`` sends it to the
    client. ``levels``: increasing max sides, e.g. (96, 256, 512). An exception in ``show`` (the client
    went away mid-render) ends the loop quietly; one in ``render`` is reported to ``on_error`` and the
    loop waits for the next request.
    """

    def __init__(self, render: Callable, show: Callable, levels: tuple[int, ...], *, settle_s: float = 0.2,
                 share: TimeShare | None = None, on_error: Callable[[BaseException], None] | None = None,
                 name: str = "nerfkit-viewer-render") -> None:
        self.render, self.show, self.levels = render, show, tuple(levels)
        self.settle_s = settle_s
        self.share = share or TimeShare(1.0)
        self.on_error = on_error or (lambda e: None)
        self._cond = threading.Condition()
        self._view = None
        self._version = 0
        self._start_level = 0
        self._stopped = False
        self.frames = 0  # frames shown, for tests and status
        self.last_shown = None  # (view, level index, frame) of the newest frame shown
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # --- called from other threads -------------------------------------------------------------
    def request(self, view, refine_only: bool = False) -> None:
        """Render ``view`` from now on. ``refine_only``: skip the low levels (same camera, new weights)."""
        with self._cond:
            self._view = view
            self._version += 1
            self._start_level = len(self.levels) - 1 if refine_only else 0
            self._cond.notify_all()

    def stop(self, timeout: float | None = 5.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def idle(self) -> bool:
        """True when the newest request has been rendered at the highest level."""
        with self._cond:
            return (self.last_shown is not None and self.last_shown[0] is self._view
                    and self.last_shown[1] == len(self.levels) - 1 and self._done_version == self._version)

    # --- the thread --------------------------------------------------------------------------------
    _done_version = -1

    def _wait_for(self, version: int, timeout: float | None) -> bool:
        """Wait until a new request or stop; True if one came (or stop) within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._stopped or self._version != version, timeout)

    def _run(self) -> None:
        version = 0
        while True:
            self._wait_for(version, None)
            with self._cond:
                if self._stopped:
                    return
                version, view, level = self._version, self._view, self._start_level
            while level < len(self.levels):
                pause = self.share.wait_s()
                if pause > 0:  # training's share: sit it out, then render the newest camera
                    with self._cond:
                        self._cond.wait_for(lambda: self._stopped, pause)
                        if self._stopped:
                            return
                        if self._version != version:  # it moved meanwhile (never restart the wait: that
                            # would starve a camera that moves more often than the pause lasts)
                            version, view, level = self._version, self._view, self._start_level
                t0 = time.monotonic()
                try:
                    frame = self.render(view, self.levels[level])
                except Exception as e:  # noqa: BLE001 - reported, the loop lives on
                    self.on_error(e)
                    break
                finally:
                    self.share.charge(time.monotonic() - t0)
                with self._cond:
                    if self._stopped:
                        return
                    stale = self._version != version
                if stale and level > 0:
                    break  # a refined frame of an old camera: drop it, render the new one fast
                try:
                    self.show(frame, level == len(self.levels) - 1)
                except Exception:  # noqa: BLE001 - the client disconnected: nothing left to do
                    with self._cond:
                        self._stopped = True
                    return
                self.frames += 1
                self.last_shown = (view, level, frame)
                if stale:
                    break
                if level == 0 and self._wait_for(version, self.settle_s):
                    break  # still moving: the next request starts at the fast level again
                level += 1
            else:
                with self._cond:
                    self._done_version = version
