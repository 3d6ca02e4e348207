"""Pose photos with COLMAP's own library (pycolmap): SIFT features, matching, incremental mapping.

``pose_images`` fills ``<workspace>/colmap/database.db`` and writes the largest reconstruction to
``<workspace>/sparse/0`` (COLMAP binary), so the workspace reads back with ``read_colmap``.
Everything runs on the CPU; each stage shows a progress bar.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import ConfigError, DataError

CAMERA_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE")
MATCHERS = ("exhaustive", "sequential")


@dataclass
class SfmOptions:
    """How photos are posed."""

    matching: str = "exhaustive"
    """exhaustive (every pair; photos) or sequential (neighbours in name order; video frames)."""
    camera_model: str | None = None
    """COLMAP lens model estimated for the photos (one of CAMERA_MODELS); None: OPENCV for one shared camera,
    SIMPLE_RADIAL (fewer unknowns) when every photo has its own camera."""
    single_camera: bool | None = None
    """one shared camera for all photos; None: shared when every photo has the same size."""
    max_image_size: int = 1600
    """SIFT runs on photos resized so their longer side is at most this."""
    max_num_features: int = 8192
    sequential_overlap: int = 10
    """sequential matching: each frame is matched with this many following frames."""
    threads: int = -1
    seed: int = 0


@dataclass
class SfmResult:
    """What posing achieved."""

    model_dir: Path
    n_images: int
    n_registered: int
    unregistered: list[str]
    mean_reprojection_error: float
    n_points: int
    mean_track_length: float
    camera_model: str = ""
    single_camera: bool = True
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir)
        return d


@contextlib.contextmanager
def _quiet_colmap():
    """COLMAP logs every step through glog on stderr; keep errors only (our report says the rest)."""
    import pycolmap

    old = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def _check_options(o: SfmOptions) -> None:
    if o.matching not in MATCHERS:
        raise ConfigError(f"--matching {o.matching}: choose one of {', '.join(MATCHERS)}")
    if o.camera_model is not None and o.camera_model not in CAMERA_MODELS:
        raise ConfigError(f"--camera-model {o.camera_model}: choose one of {', '.join(CAMERA_MODELS)}")


def pose_images(image_dir: str | Path, workspace: str | Path, image_names: list[str],
                options: SfmOptions | None = None, progress: bool = True, source: str | Path | None = None) -> SfmResult:
    """Pose ``image_names`` (files in ``image_dir``) and write ``workspace/sparse/0``.

    Raises :class:`DataError` naming ``source`` (default ``image_dir``) when fewer than half of the
    photos register, with advice.
    """
    import pycolmap

    o = options or SfmOptions()
    _check_options(o)
    image_dir, workspace = Path(image_dir), Path(workspace)
    db_path = workspace / "colmap" / "database.db"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db_path.unlink(missing_ok=True)
    names = sorted(image_names)
    n = len(names)
    if n < 2:
        raise DataError(f"{image_dir}: posing needs at least 2 photos, found {n}")
    seconds = {}
    threads = o.threads if o.threads > 0 else (os.cpu_count() or 1)
    pycolmap.set_random_seed(o.seed)

    with _quiet_colmap():
        # 1. register the photos and their cameras in the database
        if o.single_camera is None:
            from .images import image_header

            sizes = {image_header(image_dir / nm)[:2] for nm in names}
            single = len(sizes) == 1
        else:
            single = o.single_camera
        reader = pycolmap.ImageReaderOptions()
        camera_model = o.camera_model or ("OPENCV" if single else "SIMPLE_RADIAL")
        reader.camera_model = camera_model
        mode = pycolmap.CameraMode.SINGLE if single else pycolmap.CameraMode.PER_IMAGE
        with pycolmap.Database.open(db_path):  # creates the empty database
            pass
        pycolmap.import_images(db_path, image_dir, camera_mode=mode, image_names=names, options=reader)

        # 2. SIFT features, in chunks so the bar moves
        t0 = time.perf_counter()
        ext = pycolmap.FeatureExtractionOptions()
        ext.num_threads = threads
        ext.max_image_size = o.max_image_size
        ext.sift.max_num_features = o.max_num_features
        chunk = max(1, min(threads * 2, n))
        with tqdm(total=n, desc="features", unit="img", disable=not progress, leave=False) as bar:
            for i in range(0, n, chunk):
                part = names[i:i + chunk]
                pycolmap.extract_features(db_path, image_dir, image_names=part, camera_mode=mode,
                                          reader_options=reader, extraction_options=ext, device=pycolmap.Device.cpu)
                bar.update(len(part))
        seconds["features"] = time.perf_counter() - t0

        # 3. matching + geometric verification
        t0 = time.perf_counter()
        mopt = pycolmap.FeatureMatchingOptions()
        mopt.num_threads = threads
        if o.matching == "exhaustive":
            total = n * (n - 1) // 2
            run = lambda: pycolmap.match_exhaustive(db_path, matching_options=mopt, device=pycolmap.Device.cpu)  # noqa: E731
        else:
            pairing = pycolmap.SequentialPairingOptions()
            pairing.overlap = o.sequential_overlap
            total = None
            run = lambda: pycolmap.match_sequential(db_path, matching_options=mopt, pairing_options=pairing,  # noqa: E731
                                                    device=pycolmap.Device.cpu)
        with tqdm(total=total, desc=f"matching ({o.matching})", unit="pair", disable=not progress, leave=False) as bar:
            run()
            if total:
                bar.update(total)
        with pycolmap.Database.open(db_path) as db:
            n_verified = db.num_verified_image_pairs()
        seconds["matching"] = time.perf_counter() - t0

        # 4. incremental mapping; the bar counts registered photos
        t0 = time.perf_counter()
        mapper = pycolmap.IncrementalPipelineOptions()
        mapper.num_threads = threads
        mapper.random_seed = o.seed
        sparse = workspace / "colmap" / "sparse"
        sparse.mkdir(parents=True, exist_ok=True)
        with tqdm(desc="mapping (photos tried)", unit="img", disable=not progress, leave=False) as bar:
            recs = pycolmap.incremental_mapping(db_path, image_dir, sparse, options=mapper,
                                                next_image_callback=lambda: bar.update(1))
        seconds["mapping"] = time.perf_counter() - t0

    source = source or image_dir
    if not recs:
        raise DataError(f"{source}: COLMAP could not register any of the {n} photos ({n_verified} photo pairs "
                        "matched); photos need overlap (60-80% between neighbours), texture and sharp focus. Take more "
                        "photos while walking around the object, or try --matching exhaustive")
    rec = max(recs.values(), key=lambda r: r.num_reg_images())
    registered = {rec.images[i].name for i in rec.reg_image_ids()}
    unregistered = [nm for nm in names if nm not in registered]
    out = workspace / "sparse" / "0"
    out.mkdir(parents=True, exist_ok=True)
    rec.write_binary(str(out))
    result = SfmResult(model_dir=out, n_images=n, n_registered=len(registered), unregistered=unregistered,
                       mean_reprojection_error=float(rec.compute_mean_reprojection_error()),
                       n_points=int(rec.num_points3D()), mean_track_length=float(rec.compute_mean_track_length()),
                       camera_model=camera_model, single_camera=single,
                       seconds={k: round(v, 2) for k, v in seconds.items()})
    if result.n_registered < n / 2:
        shown = ", ".join(unregistered[:8]) + (" ..." if len(unregistered) > 8 else "")
        raise DataError(f"{source}: only {result.n_registered} of {n} photos registered (not registered: {shown}); "
                        "photos need overlap (60-80% between neighbours), texture and sharp focus. Remove blurry or "
                        "unrelated photos, add photos between the unregistered ones"
                        + (", or use --matching exhaustive" if o.matching == "sequential" else ""))
    return result


def registration_summary(r: dict) -> str:
    """One line for the terminal from :meth:`SfmResult.to_json` (as kept in process_report.json)."""
    return (f"registered {r['n_registered']}/{r['n_images']} photos, {r['n_points']} points, mean reprojection "
            f"error {r['mean_reprojection_error']:.3f} px, mean track length {r['mean_track_length']:.2f} "
            f"({' + '.join(f'{k} {v:.0f}s' for k, v in r['seconds'].items())})")

