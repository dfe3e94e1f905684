"""Multi-process data parallelism: `torchrun --nproc_per_node=2 -m ganforge train` on CPU (gloo).

Every rank draws the global batch from one shared RNG stream and keeps its slice, and gradients are averaged,
so W processes follow the trajectory of one process with the same global batch. Not bit for bit: each rank
averages the loss over its half of the batch and the halves are then averaged, and convolution weight
gradients are summed over half-batches; float addition is not associative, so the last bits differ (~1e-7
relative). Adam divides the gradient by its own running scale, so that moves a weight by about lr * 1e-7 per
step, and over the 16 + 16 steps here the measured gap is below 1e-8 (G, D and G_ema, weights of size
~0.02-1). We allow 1e-5 absolute: 1000x that, yet 50x below what any real fault gives (a wrong shard, a
missing or doubled gradient average, a rank on other latents changes a weight by ~lr = 5e-4 in one step).

The nets have no batch norm: BN statistics are per rank unless train.sync_bn (SyncBatchNorm), which torch
runs on GPUs only.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as td

import ganforge
from ganforge.training.checkpoint import checkpoint_path, load_checkpoint

from .conftest import TINY

pytestmark = pytest.mark.skipif(not td.is_available() or not td.is_gloo_available(), reason="needs torch.distributed "
                                "with gloo")

ATOL = 1e-5
NO_BN = TINY + ["model.g_norm=none", "model.d_norm=none", "train.keep_checkpoints=0", "train.device=cpu"]




def torchrun(nproc: int, *args: str, script: Path | None = None) -> subprocess.CompletedProcess:
    """`torchrun ... -m ganforge ARGS` (or `torchrun ... SCRIPT`) on CPU processes; faulthandler is ganforge's own."""
    env = dict(os.environ, GANFORGE_DIST_BACKEND="gloo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("PYTHONFAULTHANDLER", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           *([str(script)] if script else ["-m", "ganforge"]), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _close(a: dict, b: dict, what: str) -> float:
    worst = 0.0
    for k in a:
        assert a[k].shape == b[k].shape, (what, k)
        worst = max(worst, (a[k].double() - b[k].double()).abs().max().item())
    assert worst <= ATOL, f"{what}: max |difference| {worst:.3g} > {ATOL}"
    return worst


def test_two_processes_match_one_and_resume_under_another_world_size(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    sets = [a for kv in NO_BN + ["train.kimg=0.256"] for a in ("--set", kv)]
    r = torchrun(2, "train", "digits", "--out", str(two), "--quiet", *sets)
    assert r.returncode == 0, r.stdout + r.stderr

    # rank 0 alone writes: one log line per tick, one sample grid per tick, one run directory
    ticks = [json.loads(x) for x in (two / "log.jsonl").read_text().splitlines()]
    assert [t["nimg"] for t in ticks if t["event"] == "tick"] == [128, 256]
    assert len(list((two / "samples").glob("*.png"))) == 2
    assert len({line for line in r.stdout.splitlines() if "run directory:" in line}) == 1  # all ranks agree
    a2 = load_checkpoint(checkpoint_path(two, 256))
    assert a2["world_size"] == 2

    # the same global batch in one process, twice as long (all checkpoints kept)
    ganforge.train("digits", overrides=NO_BN + ["train.kimg=0.512"], out=one, progress=False)
    a1 = load_checkpoint(checkpoint_path(one, 256))
    assert torch.equal(a1["rng"], a2["rng"]) and a1["data"]["pos"] == a2["data"]["pos"]
    for name in ("G_ema", "G", "D"):
        _close(a1[name], a2[name], f"2 processes vs 1 at 256 images: {name}")

    # resume the 2-process run in 1 process: it continues as if it had been 1 process all along
    ganforge.train(resume=two, overrides=["train.kimg=0.512"], progress=False)
    b1, b2 = load_checkpoint(checkpoint_path(one, 512)), load_checkpoint(checkpoint_path(two, 512))
    assert b2["world_size"] == 1 and torch.equal(b1["rng"], b2["rng"])
    for name in ("G_ema", "G", "D"):
        _close(b1[name], b2[name], f"2 then 1 process vs 1 at 512 images: {name}")


def test_sync_bn_on_cpu_is_a_clear_error(tmp_path):
    sets = [a for kv in TINY + ["train.sync_bn=true", "train.device=cpu"] for a in ("--set", kv)]
    r = torchrun(2, "train", "digits", "--out", str(tmp_path / "s"), "--quiet", *sets)
    assert r.returncode != 0
    assert "ganforge: error: train.sync_bn" in r.stderr, r.stderr


def test_a_rank_killed_by_a_signal_says_where_it_was(tmp_path):
    """torchrun reports only 'Signal 6 (SIGABRT) received'; ganforge's ranks print their Python stacks first."""
    script = tmp_path / "dies.py"
    script.write_text("import os\nfrom ganforge.utils import distributed\ndistributed.init()\n"
                      "if distributed.rank() == 1:\n    os.abort()  # the line the stack must name\n"
                      "distributed.barrier()\n")
    r = torchrun(2, script=script)
    assert r.returncode != 0
    assert "Fatal Python error: Aborted" in r.stderr and f'File "{script}", line 5' in r.stderr, r.stderr
