"""Model families, built by name: `MODELS.get(cfg.model.arch)` gives a `ModelFamily` with G and D builders.

Contract (checked by tests over every registered family):
  G(z [N, z_dim]) -> [N, *data_shape] in model range (images: tanh, [-1, 1]);
  D(x [N // pack, pack * C, H, W] or [N // pack, pack * D]) -> logits [N // pack] (float, unbounded).
"""
from __future__ import annotations

from . import dcgan, mlp, resnet  # noqa: F401  (register)
from .base import MODELS, ModelFamily, build_models, count_params

__all__ = ["MODELS", "ModelFamily", "build_models", "count_params"]
