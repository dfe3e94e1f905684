"""Class-conditional generation: labels flow from the data to G(z, c) and a projection D, resume stays exact,
sampling takes a class, ticks write a grid with a column per class, and the conditional metrics score it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.errors import GanforgeError
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

from .conftest import TINY, run_cli

COND = TINY + ["model.conditional=true"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return ganforge.train("digits", overrides=COND + ["train.metrics=[class_acc,class_fd]", "train.metrics_n=200"],
                          out=tmp_path_factory.mktemp("cond") / "run", progress=False)


def test_a_conditional_run_logs_the_conditional_metrics(run):
    ticks = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    m = ticks[-1]["metrics"]
    assert 0 <= m["class_acc"]["class_acc"] <= 1 and 0.5 < m["class_acc"]["real_acc"] <= 1
    assert m["class_fd"]["class_fd"] > 0
    meta = json.loads((run / "generator" / "config.json").read_text())
    assert meta["data"]["n_classes"] == 10 and sum(meta["data"]["class_freq"]) == pytest.approx(1)


def test_the_tick_grid_has_a_column_per_class(run):
    grid = np.asarray(Image.open(sorted((run / "samples").glob("*.png"))[-1]))
    scale = grid.shape[1] // (10 * (8 + 2) + 2)  # 10 columns of 8-pixel images, 2-pixel padding, upscaled
    assert grid.shape[1] == scale * (10 * 10 + 2)


def test_sampling_a_class(run, tmp_path):
    g = ganforge.load(run)
    assert g.conditional and g.n_classes == 10
    a, b = g.sample(6, seed=1, labels=3), g.sample(6, seed=1, labels=4)
    assert a.shape == (6, 8, 8, 1) and not np.array_equal(a, b)  # same latents, another class: other images
    assert np.array_equal(g.sample(6, seed=1, labels=[3] * 6), a)
    default = g.sample(6, seed=1)  # classes drawn from the data's frequencies, reproducibly
    assert np.array_equal(default, g.sample(6, seed=1))
    with pytest.raises(GanforgeError, match="classes are 0..9"):
        g.sample(2, labels=12)
    r = run_cli("sample", str(run), "--n", "3", "--class", "all", "--out", str(tmp_path / "all.npz"))
    assert r.returncode == 0, r.stderr
    z = np.load(tmp_path / "all.npz")
    assert z["images"].shape == (30, 8, 8, 1) and z["labels"].tolist() == [k for k in range(10) for _ in range(3)]
    r = run_cli("sample", str(run), "--n", "4", "--class", "7", "--out", str(tmp_path / "seven.png"))
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", str(run), "--n", "300", "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    e = json.loads((tmp_path / "e.json").read_text())
    assert {"class_acc", "class_fd", "domain_fd", "class_kl"} <= set(e)
    per = e["class_acc"]["protocol"]["per_class"]  # the sample accuracy class by class, beside the real one
    assert len(per) == 10 and all(0 <= v["samples"] <= 1 and 0 <= v["real"] <= 1 for v in per.values())
    assert min(v["samples"] for v in per.values()) == e["class_acc"]["values"]["worst_class_acc"]


@pytest.mark.parametrize("extra", [
    ["model.arch=r3gan", "model.g_norm=none", "model.d_norm=none", "loss.name=relativistic", "loss.r1_gamma=0.1",
     "loss.r2_gamma=0.1", "model.mbstd=2"],
    # the fashion-cond preset's combination: a projection D with BatchNorm and a lazy R1
    ["model.arch=dcgan", "model.g_norm=batch", "model.d_norm=batch", "loss.name=nonsaturating", "loss.r1_gamma=10",
     "loss.reg_interval=2"],
], ids=["r3gan-relativistic-r1r2", "dcgan-batchnorm-lazy-r1"])
def test_conditional_resume_is_exact(tmp_path, extra):
    extra = extra + ["train.tick_kimg=0.128"]
    full = ganforge.train("digits", overrides=COND + extra + ["train.kimg=0.256"], out=tmp_path / "f", progress=False)
    half = ganforge.train("digits", overrides=COND + extra + ["train.kimg=0.128"], out=tmp_path / "h", progress=False)
    ganforge.train(resume=half, overrides=["train.kimg=0.256"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)


def test_what_conditioning_refuses(tmp_path):
    unlabelled = tmp_path / "v.npy"
    np.save(unlabelled, np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32))
    with pytest.raises(GanforgeError, match="needs a dataset with class labels"):
        ganforge.train("ring", overrides=["model.conditional=true", "data.name=vectors", f"data.path={unlabelled}",
                                          "train.kimg=0.1", "train.metrics=[]"], out=tmp_path / "r", progress=False)
    with pytest.raises(GanforgeError, match="model.conditional: not defined together with model.encoder"):
        ganforge.resolve_config("digits", ["model.conditional=true", "model.encoder=true"])
    with pytest.raises(GanforgeError, match="'class_acc' scores a class-conditional generator"):
        ganforge.train("digits", overrides=TINY + ["train.metrics=[class_acc]"], out=tmp_path / "u", progress=False)
    assert not (tmp_path / "u").exists()  # refused before anything was written
    run = ganforge.train("digits", overrides=TINY + ["train.kimg=0.128"], out=tmp_path / "plain", progress=False)
    with pytest.raises(GanforgeError, match="not class-conditional"):
        ganforge.load(run).sample(2, labels=1)
