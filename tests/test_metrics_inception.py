"""FID Inception without pretrained weights: layout, TF-legacy resize, parity with torch-fidelity on one random
state_dict, weight lookup / download / hash errors, and `evaluate` on images.

The network costs ~0.4 s per image on 2 CPU cores at 299x299, so parity uses 8 images and the `evaluate` tests
shrink the network input to 75x75 (the smallest size Inception accepts) by monkeypatching `preprocess`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from ganforge.data.base import Data
from ganforge.errors import GanforgeError
from ganforge.metrics import evaluate, feature_stats, frechet_distance, is_from_logits, kid_from_features
from ganforge.metrics import inception as inc
from ganforge.utils import download




def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state_dict in the official layout (reference/metrics.md §6.2): random BN statistics so every
    BN and branch matters, activations O(1-40); no num_batches_tracked, like the converted TF file."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in inc.FIDInceptionV3().state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.endswith("conv.weight"):
            sd[k] = torch.randn(v.shape, generator=g) * (2 / v[0].numel()) ** 0.5
        elif k.endswith("bn.weight"):
            sd[k] = 1 + 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith(("bn.bias", "running_mean")):
            sd[k] = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("running_var"):
            sd[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:  # fc
            sd[k] = 0.01 * torch.randn(v.shape, generator=g)
    return sd


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("weights") / "random_inception.pth"
    torch.save(random_state(), p)
    return p


def images(n: int, size: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------------- layout, resize


def test_state_dict_layout_matches_the_official_file():
    keys = [k for k in inc.FIDInceptionV3().state_dict() if not k.endswith("num_batches_tracked")]
    assert len(keys) == 472 and keys[0] == "Conv2d_1a_3x3.conv.weight" and keys[-2:] == ["fc.weight", "fc.bias"]
    assert "Mixed_7c.branch_pool.bn.running_var" in keys
    sd = random_state()
    assert sum(v.numel() for v in sd.values()) == 23_885_392 and sd["fc.weight"].shape == (1008, 2048)
    net = inc.FIDInceptionV3()
    inc.load_state(net, sd, "test")                                  # strict, without num_batches_tracked
    with pytest.raises(GanforgeError, match="does not hold FID Inception weights"):
        inc.load_state(net, {k: v for k, v in sd.items() if k != "fc.bias"}, "x.pth")


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 299, 299), (1, 3, 500, 371), (1, 3, 8, 64)])
def test_resize_is_bit_exact_with_torch_fidelity(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x as tf1

    x = images(shape[0], 1, seed=1).new_empty(shape).random_(0, 256, generator=torch.Generator().manual_seed(2)).float()
    ours = inc.resize_tf_legacy(x)
    assert torch.equal(ours, tf1(x, size=(299, 299), align_corners=False))
    if shape[2:] == (299, 299):
        assert torch.equal(ours, x)                                  # identity at the native size


def test_channels():
    rgb = images(2, 9, seed=3)
    assert torch.equal(inc.to_rgb(rgb[:, :1]), rgb[:, :1].repeat(1, 3, 1, 1))
    rgba = torch.cat([rgb, images(2, 9, 1, seed=4)], 1)
    assert torch.equal(inc.to_rgb(rgba), rgb)
    with pytest.raises(GanforgeError, match="C = 1, 3 or 4"):
        inc.to_rgb(images(1, 9, 2))
    assert inc.preprocess(rgb).shape == (2, 3, 299, 299)
    assert inc.preprocess(torch.full((1, 3, 4, 4), 128, dtype=torch.uint8)).abs().max() == 0  # (x - 128) / 128


# ---------------------------------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def parity(weights):
    """Features of the same uint8 images (4 at 32x32, 4 at 299x299) from ganforge and torch-fidelity."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net, proto = inc.load_inception(weights)
    tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased", "logits"],
                                     feature_extractor_weights_path=str(weights))
    out = []
    for x in (images(4, 32, seed=5), images(4, 299, seed=6)):
        ours = inc.inception_features(net, x)
        logits = net(inc.preprocess(x))["logits"]
        with torch.no_grad():
            ref = tf(x)
        out.append((ours, logits, ref))
    return out, proto


def test_features_match_torch_fidelity(parity):
    out, proto = parity
    for ours, logits, (pool3, unbiased, biased) in out:
        assert pool3.abs().max() > 0.1                               # the random net is not dead
        torch.testing.assert_close(ours["pool3"], pool3, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours["logits_unbiased"], unbiased, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(logits.detach(), biased, rtol=1e-5, atol=1e-5)
    assert proto["weights_official"] is False and len(proto["weights_sha256"]) == 64


def test_metrics_from_shared_features_match_torch_fidelity(parity):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    out, _ = parity
    ours = {k: torch.cat([o[0][k] for o in out]) for k in ("pool3", "logits_unbiased")}   # 8 images
    ref = [torch.cat([o[2][i] for o in out]) for i in (0, 1)]
    a, b = slice(0, 4), slice(4, 8)                                   # the 32x32 set and the 299x299 set
    # FID on the first 64 pool3 dimensions: a 2048-d eigendecomposition takes 2-30 s on a shared 2-core CPU
    ref_fid = fid_statistics_to_metric(fid_features_to_statistics(ref[0][a, :64]),
                                       fid_features_to_statistics(ref[0][b, :64]), verbose=False)
    ours_fid = frechet_distance(*feature_stats(ours["pool3"][a, :64]), *feature_stats(ours["pool3"][b, :64]))
    assert ours_fid == pytest.approx(ref_fid["frechet_inception_distance"], rel=1e-5)
    ref_kid = kid_features_to_metric(ref[0][a], ref[0][b], kid_subsets=5, kid_subset_size=3, rng_seed=2020,
                                     verbose=False)
    ours_kid = kid_from_features(ours["pool3"][a], ours["pool3"][b], subsets=5, subset_size=3, seed=2020)
    assert ours_kid["kid"] == pytest.approx(ref_kid["kernel_inception_distance_mean"], rel=1e-5)
    ref_is = isc_features_to_metric(ref[1], splits=2, rng_seed=2020)
    ours_is = is_from_logits(ours["logits_unbiased"], splits=2, seed=2020)
    assert ours_is["is"] == pytest.approx(ref_is["inception_score_mean"], rel=1e-9)
    assert ours_is["is_std"] == pytest.approx(ref_is["inception_score_std"], rel=1e-6, abs=1e-12)


# ---------------------------------------------------------------------------------------------------- weights


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    calls = []

    def offline(url, dst, timeout=60.0):
        calls.append(url)
        raise OSError("network is unreachable")

    monkeypatch.setattr(download, "fetch", offline)
    return calls


def test_missing_weights_offline_gives_one_clear_error(no_weights, tmp_path):
    with pytest.raises(GanforgeError) as e:
        inc.resolve_weights(cache=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "weights" / inc.WEIGHTS_FILE) in msg and inc.WEIGHTS_ENV in msg and inc.WEIGHTS_URL in msg
    assert no_weights == [inc.WEIGHTS_URL] and not list((tmp_path / "weights").iterdir())  # no partial file left
    # and through evaluate: a metric that needs Inception says the same
    real = Data(x=images(4, 8), kind="image", name="noise")
    with pytest.raises(GanforgeError, match="FID Inception weights not found"):
        evaluate(images(4, 8, seed=1), real, ["fid"], cache=tmp_path)
    with pytest.raises(GanforgeError, match="is not a file"):
        inc.resolve_weights(tmp_path / "nope.pth")


def test_download_is_hash_checked(monkeypatch, tmp_path, weights):
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(download, "fetch", lambda url, dst, timeout=60.0: Path(dst).write_bytes(b"<html>portal</html>"))
    with pytest.raises(GanforgeError, match="sha256 checksum mismatch"):
        inc.resolve_weights(cache=tmp_path)
    assert not list((tmp_path / "weights").iterdir())
    # a download whose hash matches is moved into the cache and then found there
    data = weights.read_bytes()
    monkeypatch.setattr(inc, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(data).hexdigest()[:8])
    monkeypatch.setattr(download, "fetch", lambda url, dst, timeout=60.0: Path(dst).write_bytes(data))
    p = inc.resolve_weights(cache=tmp_path)
    assert p == tmp_path / "weights" / inc.WEIGHTS_FILE and p.read_bytes() == data
    monkeypatch.setattr(download, "fetch", None)                     # cached: no download attempted
    assert inc.resolve_weights(cache=tmp_path) == p
    assert inc.load_inception(cache=tmp_path)[1]["weights_official"] is True


def test_foreign_file_under_the_official_name_is_refused(no_weights, tmp_path, weights):
    p = tmp_path / "weights" / inc.WEIGHTS_FILE
    p.parent.mkdir()
    p.write_bytes(weights.read_bytes())                              # hash does not start with 6726825d
    with pytest.raises(GanforgeError, match="delete it or replace it"):
        inc.load_inception(cache=tmp_path)


def test_env_var_and_explicit_path(monkeypatch, weights, tmp_path):
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(weights))
    assert inc.resolve_weights(cache=tmp_path) == weights
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(GanforgeError, match=inc.WEIGHTS_ENV):
        inc.resolve_weights(cache=tmp_path)
    assert inc.resolve_weights(weights, cache=tmp_path) == weights   # an explicit path wins over the variable


# ---------------------------------------------------------------------------------------------------- evaluate


@pytest.fixture
def small_inception(monkeypatch, weights):
    """Random weights via the env var and a 75x75 network input (16x cheaper than 299) for plumbing tests."""
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(weights))
    monkeypatch.setattr(inc, "preprocess", lambda x: (inc.resize_tf_legacy(inc.to_rgb(x).float(), 75) - 128) / 128)


def test_evaluate_images_shares_features_caches_and_ignores_batch_size(small_inception, tmp_path, monkeypatch):
    real = Data(x=images(12, 16, 1, seed=7), kind="image", name="noise", info=dict(split="train"))
    fake = images(10, 16, 1, seed=8)
    calls = []
    extract = inc.inception_features
    monkeypatch.setattr(inc, "inception_features", lambda net, x, *a: calls.append(len(x)) or extract(net, x, *a))
    res = evaluate(fake, real, ["fid", "kid", "is", "pr", "prdc"], cache=tmp_path, data_key="noise-16", batch_size=4)
    assert calls == [10, 12]                                         # one pass per set, shared by all five metrics
    assert set(res["fid"].values) == {"fid"} and set(res["kid"].values) == {"kid", "kid_std"}
    assert set(res["is"].values) == {"is", "is_std"} and set(res["pr"].values) == {"precision", "recall"}
    assert set(res["prdc"].values) == {"precision", "recall", "density", "coverage"}
    p = res["fid"].protocol
    assert p["weights_sha256"] == hashlib.sha256(Path(inc.os.environ[inc.WEIGHTS_ENV]).read_bytes()).hexdigest()
    assert p["resize"].startswith("tf_legacy") and p["n_real"] == 12 and p["n_fake"] == 10
    assert p["reference"] == dict(dataset="noise", data_key="noise-16", split="train")
    assert res["is"].protocol["n_real"] is None and res["kid"].protocol["subset_size"] == 10
    # second run: real features from the cache, fake batch size changed: same numbers
    calls.clear()
    again = evaluate(fake, real, ["fid", "kid", "is"], cache=tmp_path, data_key="noise-16", batch_size=64)
    assert calls == [10]
    for name in ("fid", "kid", "is"):
        for key, v in res[name].values.items():
            assert again[name].values[key] == pytest.approx(v, rel=1e-5, abs=1e-6), (name, key)
    stems = list((tmp_path / "metrics" / "refs").glob("noise-16-inception-*"))
    assert {s.suffix for s in stems} == {".safetensors", ".json"}   # N <= D: FID from features, no .npz stats
    # a set with itself
    self_fid = evaluate(real.x, real, ["fid"], cache=False)["fid"].values["fid"]
    assert abs(self_fid) < 1e-3


def test_weights_available(monkeypatch, tmp_path, weights):
    monkeypatch.delenv(inc.WEIGHTS_ENV, raising=False)
    assert not inc.weights_available(tmp_path)
    monkeypatch.setenv(inc.WEIGHTS_ENV, str(weights))
    assert inc.weights_available(tmp_path)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_without_tf32(weights, small_inception, tmp_path):
    net, _ = inc.load_inception(weights)
    seen = []
    net.register_forward_pre_hook(lambda m, a: seen.append(torch.backends.cudnn.allow_tf32))
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    x = images(4, 32, seed=9)
    cpu = inc.inception_features(net, x)
    gpu = inc.inception_features(net, x, device="cuda")
    assert seen[-1] is False and (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == before
    for k in cpu:
        assert (cpu[k] - gpu[k]).abs().max() <= 1e-4 * cpu[k].abs().max(), k
    real = Data(x=images(12, 16, 3, seed=10), kind="image", name="noise")
    fake = images(11, 16, 3, seed=11)
    a = evaluate(fake, real, ["fid", "kid", "is", "pr", "prdc"], cache=False)
    b = evaluate(fake.cuda(), real, ["fid", "kid", "is", "pr", "prdc"], cache=False, device="cuda")
    for name in a:
        for key, v in a[name].values.items():
            assert b[name].values[key] == pytest.approx(v, rel=1e-3, abs=1e-4), (name, key)
