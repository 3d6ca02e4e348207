"""Datasets: readers returning SceneData, the synthetic scene, ray batching."""

from .blender import read_blender
from .colmap import read_colmap
from .colmap_model import ColmapModel, read_colmap_model, write_colmap_text
from .detect import READERS, detect_format, read_scene
from .llff import ndc_rays, read_llff
from .record3d import read_depth_exr, read_record3d
from .transforms_json import read_transforms_json
from .images import background_color, composite, load_image, read_image, save_png
from .scene import SceneData
from .synthetic import SyntheticScene, generate_synthetic

__all__ = ["SceneData", "read_blender", "read_scene", "detect_format", "READERS", "load_image", "read_image",
           "composite", "background_color", "save_png", "SyntheticScene", "generate_synthetic",
           "ColmapModel", "read_colmap_model", "write_colmap_text", "read_llff", "ndc_rays",
           "read_transforms_json", "read_colmap", "read_record3d", "read_depth_exr"]
