"""Model families, built by name: `MODELS.get(cfg.model.arch)` gives a `ModelFamily` with G and D builders.

Contract (checked by tests over every registered family):
  G(z [N, z_dim]) -> [N, *data_shape] in model range (images: tanh, [-1, 1]);
  D(x [N // pack, pack * C, H, W] or [N // pack, pack * D]) -> logits [N // pack] (float, unbounded);
  E(x [N, *data_shape]) -> [N, z_dim] (families with an encoder, for model.encoder: BiGAN / ALI).
Text families (kind "text", data_shape (L,)): G(z) -> scores over the vocabulary [N, L, V] (relaxed or hard
one-hots), D(one-hots [N, L, V] or token ids [N, L]) -> logits [N]; the vocabulary size is the model option
`model.vocab`, filled in from the data when training starts (`fit_vocab`). Latent text families
(`ModelFamily.latent`, ARAE): G(z) in eval mode -> hard one-hots [N, L, V] as above, in training mode -> codes
[N, code_dim] that D judges; real text enters D as G.real_codes(ids), and G.autoencoder_loss(ids) trains the codes.
"""
from __future__ import annotations

from . import arae, dcgan, mlp, r3gan, resnet, textgan  # noqa: F401  (register)
from .base import (MODELS, BiGANGenerator, ModelFamily, build_encoder, build_generator, build_models, check_family,
                   count_params, join, joint_shape)
from .priors import PRIORS, Prior, check_truncation, sample_prior
from .textgan import fit_vocab, one_hot_tokens

__all__ = ["MODELS", "PRIORS", "BiGANGenerator", "ModelFamily", "Prior", "build_encoder", "build_generator",
           "build_models", "check_family", "check_truncation", "count_params", "fit_vocab", "join", "joint_shape",
           "one_hot_tokens", "sample_prior"]
