"""Run directories: a new one per run (runs/<preset>-NNN unless --out), never a directory that holds a run."""
from __future__ import annotations

from pathlib import Path

from ..errors import GanforgeError
from .checkpoint import list_checkpoints


def new_run_dir(out: str | Path | None, name: str) -> Path:
    if out:
        run_dir = Path(out)
        if list_checkpoints(run_dir) or (run_dir / "log.jsonl").exists():
            raise GanforgeError(f"--out {str(run_dir)!r} already holds a run; continue it with "
                                f"`ganforge train --resume {run_dir}` or choose another --out")
    else:
        root = Path("runs")
        i = 0
        while (root / f"{name}-{i:03d}").exists():
            i += 1
        run_dir = root / f"{name}-{i:03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir
