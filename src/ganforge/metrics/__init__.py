"""Metrics: features -> statistics -> metric (pure functions); every number is stamped with its protocol.

Registry names (for `--metrics` and `train.metrics`): fid, kid, is, pr, prdc, domain_fd, class_kl, toy,
stacked_modes; feature spaces (SPACES): inception, domain, raw, stacked. `evaluate(fake, real, names)` extracts
the features of each feature space once and shares them.
Nothing is downloaded or loaded on import.
"""
from __future__ import annotations

from . import stacked  # noqa: F401  (registers the stacked_modes metric and the stacked feature space)
from .evaluate import (METRICS, SPACES, Inputs, MetricResult, MetricSpec, SpaceContext, SpaceSpec, check_metrics,
                       evaluate, metric_options)
from .features import Space
from .fid import FeatureStats, feature_stats, fid_from_features, frechet_distance
from .isc import is_from_logits
from .kid import kid_from_features
from .prdc import density_coverage, precision_recall
from .toy import toy_metrics

__all__ = [
    "METRICS", "SPACES", "Inputs", "MetricResult", "MetricSpec", "Space", "SpaceContext", "SpaceSpec", "check_metrics",
    "evaluate", "metric_options", "FeatureStats", "feature_stats", "fid_from_features",
    "frechet_distance", "is_from_logits", "kid_from_features", "precision_recall", "density_coverage", "toy_metrics",
]
