"""A latent text GAN on a sequence autoencoder (ARAE, Zhao et al. 2018, https://arxiv.org/abs/1706.04223), for text
data (token ids [N, L]).

The autoencoder: an LSTM encoder reads a row up to its EOS and maps it to a code c on the unit sphere of
R^code_dim (ARAE normalises the codes, so their scale carries nothing D could use); an LSTM decoder, started from c
and fed c at every position, predicts the row token by token (teacher forcing, cross-entropy over the positions
up to and including EOS). During its training the codes get Gaussian noise of std `model.code_noise` (ARAE's
noise on the codes), so the decoder also reads codes near the real ones, which is where G's land.

The GAN is played in code space: G(z) = an MLP of `model.depth` hidden layers (width g_width), normalised to the
sphere like the encoder's codes; D = an MLP on codes (the `mlp` family's D). Real codes are the encoder's,
without gradient (`real_codes`). So G and D are the vector GAN of the toy sets, and every adversarial loss and
penalty applies as it is (R1 and R2 on codes, instance noise on codes, packing, minibatch std).

Training (ganforge/training/step.py, through the hooks this module's G offers): each step first takes one
autoencoder step on a fresh real batch (`autoencoder_loss`, with G's optimiser: the GAN's G-step never touches
the autoencoder's weights, the autoencoder step never touches the MLP's), then the D- and G-steps on codes.
For the first `model.ae_kimg` real images only the autoencoder trains (the codes must mean something before G
chases them). `model.ae_joint=false` freezes the autoencoder after that (the "latent GAN" of Donahue and
Rumshisky 2018: a fixed code distribution); true keeps training it beside the GAN (ARAE's joint training).
ARAE's third term, the adversary's gradient into the encoder, is not implemented: the encoder learns only to
reconstruct.

Modes: in training mode G(z) gives codes [N, code_dim] (what D judges); in eval mode (the EMA generator, the
exported one, samples and tick grids) it gives the decoded text as hard one-hots [N, L, V], greedily (the
argmax at each position, as ARAE decodes), in the layout of the real rows: after EOS only PAD, and the last
position EOS if the row has not ended. `encode_text(ids)` gives the codes of real text, `decode(codes)` the
text of codes: together the encoder from text into the latent (code) space and back.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..data.tokenize import EOS, PAD
from ..errors import GanforgeError
from .base import MODELS, ModelFamily
from .mlp import MLPDiscriminator
from .textgan import check_vocab, text_length, text_vocab


@dataclass
class AraeOptions:
    vocab: int = 0               # vocabulary size V (specials included); 0 = the dataset's, filled in at training
    emb_dim: int = 32            # width of the token embeddings of the encoder and the decoder
    code_dim: int = 64           # dimension of the codes (the space G and D play in)
    ae_width: int = 256          # hidden units of the encoder's and the decoder's LSTMs
    ae_kimg: float = 50.0        # kimg the autoencoder trains alone before the GAN starts (on the schedule clock)
    ae_joint: bool = True        # keep training the autoencoder beside the GAN (ARAE); false: freeze it after ae_kimg
    code_noise: float = 0.05     # std of the Gaussian noise on the codes while the autoencoder trains (ARAE)

    def __post_init__(self) -> None:
        check_vocab(self.vocab)
        for key in ("emb_dim", "code_dim", "ae_width"):
            if getattr(self, key) < 1:
                raise GanforgeError(f"model.{key}: must be >= 1, got {getattr(self, key)}")
        if self.code_dim < 2:
            raise GanforgeError(f"model.code_dim: codes live on the unit sphere of R^code_dim: at least 2, got "
                                f"{self.code_dim}")
        if not self.ae_kimg >= 0:
            raise GanforgeError(f"model.ae_kimg: the autoencoder's warm-up in kimg, >= 0, got {self.ae_kimg}")
        if not 0 <= self.code_noise < 10:
            raise GanforgeError(f"model.code_noise: the std of the noise on codes, from 0 to 10, got {self.code_noise}")


def options_of(m) -> AraeOptions:
    return AraeOptions(**m.options)


def unit(c: torch.Tensor) -> torch.Tensor:
    """Rows onto the unit sphere (ARAE's normalised codes)."""
    return c / c.norm(dim=1, keepdim=True).clamp_min(1e-6)


def lengths_of(ids: torch.Tensor) -> torch.Tensor:
    """Token ids [N, L] -> the number of tokens of each row up to and including its first EOS (or PAD), >= 1."""
    end = (ids == EOS) | (ids == PAD)
    first = torch.where(end.any(1), end.float().argmax(1), torch.full_like(ids[:, 0], ids.shape[1] - 1))
    return first + 1


class AraeGenerator(nn.Module):
    """z [N, z_dim] -> codes [N, code_dim] in training mode, decoded hard one-hots [N, L, V] in eval mode; with the
    sequence autoencoder (encode_text, decode, autoencoder_loss) it decodes through."""

    def __init__(self, z_dim: int, vocab: int, length: int, width: int, depth: int, o: AraeOptions):
        super().__init__()
        self.vocab, self.length, self.code_dim = vocab, length, o.code_dim
        self.ae_kimg, self.ae_joint, self.code_noise = o.ae_kimg, o.ae_joint, o.code_noise
        layers: list[nn.Module] = []
        d = z_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self.mlp = nn.Sequential(*layers, nn.Linear(d, o.code_dim))          # z -> code (then onto the sphere)
        self.embed = nn.Embedding(vocab, o.emb_dim, padding_idx=PAD)
        self.enc = nn.LSTM(o.emb_dim, o.ae_width, batch_first=True)
        self.enc_out = nn.Linear(o.ae_width, o.code_dim)
        self.dec_init = nn.Linear(o.code_dim, 2 * o.ae_width)               # code -> (h0, c0)
        self.start = nn.Parameter(torch.zeros(o.emb_dim))                   # the decoder's first input
        self.dec = nn.LSTM(o.emb_dim + o.code_dim, o.ae_width, batch_first=True)
        self.dec_out = nn.Linear(o.ae_width, vocab)

    # -- the autoencoder ------------------------------------------------------------------------------------------
    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids [N, L] -> codes [N, code_dim] on the unit sphere: the encoder's last state at the row's EOS."""
        ids = ids.long()
        out, _ = self.enc(self.embed(ids))                                  # [N, L, H]
        last = out.gather(1, (lengths_of(ids) - 1)[:, None, None].expand(-1, 1, out.shape[2])).squeeze(1)
        return unit(self.enc_out(last))

    def _state(self, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = torch.tanh(self.dec_init(code)).chunk(2, 1)
        return h.unsqueeze(0).contiguous(), c.unsqueeze(0).contiguous()

    def reconstruction_logits(self, code: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: the decoder's scores [N, L, V] for each position of `ids` given the tokens before it."""
        n = ids.shape[0]
        prev = torch.cat([self.start.expand(n, 1, -1), self.embed(ids.long()[:, :-1])], 1)   # [N, L, emb]
        out, _ = self.dec(torch.cat([prev, code[:, None, :].expand(-1, ids.shape[1], -1)], 2), self._state(code))
        return self.dec_out(out)

    def autoencoder_loss(self, ids: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """Mean cross-entropy of the reconstruction over each row's tokens up to and including its EOS, the codes
        noised (std model.code_noise, drawn from `gen`)."""
        ids = ids.long()
        code = self.encode_text(ids)
        if self.code_noise > 0:
            code = code + self.code_noise * torch.randn(code.shape, generator=gen, device=code.device)
        logits = self.reconstruction_logits(code, ids)
        keep = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths_of(ids)[:, None]
        ce = F.cross_entropy(logits.float().reshape(-1, self.vocab), ids.reshape(-1), reduction="none")
        return (ce * keep.reshape(-1)).sum() / keep.sum()

    def trains_autoencoder(self, nimg: int) -> bool:
        """Whether the step at `nimg` real images trains the autoencoder (always in the warm-up; then if joint)."""
        return self.ae_joint or nimg < self.ae_kimg * 1000

    def gan_started(self, nimg: int) -> bool:
        return nimg >= self.ae_kimg * 1000

    @torch.no_grad()
    def real_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """What D judges of real text: the encoder's codes, without gradient (D's loss never trains the encoder)."""
        return self.encode_text(ids)

    @torch.no_grad()
    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Codes [N, code_dim] -> greedy decoding as hard one-hots [N, L, V] in the layout of real rows."""
        n = code.shape[0]
        state = self._state(code)
        inp = self.start.expand(n, -1)
        done = torch.zeros(n, dtype=torch.bool, device=code.device)
        toks = []
        for t in range(self.length):
            out, state = self.dec(torch.cat([inp, code], 1)[:, None, :], state)
            tok = self.dec_out(out[:, 0]).argmax(1)
            if t == self.length - 1:
                tok = torch.where(done, tok, torch.full_like(tok, EOS))
            tok = torch.where(done, torch.full_like(tok, PAD), tok)
            done = done | (tok == EOS) | (tok == PAD)
            toks.append(tok)
            inp = self.embed(tok)
        return F.one_hot(torch.stack(toks, 1), self.vocab).float()

    # -- the GAN ----------------------------------------------------------------------------------------------------
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        return unit(self.mlp(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Training mode: codes [N, code_dim] (what D judges); eval mode: their text, hard one-hots [N, L, V]."""
        code = self.codes(z)
        return code if self.training else self.decode(code)


def _discriminator(m, shape) -> MLPDiscriminator:
    text_length(m, shape)  # text data, though D sees codes: [N, pack * code_dim]
    return MLPDiscriminator(options_of(m).code_dim * m.pack, m.d_width, m.depth, m.d_norm, mbstd=m.mbstd)


MODELS.register("arae", options=AraeOptions)(ModelFamily(
    generator=lambda m, shape: AraeGenerator(m.z_dim, text_vocab(m), text_length(m, shape), m.g_width, m.depth,
                                             options_of(m)),
    discriminator=_discriminator,
    kind="text",
    describe="text: latent GAN on a sequence autoencoder (ARAE): LSTM encoder/decoder, MLP G and D on unit-norm "
             "codes; greedy decoding",
    g_norms=("none",),
    d_norms=("none", "spectral"),
    mbstd=True,
    latent=True,
))
