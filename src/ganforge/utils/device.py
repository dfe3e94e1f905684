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


def cpu_description() -> str:
    """The CPU as benchmark tables name it: the model name, its family/model numbers (cloud CPUs often report
    only "AMD EPYC") and the instructions that decide ganforge's speed, e.g. "AMD EPYC (family 25 model 1;
    AVX2, no AVX512, no native bf16)"."""
    import platform

    name, family, model, flags = platform.processor() or platform.machine(), "", "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name":
                    name = value
                elif key == "cpu family":
                    family = value
                elif key == "model":
                    model = value
                elif key == "flags":
                    flags = set(value.split())
                    break  # the first processor's entry is enough
    except OSError:
        pass
    isa = ("AMX" if "amx_tile" in flags else "AVX512-BF16" if "avx512_bf16" in flags
           else "AVX512, no native bf16" if "avx512f" in flags else "AVX2, no AVX512, no native bf16"
           if "avx2" in flags else "")
    detail = "; ".join(x for x in (f"family {family} model {model}" if family else "", isa) if x)
    return f"{name} ({detail})" if detail else name
