"""Tokenisers for text data: characters (`char`) and byte-pair encoding (`bpe`, Hugging Face `tokenizers`).

Both share one small interface (what a text GAN, a language model and the text metrics need):

    tok.encode(lines, length=None) -> int64 [N, L]: each line's ids, then EOS, then PAD up to L
                                      (L = `length`, or the longest line + 1)
    tok.decode(ids)                -> list[str]: each row up to its first EOS (or PAD)
    tok.vocab_size                 -> int (the specials included)
    tok.to_dict() / tokenizer_from_dict(d), tok.save(path) / load_tokenizer(path): a JSON-able spec

Ids 0, 1, 2 are always PAD, EOS and UNK (a symbol the tokeniser was not trained on; decoded as U+FFFD).
A row that holds PAD before any EOS ends there too: both mean "the sequence is over" (a generator may
emit either).

`bpe` is BPE (Sennrich et al. 2016, https://arxiv.org/abs/1508.07909) over whitespace-separated words with
SentencePiece's word-boundary marker "▁" (tokenizers' Metaspace), so decoding gives back the text exactly
(single spaces between words; the text loader collapses runs of white space). Special-token strings that
occur in the text itself ("<eos>") are encoded as plain text, never as the special id.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

from ..errors import GanforgeError
from ..utils.files import atomic_write

PAD, EOS, UNK = 0, 1, 2
SPECIALS = ("<pad>", "<eos>", "<unk>")   # their ids are their positions
UNKNOWN_TEXT = "\ufffd"                  # how UNK decodes (the Unicode replacement character)
FORMAT = 1                               # version of the JSON spec


def _cut(row: Sequence[int]) -> list[int]:
    """A row of ids up to (not including) its first EOS or PAD."""
    out = []
    for i in row:
        if i in (EOS, PAD):
            break
        out.append(int(i))
    return out


def _rows(ids) -> list[list[int]]:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    if isinstance(ids, np.ndarray):
        if ids.ndim == 1:
            ids = ids[None]
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise GanforgeError(f"decode: expected integer token ids [N, L], got {ids.dtype} {list(ids.shape)}")
        return ids.tolist()
    return [list(r) for r in ids]


class Tokenizer:
    """What `char` and `bpe` share: padding, EOS, decoding to the first EOS, the JSON spec on disk."""

    kind = ""

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def pieces(self, lines: Sequence[str]) -> list[list[int]]:
        """Each line's token ids, without EOS or padding."""
        raise NotImplementedError

    def _text(self, ids: list[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    def encode(self, lines: Sequence[str], length: int | None = None) -> torch.Tensor:
        """lines -> int64 [N, L]: ids, EOS, PAD...; L = `length` or the longest line + 1 (GanforgeError if a line
        does not fit)."""
        return self.pad(self.pieces(list(lines)), length, lines)

    @staticmethod
    def pad(seqs: list[list[int]], length: int | None = None, lines: Sequence[str] = ()) -> torch.Tensor:
        """Token ids per line (from `pieces`) -> int64 [N, L]: ids, EOS, PAD..."""
        n = np.fromiter(map(len, seqs), np.int64, len(seqs))                      # [N] tokens per line
        width = int(n.max(initial=0)) + 1 if length is None else length
        if len(seqs) and int(n.max()) + 1 > width:
            i = int(np.argmax(n + 1 > width))
            what = f" ({lines[i][:40]!r})" if len(lines) > i else ""
            raise GanforgeError(f"encode: line {i}{what} has {n[i]} tokens; with EOS it needs {n[i] + 1} > {width}; "
                                f"raise the length or drop the line")
        x = np.full((len(seqs), width), PAD, np.int64)                            # [N, L]
        if len(seqs):
            rows = np.repeat(np.arange(len(seqs)), n)
            cols = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)       # position within its line
            x[rows, cols] = np.fromiter((i for s in seqs for i in s), np.int64, int(n.sum()))
            x[np.arange(len(seqs)), n] = EOS
        return torch.from_numpy(x)

    def decode(self, ids) -> list[str]:
        """int [N, L] (tensor, array or lists) -> N strings, each row read up to its first EOS or PAD."""
        rows = _rows(ids)
        bad = [i for r in rows for i in r if not 0 <= int(i) < self.vocab_size]
        if bad:
            raise GanforgeError(f"decode: token id {bad[0]} is outside the vocabulary 0..{self.vocab_size - 1}")
        return [self._text(_cut(r)) for r in rows]

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write(path, json.dumps(self.to_dict(), ensure_ascii=False))


class CharTokenizer(Tokenizer):
    """One token per Unicode character (code point); the symbols are those of the training lines, sorted."""

    kind = "char"

    def __init__(self, symbols: Sequence[str]):
        assert all(len(s) == 1 for s in symbols) and len(set(symbols)) == len(symbols), symbols
        self.symbols = list(symbols)
        self._id = {c: i + len(SPECIALS) for i, c in enumerate(self.symbols)}

    @classmethod
    def train(cls, lines: Iterable[str]) -> "CharTokenizer":
        return cls(sorted(set().union(*map(set, lines))))

    @property
    def vocab_size(self) -> int:
        return len(SPECIALS) + len(self.symbols)

    def pieces(self, lines: Sequence[str]) -> list[list[int]]:
        get = self._id.get
        return [[get(c, UNK) for c in line] for line in lines]

    def _text(self, ids: list[int]) -> str:
        n = len(SPECIALS)
        return "".join(self.symbols[i - n] if i >= n else UNKNOWN_TEXT for i in ids)

    def to_dict(self) -> dict:
        return dict(format=FORMAT, kind=self.kind, specials=list(SPECIALS), symbols=self.symbols)


class BPETokenizer(Tokenizer):
    """Byte-pair encoding trained with Hugging Face `tokenizers` (Metaspace words, UNK for unseen symbols)."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.tok.encode_special_tokens = True   # "<eos>" in the text is text, not the EOS id
        for i, s in enumerate(SPECIALS):
            assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))

    @classmethod
    def train(cls, lines: Sequence[str], vocab_size: int) -> "BPETokenizer":
        tok = HFTokenizer(models.BPE(unk_token=SPECIALS[UNK]))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
        tok.train_from_iterator(lines, trainer, length=len(lines))
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def pieces(self, lines: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(list(lines), add_special_tokens=False)]

    def _text(self, ids: list[int]) -> str:
        if not ids:
            return ""
        tokens = [UNKNOWN_TEXT if i == UNK else self.tok.id_to_token(i) for i in ids]
        return self.tok.decoder.decode(tokens)

    def to_dict(self) -> dict:
        return dict(format=FORMAT, kind=self.kind, specials=list(SPECIALS), tokenizer=json.loads(self.tok.to_str()))

    @classmethod
    def from_spec(cls, spec: dict) -> "BPETokenizer":
        return cls(HFTokenizer.from_str(json.dumps(spec["tokenizer"])))


def check_symbols(lines: Sequence[str]) -> None:
    """GanforgeError unless the lines use at least two distinct characters (a vocabulary of one symbol leaves a
    model nothing to choose but the length)."""
    symbols: set[str] = set()
    for s in lines:
        symbols.update(s)
        if len(symbols) > 1:
            return
    raise GanforgeError(f"the training lines use {len(symbols)} distinct symbol(s) ({''.join(sorted(symbols))!r}); "
                        f"a text model needs at least 2 to choose between")


def train_tokenizer(kind: str, lines: Sequence[str], vocab_size: int = 0) -> Tokenizer:
    """Fit a tokeniser of `kind` ("char" | "bpe") to `lines`; `vocab_size` is the BPE's target size."""
    check_symbols(lines)
    if kind == "char":
        return CharTokenizer.train(lines)
    if kind == "bpe":
        if vocab_size <= len(SPECIALS):
            raise GanforgeError(f"data.vocab_size: a BPE vocabulary needs more than the {len(SPECIALS)} special "
                                f"tokens, got {vocab_size}")
        return BPETokenizer.train(lines, vocab_size)
    raise GanforgeError(f"unknown tokenizer {kind!r}; choose char or bpe")


def tokenizer_from_dict(spec: dict, where: str = "tokenizer") -> Tokenizer:
    """The spec written by `to_dict` (or `data.info["tokenizer"]`) -> the tokeniser."""
    if not isinstance(spec, dict) or spec.get("kind") not in ("char", "bpe") or \
            spec.get("specials") != list(SPECIALS):
        raise GanforgeError(f"{where}: not a ganforge tokenizer spec (expected a mapping with kind char or bpe and "
                            f"specials {list(SPECIALS)})")
    if spec.get("format") != FORMAT:
        raise GanforgeError(f"{where}: tokenizer format {spec.get('format')!r}; this ganforge reads format {FORMAT}")
    try:
        if spec["kind"] == "char":
            sym = spec["symbols"]
            if not (isinstance(sym, list) and all(isinstance(c, str) and len(c) == 1 for c in sym)
                    and len(set(sym)) == len(sym)):
                raise ValueError("symbols must be a list of distinct single characters")
            return CharTokenizer(sym)
        return BPETokenizer.from_spec(spec)
    except Exception as e:  # KeyError, TypeError, AssertionError; tokenizers raises plain Exception
        raise GanforgeError(f"{where}: damaged tokenizer spec ({type(e).__name__}: {e})") from None


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """A tokeniser saved with `save`."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GanforgeError(f"{path}: cannot read the tokenizer ({e})") from None
    return tokenizer_from_dict(spec, str(path))
