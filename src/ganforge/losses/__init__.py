"""Losses: adversarial objectives on logits, penalties, and the objective that calls backward()."""
from .adversarial import LOSSES, AdversarialLoss
from .objective import Objective, instance_noise, pack
from .penalties import gradient_penalty, r1_penalty, r2_penalty

__all__ = ["LOSSES", "AdversarialLoss", "Objective", "gradient_penalty", "instance_noise", "pack", "r1_penalty",
           "r2_penalty"]
