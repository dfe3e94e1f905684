"""Text metrics in the metric registry (metrics/text.py): the contract of every text metric, their agreement with
the plain functions, `ganforge eval` of a text run, of a samples .txt and of a samples .npz (`texts`), text tick
metrics in log.jsonl, the default metric sets, and clear errors across data kinds."""
import json
import math
import random

import numpy as np
import pytest
import torch

import ganforge
from ganforge.config import Config
from ganforge.data import Data
from ganforge.data.text import text_config, text_splits
from ganforge.errors import GanforgeError
from ganforge.evaluation import default_metrics, evaluate_target, heldout_data, read_text_samples
from ganforge.metrics import METRICS, check_metrics, evaluate
from ganforge.metrics import text as tm

from .conftest import one_line_error, run_cli

TEXT_METRICS = sorted(n for n in METRICS.names() if "text" in METRICS.get(n).spaces)
SYLLABLES = ["ba", "ka", "to", "mi", "ne", "ro", "su"]


def _write_lines(path, n=400, seed=0):
    rng = random.Random(seed)
    path.write_text("".join("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3))) + "\n"
                            for _ in range(n)), encoding="utf-8")
    return path


@pytest.fixture
def lines(tmp_path):
    return _write_lines(tmp_path / "lines.txt")


def _parts(path, tmp_path, **kw):
    opts = dict(tokenizer="char", max_len=8, heldout=0.3, cache_dir=str(tmp_path / "cache"))
    return text_splits(text_config("text", path=str(path), **{**opts, **kw}))


def _overrides(path, tmp_path) -> list[str]:
    return ["data.name=text", f"data.path={path}", "data.tokenizer=char", "data.max_len=8", "data.heldout=0.3",
            f"data.cache_dir={tmp_path / 'cache'}", "model.arch=gumbel", "model.z_dim=8", "model.g_width=16",
            "model.d_width=8", "model.g_norm=none", "model.emb_dim=8", "model.kernels=[2,3]", "train.batch=16",
            "train.kimg=0.064", "train.tick_kimg=0.032", "train.ema_kimg=0.05", "train.grid_size=8",
            "train.metrics=[]", "train.metrics_n=64", "train.tensorboard=false", "train.precision=fp32"]


def _arae_overrides(path, tmp_path) -> list[str]:
    """A tiny `arae` run of the same data as _overrides (its autoencoder is code_fd's code space)."""
    return [o for o in _overrides(path, tmp_path) if not o.startswith("model.")] + [
        "model.arch=arae", "model.z_dim=8", "model.g_width=16", "model.d_width=16", "model.depth=1",
        "model.g_norm=none", "model.emb_dim=8", "model.code_dim=8", "model.ae_width=16", "model.ae_kimg=0.032"]


def test_the_text_metrics_are_registered():
    assert TEXT_METRICS == sorted(["bleu", "self_bleu", "novelty", "uniqueness", "valid", "length_tv", "code_fd"])
    for name in TEXT_METRICS:
        spec = METRICS.get(name)
        assert spec.spaces == {"text": "text"} and spec.doc.startswith("text:") and not spec.needs_real


@pytest.mark.parametrize("name", TEXT_METRICS)
@pytest.mark.parametrize("as_ids", [True, False])
def test_every_text_metric_gives_finite_stamped_numbers(name, as_ids, lines, tmp_path):
    parts = _parts(lines, tmp_path)
    tr, te = parts["train"], parts["test"]
    fake = te.x[:40] if as_ids else te.info["lines"][:40]
    options = {"bleu": {"references": 50}}
    if name == "code_fd":  # its network: a trained arae run's encoder
        run = ganforge.train(None, overrides=_arae_overrides(lines, tmp_path), out=tmp_path / "arae", progress=False)
        options["code_fd"] = {"run": str(run)}
    r = evaluate(fake, tr, [name], seed=3, heldout=te, options=options)[name]
    assert r.values and all(math.isfinite(v) for v in r.values.values()), r.values
    assert r.protocol["metric"] == name and r.protocol["n_fake"] == 40 and r.protocol["seed"] == 3
    assert r.protocol["definition"] and "features" in r.protocol


def test_registered_values_are_the_plain_functions(lines, tmp_path):
    parts = _parts(lines, tmp_path)
    tr, te = parts["train"], parts["test"]
    train, held = tr.info["lines"], te.info["lines"]
    fake = held[:20] + train[:20] + ["zzz", "zzz"]
    plain = [m for m in TEXT_METRICS if m != "code_fd"]   # code_fd: its own test below
    res = evaluate(fake, tr, plain, seed=1, heldout=te, options={"bleu": {"references": 30}})
    assert res["bleu"].values == tm.bleu(fake, held, "chars", n_references=30, seed=1)[0]
    assert res["bleu"].protocol["n_references"] == 30
    assert res["self_bleu"].values == tm.self_bleu(fake, "chars")[0]
    assert res["novelty"].values == {"novelty": 22 / 42}
    assert res["uniqueness"].values == {"uniqueness": 41 / 42}
    assert res["valid"].values == {"heldout_valid": 20 / 22, "heldout_found": 20 / len(set(held))}
    assert res["length_tv"].values == tm.length_distance(fake, held, "chars")[0]
    assert res["length_tv"].protocol["references"] == "held-out lines"
    # token ids decode to the same strings: the same numbers
    ids = evaluate(te.x[:20], tr, ["uniqueness", "novelty"], heldout=te)
    assert ids["novelty"].values == {"novelty": 1.0} and ids["uniqueness"].values == {"uniqueness": 1.0}
    # bleu's own options: the samples scored and the references drawn
    few = evaluate(fake, tr, ["bleu"], seed=1, heldout=te, options={"bleu": {"references": 5, "samples": 4}})
    assert few["bleu"].protocol["n_samples"] == 4 and few["bleu"].protocol["n_references"] == 5


def test_held_out_needs_are_said_clearly(lines, tmp_path):
    parts = _parts(lines, tmp_path)
    tr = parts["train"]
    with pytest.raises(GanforgeError, match="metric 'bleu' compares samples with the held-out split"):
        evaluate(["bato"], tr, ["bleu"])
    no_held = _parts(lines, tmp_path, heldout=0.0)["train"]
    for name in ("bleu", "valid"):
        with pytest.raises(GanforgeError, match=f"metric '{name}': it compares samples with the held-out lines.*"
                                                "data.heldout > 0"):
            check_metrics([name], no_held)
    r = evaluate(["bato", "ka"], no_held, ["length_tv", "novelty"])   # these need no held-out split
    assert r["length_tv"].protocol["references"].startswith("training lines")
    with pytest.raises(GanforgeError, match="fake text must be a list of strings or int token ids"):
        evaluate(torch.zeros(3, 8), tr, ["novelty"])


def test_kinds_do_not_mix(lines, tmp_path):
    from .test_metrics_offline import blobs

    tr = _parts(lines, tmp_path)["train"]
    with pytest.raises(GanforgeError, match="metric 'ssl_fd' is for image data, but 'text' is text data"):
        check_metrics(["ssl_fd"], tr)
    with pytest.raises(GanforgeError, match="metric 'diversity' is for image or vector data, but 'text' is text"):
        evaluate(["ba"], tr, ["diversity"])
    img = blobs(n=20)
    with pytest.raises(GanforgeError, match="metric 'bleu' is for text data, but 'blobs' is image data"):
        evaluate(img.x, img, ["bleu"])
    vec = Data(torch.randn(10, 2), "vector", "ring")
    with pytest.raises(GanforgeError, match="metric 'novelty' is for text data, but 'ring' is vector data"):
        check_metrics(["novelty"], vec)


def test_default_metrics_for_text(lines, tmp_path):
    chars = _parts(lines, tmp_path)["train"]
    assert default_metrics(chars) == ["bleu", "self_bleu", "novelty", "uniqueness", "valid", "length_tv"]
    spaced = tmp_path / "spaced.txt"
    spaced.write_text("".join(f"{a} {b}\n" for a in SYLLABLES for b in SYLLABLES), encoding="utf-8")
    words = _parts(spaced, tmp_path, tokenizer="char", max_len=8, heldout=0.3)["train"]
    assert words.info["metric_tokens"] == "words"
    assert default_metrics(words) == ["bleu", "self_bleu", "novelty", "uniqueness", "length_tv"]  # no valid
    no_held = _parts(lines, tmp_path, heldout=0.0)["train"]
    assert default_metrics(no_held) == ["self_bleu", "novelty", "uniqueness", "length_tv"]


def test_heldout_data_of_a_text_config(lines, tmp_path):
    cfg = Config()
    cfg.data = text_config("text", path=str(lines), tokenizer="char", max_len=8, heldout=0.3,
                           cache_dir=str(tmp_path / "cache"))
    parts = text_splits(cfg.data)
    held = heldout_data(cfg, parts["train"])
    assert held is not None and held.info["lines"] == parts["test"].info["lines"] and held.info["split"] == "test"
    # trained on all the lines (data.split=all): nothing is held out
    assert heldout_data(cfg, Data(parts["train"].x, "text", "text", info=dict(split="all"))) is None


def test_words_preset_ticks_are_cheap_text_metrics():
    from ganforge.components import resolve

    cfg = resolve("words-gumbel")
    assert cfg.train.metrics == ["novelty", "uniqueness", "valid", "length_tv"] and cfg.train.metrics_n == 1000


def test_tick_metrics_of_a_text_run_are_in_the_log(lines, tmp_path):
    over = _overrides(lines, tmp_path) + ["train.metrics=[novelty,uniqueness,valid,length_tv,bleu]",
                                          "metrics.bleu.references=10", "metrics.bleu.samples=16"]
    run = ganforge.train(None, overrides=over, out=tmp_path / "run", progress=False)
    ticks = [t for t in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if t["event"] == "tick"]
    assert len(ticks) == 2 and all("metrics_error" not in t for t in ticks)
    for t in ticks:
        m = t["metrics"]
        assert set(m) == {"novelty", "uniqueness", "valid", "length_tv", "bleu"}
        assert 0 <= m["novelty"]["novelty"] <= 1 and 0 < m["uniqueness"]["uniqueness"] <= 1
        assert set(m["bleu"]) == {"bleu2", "bleu3", "bleu4", "bleu5"} and 0 <= m["length_tv"]["length_tv"] <= 1


def test_a_tick_metric_of_the_wrong_kind_stops_a_text_run_before_training(lines, tmp_path):
    with pytest.raises(GanforgeError, match="metric 'ssl_fd' is for image data, but 'text' is text data"):
        ganforge.train(None, overrides=_overrides(lines, tmp_path) + ["train.metrics=[ssl_fd]"],
                       out=tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_eval_of_a_text_run_a_txt_and_an_npz(lines, tmp_path, capsys):
    from ganforge.cli import main

    run = ganforge.train(None, overrides=_overrides(lines, tmp_path), out=tmp_path / "run", progress=False)
    assert main(["eval", str(run), "--n", "60", "--set", "metrics.bleu.references=20"]) in (None, 0)
    out = capsys.readouterr().out
    names = ["bleu", "self_bleu", "novelty", "uniqueness", "valid", "length_tv"]
    assert [row.split()[0] for row in out.strip().splitlines()] == names, out
    assert "bleu4=" in out and "heldout_valid=" in out
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == names and all(r["protocol"]["n_fake"] == 60 for r in rows)
    assert rows[0]["protocol"]["options"] == {"references": 20, "samples": 0}
    # the same samples from a .txt and from a .npz give the same numbers
    g = ganforge.load(run)
    samples = g.sample(60, seed=0)
    txt, npz = tmp_path / "s.txt", tmp_path / "s.npz"
    txt.write_text("".join(s + "\n" for s in samples), encoding="utf-8")
    np.savez(npz, texts=np.array(samples, dtype=str))
    assert read_text_samples(txt) == read_text_samples(npz) == samples
    data_set = [o for o in _overrides(lines, tmp_path) if o.startswith("data.")]
    a = evaluate_target(txt, ["novelty", "uniqueness", "self_bleu"], data_overrides=data_set)
    b = evaluate_target(npz, ["novelty", "uniqueness", "self_bleu"], data_overrides=data_set)
    c = evaluate_target(run, ["novelty", "uniqueness", "self_bleu"], n=60)
    assert {k: r.values for k, r in a.items()} == {k: r.values for k, r in b.items()} == {
        k: r.values for k, r in c.items()}
    # samples of one kind against data of another: one clear error each way
    with pytest.raises(GanforgeError, match="say which dataset.*data.name=words"):
        evaluate_target(txt, None)
    with pytest.raises(GanforgeError, match="text samples are compared with text data, but 'ring' is vector"):
        evaluate_target(txt, None, data_overrides=["data.name=ring"])
    vec = tmp_path / "v.npz"
    np.savez(vec, samples=np.zeros((4, 2), np.float32))
    with pytest.raises(GanforgeError, match="'text' is text data; give its samples as a .txt"):
        evaluate_target(vec, None, data_overrides=data_set)
    bad = tmp_path / "bad.npz"
    np.savez(bad, texts=np.zeros(3))
    with pytest.raises(GanforgeError, match="'texts' must be unicode strings"):
        evaluate_target(bad, None, data_overrides=data_set)


def test_cli_eval_of_a_samples_txt(lines, tmp_path):
    txt = _write_lines(tmp_path / "samples.txt", n=50, seed=5)
    sets = [a for o in _overrides(lines, tmp_path) if o.startswith("data.") for a in ("--set", o)]
    r = run_cli("eval", str(txt), "--metrics", "novelty,uniqueness,length_tv", *sets)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [row.split()[0] for row in r.stdout.strip().splitlines()] == ["novelty", "uniqueness", "length_tv"]
    one_line_error(run_cli("eval", str(txt), "--metrics", "ssl_fd", *sets), "metric 'ssl_fd' is for image data")


def test_the_mle_benchmark_puts_runs_on_the_curve(lines, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    over = [o for o in _overrides(lines, tmp_path) if o != f"data.cache_dir={tmp_path / 'cache'}"]
    run = ganforge.train(None, overrides=over, out=tmp_path / "gumbel-a", progress=False)
    (tmp_path / "points.json").write_text(json.dumps({"points": [{"name": "gumbel-b", "run": "gumbel-a"}]}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_CACHE": str(tmp_path / "cache")}
    bench = [sys.executable, str(root / "benchmarks" / "text.py"), "text", "--steps", "3", "--n", "30",
             "--temperatures", "1.0", "--refs", "20", "--self-n", "20", "--hidden", "16"]
    sets = [a for o in over if o.startswith("data.") and o != "data.name=text" for a in ("--set", o)]
    r = subprocess.run(bench + sets + ["--runs", str(run), str(tmp_path / "points.json"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["point", "real (held-out)", "MLE T=1", "gumbel-a", "gumbel-b"]
    assert "# note" not in r.stdout                       # the same data settings as the run's
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    a, b = (next(row for row in res["rows"] if row["name"] == k) for k in ("gumbel-a", "gumbel-b"))
    assert a["values"] == b["values"] and a["protocol"]["bleu"]["n_references"] == 20   # the same samples, protocol
    assert a["values"]["uniqueness"] == len(set(ganforge.load(run).sample(30, seed=0))) / 30
    # a run of other data settings is scored with a note; a run of another dataset is refused
    r = subprocess.run(bench + sets + ["--set", "data.heldout=0.2", "--runs", str(run)], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0 and "# note: gumbel-a: the run's data settings differ" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(bench[:2] + ["words", "--set", f"data.path={lines}"] + bench[3:] + ["--runs", str(run)],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2 and "the run was trained on 'text' data" in r.stderr, r.stdout + r.stderr


def test_the_mle_benchmark_traces_truncation_curves_and_the_code_space_fd(lines, tmp_path):
    """--truncations gives each run one point per latent truncation; --codes scores every row's code_fd in an arae
    run's code space (the real row too), and refuses a run without that autoencoder."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    over = [o for o in _overrides(lines, tmp_path) if o != f"data.cache_dir={tmp_path / 'cache'}"]
    arae = [o for o in _arae_overrides(lines, tmp_path) if o != f"data.cache_dir={tmp_path / 'cache'}"]
    run = ganforge.train(None, overrides=arae, out=tmp_path / "arae-a", progress=False)
    gumbel = ganforge.train(None, overrides=over, out=tmp_path / "gumbel-a", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANFORGE_CACHE": str(tmp_path / "cache")}
    bench = [sys.executable, str(root / "benchmarks" / "text.py"), "text", "--steps", "3", "--n", "30",
             "--temperatures", "1.0", "--refs", "20", "--self-n", "20", "--hidden", "16"]
    bench += [a for o in over if o.startswith("data.") and o != "data.name=text" for a in ("--set", o)]
    r = subprocess.run(bench + ["--runs", str(run), "--truncations", "1,0.5", "--codes", str(run),
                                "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = [line.split("|")[1].strip() for line in r.stdout.splitlines() if line.startswith("| ")]
    assert rows == ["point", "real (held-out)", "MLE T=1", "arae-a", "arae-a psi=0.5"]
    assert "code FD" in r.stdout
    res = {row["name"]: row for row in json.loads((tmp_path / "o" / "results.json").read_text())["rows"]}
    assert all(row["values"]["code_fd"] >= 0 for row in res.values())
    assert res["arae-a psi=0.5"]["group"] == "arae-a"
    assert res["arae-a psi=0.5"]["values"]["uniqueness"] == len(set(ganforge.load(run).sample(
        30, seed=0, truncation=0.5))) / 30
    real = res["real (held-out)"]["protocol"]
    assert real["code_fd"]["n_samples"] == real["length"]["n_samples"] > 0  # every real line scored
    r = subprocess.run(bench + ["--codes", str(gumbel)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2 and "not a text run of the 'arae' family" in r.stderr, r.stdout + r.stderr


def test_code_fd_is_the_frechet_distance_of_the_runs_codes(lines, tmp_path):
    """code_fd = frechet_codes of the named arae run's codes of the samples and of the held-out lines; a missing
    run, a run of another family and one of other data each get one clear message."""
    parts = _parts(lines, tmp_path)
    tr, te = parts["train"], parts["test"]
    run = ganforge.train(None, overrides=_arae_overrides(lines, tmp_path), out=tmp_path / "arae", progress=False)
    fake = te.info["lines"][:15] + tr.info["lines"][:15]
    res = evaluate(fake, tr, ["code_fd"], seed=0, heldout=te, options={"code_fd": {"run": str(run)}})["code_fd"]
    g = ganforge.load(run)
    want = tm.frechet_codes(g.encode_text(fake), g.encode_text(te.info["lines"]))[0]["fd"]
    assert res.values == {"code_fd": pytest.approx(want, rel=1e-9)}
    assert res.protocol["n_samples"] == 30 and res.protocol["references"] == "held-out lines"
    with pytest.raises(GanforgeError, match="metrics.code_fd.run: name the 'arae' run"):
        evaluate(fake, tr, ["code_fd"], heldout=te)
    gumbel = ganforge.train(None, overrides=_overrides(lines, tmp_path), out=tmp_path / "gumbel", progress=False)
    with pytest.raises(GanforgeError, match="is not an 'arae' text run"):
        evaluate(fake, tr, ["code_fd"], heldout=te, options={"code_fd": {"run": str(gumbel)}})
    with pytest.raises(GanforgeError, match="metrics.code_fd.run: .*(no such|does not exist|not found)"):
        evaluate(fake, tr, ["code_fd"], heldout=te, options={"code_fd": {"run": str(tmp_path / "nothing")}})
