"""Text data: tokenisers (char, BPE), the `text` / `words` / `sentences` datasets, their split, cache and errors.

Every test writes its own small files under tmp_path; the Debian files (/usr/share/dict/american-english from
wamerican, /usr/share/wordnet from wordnet-base) are read only by the tests marked to skip without them.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from ganforge.components import resolve
from ganforge.data import Data, build_dataset, from_model_range, to_model_range
from ganforge.data import text as textdata
from ganforge.data.text import heldout_fraction, text_config, text_splits, tokenizer_of
from ganforge.data.tokenize import (EOS, PAD, SPECIALS, UNK, UNKNOWN_TEXT, BPETokenizer, CharTokenizer, load_tokenizer,
                                    tokenizer_from_dict, train_tokenizer)
from ganforge.errors import GanforgeError

NON_ASCII = ["naïve café", "über straße", "日本語 テキスト", "emoji 😀 ok", "ascii only"]
WORDS = ["cat", "dog", "bird", "horse", "mouse", "zebra", "lion", "tiger", "bear", "wolf", "fox", "owl", "eel",
         "ant", "bee", "cow", "pig", "hen", "yak", "elk"] * 1


def write(path: Path, lines: list[str] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(lines if isinstance(lines, str) else "\n".join(lines) + "\n", encoding="utf-8")
    return path


def cfg(tmp_path: Path, name: str = "text", **kw):
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    return text_config(name, **kw)


def sentences(n: int = 200, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    subj, verb, obj = ["the cat", "a dog", "my friend", "the old man", "a bird"], ["sees", "eats", "likes",
                                                                                     "finds"], ["fish", "bread",
                                                                                                "the moon", "a song"]
    return [f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} {i}" for i in range(n)]


# ---------------------------------------------------------------------------------------------------
# tokenisers


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_tokenizer_round_trip_with_non_ascii_text(kind, tmp_path):
    tok = train_tokenizer(kind, NON_ASCII * 3, vocab_size=80)
    x = tok.encode(NON_ASCII)
    assert x.dtype == torch.int64 and x.shape[0] == len(NON_ASCII)
    assert tok.decode(x) == NON_ASCII
    for row, line in zip(x, NON_ASCII):       # ids, then EOS, then PAD only
        n = len(tok.pieces([line])[0])
        assert row[n] == EOS and (row[n + 1:] == PAD).all() and (row[:n] > UNK).all()
    assert x.shape[1] == max(len(p) for p in tok.pieces(NON_ASCII)) + 1
    # the JSON spec, on disk and as a dict (data.info["tokenizer"])
    again = load_tokenizer(tok.save(tmp_path / "tok.json"))
    assert again.kind == kind and again.vocab_size == tok.vocab_size and again.decode(x) == NON_ASCII
    assert torch.equal(tokenizer_from_dict(json.loads(json.dumps(tok.to_dict()))).encode(NON_ASCII), x)


def test_char_tokenizer_ids_padding_and_unknown_symbols():
    tok = CharTokenizer.train(["ab", "ba", "c"])
    assert tok.vocab_size == len(SPECIALS) + 3 and tok.symbols == ["a", "b", "c"]
    x = tok.encode(["abc", "z"], length=5)
    assert x.tolist() == [[3, 4, 5, EOS, PAD], [UNK, EOS, PAD, PAD, PAD]]
    assert tok.decode(x) == ["abc", UNKNOWN_TEXT]
    # decoding stops at the first EOS or PAD; tensors, arrays and lists are accepted
    assert tok.decode([[3, EOS, 4, 4], [4, PAD, 3, EOS], [5, 5, 5, 5]]) == ["a", "b", "cccc"]
    with pytest.raises(GanforgeError, match="with EOS it needs 4 > 3"):
        tok.encode(["abc"], length=3)
    with pytest.raises(GanforgeError, match="outside the vocabulary"):
        tok.decode([[99]])


def test_bpe_learns_subwords_and_keeps_special_strings_as_text():
    lines = sentences(300) + ["the cat said <eos> and <pad>"]
    tok = train_tokenizer("bpe", lines, vocab_size=120)
    assert isinstance(tok, BPETokenizer) and 60 < tok.vocab_size <= 120
    x = tok.encode(lines)
    assert tok.decode(x) == lines
    assert (x[-1] != EOS).sum() > 3 and (x[-1] == EOS).sum() == 1   # "<eos>" in the text is not the EOS id
    assert len(tok.pieces(["the cat"])[0]) < len("the cat")         # merges were learned
    assert tok.decode(tok.encode(["the cat 😀"])) == [f"the cat {UNKNOWN_TEXT}"]   # unseen symbol -> UNK


def test_bpe_training_is_deterministic():
    a = train_tokenizer("bpe", sentences(200), 100).to_dict()
    b = train_tokenizer("bpe", sentences(200), 100).to_dict()
    assert a == b


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_a_vocabulary_of_one_symbol_is_refused(kind):
    with pytest.raises(GanforgeError, match="1 distinct symbol"):
        train_tokenizer(kind, ["aaa", "aa", "a"], vocab_size=50)


def test_a_damaged_tokenizer_spec_is_a_clear_error(tmp_path):
    with pytest.raises(GanforgeError, match="not a ganforge tokenizer"):
        tokenizer_from_dict({"kind": "word"})
    with pytest.raises(GanforgeError, match="damaged tokenizer spec"):
        tokenizer_from_dict({"format": 1, "kind": "char", "specials": list(SPECIALS), "symbols": ["ab"]})
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(GanforgeError, match="cannot read the tokenizer"):
        load_tokenizer(tmp_path / "t.json")


# ---------------------------------------------------------------------------------------------------
# the text dataset


def test_text_dataset_from_a_file(tmp_path):
    lines = WORDS + ["  spaced\tout  ", "", "   "]
    d = build_dataset(cfg(tmp_path, path=str(write(tmp_path / "w.txt", lines)), heldout=0.0))
    assert d.kind == "text" and d.x.dtype == torch.int64 and d.x.shape == (len(WORDS) + 1, 32)
    assert d.shape == (32,) and len(d) == len(WORDS) + 1 and d.labels is None
    info = d.info
    assert info["lines"] == WORDS + ["spaced out"]                   # white space collapsed, blank lines dropped
    assert info["counts"]["blank"] == 2 and info["counts"]["read"] == len(lines)
    assert info["tokenizer_kind"] == "bpe"                          # auto: a line holds a space
    assert (info["pad_id"], info["eos_id"], info["unk_id"]) == (PAD, EOS, UNK) and info["max_len"] == 32
    tok = tokenizer_of(d)
    assert tok.vocab_size == info["vocab_size"] and tok.decode(d.x) == info["lines"]
    json.dumps(info["tokenizer"])                                   # JSON-able


def test_text_auto_tokenizer_is_char_without_spaces_and_options_apply(tmp_path):
    p = write(tmp_path / "w.txt", WORDS)
    d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, max_len=6))
    assert d.info["tokenizer_kind"] == "char" and d.info["metric_tokens"] == "chars" and d.x.shape[1] == 6
    assert d.info["counts"]["train_too_long"] == 0
    d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, min_len=4))
    assert d.info["counts"]["train_too_short"] == 12 and min(map(len, d.info["lines"])) == 4
    d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, tokenizer="bpe", vocab_size=40))
    assert d.info["tokenizer_kind"] == "bpe" and tokenizer_of(d).decode(d.x) == WORDS


def test_text_dataset_from_a_folder_in_sorted_order(tmp_path):
    root = tmp_path / "corpus"
    write(root / "b.txt", ["bee", "cow"])
    write(root / "a.txt", ["ant"])
    write(root / "sub" / "c.txt", ["dog"])
    write(root / "notes.md", ["ignored"])
    write(root / ".hidden" / "x.txt", ["ignored too"])
    d = build_dataset(cfg(tmp_path, path=str(root), heldout=0.0))
    assert d.info["lines"] == ["ant", "bee", "cow", "dog"]
    assert d.info["files"] == [str(root / "a.txt"), str(root / "b.txt"), str(root / "sub" / "c.txt")]


def test_heldout_split_is_deterministic_disjoint_and_order_free(tmp_path):
    lines = sentences(400)
    lines += lines[:50]                                              # repeats, kept with dedup off
    p1 = write(tmp_path / "a.txt", lines)
    shuffled = list(lines)
    random.Random(1).shuffle(shuffled)
    p2 = write(tmp_path / "b.txt", shuffled)
    c = dict(heldout=0.25, dedup=False)
    s1, s1b, s2 = text_splits(cfg(tmp_path, path=str(p1), **c)), text_splits(cfg(tmp_path, path=str(p1), **c)), \
        text_splits(cfg(tmp_path, path=str(p2), **c))
    tr, te = s1["train"].info["lines"], s1["test"].info["lines"]
    assert tr == s1b["train"].info["lines"] and te == s1b["test"].info["lines"]
    assert not set(tr) & set(te) and len(tr) + len(te) == len(lines)
    assert 0.15 < len(set(te)) / 400 < 0.35
    assert set(te) == {s for s in lines if heldout_fraction(s) < 0.25}
    assert set(s2["test"].info["lines"]) == set(te)                  # the file order does not move a line
    # the same tokeniser (trained on the training lines) serves both parts
    assert s1["train"].info["tokenizer"] == s1["test"].info["tokenizer"]
    # data.split picks a part; "all" is both, train first
    tc = cfg(tmp_path, path=str(p1), split="test", **c)
    assert build_dataset(tc).info["lines"] == te
    everything = build_dataset(cfg(tmp_path, path=str(p1), split="all", **c))
    assert everything.info["lines"] == tr + te and len(everything) == len(lines)


def test_dedup_keeps_the_first_copy(tmp_path):
    p = write(tmp_path / "w.txt", ["cat", "dog", "cat", "cat ", "dog", "eel"])
    d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0))
    assert d.info["lines"] == ["cat", "dog", "eel"] and d.info["counts"]["duplicates"] == 3
    d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, dedup=False))
    assert d.info["lines"] == ["cat", "dog", "cat", "cat", "dog", "eel"]


def test_bpe_is_cached_under_the_data_cache_keyed_by_corpus_and_settings(tmp_path, monkeypatch):
    p = write(tmp_path / "s.txt", sentences(200))
    c = cfg(tmp_path, path=str(p), tokenizer="bpe", vocab_size=90)
    first = build_dataset(c)
    files = sorted((tmp_path / "cache" / "text").glob("bpe-*.json"))
    assert len(files) == 1 and first.info["tokenizer_cache"] == str(files[0])

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(textdata, "train_tokenizer", boom)
    again = build_dataset(c)                                         # from the cache: no training
    assert again.info["tokenizer"] == first.info["tokenizer"] and torch.equal(again.x, first.x)
    monkeypatch.undo()
    build_dataset(cfg(tmp_path, path=str(p), tokenizer="bpe", vocab_size=100))   # other settings: another key
    write(tmp_path / "s.txt", sentences(201))
    build_dataset(cfg(tmp_path, path=str(p), tokenizer="bpe", vocab_size=90))    # other corpus: another key
    assert len(list((tmp_path / "cache" / "text").glob("bpe-*.json"))) == 3
    write(tmp_path / "s.txt", sentences(200))
    files[0].write_text("{damaged")
    with pytest.warns(UserWarning, match="damaged cached tokenizer"):
        assert build_dataset(c).info["tokenizer"] == first.info["tokenizer"]


def test_text_options_go_through_the_config(tmp_path):
    c = resolve(None, ["data.name=words", "data.max_len=12", "data.heldout=0.2"]).data
    assert c.options["max_len"] == 12 and c.options["heldout"] == 0.2 and c.options["tokenizer"] == "auto"
    with pytest.raises(GanforgeError, match=r"data.heldout: the held-out share must be in \[0, 1\)"):
        resolve(None, ["data.name=text", "data.heldout=1.5"])
    with pytest.raises(GanforgeError, match="data.tokenizer: 'word' is not one of auto, char, bpe"):
        resolve(None, ["data.name=text", "data.tokenizer=word"])
    with pytest.raises(GanforgeError, match="unknown key 'data.maxlen'"):
        resolve(None, ["data.name=text", "data.maxlen=3"])
    with pytest.raises(GanforgeError, match="cannot fit in data.max_len=4"):
        resolve(None, ["data.name=text", "data.max_len=4", "data.min_len=4"])


def test_data_kind_text_invariants_and_model_range():
    x = torch.tensor([[3, 4, EOS, PAD]])
    d = Data(x=x, kind="text", name="t")
    assert d.shape == (4,)
    with pytest.raises(AssertionError):
        Data(x=x.float(), kind="text", name="t")
    assert torch.equal(to_model_range(x, "text"), x)
    assert torch.equal(from_model_range(x, "text"), x)
    logits = torch.nn.functional.one_hot(x, 6).float()                 # [N, L, V] -> ids
    assert torch.equal(from_model_range(logits, "text"), x)


# ---------------------------------------------------------------------------------------------------
# bad input: one clear message each


def test_bad_text_files(tmp_path):
    def err(path, **kw):
        with pytest.raises(GanforgeError) as e:
            build_dataset(cfg(tmp_path, path=str(path), **kw))
        return str(e.value)

    assert "data.path: the text dataset reads your lines" in str(pytest.raises(
        GanforgeError, build_dataset, cfg(tmp_path)).value)
    assert "no such file" in err(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "the file is empty" in err(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_bytes(b" \n\n\t\n")
    assert "empty (only white space)" in err(tmp_path / "blank.txt")
    (tmp_path / "bin.txt").write_bytes(b"hello\nwor\x00ld\n")
    assert "binary file" in err(tmp_path / "bin.txt") and "byte offset 9, line 2" in err(tmp_path / "bin.txt")
    (tmp_path / "latin1.txt").write_bytes("cat\ndog\ncaf\u00e9\n".encode("latin-1"))
    m = err(tmp_path / "latin1.txt")
    assert "not valid UTF-8 at line 3, byte offset 11" in m and "0xe9" in m
    (tmp_path / "folder").mkdir()
    assert "holds no .txt file" in err(tmp_path / "folder")
    write(tmp_path / "one.txt", ["aaa", "aa", "a"])
    assert "1 distinct symbol" in err(tmp_path / "one.txt")
    write(tmp_path / "few.txt", ["cat", "dog"])
    assert "no line is left for training" in err(tmp_path / "few.txt", heldout=0.999999)
    assert "held-out part is empty" in err(tmp_path / "few.txt", heldout=0.0, split="test")


def test_a_line_longer_than_the_limit_is_skipped_and_counted_or_an_error(tmp_path):
    p = write(tmp_path / "w.txt", ["cat", "dog", "hippopotamus", "eel", "crocodile"])
    with pytest.warns(UserWarning, match="dropped 2 line"):
        d = build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, max_len=6))
    assert d.info["lines"] == ["cat", "dog", "eel"] and d.info["counts"]["train_too_long"] == 2
    with pytest.raises(GanforgeError, match=r"w.txt:3: the line has 12 char tokens; with EOS that is more than "
                                            r"data.max_len=6 \(2 such line"):
        build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, max_len=6, too_long="error"))
    with pytest.raises(GanforgeError, match="no training line fits"):
        build_dataset(cfg(tmp_path, path=str(p), heldout=0.0, max_len=3))


# ---------------------------------------------------------------------------------------------------
# the built-in sets, on small stand-ins and (when installed) on the Debian files


def test_words_keeps_lower_case_a_to_z_only(tmp_path):
    p = write(tmp_path / "dict", ["A", "Aaron", "a", "cat", "cat's", "café", "dogs", "x-ray", "e2e", "zebra"])
    d = build_dataset(cfg(tmp_path, "words", path=str(p), heldout=0.0))
    assert d.info["lines"] == ["a", "cat", "dogs", "zebra"] and d.info["counts"]["filtered"] == 6
    assert d.info["tokenizer_kind"] == "char" and d.x.shape[1] == 16 and d.info["metric_tokens"] == "chars"


def test_sentences_reads_wordnet_definitions(tmp_path):
    header = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    body = ("00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to have its own distinct "
            "existence (living or nonliving)  \n"
            "00002137 03 n 02 abstraction 0 | a general concept formed by extracting common features from "
            "specific examples; \"the idea of a cat\"  \n")
    (tmp_path / "wn").mkdir()
    (tmp_path / "wn" / "data.noun").write_text(header * 3 + body, encoding="utf-8")
    (tmp_path / "wn" / "data.verb").write_text(header + "00001 | breathe hard; \"she huffed\"\n", encoding="utf-8")
    d = build_dataset(cfg(tmp_path, "sentences", path=str(tmp_path / "wn"), heldout=0.0, vocab_size=60, max_len=99))
    assert d.info["lines"] == ["that which is perceived to have its own distinct existence (living or nonliving)",
                               "a general concept formed by extracting common features from specific examples",
                               "breathe hard"]
    assert d.info["tokenizer_kind"] == "bpe" and d.info["metric_tokens"] == "words" and d.x.shape[1] == 99
    assert d.info["counts"]["read"] == 3                               # the licence lines are not samples


def test_missing_debian_files_name_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(textdata, "WORDS_FILE", str(tmp_path / "nope" / "american-english"))
    monkeypatch.setattr(textdata, "WORDNET_DIR", str(tmp_path / "nope" / "wordnet"))
    with pytest.raises(GanforgeError, match=r"words: .*american-english not found; it comes with Debian's wamerican "
                                            r"package: sudo apt-get install wamerican"):
        build_dataset(cfg(tmp_path, "words"))
    with pytest.raises(GanforgeError, match="sudo apt-get install wordnet-base"):
        build_dataset(cfg(tmp_path, "sentences"))
    (tmp_path / "wn").mkdir()
    with pytest.raises(GanforgeError, match="holds none of data.noun"):
        build_dataset(cfg(tmp_path, "sentences", path=str(tmp_path / "wn")))


@pytest.mark.skipif(not Path(textdata.WORDS_FILE).is_file(),
                    reason="Debian package wamerican is not installed (sudo apt-get install wamerican)")
def test_words_on_the_debian_word_list(tmp_path):
    s = text_splits(cfg(tmp_path, "words"))
    tr, te = s["train"], s["test"]
    assert 50_000 < len(tr) < 70_000 and 0.08 < len(te) / (len(tr) + len(te)) < 0.12
    assert tr.info["vocab_size"] == len(SPECIALS) + 26 and tr.x.shape[1] == 16
    assert all(w.isascii() and w.isalpha() and w.islower() for w in tr.info["lines"][:2000])
    assert not set(tr.info["lines"]) & set(te.info["lines"])


@pytest.mark.skipif(not (Path(textdata.WORDNET_DIR) / "data.noun").is_file(),
                    reason="Debian package wordnet-base is not installed (sudo apt-get install wordnet-base)")
def test_sentences_on_the_debian_wordnet(tmp_path):
    d = build_dataset(cfg(tmp_path, "sentences", max_items=3000))
    assert len(d) == 3000 and d.x.shape[1] == 24 and d.info["vocab_size"] == 2000
    assert d.info["counts"]["read"] > 100_000 and tokenizer_of(d).decode(d.x[:50]) == d.info["lines"][:50]
