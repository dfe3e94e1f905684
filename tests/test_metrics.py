"""Metric math on known answers (no network weights): FID, KID, IS, precision/recall/density/coverage, toy metrics,
and `evaluate` on vector data. The Inception network is in test_metrics_inception.py, the domain classifier in
test_metrics_domain.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.data.base import Data
from ganforge.data.toy2d import toy_modes
from ganforge.errors import GanforgeError
from ganforge.metrics import (METRICS, FeatureStats, MetricResult, evaluate, feature_stats, fid_from_features,
                              frechet_distance, is_from_logits, kid_from_features, precision_recall)
from ganforge.metrics.prdc import density_coverage as prdc
from ganforge.metrics import kid as kid_mod
from ganforge.metrics.fid import trace_sqrt_product
from ganforge.metrics.toy import toy_assign, toy_metrics




def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero():
    f = torch.randn(300, 16, generator=gen(), dtype=torch.float64).float()
    assert abs(fid_from_features(f, f)) < 1e-9                   # eig path (N > D)
    assert abs(fid_from_features(f[:10], f[:10])) < 1e-9         # low-rank path (N <= D)


def test_frechet_distance_closed_form_diagonal():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(8), rng.randn(8)
    a, b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    expect = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    for method in ("eig", "sqrtm"):
        assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method) == pytest.approx(expect, rel=1e-12)
    # equal covariances: only the means count
    s = np.cov(rng.randn(50, 8), rowvar=False)
    assert frechet_distance(mu1, s, mu2, s) == pytest.approx(((mu1 - mu2) ** 2).sum(), rel=1e-9)


@pytest.mark.parametrize("n", [20, 400])  # rank-deficient (n < d) and full rank
def test_eig_path_equals_scipy_sqrtm(n):
    g = gen(1)
    f1 = torch.randn(n, 64, generator=g).relu()                 # ReLU-like features, as pool3
    f2 = (torch.randn(n, 64, generator=g) * 1.3 + 0.2).relu()
    s1, s2 = feature_stats(f1)[1], feature_stats(f2)[1]
    assert trace_sqrt_product(s1, s2, "eig") == pytest.approx(trace_sqrt_product(s1, s2, "sqrtm"), rel=1e-6)
    ref = fid_from_features(f1, f2, "sqrtm")
    assert fid_from_features(f1, f2, "eig") == pytest.approx(ref, rel=1e-6)
    assert fid_from_features(f1, f2, "lowrank") == pytest.approx(ref, rel=1e-6)  # exact identity, any N


def test_streaming_stats_match_numpy_and_ignore_chunking():
    f = torch.randn(1000, 12, generator=gen(2)) * 3 + 5
    mu, sigma = feature_stats(f)
    x = f.double().numpy()
    np.testing.assert_allclose(mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)  # unbiased, /(N-1)
    acc = FeatureStats(12)
    for s in range(0, 1000, 7):                                  # odd batch size
        acc.update(f[s:s + 7])
    mu2, sigma2 = acc.mean_cov()
    np.testing.assert_allclose(mu2, mu, rtol=1e-12)
    np.testing.assert_allclose(sigma2, sigma, rtol=1e-9, atol=1e-12)
    with pytest.raises(GanforgeError, match="at least 2"):
        feature_stats(f[:1])


def test_fid_stats_match_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    g = gen(3)
    f1, f2 = torch.randn(200, 32, generator=g).relu(), (torch.randn(150, 32, generator=g) + 0.3).relu()
    ref = fid_statistics_to_metric(fid_features_to_statistics(f1.double()), fid_features_to_statistics(f2.double()),
                                   verbose=False)["frechet_inception_distance"]
    assert fid_from_features(f1, f2) == pytest.approx(ref, rel=1e-9)


# ---------------------------------------------------------------------------------------------------- KID


def _kid_direct(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 written as the O(m^2) double loop of the definition."""
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_definition_with_one_full_subset():
    g = gen(4)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randn(12, 5, generator=g, dtype=torch.float64) + 0.5
    v = kid_from_features(x, y, subsets=1, subset_size=12)      # one subset = a permutation of all samples
    assert v["kid"] == pytest.approx(_kid_direct(x.numpy(), y.numpy()), rel=1e-10)
    assert v["kid_std"] == 0


def test_kid_is_unbiased_on_one_distribution():
    g = gen(5)
    x, y = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same = kid_from_features(x, y, subsets=50, subset_size=200, seed=1)
    diff = kid_from_features(x, y + 0.5, subsets=50, subset_size=200, seed=1)
    assert abs(same["kid"]) < 0.05 * diff["kid"]
    assert abs(same["kid"]) < 3 * same["kid_std"]                # mean ~ 0: within noise of the subsets


def test_kid_matches_torch_fidelity_and_gram_path(monkeypatch):
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = gen(6)
    x, y = torch.randn(40, 24, generator=g), torch.randn(30, 24, generator=g) * 1.2
    ref = kid_features_to_metric(x, y, kid_subsets=20, kid_subset_size=25, rng_seed=2020, verbose=False)
    ours = kid_from_features(x, y, subsets=20, subset_size=25, seed=2020)   # the Gram-matrix path at this size
    assert ours["kid"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-4)
    monkeypatch.setattr(kid_mod, "_GRAM_BYTES", 0)                          # force the per-subset path
    forced = kid_from_features(x, y, subsets=20, subset_size=25, seed=2020)
    assert forced["kid"] == pytest.approx(ours["kid"], rel=1e-10)
    # the subset size is clamped to the smaller set instead of failing
    assert kid_from_features(x, y, subsets=2)["kid"] == kid_from_features(x, y, subsets=2, subset_size=30)["kid"]


# ---------------------------------------------------------------------------------------------------- IS


def test_is_known_answers():
    assert is_from_logits(torch.zeros(100, 1008))["is"] == pytest.approx(1.0, abs=1e-12)
    # every split holds each of 10 classes once, predicted with certainty: IS = number of classes
    logits = 100.0 * torch.eye(10).repeat(10, 1)                # [100, 10], split i = rows 10i..10i+9
    v = is_from_logits(logits, shuffle=False)
    assert v["is"] == pytest.approx(10.0, rel=1e-9) and v["is_std"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(GanforgeError, match="at least 10"):
        is_from_logits(torch.zeros(5, 10))


def test_is_matches_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(57, 1008, generator=gen(7)) * 3
    ref = isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    v = is_from_logits(logits, seed=2020)
    assert v["is"] == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert v["is_std"] == pytest.approx(ref["inception_score_std"], rel=1e-9)


# ---------------------------------------------------------------------------------------------------- P&R, D&C


def col(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float64)[:, None]        # points on a line, [N, 1]


def test_precision_recall_inclusive_vs_strict_boundary():
    real, fake = col(0, 1, 2), col(3, 10, 11)                     # real radii (k=1) all 1; fake 3 is exactly 1 away
    v = precision_recall(real, fake, k=1)
    # fake radii: 3 -> 7, 10 -> 1, 11 -> 1; real 0,1,2 are all within 7 of fake 3
    assert v == dict(precision=pytest.approx(1 / 3), recall=1.0)
    s = prdc(real, fake, k=1)                                    # strict: the boundary point no longer counts
    assert s["precision"] == 0.0 and s["recall"] == 1.0


def test_density_coverage_hand_made():
    real, fake = col(0, 1, 2, 3), col(0, 0.5, 10)
    # real radii (k=1) = 1; fake radii: 0 -> .5, .5 -> .5, 10 -> 9.5
    v = prdc(real, fake, k=1)
    assert v["precision"] == pytest.approx(2 / 3)               # 0 and .5 fall in real balls, 10 does not
    assert v["density"] == pytest.approx((1 + 2 + 0) / (1 * 3))  # fake 0 in ball of real 0; .5 in balls of 0 and 1
    assert v["coverage"] == pytest.approx(2 / 4)                # real 0 and 1 have a fake closer than their radius
    assert v["recall"] == pytest.approx(1.0)                    # 0 < .5; 1, 2, 3 are within 9.5 of fake 10
    # fake == real: every point sits in its own ball
    same = prdc(real, real, k=1)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0


def _prdc_reference(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """clovaai/generative-evaluation-prdc `compute_prdc`, written out with numpy."""
    d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))  # noqa: E731
    r_real = np.sort(d(real, real), axis=1)[:, k]
    r_fake = np.sort(d(fake, fake), axis=1)[:, k]
    rf = d(real, fake)
    return dict(precision=(rf < r_real[:, None]).any(0).mean(), recall=(rf < r_fake[None, :]).any(1).mean(),
                density=(1 / k) * (rf < r_real[:, None]).sum(0).mean(), coverage=(rf.min(1) < r_real).mean())


def test_prdc_matches_reference_formulas(monkeypatch):
    from ganforge.metrics import prdc as prdc_mod

    g = gen(8)
    real = torch.randn(120, 6, generator=g, dtype=torch.float64)
    fake = torch.randn(90, 6, generator=g, dtype=torch.float64) * 1.3
    ref = _prdc_reference(real.numpy(), fake.numpy(), 5)
    v = prdc(real, fake, k=5)
    for key in ref:
        assert v[key] == pytest.approx(ref[key], abs=1e-12), key
    monkeypatch.setattr(prdc_mod, "_BLOCK_ELEMS", 500)           # many small row blocks: same answer
    assert prdc(real, fake, k=5) == v
    pr = precision_recall(real, fake)
    assert 0 < pr["precision"] <= 1 and 0 < pr["recall"] <= 1
    with pytest.raises(GanforgeError, match="more than 5"):
        prdc(real[:5], fake, k=5)


# ---------------------------------------------------------------------------------------------------- toy


def test_toy_metrics_exact():
    c, std = toy_modes("ring")
    assert toy_metrics(c.repeat(3, 1), "ring") == dict(modes=8, hq=1.0, reverse_kl=0.0, n=24)
    # 2.9 std away is high quality, 3.1 std is not
    x = torch.cat([c[:1] + torch.tensor([[2.9 * std, 0]]), c[1:2] + torch.tensor([[0, 3.1 * std]])])
    idx, hq = toy_assign(x, "ring")
    assert idx.tolist() == [0, 1] and hq.tolist() == [True, False]
    assert toy_metrics(x.numpy(), "ring") == dict(modes=1, hq=0.5, reverse_kl=pytest.approx(math.log(8)), n=2)
    # 3:1 over two modes plus far-away junk (not HQ, so not in the histogram)
    x = torch.cat([c[[0, 0, 0, 5]], torch.full((4, 2), 50.0, dtype=torch.float64)]).float()
    p = np.array([0.75, 0.25])
    v = toy_metrics(x, "ring")
    assert v["modes"] == 2 and v["hq"] == 0.5 and v["n"] == 8
    assert v["reverse_kl"] == pytest.approx(math.log(8) + (p * np.log(p)).sum(), rel=1e-6)
    g, _ = toy_modes("grid")
    assert toy_metrics(g.float(), "grid") == dict(modes=25, hq=1.0, reverse_kl=0.0, n=25)
    none = toy_metrics(torch.tensor([[float("nan"), 0.0], [100.0, 100.0]]), "grid")
    assert none["modes"] == 0 and none["hq"] == 0.0 and math.isnan(none["reverse_kl"])


def test_toy_metrics_errors():
    with pytest.raises(GanforgeError, match="ring"):
        toy_metrics(torch.zeros(3, 2), "moons")
    with pytest.raises(GanforgeError, match=r"\[N, 2\]"):
        toy_metrics(torch.zeros(3, 3), "ring")


# ---------------------------------------------------------------------------------------------------- evaluate


def ring_data(n: int, seed: int) -> Data:
    c, std = toy_modes("ring")
    g = gen(seed)
    k = torch.randint(8, (n,), generator=g)
    x = (c[k] + std * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()
    return Data(x=x, kind="vector", name="ring", labels=k)


def test_registry_contract():
    assert {"fid", "kid", "is", "pr", "prdc", "domain_fd", "class_kl", "toy"} <= set(METRICS.names())
    for name in METRICS.names():
        spec = METRICS.get(name)
        assert spec.name == name and spec.doc and spec.spaces
        assert set(spec.spaces) <= {"image", "vector", "text"}
        if "text" in spec.spaces:  # the text metrics read strings: they apply to text alone (tests/test_text_eval.py)
            assert spec.spaces == {"text": "text"} and not spec.needs_real and not spec.needs_labels
    with pytest.raises(GanforgeError, match="unknown metric 'fidd'"):
        METRICS.get("fidd")


def test_evaluate_vectors(tmp_path):
    real, fake = ring_data(400, 0), ring_data(300, 1).x
    res = evaluate(fake, real, ["toy", "fid", "kid", "pr", "prdc"], cache=tmp_path, data_key="ring-test")
    assert list(res) == ["toy", "fid", "kid", "pr", "prdc"] and all(isinstance(r, MetricResult) for r in res.values())
    expect = toy_metrics(fake, "ring")
    assert res["toy"].values == dict(modes=8, hq=expect["hq"], reverse_kl=expect["reverse_kl"]) and expect["hq"] > 0.95
    assert res["toy"].protocol["n_fake"] == 300 and res["toy"].protocol["n_real"] is None
    assert 0 <= res["fid"].values["fid"] < 0.05                  # two samples of one distribution
    assert abs(res["kid"].values["kid"]) < 0.01
    assert res["pr"].values["precision"] > 0.8 and res["prdc"].values["coverage"] > 0.8
    p = res["fid"].protocol
    assert p["features"] == "raw vectors, 2-d" and p["n_real"] == 400 and p["seed"] == 0
    assert p["reference"]["data_key"] == "ring-test" and res["kid"].protocol["subset_size"] == 300
    # cached reference features, and the same numbers from the cache
    assert any(tmp_path.glob("metrics/refs/ring-test-raw-*.safetensors"))
    again = evaluate(fake, real, "fid,kid", cache=tmp_path, data_key="ring-test")
    assert again["fid"].values == res["fid"].values and again["kid"].values == res["kid"].values
    # n caps the real set with a seeded subset, recorded in the protocol
    sub = evaluate(fake, real, ["fid"], n=100, seed=3, cache=False)
    assert sub["fid"].protocol["n_real"] == 100 and "seed 3" in sub["fid"].protocol["real_subset"]


def test_evaluate_user_errors(tmp_path):
    real = ring_data(50, 0)
    with pytest.raises(GanforgeError, match="'is' is for image data"):
        evaluate(real.x, real, ["is"], cache=tmp_path)
    with pytest.raises(GanforgeError, match="fake vectors must be float"):
        evaluate(real.x[:, :1], real, ["fid"], cache=tmp_path)
    with pytest.raises(GanforgeError, match="unknown metric"):
        evaluate(real.x, real, ["nope"], cache=tmp_path)
    grid_named = Data(x=real.x, kind="vector", name="moons")
    with pytest.raises(GanforgeError, match="toy metric is defined for"):
        evaluate(real.x, grid_named, ["toy"], cache=tmp_path)
    img = Data(x=torch.zeros(4, 1, 8, 8, dtype=torch.uint8), kind="image", name="blank")
    with pytest.raises(GanforgeError, match="fake images must be uint8"):
        evaluate(torch.zeros(4, 1, 8, 8), img, ["fid"], cache=tmp_path)
