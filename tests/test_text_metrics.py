"""Text metrics (ganforge.metrics.text) on hand-made strings, and the MLE baseline benchmark on a small file."""
from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.metrics.fid import fid_from_features
from ganforge.metrics.text import (bleu, frechet_codes, heldout_valid, length_distance, novelty, self_bleu,
                                   split_tokens, text_metrics, uniqueness)

from .conftest import ROOT


def test_bleu_against_a_hand_computed_case():
    # hypothesis "the cat sat on the mat", one reference "the cat is on the mat" (6 words each: brevity penalty 1)
    #   1-grams: the x2, cat, on, mat match of 6           -> p1 = 5/6
    #   2-grams: "the cat", "on the", "the mat" of 5       -> p2 = 3/5
    #   3-grams: "on the mat" of 4                         -> p3 = 1/4
    #   4-grams: none of 3 -> method1 smoothing: 0.1 / 3   -> p4 = 1/30
    #   5-grams: none of 2 -> 0.1 / 2                      -> p5 = 1/20
    # BLEU-2 = (5/6 * 3/5)^(1/2) = 2^(-1/2);  BLEU-3 = (1/2 * 1/4)^(1/3) = 1/2
    # BLEU-4 = (1/8 * 1/30)^(1/4) = 240^(-1/4);  BLEU-5 = (1/240 * 1/20)^(1/5) = 4800^(-1/5)
    values, protocol = bleu(["the cat sat on the mat"], ["the cat is on the mat"], tokens="words")
    assert values["bleu2"] == pytest.approx(2 ** -0.5, abs=1e-12)
    assert values["bleu3"] == pytest.approx(0.5, abs=1e-12)
    assert values["bleu4"] == pytest.approx(240 ** -0.25, abs=1e-12)
    assert values["bleu5"] == pytest.approx(4800 ** -0.2, abs=1e-12)
    assert protocol["n_samples"] == 1 and protocol["n_references"] == 1 and "method1" in protocol["smoothing"]
    # brevity penalty: "ab" against "abcd" in characters: p1 = p2 = 1, BP = exp(1 - 4/2)
    values, _ = bleu(["ab"], ["abcd"], tokens="chars", orders=(2,))
    assert values == {"bleu2": pytest.approx(math.exp(-1.0), abs=1e-12)}


def test_bleu_is_the_average_over_samples_and_exact_with_duplicate_references():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    rng = random.Random(0)
    refs = ["".join(rng.choice("abcde") for _ in range(rng.randint(2, 8))) for _ in range(40)]
    refs += refs[:15]                                                # duplicates are dropped before scoring
    samples = ["".join(rng.choice("abcdef") for _ in range(rng.randint(1, 9))) for _ in range(25)]
    values, _ = bleu(samples, refs, tokens="chars", n_references=1000)
    direct = np.mean([sentence_bleu([list(r) for r in refs], list(s), (0.25,) * 4,
                                    smoothing_function=SmoothingFunction().method1) for s in samples])
    assert values["bleu4"] == pytest.approx(direct, abs=1e-12)


def test_self_bleu_matches_texygen_each_against_the_others():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    assert self_bleu(["a b c d e f"] * 5)[0] == {f"self_bleu{n}": 1.0 for n in (2, 3, 4, 5)}   # identical: 1
    rng = random.Random(1)
    samples = ["".join(rng.choice("abc") for _ in range(rng.randint(2, 6))) for _ in range(30)]
    samples += samples[:5]
    values, protocol = self_bleu(samples, tokens="chars")
    direct = np.mean([sentence_bleu([list(o) for o in samples[:i] + samples[i + 1:]], list(s), (1 / 3,) * 3,
                                    smoothing_function=SmoothingFunction().method1) for i, s in enumerate(samples)])
    assert values["self_bleu3"] == pytest.approx(direct, abs=1e-12) and protocol["n_samples"] == 35
    assert self_bleu(samples, tokens="chars", n=10)[1]["n_samples"] == 10   # the first n samples only


def test_references_are_subsampled_with_a_seed_and_stamped():
    refs = [f"line {i} of text" for i in range(300)]
    a = bleu(["line 7 of words"], refs, n_references=50, seed=3)
    b = bleu(["line 7 of words"], refs, n_references=50, seed=3)
    assert a == b and a[1]["n_references"] == 50 and "random 50 of 300" in a[1]["references"] and a[1]["seed"] == 3
    assert bleu(["x y"], refs[:10], n_references=50)[1]["references"] == "all 10"


def test_novelty_uniqueness_and_heldout_valid_known_values():
    train, held = ["cat", "dog", "eel"], ["cow", "pig", "hen", "yak"]
    samples = ["cat", "cow", "cow", "zzz", "pig", "dog", "qqq", "cat"]
    assert novelty(samples, train)[0] == {"novelty": 5 / 8}          # cow cow zzz pig qqq
    assert uniqueness(samples)[0] == {"uniqueness": 6 / 8}           # cat cow zzz pig dog qqq
    v, p = heldout_valid(samples, train, held)
    assert v == {"heldout_valid": 3 / 5, "heldout_found": 2 / 4}     # cow cow pig of 5 novel; cow, pig of 4
    assert p["n_novel"] == 5
    assert math.isnan(heldout_valid(["cat"], train, held)[0]["heldout_valid"])


def test_length_distance_known_value():
    # lengths 2, 3, 3, 5 vs 3, 4: p = {2: .25, 3: .5, 5: .25}, q = {3: .5, 4: .5}
    # TV = 0.5 (|.25 - 0| + |.5 - .5| + |0 - .5| + |.25 - 0|) = 0.5
    v, p = length_distance(["ab", "abc", "xyz", "abcde"], ["abc", "abcd"], tokens="chars")
    assert v["length_tv"] == pytest.approx(0.5) and v["mean_length"] == 3.25 and v["mean_length_ref"] == 3.5
    assert length_distance(["a b"], ["c d"], tokens="words")[0]["length_tv"] == 0.0


def test_frechet_codes_reuses_the_fid_code():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 5, generator=g), torch.randn(150, 5, generator=g) + 0.5
    v, p = frechet_codes(a, b.numpy(), what="unit test codes")
    assert v["fd"] == pytest.approx(fid_from_features(a.double(), b.double())) and p["dim"] == 5
    assert abs(frechet_codes(a, a)[0]["fd"]) < 1e-6
    with pytest.raises(GanforgeError, match=r"expected \[N, D\] and \[M, D\]"):
        frechet_codes(a, b[:, :3])


def test_words_are_split_without_any_nltk_data(monkeypatch):
    import nltk

    def no_download(*a, **k):
        raise AssertionError("nltk tried to download")

    monkeypatch.setattr(nltk, "download", no_download)
    monkeypatch.setattr(nltk.data, "path", [])                        # nothing could be found either
    assert split_tokens(["a cat (a pet); \"it's\" fine."], "words") == [
        ("a", "cat", "(", "a", "pet", ")", ";", "``", "it", "'s", "''", "fine", ".")]
    assert split_tokens(["né"], "chars") == [("n", "é")]
    with pytest.raises(GanforgeError, match="tokens must be one of"):
        split_tokens(["x"], "bytes")
    out = text_metrics(["a cat", "a dog"], ["a cat"], ["a cow", "the dog"], tokens="words", valid=True)
    assert set(out) == {"bleu", "self_bleu", "novelty", "uniqueness", "length", "heldout_valid"}
    assert all(isinstance(p, dict) and p for _, p in out.values())


def test_bad_metric_inputs():
    with pytest.raises(GanforgeError, match="samples must be a list of at least 1"):
        bleu([], ["x"])
    with pytest.raises(GanforgeError, match="at least 2"):
        self_bleu(["only one"])


def test_the_mle_baseline_benchmark_runs(tmp_path):
    rng = random.Random(0)
    words = sorted({"".join(rng.choice("aeioubdklmnrst") for _ in range(rng.randint(3, 7))) for _ in range(600)})
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n")
    (tmp_path / "gan.txt").write_text("\n".join(words[:20] + ["zzzz"] * 20) + "\n")
    (tmp_path / "runs.json").write_text(json.dumps({"points": [
        {"name": "gan-run", "samples": "gan.txt"}, {"name": "paper", "values": {"bleu4": 0.3, "self_bleu4": 0.6}}]}))
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text.py"), "text", "--set",
                        f"data.path={tmp_path / 'words.txt'}", "--set", "data.heldout=0.3", "--steps", "5",
                        "--n", "40", "--temperatures", "0.8,1.2", "--refs", "30", "--self-n", "20",
                        "--hidden", "16", "--runs", str(tmp_path / "runs.json"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["point", "real (held-out)", "MLE T=0.8", "MLE T=1.2", "gan-run", "paper"]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    gan = next(row for row in res["rows"] if row["name"] == "gan-run")
    assert gan["values"]["uniqueness"] == pytest.approx(21 / 40) and gan["protocol"]["bleu"]["n_references"] == 30
    assert (tmp_path / "out" / "text_text.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "text.py"), "text", "--set",
                          f"data.path={tmp_path / 'missing.txt'}"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
