"""``nerfkit process``: photos, a video or a capture -> one canonical transforms.json + images/ (+ sparse points)."""

from __future__ import annotations

import argparse
from pathlib import Path

SOURCES = ("images", "video", "colmap", "record3d")


def _sfm_options(a, matching_default: str):
    from ..data.sfm import SfmOptions

    return SfmOptions(matching=a.matching or matching_default, camera_model=a.camera_model,
                      single_camera={"auto": None, "single": True, "per-image": False}[a.camera_mode],
                      max_image_size=a.max_image_size, threads=a.threads or -1)


def _print_report(rep: dict, out: Path) -> None:
    from ..data.sfm import registration_summary

    print(registration_summary(rep["sfm"]))
    if rep["sfm"]["unregistered"]:
        print(f"not registered (left out of transforms.json): {', '.join(rep['sfm']['unregistered'])}")
    if rep.get("video"):
        v = rep["video"]
        print(f"video: {v['frames_decoded']} frames decoded, {v['frames_kept']} kept, {v['blurry_dropped']} dropped as blurry")
    print(f"dataset: {out / 'transforms.json'} ({rep['seconds']:.0f} s); train it with: nerfkit train --data {out}")


def cmd_process(a) -> int:
    out = Path(a.output)
    if a.source == "images":
        from ..data.capture import process_images

        rep = process_images(a.path, out, _sfm_options(a, "exhaustive"), downscale=a.downscale or 1.0,
                             overwrite=a.overwrite, progress=not a.quiet)
        _print_report(rep, out)
        return 0
    if a.source == "video":
        from ..data.capture import process_video

        rep = process_video(a.path, out, _sfm_options(a, "sequential"), fps=a.fps, max_frames=a.max_frames,
                            min_sharpness=a.min_sharpness, downscale=a.downscale or 1.0, overwrite=a.overwrite,
                            progress=not a.quiet)
        _print_report(rep, out)
        return 0
    from ..data import read_colmap_model, read_scene
    from ..data.transforms_writer import write_transforms_json

    scene = read_scene(a.path, format=a.source, downscale=a.downscale)
    points = colors = None
    if a.source == "colmap":
        from ..data.colmap import _model_folder

        model = read_colmap_model(_model_folder(Path(a.path)))
        points, colors = model.points.xyz, model.points.rgb
    path = write_transforms_json(scene, a.output, points, colors, overwrite=a.overwrite)
    print(f"{len(scene)} images, {scene.camera_model} lens -> {path}")
    if points is not None:
        print(f"{len(points)} sparse points -> {Path(a.output) / 'sparse_pc.ply'}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    pr = sub.add_parser("process", help="pose photos or a video (pycolmap), or convert a COLMAP/Record3D capture, "
                                        "into one canonical transforms.json + images/")
    pr.add_argument("source", choices=SOURCES,
                    help="images (a folder of photos), video (a video file), colmap (a workspace with images/ and "
                         "sparse/) or record3d (an EXR+JPG export)")
    pr.add_argument("path", help="the photo folder, video file or capture folder")
    pr.add_argument("--output", required=True, help="folder to write (must not exist or be empty)")
    pr.add_argument("--downscale", type=float, default=None, help="write images reduced by this factor")
    pr.add_argument("--overwrite", action="store_true", help="replace a non-empty --output")
    pr.add_argument("--quiet", action="store_true", help="no progress bars")
    g = pr.add_argument_group("posing (images, video)")
    g.add_argument("--matching", choices=["exhaustive", "sequential"], default=None,
                   help="feature matching: exhaustive (default for images) or sequential (default for video)")
    g.add_argument("--camera-model", default=None,
                   choices=["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE"],
                   help="lens model COLMAP estimates (default: OPENCV for one shared camera, SIMPLE_RADIAL per photo)")
    g.add_argument("--camera-mode", choices=["auto", "single", "per-image"], default="auto",
                   help="one camera for all photos or one per photo (auto: one when all photos have the same size)")
    g.add_argument("--max-image-size", type=int, default=1600, help="SIFT on photos resized to this longer side")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for COLMAP (default: all)")
    v = pr.add_argument_group("video")
    v.add_argument("--fps", type=float, default=2.0, help="frames kept per second of video (default 2)")
    v.add_argument("--max-frames", type=int, default=None, help="keep at most this many frames")
    v.add_argument("--min-sharpness", type=float, default=0.3,
                   help="drop frames sharper than less than this fraction of the median kept frame (default 0.3)")
    pr.set_defaults(func=cmd_process)
