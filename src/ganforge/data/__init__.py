"""Datasets: `build_dataset(cfg.data)` -> Data. Importing a module registers its loaders."""
from __future__ import annotations

from . import cifar, digits, folder, idx, toy2d, vectors  # noqa: F401  (register)
from .base import DATASETS, Data, cache_dir, from_model_range, to_model_range


def build_dataset(cfg) -> Data:
    """DataConfig -> Data (in memory)."""
    return DATASETS.get(cfg.name)(cfg)


__all__ = ["DATASETS", "Data", "build_dataset", "cache_dir", "from_model_range", "to_model_range"]
