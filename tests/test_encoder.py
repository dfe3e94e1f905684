"""An encoder fitted to a trained generator (ganforge.inversion.train_encoder, `ganforge encoder`), encoding with
refinement, interpolation and class-direction editing (ganforge.editing, `ganforge encode` / `ganforge edit`)."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.config import ModelConfig
from ganforge.editing import class_directions, edit, fit_encoder, interpolate, run_data
from ganforge.errors import GanforgeError
from ganforge.inversion import EncoderSettings, train_encoder
from ganforge.models import build_encoder
from ganforge.sampling import load

from .conftest import TINY, run_cli

FAST = EncoderSettings(steps=60, batch=16)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny digits run with a fitted encoder (the generator stays the one training exported)."""
    r = ganforge.train("digits", overrides=TINY, out=tmp_path_factory.mktemp("enc") / "run", progress=False)
    fit_encoder(r, FAST)
    return r


def test_encoder_inverts_a_known_linear_generator():
    """G(z) = A z (frozen, full column rank): an MLP encoder fitted with train_encoder recovers z from G(z),
    on G's pairs and on 'real' data that G makes exactly."""
    torch.manual_seed(0)
    z_dim, d = 3, 10
    G = torch.nn.Linear(z_dim, d, bias=False)
    with torch.no_grad():
        G.weight.copy_(torch.randn(d, z_dim) / 2)
    m = ModelConfig(arch="mlp", z_dim=z_dim, g_width=32, d_width=32, depth=2, g_norm="none")
    E = build_encoder(m, (d,))
    real = G(torch.randn(512, z_dim, generator=torch.Generator().manual_seed(5))).detach()
    before = [p.clone() for p in G.parameters()]
    hist = train_encoder(G, E, real, z_dim, "normal", EncoderSettings(steps=1500, batch=64, lr=3e-3, prior_weight=0),
                         seed=0)
    z = torch.randn(256, z_dim, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        err = (E(G(z)) - z).pow(2).mean().item()
    assert err < 0.01, err          # z's variance is 1: E recovers z to within a tenth of its spread
    assert hist[-1]["latent"] < hist[0]["latent"] / 10
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))   # G untouched
    assert all(p.requires_grad for p in G.parameters()) and G.training        # and left as it was


def test_train_encoder_is_deterministic_and_checks_settings():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh())
    m = ModelConfig(arch="mlp", z_dim=2, g_width=8, d_width=8, depth=1, g_norm="none")
    real = torch.rand(40, 6) * 2 - 1
    out = []
    for _ in range(2):
        torch.manual_seed(1)
        E = build_encoder(m, (6,))
        train_encoder(G, E, real, 2, "uniform", EncoderSettings(steps=20, batch=8), seed=3)
        out.append(torch.cat([p.flatten() for p in E.parameters()]))
    assert torch.equal(out[0], out[1])
    for bad in (dict(steps=0), dict(batch=1), dict(lr=0.0), dict(real_weight=-1.0),
                dict(latent_weight=0.0, fake_weight=0.0, real_weight=0.0)):
        with pytest.raises(GanforgeError, match="encoder training"):
            EncoderSettings(**bad).check()


def test_fitted_encoder_is_saved_loaded_and_used(run):
    g = load(run)
    assert g.has_encoder and g.encoder is not None and not hasattr(g.net, "encode")
    meta = json.loads((run / "generator" / "encoder.json").read_text())
    assert meta["format"] == "ganforge-encoder-1" and meta["settings"]["steps"] == FAST.steps
    assert set(load_file(str(run / "generator" / "encoder.safetensors"))) == set(g.encoder.state_dict())
    x = g.sample(8, seed=4)
    z = g.encode(x)
    assert z.shape == (8, g.model.z_dim) and z.dtype == np.float32
    np.testing.assert_array_equal(z, g.encode(x, batch=3))   # eval mode: items are encoded independently
    p = g.project(x, steps=20, lr=0.1, starts=0)   # refinement: from E(x) alone, keeping each item's best iterate
    assert (p.mse <= p.start_mse).all()
    np.testing.assert_allclose(g.encode(x, refine=20), p.z)
    p0 = g.project(x, steps=0, starts=0)       # no steps: E(x) itself, as encode gives it
    np.testing.assert_allclose(p0.z, z, atol=1e-6)
    for f in ("reconstructions.png", "interpolation.png", "edits.png"):   # digits are labelled
        assert (run / "encoder" / f).is_file()


def test_encoder_goes_stale_when_the_generator_changes(run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ganforge.train(resume=copy, overrides=["train.kimg=0.384"], progress=False)   # exports a new generator
    g = load(copy)
    assert not g.has_encoder and "fitted to an earlier export" in g.encoder_note
    with pytest.raises(GanforgeError, match="fitted to an earlier export.*ganforge encoder RUN"):
        g.encode(g.sample(2))


def test_interpolate_and_edit(run):
    g = load(run)
    data, _ = run_data(g)
    a, b = g.sample(3, seed=1), g.sample(3, seed=2)
    path = interpolate(g, a, b, steps=5, refine=0)
    assert path.shape == (3, 7, *a.shape[1:])
    np.testing.assert_array_equal(path[:, 0], a)
    np.testing.assert_array_equal(path[:, -1], b)
    np.testing.assert_array_equal(path[:, 1], g.decode(g.encode(a)))   # t = 0 is a's own reconstruction
    means = class_directions(g, data, per_class=20)
    assert means.shape == (10, g.model.z_dim) and torch.isfinite(means).all()
    out = edit(g, a, means[3] - means[1], [0.0, 1.0], refine=0)
    assert out.shape == (3, 3, *a.shape[1:])
    np.testing.assert_array_equal(out[:, 1], g.decode(g.encode(a)))     # strength 0 changes nothing
    with pytest.raises(GanforgeError, match="direction has 5 values"):
        edit(g, a, torch.zeros(5), [1.0])


def test_cli_encoder_encode_edit(run, tmp_path):
    s = tmp_path / "s.npz"
    assert run_cli("sample", str(run), "--n", "6", "--out", str(s)).returncode == 0
    r = run_cli("encode", str(run), str(s), "--out", str(tmp_path / "z.npz"), "--refine", "5",
                "--grid", str(tmp_path / "g.png"))
    assert r.returncode == 0, r.stderr
    assert "encoded 6 item(s) (E + 5 refinement steps)" in r.stdout
    z = np.load(tmp_path / "z.npz")
    assert z["z"].shape == (6, 8) and z["reconstructions"].shape == (6, 8, 8, 1) and z["mse"].shape == (6,)
    r = run_cli("edit", str(run), str(s), "--to", str(s), "--steps", "4", "--refine", "0",
                "--out", str(tmp_path / "i.png"))
    assert r.returncode == 0 and "6 interpolation(s)" in r.stdout, r.stderr
    r = run_cli("edit", str(run), str(s), "--toward", "7", "--from", "1", "--steps", "3", "--refine", "0",
                "--out", str(tmp_path / "e.png"))
    assert r.returncode == 0 and "toward class 7 from class 1" in r.stdout, r.stderr
    from PIL import Image
    assert Image.open(tmp_path / "e.png").size[0] > Image.open(tmp_path / "e.png").size[1] / 6 * 3


def test_cli_encoder_fits_and_reports(tmp_path):
    r0 = ganforge.train("digits", overrides=TINY, out=tmp_path / "run", progress=False)
    r = run_cli("encoder", str(r0), "--steps", "30", "--batch", "8", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "fitted an encoder" in r.stdout and "E + refinement" in r.stdout
    assert (r0 / "generator" / "encoder.safetensors").is_file()
    html = run_cli("report", str(r0), "--out", str(tmp_path / "r.html"))
    assert html.returncode == 0
    assert "Encoder" in (tmp_path / "r.html").read_text()


def test_cli_errors(run, tmp_path):
    plain = ganforge.train("digits", overrides=TINY, out=tmp_path / "plain", progress=False)
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 8, 8, 1), np.uint8))
    r = run_cli("encode", str(plain), str(tmp_path / "ok.npz"), "--out", str(tmp_path / "z.npz"))
    assert r.returncode == 2 and "has no encoder" in r.stderr and "ganforge encoder RUN" in r.stderr
    for name, arr in (("size", np.zeros((2, 16, 16, 1), np.uint8)), ("channels", np.zeros((2, 8, 8, 3), np.uint8))):
        np.savez(tmp_path / f"{name}.npz", images=arr)
        r = run_cli("encode", str(run), str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "z.npz"))
        assert r.returncode == 2 and "this generator makes [N, 8, 8, 1]" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1    # one line
    cases = [
        (["edit", str(run), str(tmp_path / "ok.npz"), "--out", str(tmp_path / "e.png")], "--to IMAGES"),
        (["edit", str(run), str(tmp_path / "ok.npz"), "--toward", "zebra", "--out", str(tmp_path / "e.png")],
         "class 'zebra'"),
        (["edit", str(run), str(tmp_path / "ok.npz"), "--toward", "1", "--out", str(tmp_path / "e.jpg")], ".png"),
        (["encode", str(run), str(tmp_path / "ok.npz"), "--out", str(tmp_path / "z.npy")], ".npz"),
        (["encode", str(run), str(tmp_path / "missing.npz"), "--out", str(tmp_path / "z.npz")], "not found"),
        (["encode", str(run), str(tmp_path / "ok.npz"), "--out", str(tmp_path / "z.npz"), "--refine", "-1"],
         "--refine"),
        (["encoder", str(tmp_path / "nope")], "not found"),
        (["encoder", str(run), "--steps", "0"], "encoder training"),
    ]
    for args, msg in cases:
        r = run_cli(*args)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)


def test_fitted_encoder_on_vectors(tmp_path):
    """Vector data (the MLP family): the encoder fits and encodes; no figures (they are image grids)."""
    ring = ["train.kimg=0.256", "train.tick_kimg=0.128", "train.batch=32", "model.g_width=16", "model.d_width=16",
            "model.depth=2", "train.metrics=[]", "train.grid_size=16"]
    r = ganforge.train("ring", overrides=ring, out=tmp_path / "ring", progress=False)
    info = fit_encoder(r, EncoderSettings(steps=40, batch=16))
    assert info["figures"] == [] and np.isfinite(info["mse_encoder"])
    g = load(r)
    x = g.sample(5, seed=2)
    assert g.encode(x, refine=3).shape == (5, g.model.z_dim)
