"""Losses: adversarial objectives on logits, penalties, and the objective that calls backward()."""
from .adversarial import LOSSES, AdversarialLoss
from .penalties import gradient_penalty, r1_penalty

__all__ = ["LOSSES", "AdversarialLoss", "gradient_penalty", "r1_penalty"]
