"""BiGAN / ALI (model.encoder): the encoder contract, the pair objective, training, resume, export, errors."""
import numpy as np
import pytest
import torch

import ganforge
from ganforge.components import resolve
from ganforge.config import ModelConfig
from ganforge.data import build_dataset
from ganforge.errors import GanforgeError
from ganforge.losses import LOSSES
from ganforge.models import MODELS, build_models, check_family, join, joint_shape, sample_prior
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint
from ganforge.training.state import setup
from ganforge.utils.stats import Stats

from .conftest import TINY

CPU = torch.device("cpu")
RING_TINY = ["train.kimg=0.256", "train.tick_kimg=0.128", "train.batch=32", "model.g_width=16",
             "model.d_width=16", "model.depth=2", "train.ema_kimg=0.1", "train.metrics=[]", "train.grid_size=16"]


# Every image and vector family has an encoder; a text family need not (its samples are discrete tokens: no
# joint (x, z) discriminator over them is defined here): see test_families_without_an_encoder_are_text_families.
@pytest.mark.parametrize("arch", [n for n in MODELS.names() if MODELS.get(n).kind != "text"])
def test_every_family_has_an_encoder_with_the_contract(arch):
    fam = MODELS.get(arch)
    kind = fam.kind
    shape = (1, 16, 16) if kind == "image" else (5,)
    m = ModelConfig(arch=arch, z_dim=6, g_width=8, d_width=8, depth=2, encoder=True, g_norm=fam.g_norms[0],
                    d_norm=fam.d_norms[0])
    G, D = build_models(m, shape, kind)
    z = sample_prior(4, 6, "normal", torch.Generator().manual_seed(0))
    x = G(z)
    assert x.shape == (4, *shape)
    e = G.encode(x)
    assert e.shape == (4, 6) and e.dtype == torch.float32
    pair = join(x, z)
    assert pair.shape == (4, *joint_shape(shape, 6))
    if kind == "image":  # z is tiled over the image: every pixel of channel C + j holds z[:, j]
        assert torch.equal(pair[:, 1:, 5, 7], z) and torch.equal(pair[:, :1], x)
    assert D(pair).shape == (4,)


def test_families_without_an_encoder_are_text_families():
    without = [n for n in MODELS.names() if MODELS.get(n).encoder is None]
    assert all(MODELS.get(n).kind == "text" for n in without), without
    for n in without:
        with pytest.raises(GanforgeError, match=f"model.encoder: the '{n}' family has no encoder"):
            check_family(ModelConfig(arch=n, encoder=True, g_norm="none", d_norm="none"))


@pytest.mark.parametrize("name", [n for n in LOSSES.names() if LOSSES.get(n).e is not None])
def test_encoder_losses(name):
    """E plays G's game mirrored: it wants D to call (x, E(x)) fake."""
    loss = LOSSES.get(name)
    r, f = torch.tensor([0.7, -1.2, 2.0]), torch.tensor([-0.3, 0.4, 1.5])
    if name in ("minimax", "wasserstein"):  # G and E together minimise exactly +V, the game's value (D's loss is -V)
        torch.testing.assert_close(loss.g(r, f) + loss.e(r, f), -loss.d(r, f, 0.0))
    # pushing the real pair's logit towards "fake" (down) lowers E's loss, for every loss
    assert loss.e(r - 0.1, f) < loss.e(r, f) or name == "least-squares"
    if name == "nonsaturating":  # -log(1 - D(x, E(x)))
        torch.testing.assert_close(loss.e(r, f), -torch.log(1 - torch.sigmoid(r)).mean())
    if name == "least-squares":  # E's target is the fake label 0
        assert loss.e(torch.zeros(3), f) == 0 and loss.e(r, f) > 0


def test_gradients_reach_the_right_networks():
    cfg = resolve("digits", TINY + ["model.encoder=true"])
    ctx = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    real, z = ctx.sampler.next().float() / 127.5 - 1, torch.randn(cfg.train.batch, cfg.model.z_dim)
    ctx.D.requires_grad_(True)
    ctx.objective.d_phase(real, z, stats)
    assert all(p.grad is None for p in ctx.G.parameters())  # neither G nor E learns in D's phase
    assert all(p.grad is not None for p in ctx.D.parameters())
    ctx.D.zero_grad(set_to_none=True)
    ctx.D.requires_grad_(False)
    ctx.objective.g_phase(z, stats, real=real)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ctx.G.E.parameters())
    assert all(p.grad is not None for p in ctx.G.G.parameters())
    assert all(p.grad is None for p in ctx.D.parameters())


ENCODER_TERMS = ["loss.latent_weight=1", "loss.cycle_weight=0.5"]


@pytest.mark.parametrize("preset,extra", [("digits", TINY), ("ring", RING_TINY), ("digits", TINY + ENCODER_TERMS),
                                          ("ring", RING_TINY + ENCODER_TERMS)])
def test_train_resume_export_encode(tmp_path, preset, extra):
    """Exact resume with every encoder option (plain BiGAN, latent regression, cycle)."""
    over = extra + ["model.encoder=true"]
    full = ganforge.train(preset, overrides=over, out=tmp_path / "f", progress=False)
    half = ganforge.train(preset, overrides=over + ["train.kimg=0.128"], out=tmp_path / "h", progress=False)
    ganforge.train(resume=half, overrides=["train.kimg=0.256"], progress=False)
    a, b = (load_checkpoint(list_checkpoints(r)[-1]) for r in (full, half))
    assert any(k.startswith("E.") for k in a["G_ema"])  # the encoder is part of G's state, EMA included
    for name in ("G_ema", "G", "D"):
        for k in a[name]:
            assert torch.equal(a[name][k], b[name][k]), (name, k)
    g = ganforge.load(full)
    assert g.has_encoder
    x = g.sample(6, seed=1)
    z = g.encode(x)
    assert z.shape == (6, g.model.z_dim) and np.isfinite(z).all()
    p = g.project(x, steps=5, starts=2)  # E(x) is one more start
    assert (p.mse <= p.start_mse).all()


def test_encoder_terms_train_e_and_g():
    """latent_weight and cycle_weight add their terms to G's and E's step, and are logged."""
    cfg = resolve("digits", TINY + ["model.encoder=true", "loss.latent_weight=1", "loss.cycle_weight=1"])
    ctx = setup(cfg, build_dataset(cfg.data), CPU)
    stats = Stats()
    real, z = ctx.sampler.next().float() / 127.5 - 1, torch.randn(cfg.train.batch, cfg.model.z_dim)
    ctx.D.requires_grad_(False)
    ctx.objective.g_phase(z, stats, real=real)
    got = stats.read()
    assert got["latent_mse"] > 0 and got["cycle_mse"] > 0
    with torch.no_grad():  # the logged values are the terms as defined
        G = ctx.G
        torch.testing.assert_close(torch.tensor(got["latent_mse"]), (G.encode(G(z)) - z).pow(2).mean(),
                                   rtol=1e-4, atol=1e-6)
    with pytest.raises(GanforgeError, match="model.encoder=true"):
        resolve("digits", TINY + ["loss.latent_weight=1"])
    with pytest.raises(GanforgeError, match="loss.cycle_weight: must be >= 0"):
        resolve("digits", TINY + ["model.encoder=true", "loss.cycle_weight=-1"])


def test_encoder_errors(tmp_path):
    with pytest.raises(GanforgeError, match="model.pack"):
        resolve("ring", ["model.encoder=true", "model.pack=2"])
    from ganforge.losses.adversarial import AdversarialLoss
    LOSSES.register("no-e-test")(AdversarialLoss(d=lambda r, f, s: f.mean() - r.mean(), g=lambda f: -f.mean()))
    try:
        with pytest.raises(GanforgeError, match="no encoder loss"):
            resolve("ring", ["model.encoder=true", "loss.name=no-e-test"])
    finally:
        LOSSES._items.pop("no-e-test", None)
    g = ganforge.load(ganforge.train("ring", overrides=RING_TINY, out=tmp_path / "r", progress=False))
    with pytest.raises(GanforgeError, match="no encoder"):
        g.encode(np.zeros((2, 2), np.float32))
