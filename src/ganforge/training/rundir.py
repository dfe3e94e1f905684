"""Run directories and who owns them.

A run claims its directory when it starts: an exclusive lock file (`.ganforge-lock`, created with O_EXCL, holding
the owner's pid, host and process start time) that it removes when it ends. A second run on the same directory
is refused at once; a lock whose owner is gone (killed, or the machine rebooted) is detected as stale on the same
host and taken over. While it holds the lock a run is the only writer, so it removes the temporary files that
killed writes left behind.

The rules for where a run writes:
- a new run writes to `--out`, or to `runs/<preset>-NNN` (the next free number, taken atomically). An `--out`
  that holds anything a run writes (config.yaml, log.jsonl, checkpoints/, generator/, samples/) is refused, so
  nothing there, your own config.yaml included, is overwritten; a directory left by a run that diverged before
  its first checkpoint (a log and no checkpoint) is reused, its log kept as log.failed-<time>.jsonl.
- `--resume RUN_DIR` continues in RUN_DIR. `--resume FILE.pt` continues in the run directory the file belongs to
  (RUN_DIR/checkpoints/ckpt-N.pt, RUN_DIR holding config.yaml or log.jsonl); a checkpoint anywhere else needs
  `--out NEW_RUN_DIR`, and `--resume ... --out NEW_RUN_DIR` always writes the continued run there, leaving the
  source untouched.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import GanforgeError
from ..utils import distributed as dist
from .checkpoint import CKPT_RE, list_checkpoints

LOCK = ".ganforge-lock"
RUN_FILES = ("config.yaml", "log.jsonl", "checkpoints", "generator", "samples")
CONFIG_HEADER = "# ganforge: the resolved configuration of this run, written when it started; edit a copy\n"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (Linux), to tell a live owner from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]  # field 22 of /proc/PID/stat: starttime
    except (OSError, IndexError):
        return None


def _alive(owner: dict) -> bool:
    """Is the process that wrote this lock still running? Unknown hosts count as alive (we cannot tell)."""
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: alive
        return True
    started = owner.get("started_ticks")
    return started is None or started == _start_time(pid)


class RunLock:
    """The exclusive claim of one process on a run directory."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started_ticks": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    owner = {}
                if not owner:  # being written this very moment, or damaged: look again shortly
                    time.sleep(0.2)
                    try:
                        owner = json.loads(self.path.read_text())
                    except (OSError, ValueError):
                        owner = {"pid": None, "host": socket.gethostname()}
                if _alive(owner):
                    raise in_use(self.path, owner)
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return
        raise GanforgeError(f"could not claim {self.path.parent}: another process keeps taking it; try again")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def in_use(lock: Path, owner: dict) -> GanforgeError:
    return GanforgeError(f"{lock.parent} is in use by another ganforge run (pid {owner.get('pid')} on "
                         f"{owner.get('host')}, since {owner.get('since', '?')}); wait for it to end or choose another "
                         f"--out. If no run uses it (its machine crashed), delete {lock}")


def remove_stale_temp_files(run_dir: Path) -> list[str]:
    """Temporary files of atomic writes that a killed process left (".name.XXXX.tmp", ".name.tmpPID"): only
    the lock holder may call this, as no other writer can be active."""
    removed = []
    for d in (run_dir, run_dir / "checkpoints", run_dir / "generator", run_dir / "samples"):
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and p.name.startswith(".") and ".tmp" in p.name and p.name != LOCK:
                    p.unlink(missing_ok=True)
                    removed.append(str(p))
    return removed


def claim_new_run_dir(out: str | Path | None, name: str) -> tuple[Path, RunLock]:
    """The directory of a new run, claimed: --out, or the next free runs/<name>-NNN."""
    if out:
        run_dir = Path(out)
        if run_dir.exists() and not run_dir.is_dir():
            raise GanforgeError(f"--out {str(run_dir)!r} is a file; give a directory for the run")
        lock = claim_run_dir(run_dir)
        try:
            check_free(run_dir, locked=True)
        except GanforgeError:
            lock.release()
            raise
        return run_dir, lock
    root = Path("runs")
    root.mkdir(exist_ok=True)
    i = 0
    while True:
        run_dir = root / f"{name}-{i:03d}"
        try:
            run_dir.mkdir()  # atomic: two runs starting together never pick the same number
        except FileExistsError:
            i += 1
            continue
        return run_dir, claim_run_dir(run_dir)


def claim_run_dir(run_dir: Path) -> RunLock:
    """The lock of `run_dir`, acquired (a GanforgeError when another live run holds it)."""
    lock = RunLock(run_dir)
    lock.acquire()
    return lock


def _ours(config_yaml: Path) -> bool:
    """Was this config.yaml written by a ganforge run (not a file of the user's)?"""
    try:
        with open(config_yaml, encoding="utf-8", errors="replace") as f:
            return f.readline() == CONFIG_HEADER
    except OSError:
        return False


def check_free(run_dir: Path, locked: bool = False) -> None:
    """A new run may not write into a directory holding a run's files (it would overwrite them), except one
    left by a run that died before its first checkpoint (nothing to resume): its log, if any, is kept aside."""
    lock = run_dir / LOCK
    if not locked and lock.exists():  # said first: a live run's files are not "a run to resume"
        try:
            owner = json.loads(lock.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner and _alive(owner):
            raise in_use(lock, owner)
    present = [n for n in RUN_FILES if (run_dir / n).exists()]
    if not present:
        return
    config = run_dir / "config.yaml"
    died_early = not list_checkpoints(run_dir) and not (run_dir / "generator").exists() \
        and (not config.exists() or _ours(config))
    if not died_early:
        what = "a run" if list_checkpoints(run_dir) or (run_dir / "log.jsonl").exists() else "files a run writes"
        raise GanforgeError(f"--out {str(run_dir)!r} already holds {what} ({', '.join(present)}), which a new run "
                            f"would overwrite; continue it with `ganforge train --resume {run_dir}` or choose "
                            "another --out")
    if (run_dir / "log.jsonl").exists():
        (run_dir / "log.jsonl").rename(run_dir / f"log.failed-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")


def resume_target(resume: str | Path, out: str | Path | None) -> tuple[Path, Path, Path]:
    """--resume SRC [--out DST] -> (checkpoint path, the source run directory, the run directory written to)."""
    p = Path(resume)
    if p.is_file():
        if not CKPT_RE.match(p.name):
            raise GanforgeError(f"--resume {str(p)!r}: expected a run directory or a checkpoints/ckpt-*.pt file")
        ckpt, src = p, p.parent.parent
        in_run = p.parent.name == "checkpoints" and any((src / n).is_file() for n in ("config.yaml", "log.jsonl"))
        if not in_run and not out:
            raise GanforgeError(f"--resume {str(p)!r}: this checkpoint is not inside a run directory "
                                "(RUN_DIR/checkpoints/); say where the continued run goes with --out NEW_RUN_DIR")
    elif p.is_dir():
        ckpts = list_checkpoints(p)
        if not ckpts:
            raise GanforgeError(f"--resume {str(p)!r}: no checkpoints in {str(p / 'checkpoints')!r} "
                                "(is this a ganforge run directory?)")
        ckpt, src = ckpts[-1], p
    else:
        raise GanforgeError(f"--resume {str(p)!r}: no such run directory or checkpoint file")
    return ckpt, src, Path(out) if out else src


def set_aside_newer(run_dir: Path, ckpt_path: Path) -> Path | None:
    """A resume from an older checkpoint of a run moves its newer checkpoints to their own folder
    checkpoints/superseded/<time>-from-<ckpt>/ (never deleted, never overwritten by a later resume)."""
    newer = [p for p in list_checkpoints(run_dir) if p.name > ckpt_path.name]
    if not newer or not dist.is_main():
        return None
    base = run_dir / "checkpoints" / "superseded" / f"{time.strftime('%Y%m%dT%H%M%S')}-from-{ckpt_path.stem}"
    aside, k = base, 1
    while aside.exists():
        aside, k = base.with_name(f"{base.name}-{k}"), k + 1
    aside.mkdir(parents=True)
    for p in newer:
        p.rename(aside / p.name)
    return aside
