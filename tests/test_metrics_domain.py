"""Domain classifier metrics on a tiny synthetic labelled image set: determinism, caching, domain_fd, class_kl."""
from __future__ import annotations

import json
import math

import pytest
import torch

from ganforge.data.base import Data
from ganforge.errors import GanforgeError
from ganforge.metrics import domain, evaluate




@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    # the recipe's 400-step minimum is for real data sets; a handful of steps shows the mechanics
    monkeypatch.setattr(domain, "MIN_STEPS", 24)
    monkeypatch.setattr(domain, "EPOCHS", 1)


def squares(n: int = 60, seed: int = 0) -> Data:
    """Class k in {0, 1, 2}: a bright 3x3 square at one of three places on dark noise, 1 x 8 x 8."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    x = torch.randint(0, 40, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for k, (r, c) in enumerate([(0, 0), (0, 5), (5, 2)]):
        x[labels == k, :, r:r + 3, c:c + 3] = 250
    return Data(x=x, kind="image", name="squares", labels=labels, class_names=["a", "b", "c"])


def test_training_is_deterministic_and_leaves_the_global_rng_alone():
    d = squares()
    state = torch.random.get_rng_state()
    net1, info1 = domain.train_domain_classifier(d.x, d.labels, 3, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    net2, info2 = domain.train_domain_classifier(d.x, d.labels, 3, seed=1)
    f1, f2 = domain.domain_features(net1, d.x), domain.domain_features(net2, d.x)
    assert torch.equal(f1["feat"], f2["feat"]) and torch.equal(f1["logits"], f2["logits"])
    assert f1["feat"].shape == (60, domain.FEATURE_DIM) and f1["logits"].shape == (60, 3)
    assert info1["accuracy"] == info2["accuracy"] and info1["n_val"] == 6 and info1["steps"] == 24
    per = info1["class_accuracy"]  # on the 6 held-out images; weighted by their class counts = the accuracy
    counts = torch.bincount(d.labels[domain._split(len(d.x), torch.Generator().manual_seed(1))[0]], minlength=3)
    assert [a is None for a in per] == [int(n) == 0 for n in counts]  # a class with no held-out image: None
    assert sum(a * int(n) for a, n in zip(per, counts) if n) / int(counts.sum()) == pytest.approx(info1["accuracy"])
    # a cached classifier from before `class_accuracy` gets the same numbers recomputed from its seed's split
    assert domain.held_out_class_accuracy(net1, d.x, d.labels, 3, seed=1) == per
    net3, _ = domain.train_domain_classifier(d.x, d.labels, 3, seed=2)
    assert not torch.equal(domain.domain_features(net3, d.x)["feat"], f1["feat"])


def test_classifier_is_cached_by_data_identity(tmp_path, monkeypatch):
    d = squares()
    net, info = domain.domain_classifier(d.x, d.labels, 3, "squares-8", seed=0, cache=tmp_path)
    st, js = tmp_path / "domain" / f"{info['key']}.safetensors", tmp_path / "domain" / f"{info['key']}.json"
    assert st.is_file() and info["key"].startswith("squares-8-")
    meta = json.loads(js.read_text())
    assert {"accuracy", "seed", "epochs", "data_sha256", "arch"} <= set(meta) and meta["seed"] == 0

    def no_training(*a, **k):
        raise AssertionError("should have come from the cache")

    monkeypatch.setattr(domain, "train_domain_classifier", no_training)
    net2, info2 = domain.domain_classifier(d.x, d.labels, 3, "squares-8", seed=0, cache=tmp_path)
    assert info2 == meta
    assert torch.equal(domain.domain_features(net2, d.x)["feat"], domain.domain_features(net, d.x)["feat"])
    other = squares(seed=1)                                       # other pixels: another key, so it would train
    with pytest.raises(AssertionError, match="from the cache"):
        domain.domain_classifier(other.x, other.labels, 3, "squares-8", seed=0, cache=tmp_path)


def test_class_kl_known_answers():
    labels = torch.tensor([0, 1, 2, 3] * 5)                       # uniform over 4 classes
    onehot = lambda c: torch.nn.functional.one_hot(torch.tensor(c), 4).float()  # noqa: E731
    assert domain.class_kl(onehot([0, 1, 2, 3]), labels, 4) == dict(class_kl=0.0, classes_covered=4, n_classes=4)
    v = domain.class_kl(onehot([2, 2, 2]), labels, 4)
    assert v["class_kl"] == pytest.approx(math.log(4)) and v["classes_covered"] == 1
    assert domain.class_kl(onehot([0, 3]), torch.tensor([0, 0, 1]), 4)["class_kl"] == math.inf  # class 3 never real


def test_evaluate_domain_metrics(tmp_path):
    real = squares()
    res = evaluate(real.x, real, ["domain_fd", "class_kl"], cache=tmp_path, data_key="squares-8")
    assert abs(res["domain_fd"].values["domain_fd"]) < 1e-6       # the set with itself
    assert res["class_kl"].values["n_classes"] == 3
    p = res["domain_fd"].protocol
    assert p["features"].startswith("domain classifier") and p["classifier"].startswith("squares-8-")
    assert 0 <= p["classifier_accuracy"] <= 1 and p["classifier_seed"] == 0 and p["n_real"] == 60
    shifted = evaluate(255 - real.x, real, ["domain_fd"], cache=tmp_path, data_key="squares-8")
    assert shifted["domain_fd"].values["domain_fd"] > 1e-3
    unlabelled = Data(x=real.x, kind="image", name="squares")
    with pytest.raises(GanforgeError, match="need image data with class labels"):
        evaluate(real.x, unlabelled, ["class_kl"], cache=tmp_path)
    with pytest.raises(GanforgeError, match="trained on images"):
        evaluate(real.x[:, :, :6, :6].contiguous(), real, ["domain_fd"], cache=tmp_path, data_key="squares-8")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_domain_metrics_on_cuda(tmp_path):
    real = squares()
    res = evaluate(real.x.cuda(), real, ["domain_fd", "class_kl"], cache=tmp_path, data_key="sq", device="cuda")
    assert abs(res["domain_fd"].values["domain_fd"]) < 1e-4 and res["class_kl"].values["n_classes"] == 3
