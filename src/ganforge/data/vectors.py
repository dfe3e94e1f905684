"""`vectors`: float vectors [N, D] from a file named by `data.path`.

- `.npy`: a 2-D numeric array [N, D] (loaded without pickle).
- `.npz`: the array `samples` (as `ganforge sample` writes), else `x`, else the only array; optional `labels`.
- `.csv`: numbers separated by commas, one vector per line; a header row is allowed (detected when a cell of
  the first row is not a number). A header column named `label` (any case) holds class labels: non-negative
  integers are used as they are; anything else is treated as class names (sorted, numbered from 0).
Values are stored as float32 and are not rescaled. NaN or infinite values are an error.
"""
from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import GanforgeError
from .base import DATASETS, Data


def _check(a: np.ndarray, where: str, name: str) -> np.ndarray:
    """Validate a loaded array -> float32 [N, D]; rows/columns in messages are 0-based indices."""
    if a.dtype.kind not in "biuf":
        raise GanforgeError(f"{where}: {name} has dtype {a.dtype}; expected real numbers (float or int)")
    if a.ndim != 2:
        raise GanforgeError(f"{where}: {name} has shape {list(a.shape)}; expected a 2-D array [N, D]"
                            + (" (for 1-D data save x[:, None])" if a.ndim == 1 else ""))
    if a.size == 0:
        raise GanforgeError(f"{where}: {name} is empty (shape {list(a.shape)}); it needs at least one vector")
    with np.errstate(over="ignore"):  # values too large for float32 become inf and are reported below
        x = np.array(a, dtype=np.float32)  # a copy: never a view of a read-only memory map
    bad = ~np.isfinite(x)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        raise GanforgeError(f"{where}: {name} holds {float(a[r, c])} at row {r}, column {c} (counting from 0): "
                            f"NaN, infinite or too large for float32; "
                            f"{int(bad.sum())} such value(s) in all; remove or replace them")
    return x


def _labels_from(values: list[str] | np.ndarray, n: int, where: str) -> tuple[np.ndarray, list[str] | None]:
    """Label column -> (int64 [N], class names or None)."""
    arr = np.asarray(values)
    assert arr.shape == (n,), (arr.shape, n)
    if arr.dtype.kind in "iu" and (arr.size == 0 or arr.min() >= 0):
        return arr.astype(np.int64), None
    try:
        ints = np.array([int(str(v).strip()) for v in arr], np.int64)
        if ints.size == 0 or ints.min() >= 0:
            return ints, None
    except ValueError:
        pass
    names = sorted({str(v).strip() for v in arr})
    index = {c: i for i, c in enumerate(names)}
    return np.array([index[str(v).strip()] for v in arr], np.int64), names


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _read_csv(path: Path, max_items: int) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, dict]:
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: tolerate Excel's byte-order mark
            reader = csv.reader(f)
            for row in reader:
                if not any(c.strip() for c in row):
                    continue  # blank line
                if header is None and not rows and not all(_is_number(c) for c in row):
                    header = [c.strip() for c in row]
                    continue
                rows.append((reader.line_num, row))
                if max_items and len(rows) >= max_items:
                    break
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise GanforgeError(f"{path}: cannot read it as CSV text ({e})") from None
    if not rows:
        raise GanforgeError(f"{path}: no data rows{' (only a header)' if header else ''}; "
                            f"it needs at least one line of numbers")
    ncol = len(header) if header is not None else len(rows[0][1])
    lower = [h.lower() for h in header] if header else []
    label_col = lower.index("label") if "label" in lower else -1
    names = header or [str(j + 1) for j in range(ncol)]
    x = np.empty((len(rows), ncol - (label_col >= 0)), np.float64)
    labels: list[str] = []
    for i, (line, row) in enumerate(rows):
        if len(row) != ncol:
            first = "the header" if header else f"line {rows[0][0]}"
            raise GanforgeError(f"{path}: line {line} has {len(row)} values but {first} has {ncol}; "
                                f"every line needs the same number of columns")
        j_out = 0
        for j, cell in enumerate(row):
            if j == label_col:
                labels.append(cell)
                continue
            try:
                x[i, j_out] = float(cell)
            except ValueError:
                raise GanforgeError(f"{path}: line {line}, column {j + 1} ({names[j]!r}): {cell!r} is not a number; "
                                    f"vectors must be numeric (name a label column 'label' in the header)") from None
            j_out += 1
    if x.shape[1] == 0:
        raise GanforgeError(f"{path}: has only a label column; it needs at least one numeric column")
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)  # values too large for float32 become inf and are reported below
    bad = ~np.isfinite(x)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        j_file = j + (label_col >= 0 and j >= label_col)
        raise GanforgeError(f"{path}: line {rows[i][0]}, column {j_file + 1} ({names[j_file]!r}): "
                            f"{rows[i][1][j_file]!r} is NaN, infinite or too large for float32; remove or replace it")
    y, class_names = (None, None)
    if label_col >= 0:
        y, class_names = _labels_from(labels, len(rows), str(path))
    info = dict(columns=[n for j, n in enumerate(names) if j != label_col] if header else None,
                label_column=header[label_col] if label_col >= 0 and header else None)
    return x, y, class_names, info


def _read_numpy(path: Path, max_items: int) -> tuple[np.ndarray, np.ndarray | None, list[str] | None, dict]:
    where = str(path)
    try:
        if path.suffix.lower() == ".npy":
            a = np.load(path, allow_pickle=False, mmap_mode="r")  # mmap: max_items reads only what it uses
            key, y_raw = "the array", None
        else:
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                key = next((k for k in ("samples", "x") if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise GanforgeError(f"{where}: holds arrays {keys}; name the vectors 'samples' or 'x'")
                a = z[key]
                y_raw = z["labels"] if "labels" in keys else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise GanforgeError(f"{where}: cannot load it as a NumPy file ({e}); save it with np.save / np.savez "
                            f"(numeric arrays, no pickled objects)") from None
    if max_items and a.ndim >= 1:
        a = a[:max_items]
    x = _check(np.asarray(a), where, key)
    y, class_names = None, None
    if y_raw is not None:
        y_raw = np.asarray(y_raw)[: x.shape[0] if max_items else None]
        if y_raw.shape != (x.shape[0],):
            raise GanforgeError(f"{where}: 'labels' has shape {list(y_raw.shape)}; "
                                f"expected [{x.shape[0]}], one per vector")
        y, class_names = _labels_from(y_raw, x.shape[0], where)
    return x, y, class_names, dict(array=key)


@DATASETS.register("vectors", doc="your vectors: a .npy, .npz or .csv file at data.path")
def vectors(cfg) -> Data:
    """A .npy / .npz / .csv file at data.path -> float32 [N, D] (+ labels when the file has them)."""
    if not cfg.path:
        raise GanforgeError("data.path: the vectors dataset needs a file; set --set data.path=FILE.npy|.npz|.csv")
    path = Path(cfg.path).expanduser()
    if not path.is_file():
        raise GanforgeError(f"data.path: {path} {'is not a file' if path.exists() else 'does not exist'}; "
                            f"point it at a .npy, .npz or .csv file of vectors")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, y, class_names, info = _read_csv(path, cfg.max_items)
    elif suffix in (".npy", ".npz"):
        x, y, class_names, info = _read_numpy(path, cfg.max_items)
    else:
        raise GanforgeError(f"data.path: {path} has an unknown extension {path.suffix!r}; use .npy, .npz or .csv")
    return Data(x=torch.from_numpy(np.ascontiguousarray(x)), kind="vector", name="vectors",
                labels=None if y is None else torch.from_numpy(y), class_names=class_names,
                info=dict(source=str(path), n=int(x.shape[0]), dim=int(x.shape[1]),
                          max_items=cfg.max_items or None, **info))
