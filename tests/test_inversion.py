"""Inversion (projection of data into the latent space): known answers, invariances, files, CLI, errors."""
import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.config import ModelConfig
from ganforge.errors import GanforgeError
from ganforge.inversion import as_model_input, project, read_items
from ganforge.models import build_models
from ganforge.sampling import Generator

from .conftest import TINY, run_cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return ganforge.train("digits", overrides=TINY, out=tmp_path_factory.mktemp("inv") / "run", progress=False)


def dcgan(z_dim=8, res=8):
    """An untrained DCGAN generator with weights ~ N(0, 0.2^2), so that its images vary with z (DCGAN's own
    N(0, 0.02^2) start, like a tiny trained run, makes nearly the same image for every z)."""
    mcfg = ModelConfig(arch="dcgan", z_dim=z_dim, g_width=8, d_width=8)
    torch.manual_seed(0)
    G = build_models(mcfg, (1, res, res), "image")[0]
    for m in G.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
            torch.nn.init.normal_(m.weight, 0, 0.2)
    return Generator(net=G.eval(), model=mcfg, kind="image", shape=(1, res, res), meta={}, device=torch.device("cpu"))


def test_linear_generator_latents_are_recovered_exactly():
    """G(z) = A z with A of full column rank: least squares in z has one answer, the true z."""
    torch.manual_seed(0)
    G = torch.nn.Linear(4, 12, bias=False)
    z_true = torch.randn(5, 4, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        x = G(z_true)
    z, rec, mse, start = project(G, x, 4, "normal", steps=1500, lr=0.02, prior_weight=0.0)
    torch.testing.assert_close(z, z_true, atol=1e-3, rtol=0)
    assert (mse < 1e-6).all() and (start > 100 * mse).all()
    assert all(p.requires_grad for p in G.parameters())  # the caller's model is left as it was


def test_project_own_samples():
    g = dcgan()
    x = g.sample(12, seed=3)
    p = g.project(x, steps=150)
    assert p.z.shape == (12, g.model.z_dim) and p.z.dtype == np.float32
    assert p.reconstructions.shape == x.shape and p.reconstructions.dtype == np.uint8
    assert p.mse.shape == p.start_mse.shape == (12,)
    assert (p.mse <= p.start_mse).all() and p.mse.mean() < 0.1 * p.start_mse.mean(), (p.mse, p.start_mse)
    # reproducible by seed, and each item's answer does not depend on the rest of the batch
    again = g.project(x[:5], steps=150, batch=2)
    np.testing.assert_allclose(again.z, p.z[:5], atol=1e-5)
    other = g.project(x[:5], steps=150, seed=1)
    assert not np.allclose(other.z, p.z[:5])


def test_uniform_prior_latents_stay_in_the_box():
    mcfg = ModelConfig(arch="mlp", z_dim=3, prior="uniform", g_width=16, d_width=16)
    torch.manual_seed(0)
    G = build_models(mcfg, (2,), "vector")[0]
    g = Generator(net=G.eval(), model=mcfg, kind="vector", shape=(2,), meta={}, device=torch.device("cpu"))
    target = np.array([[5.0, -5.0], [0.1, 0.2]], np.float32)  # the first is out of reach: z must not leave [-1, 1]
    p = g.project(target, steps=200, lr=0.1)
    assert np.abs(p.z).max() <= 1.0 and (p.mse <= p.start_mse).all()
    assert p.reconstructions.shape == (2, 2) and p.reconstructions.dtype == np.float32


def test_shapes_and_values_are_checked():
    with pytest.raises(GanforgeError, match=r"\[N, 16, 16, 1\]"):
        as_model_input(np.zeros((2, 8, 8, 1), np.uint8), "image", (1, 16, 16))
    with pytest.raises(GanforgeError, match="uint8"):
        as_model_input(np.zeros((2, 16, 16, 1), np.float32), "image", (1, 16, 16))
    with pytest.raises(GanforgeError, match=r"\[N, 2\]"):
        as_model_input(np.zeros((2, 3), np.float32), "vector", (2,))
    with pytest.raises(GanforgeError, match="NaN"):
        as_model_input(np.array([[np.nan, 0.0]]), "vector", (2,))
    chw = as_model_input(np.full((2, 1, 16, 16), 255, np.uint8), "image", (1, 16, 16))  # [N, C, H, W] works too
    assert chw.shape == (2, 1, 16, 16) and float(chw.min()) == 1.0
    with pytest.raises(GanforgeError, match="no items"):
        as_model_input(np.zeros((0, 2), np.float32), "vector", (2,))
    with pytest.raises(GanforgeError, match="steps"):
        project(torch.nn.Linear(2, 2), torch.zeros(1, 2), 2, "normal", starts=0)


def test_read_items(tmp_path):
    shape = (3, 8, 8)
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    Image.new("RGB", (20, 10), (255, 0, 0)).save(tmp_path / "imgs" / "a.png")
    Image.new("L", (8, 8), 7).save(tmp_path / "imgs" / "sub" / "b.jpg")
    x = read_items(tmp_path / "imgs", "image", shape)
    assert x.shape == (2, 8, 8, 3) and x.dtype == np.uint8
    assert (x[0] == [255, 0, 0]).all() and abs(int(x[1].mean()) - 7) <= 1  # resized/cropped, grey -> RGB
    np.savez(tmp_path / "two.npz", a=np.zeros(1), b=np.zeros(1))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    np.savez(tmp_path / "ok.npz", images=np.zeros((1, 8, 8, 3), np.uint8))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:60])  # a truncated download
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "x.txt").write_text("?")
    for path, msg in ((tmp_path / "missing.npz", "not found"), (tmp_path / "two.npz", "'images' or 'samples'"),
                      (tmp_path / "bad.png", "cannot read this image"), (tmp_path / "x.txt", "unknown file type"),
                      (tmp_path / "cut.npz", "cannot read it as a numpy file"),
                      (tmp_path / "empty.npy", "cannot read it as a numpy file")):
        with pytest.raises(GanforgeError, match=msg):
            read_items(path, "image", shape)
    with pytest.raises(GanforgeError, match="vectors"):
        read_items(tmp_path / "imgs", "vector", (2,))


def test_cli_project(run, tmp_path):
    r = run_cli("sample", str(run), "--n", "6", "--out", str(tmp_path / "s.npz"))
    assert r.returncode == 0, r.stderr
    r = run_cli("project", str(run), str(tmp_path / "s.npz"), "--out", str(tmp_path / "p.npz"), "--steps", "50",
                "--grid", str(tmp_path / "pairs.png"))
    assert r.returncode == 0, r.stderr
    assert "projected 6 item(s)" in r.stdout
    with np.load(tmp_path / "p.npz") as z:
        assert z["z"].shape[0] == 6 and z["reconstructions"].shape == (6, 8, 8, 1) and z["mse"].shape == (6,)
        assert (z["mse"] <= z["start_mse"]).all()  # the best iterate is kept
    assert Image.open(tmp_path / "pairs.png").size[0] > 8
    r = run_cli("project", str(run), str(tmp_path / "s.npz"), "--out", str(tmp_path / "p.png"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and ".npz" in r.stderr


def test_decode_is_sample_for_given_latents():
    from ganforge.models import sample_prior

    g = dcgan()
    z = sample_prior(5, 8, "normal", torch.Generator().manual_seed(4))  # the latents sample(seed=4) draws
    np.testing.assert_array_equal(g.decode(z.numpy()), g.sample(5, seed=4))
    with pytest.raises(GanforgeError, match=r"\[N, 8\]"):
        g.decode(np.zeros((2, 3), np.float32))
