"""Datasets of the book: the embedded procedural beetles (chapter 01) and real datasets from local paths (data/README.md).

Nothing is downloaded. Boxes in datasets and transforms are ``tv_tensors.BoundingBoxes`` in XYXY
pixel-edge coordinates; ``BeetlesArrays.boxes`` (numpy) are inclusive pixels, as the metrics use.
"""

from dgdm_lib.data.beetles import (
    BACKGROUNDS,
    GENERATOR_VERSION,
    PATTERNS,
    SPLIT_SIZES,
    SPLITS,
    BeetlesArrays,
    BeetlesConfig,
    BeetlesDataset,
    beetles_cache_dir,
    format_summary,
    generate_beetles,
    head_colours,
    load_beetles,
    split_seed,
)
from dgdm_lib.data.cars import StanfordCars
from dgdm_lib.data.cub import CUB200
from dgdm_lib.data.errors import AnnotationError, DatasetLayoutError, ImageReadError
from dgdm_lib.data.loaders import (
    BeetlesLoader,
    BeetlesTensors,
    DistributedBatches,
    beetles_loader,
    collate_wsol,
    epoch_draws,
    make_loader,
)
from dgdm_lib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    beetles_transforms,
    denormalize,
    normalize,
    standard_transforms,
)
from dgdm_lib.data.wsol_metadata import WSOLMetadataDataset

__all__ = [
    "BACKGROUNDS", "GENERATOR_VERSION", "PATTERNS", "SPLITS", "SPLIT_SIZES",
    "BeetlesArrays", "BeetlesConfig", "BeetlesDataset", "beetles_cache_dir", "format_summary",
    "generate_beetles", "head_colours", "load_beetles", "split_seed",
    "BeetlesLoader", "BeetlesTensors", "DistributedBatches", "beetles_loader", "collate_wsol", "epoch_draws",
    "make_loader",
    "IMAGENET_MEAN", "IMAGENET_STD", "beetles_transforms", "denormalize", "normalize", "standard_transforms",
    "CUB200", "WSOLMetadataDataset", "StanfordCars",
    "AnnotationError", "DatasetLayoutError", "ImageReadError",
]
