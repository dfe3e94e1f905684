"""Stacked digits (three 8x8 digits as R, G, B: 1,000 modes) and the stacked_modes metric (VEEGAN / PacGAN)."""
from __future__ import annotations

import math

import pytest
import torch

from ganforge.components import resolve
from ganforge.data import build_dataset
from ganforge.data.stacked import N_HELD_OUT, single_digits, split_indices
from ganforge.errors import GanforgeError
from ganforge.metrics import METRICS, SPACES, evaluate
from ganforge.metrics.stacked import mode_coverage, shifted


def stacked(*overrides: str):
    return build_dataset(resolve("digits", ["data.name=stacked-digits", *overrides]).data)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")   # the digit classifier is trained once for the module


@pytest.fixture(scope="module")
def real8():
    return stacked("data.resolution=8", "data.count=2000")


def test_the_dataset_stacks_three_train_digits_labelled_by_their_mode():
    d = stacked("data.count=500")                       # the digits preset: data.resolution=16
    assert d.kind == "image" and d.x.dtype == torch.uint8 and tuple(d.x.shape) == (500, 3, 16, 16)
    assert d.labels.dtype == torch.int64 and len(d.class_names) == 1000 and d.class_names[371] == "3-7-1"
    x1, y1 = single_digits(16, "train")
    pick = d.info["digit_index"]                        # [N, 3]: the digit drawn for each channel
    assert tuple(pick.shape) == (500, 3) and len(x1) == 1797 - N_HELD_OUT
    for c in range(3):
        assert torch.equal(d.x[:, c], x1[pick[:, c], 0])
    y = y1[pick]
    assert torch.equal(d.labels, 100 * y[:, 0] + 10 * y[:, 1] + y[:, 2])
    for i in range(5):
        assert d.class_names[d.labels[i]] == "-".join(str(int(v)) for v in y[i])
    # the 16x16 digits are the digits loader's (one resampling filter), split by a fixed permutation
    digits16 = build_dataset(resolve("digits", ["data.resolution=16"]).data)
    assert torch.equal(x1, digits16.x[torch.from_numpy(split_indices()["train"])])
    assert not set(split_indices()["train"]) & set(split_indices()["test"])
    # most of the 1,000 modes appear, none of the held-out digits
    assert len(stacked("data.resolution=8", "data.count=5000").labels.unique()) > 990
    test = stacked("data.resolution=8", "data.count=50", "data.split=test")
    assert test.info["digits_in_split"] == N_HELD_OUT and test.info["digit_index"].max() < N_HELD_OUT


def test_the_draw_follows_data_seed_and_count_and_max_items():
    a, b = stacked("data.count=300", "data.resolution=8"), stacked("data.count=300", "data.resolution=8")
    assert torch.equal(a.x, b.x) and torch.equal(a.labels, b.labels)
    c = stacked("data.count=300", "data.resolution=8", "data.seed=1")
    assert not torch.equal(a.labels, c.labels)
    cfg = resolve("digits", ["data.name=stacked-digits", "data.count=500"])
    assert cfg.data.options == {"count": 500} and len(build_dataset(cfg.data)) == 500
    assert len(stacked("data.resolution=8")) == 100_000                     # the default count
    m = stacked("data.count=300", "data.resolution=8", "data.max_items=120")
    assert len(m) == 120 and torch.equal(m.x, a.x[:120])                     # a prefix of the same draw


@pytest.mark.parametrize("overrides, match", [
    (["data.count=0"], "data.count"),
    (["data.split=all"], "data.split"),
    (["data.channels=1"], "data.channels"),
    (["data.resolution=4"], "data.resolution"),
    (["data.width=32"], "data.width"),
])
def test_bad_settings_are_one_line_errors(overrides, match):
    with pytest.raises(GanforgeError, match=match):
        stacked(*overrides)


def test_mode_coverage_counts_modes_and_the_kl_to_uniform():
    v = mode_coverage(torch.arange(1000).repeat(3))
    assert v["modes"] == 1000 and abs(v["reverse_kl"]) < 1e-12 and v["n"] == 3000
    v = mode_coverage(torch.tensor([5, 5, 5, 7]))
    assert v["modes"] == 2
    assert v["reverse_kl"] == pytest.approx(math.log(1000) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25))


def test_the_kl_splits_into_the_channels_and_their_dependence():
    d = torch.arange(10)
    v = mode_coverage(d * 111)  # every channel uniform over its digits, but all three always equal: 10 modes
    assert v["modes"] == 10 and v["reverse_kl"] == pytest.approx(math.log(100))
    assert abs(v["marginal_kl"]) < 1e-12 and v["dependence"] == pytest.approx(math.log(100))
    v = mode_coverage(torch.tensor([0, 1, 10, 11]))  # red always 0; green and blue independent over {0, 1}
    assert v["modes"] == 4 and v["reverse_kl"] == pytest.approx(math.log(1000 / 4))
    assert v["marginal_kl"] == pytest.approx(math.log(10) + 2 * math.log(10 / 2)) and abs(v["dependence"]) < 1e-12
    assert v["rare_modes"] == 1000  # every mode has fewer than 5 samples
    g = torch.Generator().manual_seed(0)  # an uneven histogram: the split is exact, the dependence >= 0
    v = mode_coverage(torch.randint(0, 300, (5000,), generator=g))
    assert v["marginal_kl"] + v["dependence"] == pytest.approx(v["reverse_kl"]) and v["dependence"] >= 0
    assert "marginal_kl" not in mode_coverage(torch.tensor([0, 1]), n_modes=4)  # no triples: no split


def test_the_metric_is_registered_and_refuses_other_data(real8, cache):
    assert "stacked_modes" in METRICS and "stacked" in SPACES
    digits = build_dataset(resolve("digits", ["data.resolution=8"]).data)
    with pytest.raises(GanforgeError, match="stacked-digits"):
        evaluate(digits.x[:10], digits, ["stacked_modes"], cache=cache)
    with pytest.raises(GanforgeError, match="reads images"):
        evaluate(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), real8, ["stacked_modes"], cache=cache)


def test_on_real_stacked_digits_it_finds_the_observed_modes(real8, cache):
    r = evaluate(real8.x, real8, ["stacked_modes"], cache=cache)["stacked_modes"]
    truth = mode_coverage(real8.labels)                 # ~865 modes observed in 2,000 draws; KL ~0.28 (finite n)
    assert r.values["n"] == 2000
    assert abs(r.values["modes"] - truth["modes"]) <= 0.02 * truth["modes"], (r.values, truth)
    assert abs(r.values["reverse_kl"] - truth["reverse_kl"]) < 0.05 and r.values["reverse_kl"] < 0.4
    p = r.protocol
    assert p["metric"] == "stacked_modes" and p["n_fake"] == 2000 and p["classifier_n_test"] == N_HELD_OUT
    assert p["classifier_accuracy"] > 0.95 and p["triple_accuracy"] == pytest.approx(p["classifier_accuracy"] ** 3)
    assert "warning" not in p


def test_a_collapsed_generator_has_one_mode_and_the_largest_kl(real8, cache):
    fake = real8.x[:1].repeat(300, 1, 1, 1)
    v = evaluate(fake, real8, ["stacked_modes"], cache=cache)["stacked_modes"].values
    assert v["modes"] == 1 and v["reverse_kl"] == pytest.approx(math.log(1000)) and v["n"] == 300


def test_samples_from_100_modes_cover_at_most_100(real8, cache):
    big = stacked("data.resolution=8", "data.count=20000")
    # green digit always a 0 (the class the 8x8 classifier reads with the widest margin: a misread green channel
    # would move a sample out of the 100 modes; red and blue misreads stay inside them)
    fake = big.x[(big.labels // 10) % 10 == 0][:1500]
    v = evaluate(fake, real8, ["stacked_modes"], cache=cache)["stacked_modes"].values
    assert 90 <= v["modes"] <= 100 and v["reverse_kl"] >= math.log(10) - 1e-9


def test_shifted_moves_the_image_and_fills_with_zeros():
    x = torch.arange(1, 17, dtype=torch.uint8).view(1, 1, 4, 4)
    assert torch.equal(shifted(x, 0, 0), x)
    assert torch.equal(shifted(x, 1, 0)[0, 0, 1:], x[0, 0, :3]) and not shifted(x, 1, 0)[0, 0, 0].any()
    assert torch.equal(shifted(x, 0, -1)[0, 0, :, :3], x[0, 0, :, 1:]) and not shifted(x, 0, -1)[0, 0, :, 3].any()
