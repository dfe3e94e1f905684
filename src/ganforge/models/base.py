"""Model registry and the pieces every family shares."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import GanforgeError
from ..registry import Registry
from .layers import ConditionalGenerator, ProjectionDiscriminator


@dataclass(frozen=True)
class ModelFamily:
    generator: Callable[..., nn.Module]      # (model_cfg, data_shape) -> G
    discriminator: Callable[..., nn.Module]  # (model_cfg, data_shape) -> D  (input has pack * channels)
    kind: str                                # "image" | "vector": which data the family accepts
    describe: str = ""
    encoder: Callable[..., nn.Module] | None = None  # (model_cfg, data_shape) -> E: x [N, *shape] -> z [N, z_dim]
    g_norms: tuple[str, ...] = ("batch", "none")                 # model.g_norm values the family implements
    d_norms: tuple[str, ...] = ("batch", "none", "spectral")     # model.d_norm values the family implements
    mbstd: bool = False                                          # its D implements model.mbstd
    latent: bool = False  # text in a latent space (ARAE): G in training mode gives codes, real data enters D as
                          # G.real_codes(x), and the step trains G's autoencoder (G.autoencoder_loss)


MODELS: Registry[ModelFamily] = Registry("model architecture")


class BiGANGenerator(nn.Module):
    """A generator with an encoder (BiGAN, Donahue et al. 2017; ALI, Dumoulin et al. 2017): forward(z) = G(z)
    as for any generator, encode(x) = E(x). One module, so that the optimiser, the EMA, checkpoints, the
    gradient all-reduce and the export treat G and E together."""

    def __init__(self, G: nn.Module, E: nn.Module):
        super().__init__()
        self.G, self.E = G, E

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.G(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.E(x)


def joint_shape(data_shape: tuple[int, ...], z_dim: int) -> tuple[int, ...]:
    """What the discriminator of a BiGAN sees: images get z as z_dim extra channels, vectors as z_dim extra values."""
    return (data_shape[0] + z_dim, *data_shape[1:])


def join(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """(x, z) -> one discriminator input of joint_shape: z tiled over the image, or appended to the vector."""
    z = z.to(x.dtype)
    if x.ndim == 4:
        return torch.cat([x, z[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])], 1)
    return torch.cat([x, z], 1)


def check_family(mcfg, discriminator: bool = True) -> None:
    """What the family must implement for this config: the normalisations asked for, and an encoder under
    model.encoder. A setting a family would silently ignore is an error instead. `discriminator=False`: only
    what the generator (and encoder) needs, as when an exported generator is loaded."""
    fam = MODELS.get(mcfg.arch)
    checks = (("g_norm", fam.g_norms), ("d_norm", fam.d_norms)) if discriminator else (("g_norm", fam.g_norms),)
    for key, allowed in checks:
        if getattr(mcfg, key) not in allowed:
            raise GanforgeError(f"model.{key}: the {mcfg.arch!r} family does not implement "
                                f"{getattr(mcfg, key)!r}; choose one of: {', '.join(allowed)}")
    if mcfg.encoder and fam.encoder is None:
        with_e = [n for n in MODELS.names() if MODELS.get(n).encoder is not None]
        raise GanforgeError(f"model.encoder: the {mcfg.arch!r} family has no encoder; use one of {', '.join(with_e)}")
    if discriminator and mcfg.mbstd and not fam.mbstd:
        with_m = [n for n in MODELS.names() if MODELS.get(n).mbstd]
        raise GanforgeError(f"model.mbstd: the {mcfg.arch!r} family's D has no minibatch standard deviation; use "
                            f"one of {', '.join(with_m)} or model.mbstd=0")


def _family(mcfg, kind: str, discriminator: bool = True) -> ModelFamily:
    fam = MODELS.get(mcfg.arch)
    if fam.kind != kind:
        others = [n for n in MODELS.names() if MODELS.get(n).kind == kind]
        raise GanforgeError(f"model.arch: {mcfg.arch!r} is for {fam.kind} data, but this dataset is {kind} data; "
                            f"choose one of: {', '.join(others)}")
    check_family(mcfg, discriminator)
    return fam


def _n_classes(mcfg, n_classes: int) -> int:
    if mcfg.conditional and n_classes < 2:
        raise GanforgeError("model.conditional: needs a dataset with class labels (at least 2 classes); this one "
                            "has none. Use a labelled dataset (subfolders of a folder, IDX, CIFAR, digits) or set "
                            "model.conditional=false")
    return n_classes


def build_generator(mcfg, data_shape: tuple[int, ...], kind: str, n_classes: int = 0) -> nn.Module:
    """G alone (with its encoder when model.encoder is set): what the exported generator holds. Conditional:
    G(z, c), the family's G built for a latent of 2 x z_dim (z and a class embedding of z_dim)."""
    fam = _family(mcfg, kind, discriminator=False)
    if mcfg.conditional:
        inner = fam.generator(dataclasses.replace(mcfg, z_dim=2 * mcfg.z_dim), data_shape)
        return ConditionalGenerator(inner, _n_classes(mcfg, n_classes), mcfg.z_dim)
    G = fam.generator(mcfg, data_shape)
    return BiGANGenerator(G, fam.encoder(mcfg, data_shape)) if mcfg.encoder else G


def build_encoder(mcfg, data_shape: tuple[int, ...]) -> nn.Module:
    """The family's encoder E: x [N, *shape] -> z [N, z_dim] (as model.encoder trains it jointly), for fitting to a
    trained generator afterwards (ganforge.inversion.train_encoder)."""
    fam = MODELS.get(mcfg.arch)
    if fam.encoder is None:
        with_e = [n for n in MODELS.names() if MODELS.get(n).encoder is not None]
        raise GanforgeError(f"the {mcfg.arch!r} family has no encoder; families with one: {', '.join(with_e)}")
    return fam.encoder(mcfg, data_shape)


def build_models(mcfg, data_shape: tuple[int, ...], kind: str, n_classes: int = 0) -> tuple[nn.Module, nn.Module]:
    """ModelConfig + the shape of one data item -> (G, D), freshly initialised (uses the global torch RNG).

    With model.encoder, G is a BiGANGenerator (G and E) and D judges pairs join(x, z). With model.conditional,
    G(z, c) and D(x, c) = projection discriminator over the family's D."""
    fam = _family(mcfg, kind)
    G = build_generator(mcfg, data_shape, kind, n_classes)
    d_shape = joint_shape(data_shape, mcfg.z_dim) if mcfg.encoder else data_shape
    D = fam.discriminator(mcfg, d_shape)
    if mcfg.conditional:
        if not all(hasattr(D, a) for a in ("features", "head", "feature_dim")):
            raise GanforgeError(f"model.conditional: the {mcfg.arch!r} family's D has no features()/head()/"
                                "feature_dim for the projection head; set model.conditional=false")
        D = ProjectionDiscriminator(D, _n_classes(mcfg, n_classes), D.feature_dim)
    return G, D


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def norm2d(kind: str, ch: int) -> nn.Module:
    """batch: BatchNorm over the minibatch; layer: each sample over its own channels and pixels (GroupNorm with one
    group), which keeps D a function of one sample, as the R1/R2 penalties and the relativistic pairs assume."""
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    return nn.GroupNorm(1, ch) if kind == "layer" else nn.Identity()


def maybe_sn(layer: nn.Module, d_norm: str) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) when d_norm == 'spectral'."""
    if d_norm == "spectral":
        return nn.utils.parametrizations.spectral_norm(layer)
    return layer


def dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) weights, BN gamma N(1, 0.02) (Radford et al. 2016)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(w, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
