"""Text as data: one sample per line, token ids int64 [N, L] (kind "text").

Datasets:
  `text`       your lines: `data.path` is a UTF-8 text file, or a folder whose `*.txt` files (recursively, in
               sorted path order) are read one after the other.
  `words`      English words of Debian's `wamerican` (/usr/share/dict/american-english): lower-case a-z only
               (proper nouns, possessives "'s" and accented words are dropped), character tokens: the classic
               "invent plausible new words" task (~64,000 words).
  `sentences`  WordNet 3.0 glosses of Debian's `wordnet-base` (/usr/share/wordnet/data.{noun,verb,adj,adv}):
               the definition of each synset (the gloss after '|' up to its first ';', where the quoted
               examples begin), BPE tokens (~117,000 short definitions, 9 words on average).
               Chosen over `fortunes-min`, whose fortunes are ~820 multi-line quips: far too few to learn from
               or to score BLEU against.

Pipeline (each step counted in `data.info["counts"]`): read and check the files (missing, empty, binary, or
invalid UTF-8 each give one clear error) -> per line, runs of white space become one space, ends trimmed, blank
lines dropped -> the dataset's own filter (words: ^[a-z]+$) -> `data.dedup`: only the first copy of a line is
kept -> the held-out split: a line is held out when the first 8 bytes of sha256(line), as a fraction of 2^64,
fall below `data.heldout`; so the split is the same on every machine, never depends on the file order or
`data.seed`, and equal lines always land in the same part (the parts never share a line, dedup or not) ->
the tokeniser is trained on the training part (`bpe`: cached under `cache_dir(data.cache_dir)/text/`, keyed by a
sha256 of the training lines and the settings) -> lines of fewer than `data.min_len` tokens are dropped; lines
of more than `data.max_len - 1` tokens (EOS takes a slot) are dropped and counted (`data.too_long=skip`, with a
warning for `text`; for `words` and `sentences` the limit is part of the set's definition) or are an error
naming the file and line (`data.too_long=error`) -> `data.max_items`: the first N of each part.

`data.split`: `train` the training part, `test` the held-out part, `all` both (train first).

The Data: x int64 [N, max_len], each row the line's ids, EOS, PAD...; PAD = 0, EOS = 1, UNK = 2
(ganforge.data.tokenize). `data.info` holds the tokeniser as its JSON-able spec under "tokenizer"
(`tokenizer_of(data)` rebuilds it), "vocab_size", "max_len", "pad_id", "eos_id", "unk_id", "lines" (the text of
each row, as read), "metric_tokens" (how the text metrics split a line: "chars" for words, else "words"), the
files read and the counts.
"""
from __future__ import annotations

import copy
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import tokenizers
import torch

from ..config import DataConfig, check_options, common_keys
from ..errors import GanforgeError
from ..utils.files import atomic_write
from .base import DATASETS, Data, cache_dir
from .tokenize import EOS, FORMAT, PAD, UNK, Tokenizer, check_symbols, tokenizer_from_dict, train_tokenizer

CACHE_VERSION = 1   # bump when the BPE recipe changes, so old cached tokenisers are not reused
SPLITS = ("train", "test", "all")
WORDS_FILE = "/usr/share/dict/american-english"   # Debian wamerican
WORDNET_DIR = "/usr/share/wordnet"                 # Debian wordnet-base


@dataclass
class TextOptions:
    tokenizer: Literal["auto", "char", "bpe"] = "auto"  # auto: words char; sentences bpe; text bpe if a line has " "
    vocab_size: int = 2000   # bpe: the vocabulary's target size, the 3 special tokens included
    max_len: int = 0         # tokens per row, EOS included (x is [N, max_len]); 0 = words 16, sentences 24, text 32
    min_len: int = 1         # lines of fewer tokens (EOS not counted) are dropped
    dedup: bool = True       # keep only the first copy of a repeated line
    heldout: float = 0.1     # share of the lines held out (data.split=test), chosen by a hash of the line
    too_long: Literal["skip", "error"] = "skip"  # a line of more than max_len - 1 tokens: drop it (counted) or stop

    def __post_init__(self) -> None:
        if not 0.0 <= self.heldout < 1.0:
            raise GanforgeError(f"data.heldout: the held-out share must be in [0, 1), got {self.heldout}")
        if self.max_len < 0 or self.max_len == 1:
            raise GanforgeError(f"data.max_len: tokens per row with EOS: at least 2 (or 0 for the dataset's default), "
                                f"got {self.max_len}")
        if self.min_len < 1:
            raise GanforgeError(f"data.min_len: must be >= 1 (an empty line has nothing to learn), got {self.min_len}")
        if self.max_len and self.min_len > self.max_len - 1:
            raise GanforgeError(f"data.min_len: {self.min_len} tokens cannot fit in data.max_len={self.max_len} "
                                f"(EOS takes a slot)")


# ---------------------------------------------------------------------------------------------------
# reading and checking files


def read_text(path: Path) -> str:
    """A file's text; one clear GanforgeError if it is missing, empty, binary or not UTF-8 (a BOM is dropped)."""
    if not path.exists():
        raise GanforgeError(f"{path}: no such file; set data.path to a UTF-8 text file (one sample per line) or a "
                            f"folder of .txt files")
    if not path.is_file():
        raise GanforgeError(f"{path}: not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GanforgeError(f"{path}: cannot read ({e})") from None
    if not raw.strip():
        raise GanforgeError(f"{path}: the file is empty{' (only white space)' if raw else ''}; it needs one sample "
                            f"per line")
    nul = raw.find(b"\0")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise GanforgeError(f"{path}: a binary file, not text (a NUL byte at byte offset {nul}, line {line}); "
                            f"expected UTF-8 text, one sample per line")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        off = e.start
        line = raw.count(b"\n", 0, off) + 1
        col = off - (raw.rfind(b"\n", 0, off) + 1)
        raise GanforgeError(f"{path}: not valid UTF-8 at line {line}, byte offset {off} (byte {col} of the line: "
                            f"0x{raw[off]:02x}); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def clean(line: str) -> str:
    """Runs of white space (tabs, CR, ...) -> one space; ends trimmed."""
    return " ".join(line.split())


@dataclass
class Lines:
    """Lines with where each came from (for messages) and the counts of what was dropped on the way."""
    text: list[str]
    where: list[str]          # "file:line" per line
    files: list[str]
    counts: dict[str, int]


def _lines_of(files: list[Path], keep: Callable[[str], str | None] = lambda s: s, skip_prefix: str = "") -> Lines:
    """Read files -> cleaned non-blank lines passed through `keep` (None drops a line, counted as "filtered")."""
    out = Lines([], [], [str(f) for f in files], dict(read=0, blank=0, filtered=0))
    for f in files:
        rows = read_text(f).split("\n")
        if rows[-1] == "":
            rows.pop()   # the newline that ends the last line
        for i, raw in enumerate(rows, 1):
            if skip_prefix and raw.startswith(skip_prefix):
                continue
            out.counts["read"] += 1
            s = clean(raw)
            if not s:
                out.counts["blank"] += 1
                continue
            s = keep(s)
            if s is None:
                out.counts["filtered"] += 1
                continue
            out.text.append(s)
            out.where.append(f"{f}:{i}")
    return out


# ---------------------------------------------------------------------------------------------------
# the datasets' sources


def _user_lines(cfg) -> Lines:
    if not cfg.path:
        raise GanforgeError("data.path: the text dataset reads your lines; set it to a UTF-8 text file (one sample "
                            "per line) or a folder of .txt files")
    root = Path(cfg.path).expanduser()
    if root.is_dir():
        files = sorted(p for p in root.rglob("*.txt") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(root).parts))
        if not files:
            raise GanforgeError(f"data.path: {root} holds no .txt file; put the text in FILE.txt files (one sample "
                                f"per line) or point data.path at one file")
    else:
        files = [root]
    lines = _lines_of(files)
    if not lines.text:
        raise GanforgeError(f"data.path: {root} holds only blank lines; it needs one sample per line")
    return lines


def _system_file(cfg, default: str, package: str, what: str, is_dir: bool = False) -> Path:
    p = Path(cfg.path or default).expanduser()
    if (p.is_dir() if is_dir else p.is_file()):
        return p
    if cfg.path:
        raise GanforgeError(f"data.path: {p} is not {'a folder' if is_dir else 'a file'}; point it at {what}")
    raise GanforgeError(f"{cfg.name}: {p} not found; it comes with Debian's {package} package: "
                        f"sudo apt-get install {package} (or set data.path to {what})")


def lower_az(s: str) -> str | None:
    """The word if it is lower-case a-z only (no capital, apostrophe, accent or digit), else None."""
    return s if s.isascii() and s.isalpha() and s.islower() else None


def _words_lines(cfg) -> Lines:
    path = _system_file(cfg, WORDS_FILE, "wamerican", "a word list, one word per line")
    return _lines_of([path], keep=lower_az)


WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def wordnet_definition(s: str) -> str | None:
    """One line of a WordNet data file -> the synset's definition (the gloss after '|' up to its first ';')."""
    if "|" not in s:
        return None
    d = clean(s.split("|", 1)[1].split(";", 1)[0])
    return d or None


def _sentences_lines(cfg) -> Lines:
    root = _system_file(cfg, WORDNET_DIR, "wordnet-base",
                        "a WordNet 3.0 dict folder holding data.noun, data.verb, data.adj, data.adv", is_dir=True)
    files = [root / f for f in WORDNET_FILES if (root / f).is_file()]
    if not files:
        raise GanforgeError(f"{cfg.name}: {root} holds none of {', '.join(WORDNET_FILES)}; "
                            f"{'correct data.path' if cfg.path else 'sudo apt-get install wordnet-base'}")
    # the files open with a licence whose lines start with two spaces
    return _lines_of(files, keep=wordnet_definition, skip_prefix="  ")


@dataclass(frozen=True)
class TextSet:
    title: str
    read: Callable[..., Lines]
    tokenizer: str          # default tokenizer ("auto": decided from the lines)
    max_len: int            # default tokens per row, EOS included
    warn_skipped: bool      # warn when lines are dropped as too long (user data: yes; presets: part of the set)


TEXT_SETS: dict[str, TextSet] = {
    "text": TextSet("your text (data.path)", _user_lines, "auto", 32, True),
    "words": TextSet("English words (Debian wamerican, lower-case a-z)", _words_lines, "char", 16, False),
    "sentences": TextSet("WordNet 3.0 definitions (Debian wordnet-base)", _sentences_lines, "bpe", 24, False),
}


# ---------------------------------------------------------------------------------------------------
# split, tokenise, filter


def heldout_fraction(line: str) -> float:
    """Where a line falls in [0, 1): the first 8 bytes of its sha256; held out when below data.heldout."""
    return int.from_bytes(hashlib.sha256(line.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def _bpe_cached(lines: list[str], vocab_size: int, root: Path) -> tuple[Tokenizer, str]:
    blob = hashlib.sha256()
    blob.update(json.dumps(dict(cache=CACHE_VERSION, format=FORMAT, vocab_size=vocab_size,
                                tokenizers=tokenizers.__version__)).encode())
    for s in lines:
        blob.update(s.encode("utf-8") + b"\n")
    path = root / f"bpe-{blob.hexdigest()[:32]}.json"
    if path.is_file():
        try:
            return tokenizer_from_dict(json.loads(path.read_text(encoding="utf-8")), str(path)), str(path)
        except (OSError, ValueError, GanforgeError) as e:
            warnings.warn(f"text: ignoring the damaged cached tokenizer {path} ({e}); training it again", stacklevel=4)
    tok = train_tokenizer("bpe", lines, vocab_size)
    try:
        atomic_write(path, json.dumps(tok.to_dict(), ensure_ascii=False))
    except OSError as e:
        warnings.warn(f"text: could not write the tokenizer cache {path} ({e}); the next run trains it again",
                      stacklevel=4)
    return tok, str(path)


def text_options(cfg) -> TextOptions:
    """data.* text options of `cfg` (checked, defaults filled in)."""
    return TextOptions(**check_options(TextOptions, cfg.options, "data", common_keys("data")))


def text_splits(cfg) -> dict[str, Data]:
    """DataConfig of a text dataset -> {"train": Data, "test": Data}: both parts, one tokeniser."""
    spec = TEXT_SETS[cfg.name] if cfg.name in TEXT_SETS else TEXT_SETS["text"]
    opt = text_options(cfg)
    src = spec.read(cfg)
    counts = dict(src.counts)
    text, where = src.text, src.where
    if opt.dedup:
        seen: set[str] = set()
        keep = [i for i, s in enumerate(text) if not (s in seen or seen.add(s))]
        counts["duplicates"] = len(text) - len(keep)
        text, where = [text[i] for i in keep], [where[i] for i in keep]
    held = [heldout_fraction(s) < opt.heldout for s in text]
    parts = {"train": [i for i, h in enumerate(held) if not h], "test": [i for i, h in enumerate(held) if h]}
    train_lines = [text[i] for i in parts["train"]]
    if not train_lines:
        raise GanforgeError(f"{cfg.name}: no line is left for training (data.heldout={opt.heldout} took all "
                            f"{len(text)}); lower data.heldout")

    spaced = any(" " in s for s in train_lines)
    kind = opt.tokenizer if opt.tokenizer != "auto" else (
        spec.tokenizer if spec.tokenizer != "auto" else ("bpe" if spaced else "char"))
    cached = None
    if kind == "bpe":
        check_symbols(train_lines)  # before any training
        tok, cached = _bpe_cached(train_lines, opt.vocab_size, cache_dir(cfg.cache_dir) / "text")
    else:
        tok = train_tokenizer(kind, train_lines)
    max_len = opt.max_len or spec.max_len

    out = {}
    for part, idx in parts.items():
        lines = [text[i] for i in idx]
        pieces = tok.pieces(lines)
        n_tok = [len(p) for p in pieces]
        too_long = [j for j, n in enumerate(n_tok) if n > max_len - 1]
        if too_long and opt.too_long == "error":
            j = too_long[0]
            raise GanforgeError(f"{where[idx[j]]}: the line has {n_tok[j]} {kind} tokens; with EOS that is more than "
                                f"data.max_len={max_len} ({len(too_long)} such line(s) in the {part} part); raise "
                                f"data.max_len, or set data.too_long=skip to drop them")
        ok = [j for j, n in enumerate(n_tok) if opt.min_len <= n <= max_len - 1]
        counts[f"{part}_too_long"] = len(too_long)
        counts[f"{part}_too_short"] = len(lines) - len(ok) - len(too_long)
        if cfg.max_items:
            ok = ok[: cfg.max_items]
        counts[f"{part}_kept"] = len(ok)
        out[part] = ([lines[j] for j in ok], [pieces[j] for j in ok])
    if not out["train"][0]:
        raise GanforgeError(f"{cfg.name}: no training line fits: {counts['train_too_long']} have more than "
                            f"data.max_len - 1 = {max_len - 1} tokens and {counts['train_too_short']} fewer than "
                            f"data.min_len = {opt.min_len}; change those limits")
    skipped = counts["train_too_long"] + counts["test_too_long"]
    if skipped and spec.warn_skipped:
        warnings.warn(f"{cfg.name}: dropped {skipped} line(s) of more than {max_len - 1} {kind} tokens "
                      f"(data.max_len={max_len} with EOS); raise data.max_len to keep them, or set "
                      f"data.too_long=error to stop instead", stacklevel=3)

    info = dict(source=spec.title, files=src.files, tokenizer=tok.to_dict(), tokenizer_kind=kind,
                vocab_size=tok.vocab_size, max_len=max_len, pad_id=PAD, eos_id=EOS, unk_id=UNK,
                metric_tokens="words" if spaced else "chars", heldout=opt.heldout,
                split_rule="held out when sha256(line)[:8] / 2^64 < data.heldout", dedup=opt.dedup,
                min_len=opt.min_len, too_long=opt.too_long, tokenizer_cache=cached, counts=counts,
                preprocessing=["white space runs -> one space, ends trimmed, blank lines dropped"]
                + (["lower-case a-z words only"] if cfg.name == "words" else [])
                + (["WordNet gloss: the definition before the first ';'"] if cfg.name == "sentences" else [])
                + ([f"tokenizer {kind} chosen: {'a line holds a space' if spaced else 'no line holds a space'}"]
                   if opt.tokenizer == "auto" and spec.tokenizer == "auto" else []),
                max_items=cfg.max_items or None)
    return {part: Data(x=tok.pad(pieces, max_len), kind="text", name=cfg.name, info=dict(info, split=part, lines=lines))
            for part, (lines, pieces) in out.items()}


def heldout_part(cfg, data: Data) -> Data | None:
    """The held-out part of text dataset `cfg` (a DataConfig) when `data` is its training part (data.split=train,
    data.heldout > 0): what the text metrics compare samples with; None otherwise."""
    if data.kind != "text" or data.info.get("split") != "train" or not data.info.get("heldout"):
        return None
    held = copy.deepcopy(cfg)
    held.split = "test"
    try:
        return load_text(held)
    except GanforgeError:   # an empty held-out part
        return None


def tokenizer_of(data: Data) -> Tokenizer:
    """The tokeniser of text Data (rebuilt from `data.info["tokenizer"]`)."""
    if data.kind != "text" or "tokenizer" not in data.info:
        raise GanforgeError(f"{data.name!r} is {data.kind} data without a tokenizer; text data has one")
    return tokenizer_from_dict(data.info["tokenizer"], f"{data.name}: data.info['tokenizer']")


def load_text(cfg) -> Data:
    """The part of a text dataset that data.split names (see the module docstring)."""
    if cfg.split not in SPLITS:
        raise GanforgeError(f"data.split: choose train, test or all, got {cfg.split!r}")
    parts = text_splits(cfg)
    if cfg.split == "all":
        tr, te = parts["train"], parts["test"]
        return Data(x=torch.cat([tr.x, te.x]), kind="text", name=cfg.name,
                    info=dict(tr.info, split="all", lines=tr.info["lines"] + te.info["lines"],
                              split_sizes=dict(train=len(tr), test=len(te))))
    d = parts[cfg.split]
    if len(d) == 0:
        raise GanforgeError(f"{cfg.name}: the {'held-out' if cfg.split == 'test' else 'training'} part is empty "
                            f"(data.heldout={text_options(cfg).heldout}); "
                            f"{'raise data.heldout or add lines' if cfg.split == 'test' else 'lower data.heldout'}")
    return d


for _key, _spec in TEXT_SETS.items():
    DATASETS.register(_key, options=TextOptions, doc=f"{_spec.title}: token ids [N, max_len] (kind text)")(
        load_text)


def text_config(name: str, **options) -> DataConfig:
    """A DataConfig for text dataset `name` with text options given as keywords (path, split, cache_dir, ... are
    DataConfig's own keys)."""
    own = {f: options.pop(f) for f in list(options) if f"data.{f}" in common_keys("data")}
    return DataConfig(name=name, options=options, **own)
