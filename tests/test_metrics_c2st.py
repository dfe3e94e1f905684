"""The classifier two-sample test (c2st): the statistics on hand-computed cases, the test on known answers (same
distribution -> 0.5 within its interval, separable sets -> AUC near 1), determinism, and the registered metric on
vector data (the image feature space, selfsup, is exercised elsewhere; pixels run here on tiny images).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.data import Data
from ganforge.errors import GanforgeError
from ganforge.metrics import METRICS, evaluate, metric_options
from ganforge.metrics.c2st import auc_delong, c2st_features, c2st_images, c2st_stats, wilson_interval


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def gauss(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed)) * scale + shift


def blobs(n: int, seed: int, size: int = 8) -> torch.Tensor:
    """uint8 [n, 1, size, size]: one bright Gaussian blob at a random place per image (structured, not noise)."""
    g = gen(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx = (torch.rand(n, 1, 1, generator=g) * size for _ in range(2))
    img = 255 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 6) ** 2))
    return img[:, None].round().clamp(0, 255).to(torch.uint8)


KEYS = ("acc", "acc_lo", "acc_hi", "auc", "auc_lo", "auc_hi", "p")


# ---------------------------------------------------------------------------------------------- statistics


def test_auc_with_ties_by_hand():
    # pairs (pos, neg): (.9,.5) 1, (.9,.1) 1, (.5,.5) 1/2, (.5,.1) 1, (.5,.5) 1/2, (.5,.1) 1 -> 5/6
    auc, var = auc_delong(np.array([0.9, 0.5, 0.5]), np.array([0.5, 0.1]))
    assert auc == pytest.approx(5 / 6, abs=1e-12)
    # DeLong: per positive [1, 3/4, 3/4] (var 1/48, / 3), per negative [2/3, 1] (var 1/18, / 2) -> 5/144
    assert var == pytest.approx(5 / 144, abs=1e-12)
    from sklearn.metrics import roc_auc_score

    rng = np.random.RandomState(0)
    s, y = rng.randint(0, 5, 200).astype(float), rng.randint(0, 2, 200)   # many ties
    assert auc_delong(s[y == 1], s[y == 0])[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_delong(np.ones(3), np.ones(4))[0] == 0.5                   # all tied
    assert auc_delong(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == (1.0, 0.0)


def test_wilson_interval_and_p_value():
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))   # the textbook values
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    # 60 of 100 test predictions right: p = P(N(1/2, 1/400) >= 0.6) = 1 - Phi(2)
    p_fake = torch.cat([torch.full((30,), 0.9), torch.full((20,), 0.1), torch.full((30,), 0.1),
                        torch.full((20,), 0.9)])
    y = torch.cat([torch.ones(50), torch.zeros(50)])
    r = c2st_stats(p_fake, y)
    assert r["acc"] == 0.6 and r["p"] == pytest.approx(0.5 * math.erfc(2 / math.sqrt(2)), rel=1e-12)
    assert r["auc"] == pytest.approx(0.6)   # 0.6 * 0.6 above + (0.6 * 0.4 + 0.4 * 0.6) tied, counted half


# ---------------------------------------------------------------------------------------------- features


def test_same_distribution_scores_one_half():
    r = c2st_features(gauss(2000, 8, 3), gauss(2000, 8, 4), seed=0)
    assert r["n_train"] == r["n_test"] == 1000
    assert r["acc_lo"] <= 0.5 <= r["acc_hi"] and r["auc_lo"] <= 0.5 <= r["auc_hi"]
    assert abs(r["auc"] - 0.5) < 0.04 and r["p"] > 0.05


def test_the_test_is_calibrated_under_h0():
    # 40 independent draws of two sets from one distribution: accuracy centred on 1/2 with the binomial spread
    # (1/2 / sqrt(200) = 0.035), and the 95% intervals / p < 0.05 reject about 5% (measured: 200 draws of 400
    # per class: 5.0% / 4.5% (AUC) / 5.0%)
    runs = [c2st_features(gauss(200, 4, 100 + s), gauss(200, 4, 300 + s), seed=s, steps=100) for s in range(40)]
    acc = np.array([r["acc"] for r in runs])
    assert abs(acc.mean() - 0.5) < 0.02 and 0.02 < acc.std() < 0.05
    assert sum(not (r["acc_lo"] <= 0.5 <= r["acc_hi"]) for r in runs) <= 5
    assert sum(r["p"] < 0.05 for r in runs) <= 5


def ring(n: int, seed: int) -> torch.Tensor:
    """[n, 2]: 8 tight Gaussian blobs on a circle of radius 2 (the PacGAN ring)."""
    g = gen(seed)
    angle = torch.randint(0, 8, (n,), generator=g).float() * (2 * math.pi / 8)
    return torch.stack([2 * angle.cos(), 2 * angle.sin()], 1) + 0.05 * torch.randn(n, 2, generator=g)


def test_separable_sets_score_near_one():
    real = gauss(1000, 8, 1)
    shifted = c2st_features(real, gauss(1000, 8, 2, shift=1.5), seed=0)        # a clear margin in every coordinate
    noise = c2st_features(ring(1000, 1), torch.rand(1000, 2, generator=gen(3)) * 5 - 2.5, seed=0)  # uniform, box
    for r in (shifted, noise):
        assert r["auc"] > 0.95 and r["acc"] > 0.85 and r["p"] < 1e-6 and r["acc_lo"] > 0.5
    # a change of spread only: invisible to a linear classifier, seen by the MLP
    spread = c2st_features(real, gauss(1000, 8, 2, scale=1.5), seed=0)
    assert spread["auc_lo"] > 0.6
    assert c2st_features(real, gauss(1000, 8, 2, scale=1.5), seed=0, hidden=0)["auc"] < 0.56


def test_interval_shrinks_with_more_samples():
    widths = []
    for n in (200, 800, 3200):
        r = c2st_features(gauss(n, 4, 1), gauss(n, 4, 2, shift=0.3), seed=0)
        widths.append((r["acc_hi"] - r["acc_lo"], r["auc_hi"] - r["auc_lo"]))
    for a, b in zip(widths, widths[1:]):
        assert b[0] < 0.6 * a[0] and b[1] < 0.6 * a[1]      # ~1/sqrt(n): halves when n quadruples


def test_balance_and_cap():
    r = c2st_features(gauss(500, 4, 1), gauss(120, 4, 2), seed=0)     # the smaller set sets n per class
    assert (r["n_train"], r["n_test"]) == (60, 60)
    r = c2st_features(gauss(500, 4, 1), gauss(400, 4, 2), seed=0, max_per_class=101)
    assert (r["n_train"], r["n_test"]) == (50, 51)
    with pytest.raises(GanforgeError, match="at least 4 real and 4 generated"):
        c2st_features(gauss(500, 4, 1), gauss(3, 4, 2))
    with pytest.raises(GanforgeError, match="one D"):
        c2st_features(gauss(50, 4, 1), gauss(50, 3, 2))


def test_deterministic_and_leaves_the_global_rng_alone():
    real, fake = gauss(600, 6, 1), gauss(600, 6, 2, scale=1.2)
    torch.manual_seed(123)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a = c2st_features(real, fake, seed=5)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads
    assert c2st_features(real, fake, seed=5) == a
    assert c2st_features(real, fake, seed=6) != a              # the seed draws the split and the init
    img_r, img_f = blobs(80, 1), blobs(80, 2)
    b = c2st_images(img_r, img_f, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert c2st_images(img_r, img_f, seed=5) == b


# ---------------------------------------------------------------------------------------------- pixels


def test_pixels_real_vs_real_and_vs_noise():
    real = blobs(400, 2)
    same = c2st_images(real[:200], real[200:], seed=0)          # two halves of one image set
    assert same["acc_lo"] <= 0.5 <= same["acc_hi"] and abs(same["auc"] - 0.5) < 0.1
    noise = torch.randint(0, 256, (200, 1, 8, 8), generator=gen(3), dtype=torch.uint8)
    r = c2st_images(real[:200], noise, seed=0)
    assert r["auc"] > 0.99 and r["acc"] > 0.95 and r["size"] == [8, 8]
    big = c2st_images(blobs(8, 1, size=64), blobs(8, 2, size=64), seed=0)   # area-downsampled to 32x32
    assert big["size"] == [32, 32]
    with pytest.raises(GanforgeError, match="uint8 images"):
        c2st_images(real.float(), noise)


# ---------------------------------------------------------------------------------------------- the metric


def test_metric_through_evaluate():
    real = Data(x=gauss(600, 5, 1), kind="vector", name="gauss")
    res = evaluate(gauss(500, 5, 2, scale=2.0), real, ["c2st"], cache=False, seed=1)["c2st"]
    assert set(res.values) == {f"c2st_{k}" for k in KEYS}
    assert res.values["c2st_auc"] > 0.8 and res.values["c2st_p"] < 1e-6
    p = res.protocol
    assert p["n_per_class"] == 500 and "250 train + 250 test" in p["split"] and "seed 1" in p["split"]
    assert p["real_data"].startswith("the 600 reference real items")
    assert "MLP 5-128-1" in p["classifier"] and "DeLong" in p["ci"] and "Wilson" in p["ci"]
    assert "n = 500 test samples" in p["p_value"] and "Lopez-Paz" in p["test"]
    assert p["options"] == {"on": "features", "max_per_class": 5000} and p["n_real"] == 600
    same = evaluate(gauss(500, 5, 3), real, ["c2st"], cache=False)["c2st"].values
    assert same["c2st_acc_lo"] <= 0.5 <= same["c2st_acc_hi"] and abs(same["c2st_auc"] - 0.5) < 0.07


def test_metric_prefers_heldout_real_data():
    train = Data(x=gauss(400, 4, 1), kind="vector", name="gauss")
    test = Data(x=gauss(300, 4, 9), kind="vector", name="gauss-test", info=dict(split="test"))
    copy = train.x[:300].clone()                                     # a generator that memorised its training set
    on_train = evaluate(copy, train, ["c2st"], cache=False)["c2st"]
    on_test = evaluate(copy, train, ["c2st"], cache=False, heldout=test,
                       options={"c2st": {"max_per_class": 200}})["c2st"]
    assert "reference real items" in on_train.protocol["real_data"]
    assert on_test.protocol["real_data"].startswith("held-out gauss-test (test split), 300 items")
    assert on_test.protocol["n_per_class"] == 200
    # a copy of N(0, I) draws is still N(0, I): both near 0.5, but the held-out one compares with unseen data
    assert on_test.values["c2st_acc_lo"] <= 0.5 <= on_test.values["c2st_acc_hi"]
    # the held-out items are the real class: a shifted held-out set is told apart from the (unshifted) copy
    far = Data(x=gauss(300, 4, 9, shift=2.0), kind="vector", name="gauss-test")
    assert evaluate(copy, train, ["c2st"], cache=False, heldout=far)["c2st"].values["c2st_auc"] > 0.95


def test_options_and_errors():
    assert "c2st" in METRICS and METRICS.get("c2st").spaces == {"image": "selfsup", "vector": "raw"}
    assert metric_options("c2st", {"on": "pixels"}) == {"on": "pixels", "max_per_class": 5000}
    real = Data(x=gauss(50, 3, 1), kind="vector", name="gauss")
    with pytest.raises(GanforgeError) as e:
        evaluate(real.x, real, ["c2st"], cache=False, options={"c2st": {"on": "pixel"}})
    assert str(e.value) == "metrics.c2st.on: expected one of features, pixels, got 'pixel'"
    with pytest.raises(GanforgeError, match="max_per_class: must be >= 4"):
        metric_options("c2st", {"max_per_class": 1})
    with pytest.raises(GanforgeError, match="unknown key 'metrics.c2st.classifier'"):
        metric_options("c2st", {"classifier": "svm"})
    with pytest.raises(GanforgeError, match="on=pixels is for image data"):
        evaluate(real.x, real, ["c2st"], cache=False, options={"c2st": {"on": "pixels"}})
