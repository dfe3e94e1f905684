"""Devices: a name the user gives -> a torch.device this machine has, or one clear error."""
from __future__ import annotations

import torch

from ..errors import GanforgeError


def pick_device(name: str, key: str = "train.device") -> torch.device:
    """auto | cpu | cuda | cuda:N | mps -> torch.device; a device this machine does not have is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise GanforgeError(f"{key}: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise GanforgeError(f"{key}={name}: CUDA is not available here; use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise GanforgeError(f"{key}={name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError(f"{key}=mps: MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise GanforgeError(f"{key}: {name!r} is not a device ganforge runs on; use auto, cpu, cuda, cuda:N or mps")
    return dev


def bf16_native(device: torch.device) -> bool:
    """Whether `device` runs bf16 natively: CUDA with bf16 support, CPUs with AMX or AVX512-BF16 (elsewhere bf16
    autocast is emulated and slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence the getattr
        return any(getattr(torch.cpu, f, lambda: False)() for f in probes)
    return False
