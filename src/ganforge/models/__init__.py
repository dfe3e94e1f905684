"""Model families, built by name: `MODELS.get(cfg.model.arch)` gives a `ModelFamily` with G and D builders.

Contract (checked by tests over every registered family):
  G(z [N, z_dim]) -> [N, *data_shape] in model range (images: tanh, [-1, 1]);
  D(x [N // pack, pack * C, H, W] or [N // pack, pack * D]) -> logits [N // pack] (float, unbounded);
  E(x [N, *data_shape]) -> [N, z_dim] (families with an encoder, for model.encoder: BiGAN / ALI).
"""
from __future__ import annotations

from . import dcgan, mlp, r3gan, resnet  # noqa: F401  (register)
from .base import (MODELS, BiGANGenerator, ModelFamily, build_encoder, build_generator, build_models, check_family,
                   count_params, join, joint_shape)
from .priors import PRIORS, Prior, check_truncation, sample_prior

__all__ = ["MODELS", "PRIORS", "BiGANGenerator", "ModelFamily", "Prior", "build_encoder", "build_generator",
           "build_models", "check_family", "check_truncation", "count_params", "join", "joint_shape", "sample_prior"]
