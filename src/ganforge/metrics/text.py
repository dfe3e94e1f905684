"""Text metrics on lists of strings, each returning (values, protocol) as every ganforge metric is stamped.

Why several numbers: BLEU against real text measures quality only, and hides mode collapse (Texygen, Zhu et al.
2018, https://arxiv.org/abs/1802.01886: on COCO captions SeqGAN's BLEU-4 is .294 but its self-BLEU-4 .670, against
real data's .573). "Language GANs Falling Short" (Caccia et al., ICLR 2020, https://arxiv.org/abs/1811.02549)
therefore reads quality (BLEU) and diversity (self-BLEU) together, as a curve over the sampling temperature of a
maximum-likelihood language model, which beat the published text GANs on the whole curve.

- `bleu`: BLEU-2..5 of each sample against ALL references, sentence BLEU (nltk's `sentence_bleu`, uniform
  weights, `SmoothingFunction().method1`: 0.1 added to zero n-gram match counts), averaged over the samples.
  That is Texygen's protocol, including its "fast" mode's 500 references (here a seeded random draw of 500 from
  the held-out split, not its first 500). BLEU grows with the number of references: compare numbers only at
  equal `n_references` (it is in the protocol).
- `self_bleu`: Texygen's self-BLEU: each of the first 500 samples against the other 499 (higher = less diverse;
  identical samples score 1).
- `novelty` (share of samples not in the training set), `uniqueness` (share of distinct samples),
  `heldout_valid` (of the novel samples, the share that are lines of the held-out split: for `words`, real
  English words the model was never shown, the true generalisation rate; and the share of the held-out lines
  generated at least once), `length_distance` (total variation between the length histograms), and
  `frechet_codes` (the Fréchet distance between code vectors the caller made, through metrics/fid.py).
Strings are split into tokens for BLEU and lengths either into characters (`tokens="chars"`: the words task) or
into words (`tokens="words"`: nltk's NLTKWordTokenizer, which is `nltk.word_tokenize` without the punkt sentence
splitter, so no nltk data is ever needed or downloaded).

Speed (measured on a shared Xeon CPU): one hypothesis-reference pair costs ~35 us in nltk, so 1,000 samples
score in ~20 s against 500 references plus ~10 s of self-BLEU. Duplicate references are dropped before scoring:
BLEU depends on the references only through the maximum count of each n-gram and the closest length, which
duplicates do not change, so the values are those of the full lists.

Registered metrics (METRICS, for `ganforge eval`, `--metrics` and `train.metrics`; text data only, in the "text"
feature space: the generated strings themselves, decoded with the data's tokeniser when given as token ids):
`bleu` (bleu2..5 against the held-out split), `self_bleu` (self_bleu2..5), `novelty`, `uniqueness`, `valid`
(heldout_valid, heldout_found) and `length_tv` (length_tv, mean_length, mean_length_ref, against the held-out lines,
or the training lines when there is no held-out split) and `code_fd` (the Fréchet distance between the codes of the
samples and of the held-out lines in the code space of a trained `arae` run, `metrics.code_fd.run`; the same run
for every generator compared). `bleu` and `valid` need the held-out split (data.split=train,
data.heldout > 0) and say so before anything is trained. `valid` is computed for every text set, but it means
something only where a novel sample can be a real line (short lines: `words`, names); for sentences it is ~0 and the
default metrics leave it out (they include it when the metric tokens are characters).
"""
from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.text import tokenizer_of
from ..errors import GanforgeError
from .evaluate import METRICS, SPACES, Inputs, MetricSpec, SpaceSpec
from .features import Space
from .fid import fid_from_features

ORDERS = (2, 3, 4, 5)      # BLEU-2..5, as Texygen and Caccia et al. report
N_REFERENCES = 500         # references per BLEU (Texygen's fast mode: 500)
N_SELF = 500               # samples for self-BLEU, each against the other 499 (Texygen's fast mode)
TOKENS = ("chars", "words")
SMOOTHING = "nltk SmoothingFunction().method1 (epsilon 0.1 on zero match counts), as Texygen"


def _nltk():
    """nltk, imported when first needed (importing it takes ~1.5 s)."""
    import nltk
    import nltk.tokenize
    import nltk.translate.bleu_score

    return nltk


def split_tokens(lines: Sequence[str], tokens: str) -> list[tuple[str, ...]]:
    """Each line as a tuple of tokens: characters, or words (nltk NLTKWordTokenizer)."""
    if tokens == "chars":
        return [tuple(s) for s in lines]
    if tokens == "words":
        tok = _nltk().tokenize.NLTKWordTokenizer()
        return [tuple(tok.tokenize(s)) for s in lines]
    raise GanforgeError(f"text metrics: tokens must be one of {', '.join(TOKENS)}, got {tokens!r}")


def _tokenization(tokens: str) -> str:
    return "characters" if tokens == "chars" else f"words (nltk {_nltk().__version__} NLTKWordTokenizer)"


def _check_lines(lines: Sequence[str], what: str, at_least: int = 1) -> list[str]:
    lines = list(lines)
    if len(lines) < at_least or not all(isinstance(s, str) for s in lines):
        raise GanforgeError(f"text metrics: {what} must be a list of at least {at_least} string(s), got "
                            f"{len(lines)} item(s)")
    return lines


def _draw(items: list, k: int, seed: int) -> tuple[list, str]:
    """At most k of `items`, drawn without replacement with `seed` (in their original order)."""
    if len(items) <= k:
        return items, f"all {len(items)}"
    keep = np.sort(np.random.default_rng(seed).choice(len(items), k, replace=False))
    return [items[i] for i in keep], f"random {k} of {len(items)} (numpy default_rng({seed}), without replacement)"


def _weights(orders: Sequence[int]) -> list[tuple[float, ...]]:
    return [(1.0 / n,) * n for n in orders]


def _sentence_bleus(refs: list[tuple[str, ...]], hyp: tuple[str, ...], orders: Sequence[int]) -> list[float]:
    bs = _nltk().translate.bleu_score
    out = bs.sentence_bleu(refs, hyp, _weights(orders), smoothing_function=bs.SmoothingFunction().method1)
    return [float(v) for v in (out if isinstance(out, list) else [out] * len(orders))]


def bleu(samples: Sequence[str], references: Sequence[str], tokens: str = "words", orders: Sequence[int] = ORDERS,
         n_references: int = N_REFERENCES, seed: int = 0) -> tuple[dict[str, float], dict]:
    """BLEU-n of each sample against all references (a seeded draw of `n_references`), averaged over samples."""
    samples = _check_lines(samples, "samples")
    references, drawn = _draw(_check_lines(references, "references"), n_references, seed)
    refs = list(dict.fromkeys(split_tokens(references, tokens)))   # duplicates change no BLEU value
    totals = np.zeros(len(orders))
    for hyp in split_tokens(samples, tokens):
        totals += _sentence_bleus(refs, hyp, orders)
    values = {f"bleu{n}": float(v) for n, v in zip(orders, totals / len(samples))}
    return values, dict(metric="BLEU (sentence BLEU of each sample against all references, averaged)",
                        n_samples=len(samples), n_references=len(references), references=drawn, seed=seed,
                        tokenization=_tokenization(tokens), weights="uniform 1/n over 1..n-grams",
                        smoothing=SMOOTHING, implementation=f"nltk {_nltk().__version__} sentence_bleu")


def self_bleu(samples: Sequence[str], tokens: str = "words", orders: Sequence[int] = ORDERS, n: int = N_SELF
              ) -> tuple[dict[str, float], dict]:
    """Self-BLEU-n: each of the first `n` samples against the other n - 1, averaged (higher = less diverse)."""
    samples = _check_lines(samples, "samples", at_least=2)[:n]
    toks = split_tokens(samples, tokens)
    copies = Counter(toks)
    unique = list(copies)                                          # duplicates change no BLEU value
    totals = np.zeros(len(orders))
    for hyp in toks:
        others = unique if copies[hyp] > 1 else [t for t in unique if t != hyp]   # all but this one sample
        totals += _sentence_bleus(others, hyp, orders)
    values = {f"self_bleu{k}": float(v) for k, v in zip(orders, totals / len(toks))}
    return values, dict(metric="self-BLEU (each sample against all the other samples, averaged)",
                        n_samples=len(samples), samples="the first n (Texygen's fast mode: 500)",
                        tokenization=_tokenization(tokens), weights="uniform 1/n over 1..n-grams",
                        smoothing=SMOOTHING, implementation=f"nltk {_nltk().__version__} sentence_bleu")


def novelty(samples: Sequence[str], train: Sequence[str]) -> tuple[dict[str, float], dict]:
    """Share of samples (with repeats) that are not a line of the training set (exact string match)."""
    samples = _check_lines(samples, "samples")
    seen = set(train)
    return {"novelty": sum(s not in seen for s in samples) / len(samples)}, dict(
        metric="share of samples not in the training set", match="exact string", n_samples=len(samples),
        n_train=len(seen))


def uniqueness(samples: Sequence[str]) -> tuple[dict[str, float], dict]:
    """Share of distinct samples: distinct / n."""
    samples = _check_lines(samples, "samples")
    return {"uniqueness": len(set(samples)) / len(samples)}, dict(
        metric="distinct samples / samples", match="exact string", n_samples=len(samples))


def heldout_valid(samples: Sequence[str], train: Sequence[str], heldout: Sequence[str]
                  ) -> tuple[dict[str, float], dict]:
    """Of the novel samples (not in train), the share that are held-out lines (with repeats; NaN with no novel
    sample); and the share of the distinct held-out lines generated at least once."""
    samples = _check_lines(samples, "samples")
    seen, real = set(train), set(_check_lines(heldout, "held-out lines"))
    novel = [s for s in samples if s not in seen]
    valid = [s for s in novel if s in real]
    return {"heldout_valid": len(valid) / len(novel) if novel else float("nan"),
            "heldout_found": len(set(valid)) / len(real)}, dict(
        metric="heldout_valid: novel samples that are held-out lines / novel samples (with repeats); "
               "heldout_found: distinct held-out lines generated / held-out lines", match="exact string",
        n_samples=len(samples), n_novel=len(novel), n_train=len(seen), n_heldout=len(real))


def length_distance(samples: Sequence[str], references: Sequence[str], tokens: str = "words"
                    ) -> tuple[dict[str, float], dict]:
    """Total variation distance between the length histograms (in tokens) of samples and references:
    0.5 * sum_l |p(l) - q(l)|, in [0, 1]."""
    a = Counter(map(len, split_tokens(_check_lines(samples, "samples"), tokens)))
    b = Counter(map(len, split_tokens(_check_lines(references, "references"), tokens)))
    na, nb = sum(a.values()), sum(b.values())
    tv = 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))
    mean = (sum(k * v for k, v in a.items()) / na, sum(k * v for k, v in b.items()) / nb)
    return {"length_tv": float(tv), "mean_length": mean[0], "mean_length_ref": mean[1]}, dict(
        metric="total variation between length histograms", tokenization=_tokenization(tokens), n_samples=na,
        n_references=nb)


def frechet_codes(codes: torch.Tensor | np.ndarray, ref_codes: torch.Tensor | np.ndarray, what: str = "codes"
                  ) -> tuple[dict[str, float], dict]:
    """Fréchet distance between two sets of code vectors [N, D] and [M, D] that the caller computed (e.g. a text
    encoder's features of samples and of held-out lines), through metrics/fid.py."""
    a, b = (torch.as_tensor(np.asarray(c) if not isinstance(c, torch.Tensor) else c) for c in (codes, ref_codes))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise GanforgeError(f"frechet_codes: expected [N, D] and [M, D] code vectors, got {list(a.shape)} and "
                            f"{list(b.shape)}")
    return {"fd": fid_from_features(a.double(), b.double())}, dict(
        metric="Frechet distance of Gaussians fitted to the codes (metrics/fid.py)", codes=what, n_samples=len(a),
        n_references=len(b), dim=a.shape[1], statistics="mean + unbiased covariance (float64)")


def text_metrics(samples: Sequence[str], train: Sequence[str], heldout: Sequence[str], tokens: str = "words",
                 seed: int = 0, references: Sequence[str] | None = None, n_references: int = N_REFERENCES,
                 n_self: int = N_SELF, valid: bool = False) -> dict[str, tuple[dict[str, float], dict]]:
    """Every text metric of `samples`: BLEU against `references` (default: a seeded draw of `n_references`
    held-out lines), lengths against the held-out lines, self-BLEU and uniqueness among the samples, novelty
    against the training lines and, with `valid` (the words task), heldout_valid: {name: (values, protocol)}."""
    refs = heldout if references is None else references
    out = {"bleu": bleu(samples, refs, tokens, n_references=n_references, seed=seed),
           "self_bleu": self_bleu(samples, tokens, n=n_self),
           "novelty": novelty(samples, train), "uniqueness": uniqueness(samples),
           "length": length_distance(samples, heldout, tokens)}
    if valid:
        out["heldout_valid"] = heldout_valid(samples, train, heldout)
    return out


# ---------------------------------------------------------------------------------------------------------------
# the registered metrics (`ganforge eval`, train.metrics): the "text" feature space is the strings themselves


def _tokens_of(data) -> str:
    return data.info.get("metric_tokens", "words")


def _text_space(real, ctx) -> Space:
    tok = tokenizer_of(real)

    def extract(x) -> dict:
        lines = list(x) if isinstance(x, (list, tuple)) else tok.decode(x)   # strings, or ids decoded
        return {"lines": lines}

    return Space("text", "lines", dict(features="the generated strings (token ids decoded with the data's "
                                                f"{real.info.get('tokenizer_kind', '')} tokenizer)",
                                       tokens=_tokenization(_tokens_of(real))), extract)


def _check_text(data) -> None:
    if "tokenizer" not in data.info or "lines" not in data.info:
        raise GanforgeError(f"{data.name!r} is text data without its tokenizer and lines (build it with "
                            "ganforge.data.build_dataset or ganforge.data.text.text_splits)")


def _needs_heldout(data) -> None:
    """BLEU and the held-out valid rate compare with lines the generator never trained on."""
    if data.info.get("split") != "train" or not data.info.get("heldout"):
        raise GanforgeError(f"it compares samples with the held-out lines, but {data.name!r} is the "
                            f"{data.info.get('split')!r} split with data.heldout={data.info.get('heldout')}: use "
                            "data.split=train and data.heldout > 0 (e.g. 0.1)")


def _train_lines(inp: Inputs) -> list[str]:
    return inp.data.info["lines"]


def _heldout_lines(inp: Inputs, name: str) -> list[str]:
    if inp.heldout is None or not inp.heldout.info.get("lines"):
        raise GanforgeError(f"metric {name!r} compares samples with the held-out split, but none was given "
                            "(evaluate(..., heldout=text_splits(cfg)['test']); `ganforge eval` finds it itself)")
    return inp.heldout.info["lines"]


def _samples(inp: Inputs) -> list[str]:
    return inp.fake["lines"]


@dataclass
class BleuOptions:
    references: int = N_REFERENCES   # held-out lines drawn (with the seed) as references; Texygen fast mode: 500
    samples: int = 0                 # samples scored (the first n); 0 = all of them. Cost ~35 us per pair


@dataclass
class SelfBleuOptions:
    n: int = N_SELF                  # the first n samples, each against the other n - 1 (Texygen fast mode: 500)


def _bleu(inp: Inputs) -> tuple[dict[str, float], dict]:
    o = inp.options
    if o["references"] < 1 or o["samples"] < 0:
        raise GanforgeError(f"metrics.bleu: references must be >= 1 and samples >= 0, got {o}")
    lines = _samples(inp)
    lines = lines[:o["samples"]] if o["samples"] else lines
    values, proto = bleu(lines, _heldout_lines(inp, "bleu"), _tokens_of(inp.data), n_references=o["references"],
                         seed=inp.seed)
    return values, dict(proto, reference_split="held-out (test) lines")


def _self_bleu(inp: Inputs) -> tuple[dict[str, float], dict]:
    if inp.options["n"] < 2:
        raise GanforgeError(f"metrics.self_bleu.n: at least 2 samples, got {inp.options['n']}")
    return self_bleu(_samples(inp), _tokens_of(inp.data), n=inp.options["n"])


def _novelty(inp: Inputs) -> tuple[dict[str, float], dict]:
    values, proto = novelty(_samples(inp), _train_lines(inp))
    return values, dict(proto, train_lines=f"all {len(_train_lines(inp))} training lines")


def _uniqueness(inp: Inputs) -> tuple[dict[str, float], dict]:
    return uniqueness(_samples(inp))


def _valid(inp: Inputs) -> tuple[dict[str, float], dict]:
    values, proto = heldout_valid(_samples(inp), _train_lines(inp), _heldout_lines(inp, "valid"))
    return values, dict(proto, meaning="for short lines (words): novel samples that are real lines the generator "
                                       "never saw; ~0 for sentences")


def _length_tv(inp: Inputs) -> tuple[dict[str, float], dict]:
    held = inp.heldout is not None and inp.heldout.info.get("lines")
    refs = inp.heldout.info["lines"] if held else _train_lines(inp)
    values, proto = length_distance(_samples(inp), refs, _tokens_of(inp.data))
    return values, dict(proto, references="held-out lines" if held else "training lines (no held-out split)")


@dataclass
class CodeFdOptions:
    run: str = ""   # an `arae` run (directory) of the same data: its autoencoder's code space is where FD is taken


# code_fd's judge is a trained `arae` generator. Loading an exported generator is the sampling layer's job, above
# this one, so ganforge.sampling hands its loader in when it is imported (set_run_loader): ganforge.evaluate, `ganforge
# eval` and training all import it.
_RUN_LOADER: list = []


def set_run_loader(load) -> None:
    """Called by ganforge.sampling: `load(run_dir) -> Generator` for code_fd's judge run."""
    _RUN_LOADER[:] = [load]


def _coder(run: str):
    if not _RUN_LOADER:
        raise GanforgeError("metrics.code_fd: loading its judge run needs ganforge.sampling; call ganforge.evaluate "
                            "or `ganforge eval`, or import ganforge.sampling first")
    gdir = Path(run) / "generator"
    stamp = (gdir / "model.safetensors").stat().st_mtime_ns if (gdir / "model.safetensors").is_file() else 0
    return _cached_coder(run, stamp)


@functools.lru_cache(maxsize=4)
def _cached_coder(run: str, stamp: int):  # stamp: the weights file's mtime, so a re-exported run is read again
    try:
        g = _RUN_LOADER[0](run)
    except GanforgeError as e:
        raise GanforgeError(f"metrics.code_fd.run: {e}") from None
    if g.kind != "text" or not hasattr(g.net, "encode_text"):
        raise GanforgeError(f"metrics.code_fd.run: {run} is not an 'arae' text run (the code space is the latent "
                            "text family's autoencoder's); train one, e.g. `ganforge train words-arae`")
    return g


def _code_fd(inp: Inputs) -> tuple[dict[str, float], dict]:
    run = inp.options["run"]
    if not run:
        raise GanforgeError("metrics.code_fd.run: name the 'arae' run whose autoencoder's code space the Fréchet "
                            "distance is taken in, e.g. --set metrics.code_fd.run=runs/words-arae")
    g = _coder(str(Path(run).expanduser().resolve()))
    trained = g.meta.get("config", {}).get("data", {}).get("name")
    if trained != inp.data.name:
        raise GanforgeError(f"metrics.code_fd.run: {run} was trained on {trained!r} data, these samples are "
                            f"{inp.data.name!r}")
    held = inp.heldout is not None and inp.heldout.info.get("lines")
    refs = inp.heldout.info["lines"] if held else _train_lines(inp)
    values, proto = frechet_codes(g.encode_text(_samples(inp)), g.encode_text(refs), what=f"the encoder of {run}")
    return {"code_fd": values["fd"]}, dict(proto, references="held-out lines" if held else "training lines",
                                           truncation="lines longer than the run's rows: their first max_len - 1 "
                                                      "tokens")


def _stamped(fn):
    """The plain functions' protocol names its definition "metric" (evaluate stamps the registry name there) and
    may hold the seed (evaluate stamps it too: the same one)."""
    def compute(inp: Inputs) -> tuple[dict[str, float], dict]:
        values, proto = fn(inp)
        assert proto.get("seed", inp.seed) == inp.seed
        return values, {("definition" if k == "metric" else k): v for k, v in proto.items() if k != "seed"}
    return compute


SPACES.register("text")(SpaceSpec(_text_space, check=_check_text, doc="text: the generated strings (ids decoded "
                                                                      "with the data's tokenizer)"))
_TEXT = {"text": "text"}
for _name, _doc, _fn, _opts, _check in (
    ("bleu", "text: BLEU-2..5 of each sample against 500 held-out lines (Texygen): bleu2..bleu5", _bleu, BleuOptions,
     _needs_heldout),
    ("self_bleu", "text: self-BLEU-2..5 of 500 samples (higher = less diverse): self_bleu2..self_bleu5", _self_bleu,
     SelfBleuOptions, None),
    ("novelty", "text: share of samples not in the training lines: novelty", _novelty, None, None),
    ("uniqueness", "text: share of distinct samples: uniqueness", _uniqueness, None, None),
    ("valid", "text: novel samples that are held-out lines (words: unseen real words): heldout_valid, "
     "heldout_found", _valid, None, _needs_heldout),
    ("length_tv", "text: total variation between length histograms (vs held-out): length_tv, mean_length, "
     "mean_length_ref", _length_tv, None, None),
    ("code_fd", "text: Fréchet distance to the held-out lines in an arae run's code space (metrics.code_fd.run): "
     "code_fd", _code_fd, CodeFdOptions, None),
):
    METRICS.register(_name, options=_opts)(MetricSpec(_name, _doc, _TEXT, _stamped(_fn), needs_real=False,
                                                      check=_check))
