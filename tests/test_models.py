"""Contract tests over every registered model family, resolution and prior."""
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
    m = ModelConfig(arch=arch, z_dim=16, prior=prior, g_width=8, d_width=8, pack=pack_m, d_norm="spectral"
                    if arch == "resnet" else "batch")
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
