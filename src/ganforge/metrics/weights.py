"""Finding and reading a user-supplied feature-network weights file (DINOv2, CLIP): never a download.

A file is looked up at an explicit path, else at the path in an environment variable, else at its default place
in the cache; it is read as plain tensors (`torch.load(weights_only=True)`: no pickled code runs, or
safetensors). Each network keeps its own wording of the fix (`fix(where) -> str`).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable

import torch

from ..errors import GanforgeError


def resolve(what: str, path: str | os.PathLike | None, env: str, default: Path, fix: Callable[[Path], str]) -> Path:
    """The weights file of `what`: `path`, else $`env`, else `default`; a missing one is one GanforgeError."""
    for given, origin in ((path, f"the {what} weights path"), (os.environ.get(env), f"${env}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise GanforgeError(f"{origin} {str(p)!r} is not a file; {fix(default)}")
            return p
    if default.is_file():
        return default
    raise GanforgeError(f"{what} weights not found (${env} is not set and {default} does not exist); ganforge "
                        f"never downloads them: {fix(default)}")


def available(env: str, default: Path) -> bool:
    """True when `resolve` would find a file without an explicit path."""
    given = os.environ.get(env)
    return Path(given).expanduser().is_file() if given else default.is_file()


def read(p: Path, what: str, suffixes: tuple[str, ...], fix: str,
         on_error: Callable[[Exception], None] | None = None) -> dict:
    """The tensors of a .pth / .pt / .bin (torch.load, weights_only) or .safetensors file.
    on_error: a network's own check of a load failure (it may raise a more precise GanforgeError)."""
    if p.suffix not in suffixes:
        raise GanforgeError(f"{what} weights {p}: unknown file type {p.suffix!r}; expected {', '.join(suffixes)}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p), device="cpu")
        with warnings.catch_warnings():   # torch warns about a TorchScript archive before refusing it
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:   # truncated download, foreign pickle, not a weights file at all
        if on_error is not None:
            on_error(e)
        first = (str(e).strip().splitlines() or [""])[0]
        raise GanforgeError(f"cannot read {what} weights {p} ({type(e).__name__}: {first}); the file is damaged or "
                            f"not a plain state_dict: {fix}") from None
