"""Checkpoints (full training state) and the exported generator, written atomically.

Artefacts are data, not code: state_dicts, counters, RNG states and the config; loaded with weights_only=True.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import GanforgeError

CKPT_RE = re.compile(r"^ckpt-(\d{10})\.pt$")


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def checkpoint_path(run_dir: Path, nimg: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt-{nimg:010d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if CKPT_RE.match(p.name))


def save_checkpoint(run_dir: Path, state: dict, keep: int) -> Path:
    path = checkpoint_path(run_dir, state["nimg"])
    atomic_write(path, lambda f: torch.save(state, f))
    if keep > 0:  # prune the oldest, never anything newer than what we just wrote
        older = [p for p in list_checkpoints(run_dir) if p.name < path.name]
        for p in older[: max(len(older) - (keep - 1), 0)]:
            p.unlink()
    return path


def load_checkpoint(path: Path) -> dict:
    """Load and sanity-check a checkpoint; a corrupt or truncated file is a clear GanforgeError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanforgeError(f"checkpoint {str(path)!r} not found") from None
    except Exception as e:  # zip errors, EOF, unpickling: all mean the file is damaged
        raise GanforgeError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); nothing was changed. "
            f"Resume from an earlier one with --resume {path.parent}/ckpt-<N>.pt") from None
    need = {"config", "G", "D", "G_ema", "opt_g", "opt_d", "nimg", "tick", "rng", "data"}
    if not isinstance(state, dict) or not need <= set(state):
        raise GanforgeError(f"checkpoint {str(path)!r} is not a ganforge checkpoint "
                            f"(missing {sorted(need - set(state) if isinstance(state, dict) else need)})")
    return state


def resolve_resume(target: str | Path) -> tuple[Path, Path]:
    """--resume RUN_DIR | CKPT -> (run_dir, checkpoint path)."""
    p = Path(target)
    if p.is_file():
        if not CKPT_RE.match(p.name):
            raise GanforgeError(f"--resume {str(p)!r}: expected a run directory or a checkpoints/ckpt-*.pt file")
        return p.parent.parent, p
    if not p.is_dir():
        raise GanforgeError(f"--resume {str(p)!r}: no such run directory")
    ckpts = list_checkpoints(p)
    if not ckpts:
        raise GanforgeError(f"--resume {str(p)!r}: no checkpoints in {str(p / 'checkpoints')!r} "
                            "(is this a ganforge run directory?)")
    return p, ckpts[-1]


def export_generator(run_dir: Path, G_ema: torch.nn.Module, meta: dict) -> None:
    """generator/model.safetensors + generator/config.json: everything `ganforge.load` needs, no training code."""
    from safetensors.torch import save

    out = Path(run_dir) / "generator"
    sd = {k: v.detach().to("cpu").contiguous() for k, v in G_ema.state_dict().items()}
    blob = save(sd)
    atomic_write(out / "model.safetensors", lambda f: f.write(blob))
    atomic_write(out / "config.json", lambda f: f.write(json.dumps(meta, indent=2)), mode="w")
