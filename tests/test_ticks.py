"""Ticks: statistics by name from the objective to every sink (log.jsonl, TensorBoard, progress line); a tick
metric that cannot work fails before training, one that fails later loses nothing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ganforge
from ganforge.errors import GanforgeError
from ganforge.losses import Objective
from ganforge.metrics import METRICS, MetricSpec
from ganforge.training.checkpoint import list_checkpoints
from ganforge.training.sinks import TensorBoardSink
from ganforge.utils.statinfo import progress_text
from ganforge.utils.stats import Stats

from .conftest import TINY


def test_stats_accumulate_by_name_and_reset():
    s = Stats()
    for v in (1.0, 2.0, 6.0):
        s.add("loss_d", torch.tensor(v))
    s.add("loss_g", torch.tensor(5.0, requires_grad=True) * 2)  # detached on the way in
    assert s.names() == ["loss_d", "loss_g"]
    assert s.read() == {"loss_d": 3.0, "loss_g": 10.0}
    assert s.read() == {}  # read resets


def test_a_new_statistic_is_one_line(tmp_path, monkeypatch):
    """One `stats.add` in the objective: the statistic reaches log.jsonl, TensorBoard and the progress line."""
    d_phase = Objective.d_phase

    def with_extra(self, real, z, stats, *a, **k):
        out = d_phase(self, real, z, stats, *a, **k)
        stats.add("real_abs_mean", real.abs().mean())  # the one line
        return out

    monkeypatch.setattr(Objective, "d_phase", with_extra)
    run = ganforge.train("digits", overrides=TINY, out=tmp_path / "r", progress=False)
    ticks = [t for t in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if t["event"] == "tick"]
    assert all(0 < t["real_abs_mean"] <= 1 for t in ticks)
    assert "real_abs_mean 0." in progress_text(ticks[-1])
    if TensorBoardSink.available():
        assert "train/real_abs_mean" in _tensorboard_scalars(run)


def _tensorboard_scalars(run: Path) -> dict:
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(run), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]} | \
        {f"image:{tag}": [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    run = ganforge.train("digits", overrides=TINY + ["train.metrics=[class_kl]", "train.metrics_n=64"],
                         out=tmp_path / "r", progress=False)
    tb = _tensorboard_scalars(run)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    for key in ("loss_d", "loss_g", "d_real", "d_fake", "penalty"):
        assert [s for s, _ in tb[f"train/{key}"]] == [128, 256]
        assert np.allclose([v for _, v in tb[f"train/{key}"]], [t[key] for t in log], rtol=1e-6)
    assert [s for s, _ in tb["speed/img_per_s"]] == [128, 256]
    assert np.allclose([v for _, v in tb["metrics/class_kl/class_kl"]],
                       [t["metrics"]["class_kl"]["class_kl"] for t in log])
    assert tb["image:samples"] == [128, 256]
    # a resume from the first checkpoint purges the later events, as it replaces that branch of the run
    ganforge.train(resume=list_checkpoints(run)[0], progress=False)
    tb = _tensorboard_scalars(run)
    assert [s for s, _ in tb["train/loss_d"]] == [128, 256]
    # and it can be switched off
    run2 = ganforge.train("digits", overrides=TINY + ["train.tensorboard=false"], out=tmp_path / "r2", progress=False)
    assert not list(run2.glob("events.out.tfevents*"))


def test_a_tick_metric_that_cannot_work_fails_before_training(tmp_path):
    """Label metrics on an unlabelled image folder: one clear error before any training, not a lost tick."""
    from PIL import Image

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(imgs / f"{i}.png")
    over = TINY + ["data.name=folder", f"data.path={imgs}", "train.metrics=[domain_fd]"]
    with pytest.raises(GanforgeError, match="metric 'domain_fd'.*need image data with class labels"):
        ganforge.train("digits", overrides=over, out=tmp_path / "r", progress=False)
    assert not list_checkpoints(tmp_path / "r")


def test_a_failing_tick_metric_loses_nothing(tmp_path):
    calls = []

    def flaky(inp):
        calls.append(1)
        if len(calls) == 2:
            raise GanforgeError("the flaky metric failed (simulated)")
        return {"flaky": 1.0}, {}

    if "flaky-test" not in METRICS:
        METRICS.register("flaky-test")(MetricSpec("flaky-test", "fails at its second call", {"image": "domain"},
                                                  flaky, needs_real=False))
    over = TINY + ["train.kimg=0.384", "train.metrics=[flaky-test]", "train.metrics_n=32"]
    with pytest.warns(UserWarning, match=r"tick metrics failed at 0.26 kimg .*flaky metric failed.*training "
                                         r"continues.*checkpoint and generator are saved"):
        ganforge.train("digits", overrides=over, out=tmp_path / "r", progress=False)
    run = tmp_path / "r"
    assert [p.name for p in list_checkpoints(run)] == ["ckpt-0000000128.pt", "ckpt-0000000256.pt",
                                                       "ckpt-0000000384.pt"]
    assert json.loads((run / "generator" / "config.json").read_text())["nimg"] == 384
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert "flaky metric failed" in log[1]["metrics_error"] and log[1]["nimg"] == 256
    assert log[2]["metrics"]["flaky-test"] == {"flaky": 1.0}  # the next tick measures again


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_truncation_must_be_a_positive_number(tmp_path, bad):
    run = _tiny_run(tmp_path)
    with pytest.raises(GanforgeError, match="truncation: must be a number > 0"):
        ganforge.load(run).sample(4, truncation=bad)


def test_small_truncations_return_at_once(tmp_path):
    g = ganforge.load(_tiny_run(tmp_path))
    x = g.sample(256, truncation=1e-6)  # rejection sampling would loop ~10^6 times per value
    assert x.shape[0] == 256
    from ganforge.models import sample_prior

    z = sample_prior(10000, 4, "normal", torch.Generator().manual_seed(0), truncation=1e-3)
    assert z.abs().max() <= 1e-3 and z.std() > 1e-4  # inside the band, and spread over it


_RUNS: dict[str, Path] = {}


def _tiny_run(tmp_path) -> Path:
    if "r" not in _RUNS:
        _RUNS["r"] = ganforge.train("digits", overrides=TINY + ["train.kimg=0.128"], out=tmp_path / "tiny",
                                    progress=False)
    return _RUNS["r"]


@pytest.mark.parametrize("bad", [0, -1, float("nan")])
def test_minutes_must_be_positive(tmp_path, bad):
    with pytest.raises(GanforgeError, match="--minutes: must be a positive number"):
        ganforge.train("digits", overrides=TINY, out=tmp_path / "m", minutes=bad, progress=False)
    assert not (tmp_path / "m").exists()
