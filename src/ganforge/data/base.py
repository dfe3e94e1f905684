"""The dataset contract: every loader returns a `Data` (tensors in memory) built from a `DataConfig`.

Images are uint8 [N, C, H, W]; vectors are float32 [N, D]; text is int64 token ids [N, L] (data/text.py: PAD, EOS,
the tokeniser in `info["tokenizer"]`). Conversion to the range the models see happens
in ONE place: `to_model_range` / `from_model_range`. The requested geometry (`data.resolution`,
`data.width`) is interpreted in ONE place too: `requested_size` / `target_size`; resampling itself is
`ganforge.utils.images.resize` / `fit` (one filter for every loader).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..errors import GanforgeError
from ..registry import Registry

DATASETS: Registry[Callable[..., "Data"]] = Registry("dataset")


@dataclass
class Data:
    x: torch.Tensor                      # uint8 [N, C, H, W] (kind "image"), float32 [N, D] (kind "vector") or
                                         # int64 token ids [N, L] (kind "text": ids, EOS, PAD...; data/text.py)
    kind: str                            # "image" | "vector" | "text"
    name: str                            # registry name (or a descriptive name)
    labels: torch.Tensor | None = None   # int64 [N] class labels, when the data has them
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)  # provenance: files read, preprocessing, skipped items, ...

    def __post_init__(self) -> None:
        assert self.kind in ("image", "vector", "text"), self.kind
        if self.kind == "image":
            assert self.x.dtype == torch.uint8 and self.x.ndim == 4, (self.x.dtype, self.x.shape)
        elif self.kind == "text":
            assert self.x.dtype == torch.int64 and self.x.ndim == 2, (self.x.dtype, self.x.shape)
        else:
            assert self.x.dtype == torch.float32 and self.x.ndim == 2, (self.x.dtype, self.x.shape)
        if self.labels is not None:
            assert self.labels.shape == (self.x.shape[0],), (self.labels.shape, self.x.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one item: (C, H, W), (D,) or (L,)."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]


def build_dataset(cfg) -> Data:
    """DataConfig -> Data (in memory), through the registry."""
    return DATASETS.get(cfg.name)(cfg)


def to_model_range(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Stored data -> what D sees: uint8 images -> float in [-1, 1]; vectors pass through as float; text token ids
    pass through as int64 (a text model embeds or one-hots them itself: it knows the vocabulary)."""
    if kind == "image":
        return x.float().mul_(1 / 127.5).sub_(1.0)
    if kind == "text":
        return x.long()
    return x.float()


def from_model_range(x: torch.Tensor, kind: str) -> torch.Tensor:
    """G's output -> stored form: images in [-1, 1] -> uint8 (round half up, as StyleGAN2-ADA); vectors -> float32;
    text: token ids [N, L] stay int64, scores over the vocabulary [N, L, V] (logits, one-hots) -> their argmax."""
    if kind == "image":
        return (x.float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if kind == "text":
        return x.argmax(-1) if x.is_floating_point() and x.ndim == 3 else x.long()
    return x.float()


def cache_dir(cfg_cache_dir: str = "") -> Path:
    """Download / preprocessed-data cache: data.cache_dir, else $GANFORGE_CACHE, else ~/.cache/ganforge."""
    p = cfg_cache_dir or os.environ.get("GANFORGE_CACHE") or os.path.join(Path.home(), ".cache", "ganforge")
    return Path(p).expanduser()


def data_key(cfg) -> str:
    """A readable name for a DataConfig (dataset + preprocessing), used in cache keys of metric references and
    domain classifiers (their identity also includes a hash of the tensor)."""
    parts = [cfg.name, cfg.variant, cfg.path, cfg.resolution, cfg.width, cfg.channels, cfg.crop, cfg.split, cfg.n,
             cfg.seed, cfg.max_items] + [f"{k}={v}" for k, v in sorted(cfg.options.items())]
    return "-".join(str(v) for v in parts if v not in ("", 0, None))


def n_classes_of(data: Data) -> int:
    """The number of classes of labelled data (from its class names, else the largest label + 1); 0 without."""
    if data.labels is None:
        return 0
    return len(data.class_names) if data.class_names else int(data.labels.max()) + 1


def class_frequencies(data: Data) -> torch.Tensor | None:
    """Each class's share of the data (float32 [K]), or None when the data has no labels."""
    if data.labels is None:
        return None
    counts = torch.bincount(data.labels.long(), minlength=n_classes_of(data)).float()
    return counts / counts.sum()


def requested_size(cfg) -> tuple[int, int] | None:
    """(H, W) asked for by data.resolution / data.width, or None for the native size."""
    return (cfg.resolution, cfg.width or cfg.resolution) if cfg.resolution else None


def target_size(cfg, native: tuple[int, int], what: str) -> tuple[int, int]:
    """(H, W) for a dataset of fixed size `native`: the requested size, which must keep the aspect ratio."""
    size = requested_size(cfg)
    if size is None:
        return native
    h, w = size
    if h * native[1] != w * native[0]:
        raise GanforgeError(
            f"data.width: {what} images are {native[0]}x{native[1]}; a {h}x{w} target would distort them; "
            f"set only data.resolution (or use the `folder` loader, which crops)")
    return size
