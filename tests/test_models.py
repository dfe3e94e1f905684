"""Contract tests over every registered model family, resolution and prior."""
import dataclasses

import pytest
import torch

from ganforge.config import ModelConfig
from ganforge.errors import GanforgeError
from ganforge.losses.objective import pack
from ganforge.models import MODELS, build_models
from ganforge.models import sample_prior

IMAGE_SHAPES = [(1, 8, 8), (3, 16, 16), (1, 28, 28), (3, 32, 32), (3, 64, 64), (1, 16, 32)]


def _families(kind):
    return [n for n in MODELS.names() if MODELS.get(n).kind == kind]


@pytest.mark.parametrize("arch", _families("image"))
@pytest.mark.parametrize("shape", IMAGE_SHAPES)
@pytest.mark.parametrize("prior", ["normal", "uniform"])
@pytest.mark.parametrize("pack_m", [1, 2])
def test_image_models_shapes(arch, shape, prior, pack_m):
    fam = MODELS.get(arch)
    m = ModelConfig(arch=arch, z_dim=16, prior=prior, g_width=8, d_width=8, pack=pack_m, g_norm=fam.g_norms[0],
                    d_norm="batch" if "batch" in fam.d_norms else fam.d_norms[-1])
    G, D = build_models(m, shape, "image")
    z = sample_prior(4, 16, prior, torch.Generator().manual_seed(0))
    x = G(z)
    assert x.shape == (4, *shape)
    assert x.min() >= -1 and x.max() <= 1  # tanh output: the model range of images
    out = D(pack(x, pack_m))
    assert out.shape == (4 // pack_m,)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("arch", _families("vector"))
@pytest.mark.parametrize("dim", [2, 5])
@pytest.mark.parametrize("prior", ["normal", "uniform"])
def test_vector_models_shapes(arch, dim, prior):
    m = ModelConfig(arch=arch, z_dim=3, prior=prior, g_width=16, d_width=16, depth=2, pack=2)
    G, D = build_models(m, (dim,), "vector")
    x = G(sample_prior(6, 3, prior))
    assert x.shape == (6, dim)
    assert D(pack(x, 2)).shape == (3,)


@pytest.mark.parametrize("arch", _families("text"))
@pytest.mark.parametrize("length", [2, 5, 16])
@pytest.mark.parametrize("prior", ["normal", "uniform"])
@pytest.mark.parametrize("pack_m", [1, 2])
def test_text_models_shapes(arch, length, prior, pack_m):
    """Text families: G(z) -> scores over the vocabulary [N, L, V] (each position a distribution), D(one-hots or
    token ids) -> logits [N]; the vocabulary is the model option `vocab` (filled in from the data). Latent families
    (ARAE): the same in eval mode; in training mode G(z) gives codes, and D judges codes."""
    fam = MODELS.get(arch)
    defaults = dataclasses.asdict(MODELS.options(arch)()) if MODELS.options(arch) else {}
    m = ModelConfig(arch=arch, z_dim=5, prior=prior, g_width=8, d_width=8, pack=pack_m, g_norm=fam.g_norms[0],
                    d_norm=fam.d_norms[0], options={**defaults, "vocab": 9})
    G, D = build_models(m, (length,), "text")
    z = sample_prior(4, 5, prior, torch.Generator().manual_seed(0))
    if fam.latent:  # eval mode: the decoded text; training mode: codes, which D judges (real text: real_codes)
        x = G.eval()(z)
        codes = G.train()(z)
        assert codes.ndim == 2 and codes.shape[0] == 4
        assert D(pack(codes, pack_m)).shape == (4 // pack_m,)
        assert D(pack(G.real_codes(x.argmax(-1)), pack_m)).shape == (4 // pack_m,)
        assert G.autoencoder_loss(x.argmax(-1)).ndim == 0
    else:
        x = G(z)
        assert D(pack(x, pack_m)).shape == (4 // pack_m,)
        assert D(pack(x.argmax(-1), pack_m)).shape == (4 // pack_m,)  # token ids [N, L]
    assert x.shape == (4, length, 9) and x.dtype == torch.float32
    torch.testing.assert_close(x.sum(-1), torch.ones(4, length))


def test_priors():
    g = torch.Generator().manual_seed(0)
    u = sample_prior(10000, 4, "uniform", g)
    assert u.min() >= -1 and u.max() <= 1 and abs(u.mean()) < 0.02
    n = sample_prior(10000, 4, "normal", g)
    assert abs(n.std() - 1) < 0.03
    t = sample_prior(1000, 4, "normal", g, truncation=0.5)
    assert t.abs().max() <= 0.5


def test_dcgan_64_matches_pytorch_examples_parameter_count():
    # pytorch/examples dcgan: nz=100, ngf=ndf=64, nc=3 -> G 3,576,704 and D 2,765,568 parameters
    m = ModelConfig(arch="dcgan", z_dim=100, g_width=64, d_width=64, g_norm="batch", d_norm="batch")
    G, D = build_models(m, (3, 64, 64), "image")
    assert sum(p.numel() for p in G.parameters()) == 3576704
    assert sum(p.numel() for p in D.parameters()) == 2765568


def test_wrong_kind_is_a_clear_error():
    with pytest.raises(GanforgeError, match="vector data"):
        build_models(ModelConfig(arch="mlp"), (1, 8, 8), "image")
    with pytest.raises(GanforgeError, match="image"):
        build_models(ModelConfig(arch="dcgan"), (2,), "vector")


def test_unsupported_resolution_is_a_clear_error():
    with pytest.raises(GanforgeError, match="data.resolution"):
        build_models(ModelConfig(arch="dcgan"), (1, 7, 7), "image")



CONTRACT_SHAPES = [(3, 16, 16), (1, 32, 32), (3, 64, 64), (3, 128, 128), (1, 256, 256), (3, 32, 64)]


@pytest.mark.parametrize("arch", _families("image"))
@pytest.mark.parametrize("shape", CONTRACT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("conditional", [False, True])
def test_every_image_family_16_to_256_conditional_or_not(arch, shape, conditional):
    """Forward and backward of G and D (and the projection head) at every size the families promise."""
    fam = MODELS.get(arch)
    big = shape[1] >= 128
    m = ModelConfig(arch=arch, z_dim=8, g_width=4 if big else 8, d_width=4 if big else 8, g_norm=fam.g_norms[-1],
                    d_norm=fam.d_norms[0] if fam.d_norms[0] != "batch" else "none", conditional=conditional,
                    mbstd=2 if fam.mbstd else 0)
    if arch == "r3gan" and big:
        m.options = {"width_max": 32, "blocks": 1}
    G, D = build_models(m, shape, "image", n_classes=5 if conditional else 0)
    z = torch.randn(2, 8)
    c = torch.tensor([0, 4]) if conditional else None
    x = G(z, c) if conditional else G(z)
    assert x.shape == (2, *shape) and x.abs().max() <= 1
    logits = D(x, c) if conditional else D(x)
    assert logits.shape == (2,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in G.parameters() if p.requires_grad)
    # the projection head makes the class matter
    if conditional:
        D.embed.weight.data.normal_()
        assert not torch.allclose(D(x.detach(), c), D(x.detach(), c.flip(0)))


def test_minibatch_std_sees_variety():
    from ganforge.models.layers import MinibatchStd

    layer = MinibatchStd(4)
    same = layer(torch.ones(8, 3, 4, 4))
    varied = layer(torch.randn(8, 3, 4, 4))
    assert same.shape == (8, 4, 4, 4) and same[:, 3].abs().max() < 1e-3  # a collapsed batch: ~0
    assert varied[:, 3].min() > 0.3                                       # a varied one: ~1
    assert MinibatchStd(4)(torch.randn(6, 5)).shape == (6, 6)              # 6 % 4: groups of 3; vectors too
    # the known value: sample i's extra channel is the mean over features of the std (biased) across its group,
    # the samples i % 2, i % 2 + 2, ... (8 samples, groups of 4, so 2 groups); gradients flow through it
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    for i in range(8):
        members = x[i % 2::2]
        assert torch.allclose(y[i, 3], (members.var(0, unbiased=False) + 1e-8).sqrt().mean().float().double())
    assert torch.equal(y[:, :3], x)
    y[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_r3gan_starts_as_its_plain_path():
    """Fix-up: every residual branch's last conv starts at zero, so a block is the identity at initialisation."""
    from ganforge.models.r3gan import Block

    b = Block(16, 2, 8, 0.5)
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(b(x), x)
    assert b.c2.groups == 4  # 32 channels in the bottleneck, 8 per group


def test_families_refuse_what_they_do_not_implement():
    with pytest.raises(GanforgeError, match="does not implement 'batch'"):
        build_models(ModelConfig(arch="r3gan", g_norm="batch"), (3, 16, 16), "image")
    with pytest.raises(GanforgeError, match="needs a dataset with class labels"):
        build_models(ModelConfig(arch="dcgan", conditional=True), (1, 16, 16), "image", n_classes=0)



@pytest.mark.parametrize("arch", _families("image"))
def test_image_families_run_under_bf16_autocast(arch):
    """What train.precision=bf16 (or auto on a CPU with native bf16) runs: forward and backward under autocast."""
    fam = MODELS.get(arch)
    m = ModelConfig(arch=arch, z_dim=8, g_width=8, d_width=8, g_norm=fam.g_norms[-1], d_norm=fam.d_norms[0],
                    mbstd=2 if fam.mbstd else 0)
    G, D = build_models(m, (3, 16, 32), "image")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = D(G(torch.randn(4, 8)))
    out.float().sum().backward()
    assert out.shape == (4,) and torch.isfinite(out.float()).all()


def _small_d(arch, conditional):
    fam = MODELS.get(arch)
    if fam.kind == "image":
        m = ModelConfig(arch=arch, z_dim=8, g_width=8, d_width=8, g_norm=fam.g_norms[-1], d_norm=fam.d_norms[0],
                        mbstd=2 if fam.mbstd else 0, conditional=conditional)
        shape = (3, 16, 16)
    elif fam.kind == "vector":
        m, shape = ModelConfig(arch=arch, z_dim=3, g_width=16, d_width=16, depth=2, conditional=conditional), (5,)
    else:
        defaults = dataclasses.asdict(MODELS.options(arch)()) if MODELS.options(arch) else {}
        m = ModelConfig(arch=arch, z_dim=5, g_width=8, d_width=8, g_norm=fam.g_norms[0], d_norm=fam.d_norms[0],
                        options={**defaults, "vocab": 9})
        shape = (6,)
    G, D = build_models(m, shape, fam.kind, n_classes=3 if conditional else 0)
    z = torch.randn(4, m.z_dim)
    c = torch.tensor([0, 1, 2, 0]) if conditional else None
    with torch.no_grad():
        x = (G(z, c) if conditional else G.eval()(z) if fam.kind == "text" else G(z)).detach()
    if fam.kind == "text" and fam.latent:
        x = G.train().real_codes(x.argmax(-1)).detach()
    return D, x, c


@pytest.mark.parametrize("arch,conditional", [(a, False) for a in MODELS.names()]
                         + [(a, True) for a in _families("image") + _families("vector")])
def test_every_d_gives_float32_logits_under_autocast(arch, conditional):
    """D's last layer runs in float32 under bf16 autocast (models.layers.float_logits): the logits equal the head
    applied in float32 to the (bf16) features, and two logits near -140, where bf16 steps by 1.0, still differ by
    what float32 says, which a relativistic loss (differences only) needs."""
    D, x, c = _small_d(arch, conditional)
    run = (lambda inp: D(inp, c)) if conditional else D
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(x)
        f = D.D.features(x) if conditional else D.features(x)
    assert out.dtype == torch.float32 and out.shape == (4,)
    head = D.D.head if conditional else D.head
    with torch.no_grad():
        ref = head(f.float())
        if conditional:
            ref = ref + (D.embed(c) * f.flatten(1).float()).sum(1)
    torch.testing.assert_close(out, ref)
    # the drift case: shift every logit by -140 through the last layer's bias; differences keep float32 precision
    last = [mod for mod in D.modules() if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    if last.bias is None:
        last.bias = torch.nn.Parameter(torch.zeros(last.out_channels if hasattr(last, "out_channels") else 1))
    with torch.no_grad():
        last.bias.add_(-140.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            shifted = run(x)
    torch.testing.assert_close(shifted - shifted[0], out - out[0], atol=1e-3, rtol=0)


@pytest.mark.parametrize("arch", _families("image"))
def test_every_declared_discriminator_norm_builds_and_trains(arch):
    """Each model.d_norm a family declares builds a D that runs forward and backward; the per-sample ones
    (all but batch) give each sample a logit that does not depend on the rest of the minibatch."""
    fam = MODELS.get(arch)
    for d_norm in fam.d_norms:
        m = ModelConfig(arch=arch, z_dim=8, g_width=8, d_width=8, g_norm=fam.g_norms[-1], d_norm=d_norm)
        _, D = build_models(m, (1, 16, 16), "image")
        x = torch.randn(4, 1, 16, 16, requires_grad=True)
        out = D(x)
        out.sum().backward()
        assert out.shape == (4,) and torch.isfinite(x.grad).all(), d_norm
        if d_norm != "batch":  # in eval mode spectral norm's power iteration holds still between the two calls
            D.eval()
            with torch.no_grad():
                assert torch.allclose(D(x[:1]), D(x)[:1], atol=1e-5), d_norm


def test_layer_norm_in_the_dcgan_discriminator_is_group_norm_with_one_group():
    m = ModelConfig(arch="dcgan", z_dim=8, g_width=8, d_width=8, d_norm="layer")
    _, D = build_models(m, (1, 28, 28), "image")
    norms = [mod for mod in D.modules() if isinstance(mod, torch.nn.GroupNorm)]
    assert norms and all(n.num_groups == 1 for n in norms)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in D.modules())
