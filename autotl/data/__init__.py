"""The data layer: any input → :class:`LoadedData` (``datasets.Dataset`` + ``ClassLabel``),
then seeded stratified splits. Importing this package does not import ``datasets`` or torch."""

from __future__ import annotations

from autotl.data.images import IMAGE_EXTENSIONS, check_images
from autotl.data.sources import LoadedData, load_data
from autotl.data.splits import (
    hold_out_test,
    keep_sample,
    label_array,
    prepare_splits,
    select_classes,
    train_counts,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "LoadedData",
    "check_images",
    "hold_out_test",
    "keep_sample",
    "label_array",
    "load_data",
    "prepare_splits",
    "select_classes",
    "train_counts",
]
