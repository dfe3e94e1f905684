"""File I/O with ONE atomic writer: every file ganforge writes (checkpoints, the exported generator, caches,
samples, reports) is written to a temporary file in the same folder, flushed to disk and renamed over its
name, so a crash or kill never leaves a half-written file under the real name."""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from ..errors import GanforgeError


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[BinaryIO], None]) -> Path:
    """Write `content` (bytes, text as UTF-8, or a function writing to a binary file) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return atomic_write(path, json.dumps(obj, indent=indent, sort_keys=False, default=str))


def write_npz(path: str | os.PathLike, compressed: bool = True, **arrays: np.ndarray) -> Path:
    """A .npz of `arrays`, written atomically."""
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return atomic_write(path, buf.getvalue())


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """One JSON line appended (and flushed): a log that a crash can cut short by at most its last line."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in `path`, or None when it is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_array(path: str | os.PathLike, names: tuple[str, ...], only_named: bool = False) -> tuple[str | None,
                                                                                                   np.ndarray]:
    """The numeric array in a .npy file, or the one named `names[i]` (or, unless only_named, the only one) in a
    .npz file, whatever the file's extension says -> (its name or None, array). A damaged file, pickled objects
    or non-numbers are one clear GanforgeError."""
    try:
        obj = np.load(path, allow_pickle=False)
        if isinstance(obj, np.ndarray):
            key, a = None, obj
        else:
            with obj as z:
                only = z.files[0] if len(z.files) == 1 and not only_named else None
                key = next((k for k in names if k in z.files), only)
                if key is None:
                    raise GanforgeError(f"{path}: holds arrays {z.files or 'none'}; name the data "
                                        f"{' or '.join(repr(n) for n in names)}")
                a = z[key]
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise GanforgeError(f"{path}: holds Python objects, not numbers (ganforge never unpickles data files); "
                                "save plain numeric arrays with np.save / np.savez") from None
        raise GanforgeError(f"{path}: cannot read it as a numpy file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:  # truncated, not a numpy file
        raise GanforgeError(f"{path}: cannot read it as a numpy file ({type(e).__name__}: {e})") from None
    if a.dtype.kind not in "biuf":
        raise GanforgeError(f"{path}: {repr(key) if key else 'the array'} holds {a.dtype} values; expected numbers")
    return key, a
