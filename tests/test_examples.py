"""The scripts in examples/ run end to end with a tiny budget, and use only the public API."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
SCRIPTS = ["train_and_sample", "resume", "custom_loss", "interpolate", "invert"]
# What an example may import from ganforge: the package itself; custom_loss also the loss registry, as the
# how-to guide documents for registering a loss.
ALLOWED = {"ganforge"}
EXTRA = {"custom_loss": {"ganforge.losses"}}


def run_example(name: str, out: Path, *args: str, tiny_by_env: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    cmd = [sys.executable, str(EXAMPLES / f"{name}.py"), "--out", str(out), *args]
    if tiny_by_env:
        env["GANFORGE_EXAMPLE_TINY"] = "1"
    else:
        cmd.append("--tiny")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent, env=env, timeout=240)
    assert r.returncode == 0, f"{name}: {r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_uses_only_the_public_api(name):
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    mods = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mods.add(node.module or "")
    ours = {m for m in mods if m == "ganforge" or m.startswith("ganforge.")}
    assert "ganforge" in ours and ours <= ALLOWED | EXTRA.get(name, set()), ours
    assert '"--tiny"' in (EXAMPLES / f"{name}.py").read_text()


def test_train_and_sample(tmp_path):
    out = tmp_path / "ts"
    r = run_example("train_and_sample", out)
    assert "samples (64, 8, 8, 1) uint8" in r.stdout
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (8 * 8 * 4, 8 * 8 * 4) and grid.std() > 0
    assert (out / "run" / "generator" / "model.safetensors").is_file()


def test_resume_extends_the_run(tmp_path):
    out = tmp_path / "rs"
    r = run_example("resume", out)
    assert "as expected: this run already reached train.kimg=0.128" in r.stdout
    log = [json.loads(x) for x in (out / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["event"] for x in log] == ["tick", "resume", "tick"]
    assert log[-1]["nimg"] == 256 and log[1]["from"] == "ckpt-0000000128.pt"


def test_custom_loss_trains_with_the_registered_loss(tmp_path):
    out = tmp_path / "cl"
    run_example("custom_loss", out)
    assert "name: soft-hinge" in (out / "run" / "config.yaml").read_text()
    assert "margin: 0.5" in (out / "run" / "config.yaml").read_text()  # the loss's own option, saved
    ticks = [json.loads(x) for x in (out / "run" / "log.jsonl").read_text().splitlines()]
    assert len(ticks) == 3 and all(np.isfinite(t["loss_d"]) and np.isfinite(t["loss_g"]) for t in ticks)
    assert "d_real" not in ticks[-1]  # probability=False: sigmoid(logit) is no probability for this loss


def test_interpolate_with_the_env_var(tmp_path):
    out = tmp_path / "ip"
    run_example("interpolate", out, "--pairs", "3", "--steps", "5", tiny_by_env=True)
    pic = np.asarray(Image.open(out / "interpolation.png"))
    assert pic.shape == (3 * 8 * 8, 5 * 8 * 8)  # 3 rows x 5 steps of 8x8 images, scaled 8x
    # the two ends of a row are the samples of the two seeds, and they differ
    assert not np.array_equal(pic[:64, :64], pic[:64, -64:])


def test_invert_prints_the_three_ways(tmp_path):
    out = tmp_path / "inv"
    r = run_example("invert", out)
    rows = [line for line in r.stdout.splitlines() if "own mode for" in line]
    assert [row.split(":")[0].strip() for row in rows] == ["encoder", "projection", "random z"]
    share = {row.split(":")[0].strip(): float(row.split("for")[1].split("%")[0]) for row in rows}
    assert all(0 <= v <= 100 for v in share.values())
    assert share["projection"] >= share["random z"]  # a search beats no inversion even after seconds of training
