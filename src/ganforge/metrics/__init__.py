"""Metrics: features -> statistics -> metric (pure functions); every number is stamped with its protocol.

Registry names (for `--metrics` and `train.metrics`): fid, kid, is, pr, prdc, domain_fd, class_kl, ssl_fd, ssl_kid,
ssl_pr, ssl_prdc, memorization, toy, stacked_modes, c2st, fd_dinov2, kid_dinov2, pr_dinov2, fd_clip, and for text
bleu, self_bleu, novelty, uniqueness, valid, length_tv; feature spaces (SPACES): inception, domain, selfsup, raw,
stacked, dinov2 and clip (user-supplied weights), text.
`evaluate(fake, real, names)` extracts the features of each feature space once and shares them.
Text metrics (registered: bleu, self_bleu, novelty, uniqueness, valid, length_tv, in the "text" space) are plain
functions on lists of strings in `ganforge.metrics.text`; nltk (~1.5 s to import) is imported only when BLEU runs.
Nothing is downloaded or loaded on import.
"""
from __future__ import annotations

from . import memorization  # noqa: F401  (registers the memorization metric)
from . import stacked  # noqa: F401  (registers the stacked_modes metric and the stacked feature space)
from . import c2st  # noqa: F401  (registers the c2st classifier two-sample test)
from . import dinov2  # noqa: F401  (registers fd_dinov2, kid_dinov2, pr_dinov2 and the dinov2 space)
from . import clip  # noqa: F401  (registers fd_clip and the clip feature space)
from . import text  # noqa: F401  (registers the text metrics and the text feature space)
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
