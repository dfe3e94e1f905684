import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One thread: OpenMP's spinning threads make torch 10-50x slower when another process shares the two cores here,
# and the tiny test models gain nothing from a second thread anyway.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]

# A tiny, fast configuration for end-to-end runs (8x8 digits, narrow nets, a few hundred images).
TINY = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
        "train.kimg=0.256", "train.tick_kimg=0.128", "train.ema_kimg=0.1", "train.grid_size=16",
        "train.precision=fp32", "train.metrics=[]"]  # pinned: the digits preset's own values may change


def resume_is_exact(overrides: list[str], tmp_path: Path) -> Path:
    """Train TINY's 256 images in one run, and 128 then a resume to 256 in another: every G, D and G_ema tensor
    of the last checkpoints must be equal bit for bit. Returns the one-run directory."""
    import ganforge
    from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

    full = ganforge.train("digits", overrides=overrides, out=tmp_path / "f", progress=False)
    half = ganforge.train("digits", overrides=overrides + ["train.kimg=0.128"], out=tmp_path / "h", progress=False)
    ganforge.train(resume=half, overrides=["train.kimg=0.256"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    return full


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m ganforge ...` in a subprocess and capture its output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=env)


def one_line_error(r: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: exit code 2, no traceback, exactly one line on stderr holding every fragment."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def tiny_overrides():
    return list(TINY)


@pytest.fixture
def syllable_lines(tmp_path):
    """A small text file for the text families' tests: 300 lines of one or two made-up syllables."""
    rng = random.Random(0)
    syllables = ["ba", "ka", "to", "mi", "ne", "ro"]
    path = tmp_path / "lines.txt"
    path.write_text("".join("".join(rng.choice(syllables) for _ in range(rng.randint(1, 2))) + "\n"
                            for _ in range(300)), encoding="utf-8")
    return path
