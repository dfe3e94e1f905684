"""Text GAN with a Gumbel-softmax generator (RelGAN, Nie et al. 2019), for text data (token ids [N, L]).

G(z [N, z_dim]) -> [N, L, V]: an LSTM decoder started from z. At each position it scores the vocabulary (o), adds
Gumbel noise g and emits the token argmax(o + g), a sample of softmax(o), which is its next input. What D sees is
the relaxation y = softmax(beta * (o + g)) (Jang et al. 2017; Maddison et al. 2017), through which D's gradient
reaches G. The inverse temperature beta is annealed from 1 to `model.beta_max` over training (`model.beta_schedule`,
ganforge.schedules.BETA_SCHEDULES; RelGAN Sec. 2.3): a soft relaxation early, near one-hot samples late. It lives
in a buffer of G (saved with the checkpoint and the exported generator) that the training step sets (`anneal`).
With model.beta_kimg=0 the schedule spans the run (train.kimg, or a --minutes budget's schedule clock): a run
extended on resume (`--set train.kimg=more`) stretches it, so beta steps back; set model.beta_kimg to pin it.
In eval mode (the EMA generator, the exported one) G emits the hard one-hots of the sampled tokens.
After G emits EOS (or PAD) every later position is PAD, and the last position is EOS unless it ended earlier: the
layout of the real rows (data/text.py), so D cannot tell them apart by the padding alone.

D([N, L, V] one-hot or relaxed, or int ids [N, L]) -> logits [N]: the one-hots embedded by a matrix multiply
(V -> emb), then 1-D convolutions over the positions with several kernel widths, max-pooled over time (the CNN
discriminator of SeqGAN / RelGAN, Kim 2014), a hidden layer (`features`) and a linear head.

The Gumbel noise is drawn from `G.rng` when it is set (training: the run's RNG stream, which checkpoints hold,
so a resume is exact; `ganforge.sampling.generate`: a generator seeded from the sample seed), else from torch's
global RNG.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tokenize import EOS, PAD
from ..errors import GanforgeError
from ..schedules import BETA_SCHEDULES, inverse_temperature
from .base import MODELS, ModelFamily, maybe_sn
from .layers import float_logits


@dataclass
class GumbelOptions:
    vocab: int = 0                # vocabulary size V (specials included); 0 = the dataset's, filled in at training
    emb_dim: int = 32             # width of the token embeddings of G and D
    beta_max: float = 100.0       # final inverse temperature of the Gumbel-softmax (RelGAN: 100 or 1000)
    beta_schedule: str = "exponential"  # exponential (beta_max^t, RelGAN) | linear | constant (beta_max throughout)
    beta_kimg: float = 0.0        # kimg over which beta rises from 1 to beta_max; 0 = the whole run (train.kimg)
    kernels: list[int] = field(default_factory=lambda: [2, 3, 4, 5])  # widths of D's convolutions over positions

    def __post_init__(self) -> None:
        check_vocab(self.vocab)
        if self.emb_dim < 1:
            raise GanforgeError(f"model.emb_dim: must be >= 1, got {self.emb_dim}")
        if not self.beta_max >= 1.0 or self.beta_max > 1e6:
            raise GanforgeError(f"model.beta_max: the final inverse temperature, from 1 to 1e6 (RelGAN: 100 or "
                                f"1000), got {self.beta_max}")
        if self.beta_kimg < 0:
            raise GanforgeError(f"model.beta_kimg: must be >= 0 (0 = the whole run), got {self.beta_kimg}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise GanforgeError(f"model.beta_schedule: unknown {self.beta_schedule!r}; choose one of: "
                                f"{', '.join(BETA_SCHEDULES.names())}")
        if not self.kernels or any(k < 1 for k in self.kernels):
            raise GanforgeError(f"model.kernels: one or more kernel widths >= 1, got {self.kernels}")


def check_vocab(vocab: int) -> None:
    """model.vocab of any text family: 0 (the dataset's) or a size with room for the specials and a symbol."""
    if vocab < 0 or vocab in (1, 2, 3):
        raise GanforgeError(f"model.vocab: the vocabulary size (at least 4: PAD, EOS, UNK and one symbol), or 0 "
                            f"for the dataset's; got {vocab}")


def options_of(m) -> GumbelOptions:
    return GumbelOptions(**m.options)


def one_hot_tokens(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """int token ids [N, L] -> float one-hots [N, L, V]: real text as D sees it (and as R1, GP, noise need it).
    Floats (one-hots already, or relaxed ones) pass through. No range check: that would synchronise with the
    device at every step (the data's ids are in the vocabulary by construction)."""
    if ids.is_floating_point():
        return ids
    out = torch.zeros(*ids.shape, vocab, device=ids.device)
    return out.scatter_(-1, ids.long().unsqueeze(-1), 1.0)


def fit_vocab(m, vocab_size: int) -> None:
    """Fill in model.vocab from the training data (when 0), or check that the data's vocabulary is the model's.
    Any text family keeps its vocabulary size in an option `vocab` (the contract of ganforge.models)."""
    opts = MODELS.options(m.arch)
    if opts is None or "vocab" not in {f.name for f in dataclasses.fields(opts)}:
        return
    given = int(m.options.get("vocab", 0))
    if given == 0:
        m.options["vocab"] = int(vocab_size)
    elif given != vocab_size:
        raise GanforgeError(f"model.vocab: {given}, but the dataset's tokeniser has {vocab_size} tokens; set "
                            f"model.vocab=0 (the dataset's)")


class GumbelGenerator(nn.Module):
    """z [N, z_dim] -> [N, L, V]: relaxed one-hots softmax(beta (o + g)) in training mode, hard ones in eval."""

    def __init__(self, z_dim: int, vocab: int, length: int, hidden: int, emb: int, norm: str,
                 beta_max: float = 100.0, beta_schedule: str = "exponential", beta_kimg: float = 0.0):
        super().__init__()
        self.vocab, self.length = vocab, length
        self.beta_max, self.beta_schedule, self.beta_kimg = beta_max, beta_schedule, beta_kimg
        self.init = nn.Linear(z_dim, 2 * hidden, bias=norm != "batch")  # z -> (h0, c0)
        self.init_norm = nn.BatchNorm1d(2 * hidden) if norm == "batch" else nn.Identity()
        self.start = nn.Parameter(torch.zeros(emb))                       # the first input: a learned start token
        self.embed = nn.Embedding(vocab, emb)
        self.cell = nn.LSTMCell(emb + z_dim, hidden)                      # z is fed at every position
        self.out = nn.Linear(hidden, vocab)
        self.register_buffer("beta", torch.ones(()))  # the inverse temperature now (set by `anneal`)
        self.rng: torch.Generator | None = None      # where the Gumbel noise comes from (None: the global RNG)

    def anneal(self, cur_nimg: int, run_kimg: float) -> None:
        """Set beta for the schedule clock `cur_nimg` (over model.beta_kimg, or the whole run of run_kimg)."""
        self.beta.fill_(inverse_temperature(self.beta_schedule, self.beta_max, self.beta_kimg or run_kimg,
                                            cur_nimg))

    def _gumbel(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        u = torch.rand(shape, generator=self.rng, device=like.device, dtype=torch.float32)
        e = (-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10)  # Exp(1)
        return (-torch.log(e)).to(like.dtype)                   # Gumbel(0, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, L, V]
        n = z.shape[0]
        h, c = torch.tanh(self.init_norm(self.init(z))).chunk(2, 1)
        inp = self.start.expand(n, -1)
        done = torch.zeros(n, dtype=torch.bool, device=z.device)
        pad = F.one_hot(torch.tensor(PAD, device=z.device), self.vocab).to(z.dtype)
        eos = F.one_hot(torch.tensor(EOS, device=z.device), self.vocab).to(z.dtype)
        ys = []
        for t in range(self.length):
            h, c = self.cell(torch.cat([inp, z], 1), (h, c))
            scores = self.out(h)                                         # o: [N, V]
            scores = scores + self._gumbel(tuple(scores.shape), scores)  # o + g
            tok = scores.argmax(1)                                       # a sample of softmax(o)
            y = torch.softmax(self.beta * scores, 1) if self.training else F.one_hot(tok, self.vocab).to(z.dtype)
            if t == self.length - 1:  # a row that has not ended ends here, as every real row does
                y = torch.where(done[:, None], y, eos)
                tok = torch.where(done, tok, torch.full_like(tok, EOS))
            y = torch.where(done[:, None], pad, y)
            tok = torch.where(done, torch.full_like(tok, PAD), tok)
            done = done | (tok == EOS) | (tok == PAD)
            ys.append(y)
            inp = self.embed(tok)                                        # the hard token is the next input
        return torch.stack(ys, 1)


class TextCNNDiscriminator(nn.Module):
    """[N, pack * L, V] one-hots (or int ids [N, pack * L]) -> logits [N]: embedding by a matrix multiply, 1-D
    convolutions of several widths over positions, max over time, a hidden layer (`features`), a linear `head`.
    Packed inputs (model.pack) are m sequences one after the other along the positions."""

    def __init__(self, vocab: int, emb: int, width: int, kernels: list[int], norm: str):
        super().__init__()
        self.vocab = vocab
        self.embed = maybe_sn(nn.Linear(vocab, emb, bias=False), norm)
        self.convs = nn.ModuleList(maybe_sn(nn.Conv1d(emb, width, k, padding=k - 1), norm) for k in kernels)
        self.hidden = maybe_sn(nn.Linear(width * len(kernels), width), norm)
        self.out = maybe_sn(nn.Linear(width, 1), norm)
        self.feature_dim = width

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [N, L, V] or ids [N, L] -> [N, width]
        e = self.embed(one_hot_tokens(x, self.vocab)).transpose(1, 2)   # [N, emb, L]
        pooled = [F.leaky_relu(conv(e), 0.2).amax(2) for conv in self.convs]  # each [N, width]
        return F.leaky_relu(self.hidden(torch.cat(pooled, 1)), 0.2)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return float_logits(self.out, f).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def text_length(m, shape: tuple[int, ...]) -> int:
    """The row length L of a text family's data (items of shape (L,)), or a clear error for other data."""
    if len(shape) != 1:
        raise GanforgeError(f"model.arch {m.arch!r} needs text data (token ids [N, L]), got items of shape {shape}")
    return shape[0]


def text_vocab(m) -> int:
    """model.vocab of a text family, once filled in from the data (fit_vocab)."""
    v = int(m.options.get("vocab", 0))
    if v == 0:
        raise GanforgeError("model.vocab: the vocabulary size is not known (0); it is filled in from the dataset's "
                            "tokeniser when training starts, or set it")
    return v


def _generator(m, shape):
    o = options_of(m)
    return GumbelGenerator(m.z_dim, text_vocab(m), text_length(m, shape), m.g_width, o.emb_dim, m.g_norm, o.beta_max,
                           o.beta_schedule, o.beta_kimg)


def _discriminator(m, shape):
    text_length(m, shape)
    return TextCNNDiscriminator(text_vocab(m), options_of(m).emb_dim, m.d_width, options_of(m).kernels, m.d_norm)


MODELS.register("gumbel", options=GumbelOptions)(ModelFamily(
    generator=_generator,
    discriminator=_discriminator,
    kind="text",
    describe="text: LSTM G with Gumbel-softmax outputs, beta annealed 1 -> beta_max (RelGAN); CNN D over "
             "embedded one-hots",
    d_norms=("none", "spectral"),
))
