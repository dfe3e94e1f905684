"""How fast training runs on its device: the precision, backend switches, where the data lives."""
from __future__ import annotations

import torch

from ..utils.device import bf16_native


def resolve_precision(precision: str, device: torch.device, kind: str) -> str:
    """train.precision -> 'fp32' | 'bf16'. 'auto' picks bf16 autocast for conv nets (image data) where the
    hardware runs bf16 natively: CUDA with bf16 support, CPUs with AMX or AVX512-BF16. Small MLPs stay in
    fp32: they are bound by per-op overhead, which autocast's casts only add to."""
    if precision != "auto":
        return precision
    if kind != "image":
        return "fp32"
    return "bf16" if bf16_native(device) else "fp32"


def resolve_channels_last(setting, device: torch.device, kind: str) -> bool:
    """train.channels_last -> on or off. 'auto' is on for conv nets on CUDA, where cuDNN's NHWC kernels run the
    bf16 tensor cores without layout conversions; off elsewhere (on CPU it was no faster for ganforge's nets
    at fp32, and it is a setting to measure, benchmarks/throughput.py)."""
    if setting == "auto":
        return kind == "image" and device.type == "cuda"
    return bool(setting) and kind == "image"


def configure_backends(t, device: torch.device) -> None:
    """Process-wide backend switches for training on `device` (train.cudnn_benchmark)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(t.cudnn_benchmark)


def data_on_device(mode: str, x: torch.Tensor, device: torch.device) -> bool:
    """train.data_device -> keep the whole dataset on the training device?"""
    if mode != "auto":
        return mode == "device"
    if device.type != "cuda":
        return True  # CPU training: host memory *is* the device memory
    free, _ = torch.cuda.mem_get_info(device)
    return x.numel() * x.element_size() < free // 4
