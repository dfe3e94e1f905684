"""Feature spaces and the on-disk cache of reference (real-data) features.

A feature space maps stored data (`Data.x` form) to named feature tensors and carries its protocol:
- "inception": FID Inception, {"pool3": [N, 2048], "logits_unbiased": [N, 1008]} (images).
- "domain":    the dataset's own small classifier, {"feat": [N, 128], "logits": [N, K]} (labelled images).
- "raw":       the vectors themselves, {"x": [N, D]} (vector data).

Reference features are cached under `<cache>/metrics/refs/` keyed by dataset identity (data_key + SHA-256 of the
tensor) and protocol (feature network + weights hash + resize mode + n_real + subset seed + split), as a
safetensors file of the features, a TTUR-format `.npz` (`mu`, `sigma` float64) of the Frechet statistics and a
JSON sidecar with the protocol, so statistics from different protocols are never mixed.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..utils.files import atomic_write
from .fid import feature_stats

FeatureDict = dict[str, torch.Tensor]


@dataclass
class Space:
    """A feature extractor with its protocol; `main` names the feature used by distance metrics."""

    name: str
    main: str
    protocol: dict
    extract: Callable[[torch.Tensor], FeatureDict]


_HASH_MEMO: dict[tuple, str] = {}


def tensor_sha256(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes; memoised per storage and in-place version (cheap at ticks)."""
    key = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride(), t._version)
    if key not in _HASH_MEMO:
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        _HASH_MEMO[key] = h.hexdigest()
    return _HASH_MEMO[key]


def safe_name(s: str) -> str:
    """A file-name-safe rendering of a data key (the digest next to it does the identifying)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("._")[:80] or "data"


def digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Reference:
    """Real-data features of one space (from the cache or freshly extracted) with lazily cached Frechet stats."""

    features: FeatureDict
    path: Path | None = None                       # cache stem; None when caching is off
    _stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def stats(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) float64 of feature `name`, read from / written to `<stem>.<name>.npz` (TTUR keys)."""
        if name not in self._stats:
            npz = self.path.with_name(f"{self.path.name}.{name}.npz") if self.path else None
            if npz is not None and npz.is_file():
                with np.load(npz) as f:
                    self._stats[name] = (f["mu"], f["sigma"])
            else:
                self._stats[name] = feature_stats(self.features[name])
                if npz is not None:
                    mu, sigma = self._stats[name]
                    atomic_write(npz, lambda f: np.savez(f, mu=mu, sigma=sigma))
        return self._stats[name]


def reference_features(space: Space, x: torch.Tensor, key: dict, cache: Path | None) -> Reference:
    """Features of the real subset `x` in `space`, cached under `cache/metrics/refs/` by `key` (+ the protocol)."""
    if cache is None:
        return Reference(space.extract(x))
    from safetensors.torch import load_file, save

    full_key = dict(key, space=space.name, protocol=space.protocol)
    stem = cache / "metrics" / "refs" / f"{safe_name(key.get('data_key', ''))}-{space.name}-{digest(full_key)[:20]}"
    st, meta = stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")
    if st.is_file() and meta.is_file():
        return Reference(load_file(str(st)), stem)
    feats = space.extract(x)
    atomic_write(st, save({k: v.contiguous() for k, v in feats.items()}))
    atomic_write(meta, json.dumps(full_key, indent=1, sort_keys=True, default=str))
    return Reference(feats, stem)


def cached_network(cache: Path | None, folder: str, key: str, build: Callable[[], torch.nn.Module],
                   train: Callable[[], tuple[torch.nn.Module, dict]], info: dict) -> tuple[torch.nn.Module, dict]:
    """A metric's own network (domain classifier, self-supervised net) from `<cache>/<folder>/<key>.safetensors`
    + `.json`, or trained on a miss (`train() -> (net, what training reports)`) and stored there with `info`.
    -> (net in eval mode, its JSON info)."""
    if cache is not None:
        st, js = cache / folder / f"{key}.safetensors", cache / folder / f"{key}.json"
        if st.is_file() and js.is_file():
            from safetensors.torch import load_file

            net = build()
            net.load_state_dict(load_file(str(st)))
            return net.eval().requires_grad_(False), json.loads(js.read_text())
    net, trained = train()
    info = dict(info, **trained)
    if cache is not None:
        from safetensors.torch import save

        atomic_write(st, save(net.state_dict()))
        atomic_write(js, json.dumps(info, indent=1))
    return net, info
