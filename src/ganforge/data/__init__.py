"""Datasets: `build_dataset(cfg.data)` -> Data. Importing a module registers its loaders."""
from __future__ import annotations

from . import cifar, digits, folder, idx, stacked, text, toy2d, vectors  # noqa: F401  (register)
from .base import (DATASETS, Data, build_dataset, cache_dir, class_frequencies, data_key, from_model_range,
                   n_classes_of, requested_size, target_size, to_model_range)
from .sampler import DeviceSampler, DiskSampler

__all__ = ["DATASETS", "Data", "DeviceSampler", "DiskSampler", "build_dataset", "cache_dir", "class_frequencies",
           "data_key",
           "from_model_range", "n_classes_of", "requested_size", "target_size", "to_model_range"]
