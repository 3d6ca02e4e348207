"""Running the viewer from the CLI: on a trained model (``nerfkit view``) or beside a training."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import NerfkitError, RunError
from .server import Viewer, ViewerOptions
from .training_link import TrainingLink


def default_output_dir(source: Path) -> Path:
    """Saved views go to RUN/viewer, or SNAPSHOT_STEM_viewer beside a snapshot file."""
    source = Path(source)
    return source / "viewer" if source.is_dir() else source.with_name(source.stem + "_viewer")


def serve_forever(viewer: Viewer, message: str) -> int:
    """Print where the viewer is and block until Ctrl+C; then stop it. Returns 0."""
    print(f"{message}: {viewer.url}  (Ctrl+C to stop)", flush=True)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("viewer: stopped")
    finally:
        viewer.stop()
    return 0


def view_trained(path: str | Path, options: ViewerOptions, device: str = "auto") -> Viewer:
    """Load a run directory or snapshot and start a viewer on it (the server runs in threads)."""
    from ..export.snapshot import load_trained

    try:
        tr = load_trained(path, device)
    except NerfkitError:
        raise
    except Exception as e:  # a damaged file: say which and what to do, without a traceback
        raise RunError(f"{path}: could not load the trained model ({type(e).__name__}: {e}); check the file is a "
                       "complete run directory or snapshot (re-export it with 'nerfkit export snapshot')") from None
    if options.output_dir is None:
        options.output_dir = default_output_dir(tr.source)
    viewer = Viewer(tr.model, tr.scene, background=tr.cfg.data.background, options=options,
                    title=f"nerfkit - {Path(path).name} (step {tr.step})")
    viewer.start()
    return viewer


def start_training_viewer(trainer, options: ViewerOptions) -> tuple[Viewer, TrainingLink]:
    """A viewer on the render copy of ``trainer.model``; add the returned link to the trainer's callbacks."""
    link = TrainingLink()
    link.attach(trainer.model)
    if options.output_dir is None:
        options.output_dir = Path(trainer.run_dir) / "viewer"
    viewer = Viewer(link.render_model, trainer.scene, background=trainer.cfg.data.background, options=options,
                    link=link, title=f"nerfkit - training {Path(trainer.run_dir).name}")
    viewer.start()
    return viewer, link
