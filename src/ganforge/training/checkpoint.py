"""Checkpoint files: the full training state (TrainState.state_dict() + the config), written atomically,
the newest `train.keep_checkpoints` kept; read back with weights_only=True (data, never code).
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from ..config import Config, to_dict
from ..errors import GanforgeError
from ..utils import distributed as dist
from ..utils.files import atomic_write
from ..version import __version__
from .state import TrainState, check_state_dict

CKPT_RE = re.compile(r"^ckpt-(\d{10})\.pt$")


def checkpoint_path(run_dir: Path, nimg: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt-{nimg:010d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if CKPT_RE.match(p.name))


def save_checkpoint(run_dir: Path, cfg: Config, state: TrainState) -> Path:
    """Write the checkpoint of `state` at state.nimg and prune the oldest beyond train.keep_checkpoints."""
    blob = {"config": to_dict(cfg), "ganforge_version": __version__, "world_size": dist.world_size(),
            **state.state_dict()}
    path = checkpoint_path(run_dir, state.nimg)
    atomic_write(path, lambda f: torch.save(blob, f))
    keep = cfg.train.keep_checkpoints
    if keep > 0:  # prune the oldest, never anything newer than what we just wrote
        older = [p for p in list_checkpoints(run_dir) if p.name < path.name]
        for p in older[: max(len(older) - (keep - 1), 0)]:
            p.unlink()
    return path


def load_checkpoint(path: Path) -> dict:
    """Load and sanity-check a checkpoint; a corrupt, truncated or unsafe file is a clear GanforgeError."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise GanforgeError(f"checkpoint {str(path)!r} not found") from None
    except pickle.UnpicklingError as e:
        if "unsupported global" in str(e).lower():  # a pickled callable: what an attack would use
            raise GanforgeError(f"checkpoint {str(path)!r} holds Python objects other than tensors and plain data "
                                "(it would run code when loaded); refusing it. ganforge checkpoints never do: it "
                                "was not written by ganforge, or was tampered with") from None
        raise GanforgeError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); nothing was changed. "
            f"Resume from an earlier one with --resume {path.parent}/ckpt-<N>.pt") from None
    except Exception as e:  # zip errors, EOF: the file is damaged
        raise GanforgeError(
            f"checkpoint {str(path)!r} is corrupt or truncated ({type(e).__name__}); nothing was changed. "
            f"Resume from an earlier one with --resume {path.parent}/ckpt-<N>.pt") from None
    check_state_dict(state, f"checkpoint {str(path)!r}")
    return state
