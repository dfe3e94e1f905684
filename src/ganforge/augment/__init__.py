"""Differentiable augmentation of everything D sees, real and generated, in both phases.

`policies.py`: the DiffAugment transformations by name (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training"): color, translation, cutout. `adaptive.py`: the probability p with which each one
is applied to an image, fixed or adjusted from D's overfitting signal as in ADA (Karras et al. 2020, "Training
Generative Adversarial Networks with Limited Data"), and its state for checkpoints.
"""
from .adaptive import Augment, build_augment
from .policies import AUGMENTATIONS

__all__ = ["AUGMENTATIONS", "Augment", "build_augment"]
