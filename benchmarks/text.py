"""The maximum-likelihood baseline for text GANs: a small LSTM language model over a temperature sweep.

"Language GANs Falling Short" (Caccia et al., ICLR 2020, https://arxiv.org/abs/1811.02549): a plain language
model trained by maximum likelihood and sampled at temperature T (softmax(logits / T)) traces a quality-diversity
curve (BLEU against held-out text vs self-BLEU among its samples) that the published text GANs sit below; a
text GAN is worth having only if it beats this curve. This script trains that model on a text dataset's training
split (a character or subword LSTM, a few CPU minutes), samples `--n` lines at each temperature, scores each
point with ganforge.metrics.text, prints a table beside the real data's own row, and saves the curve as a PNG:
BLEU-4 vs self-BLEU-4 (lower self-BLEU = more diverse) and, for `words`, the held-out-valid rate (novel samples
that are real English words the model never saw) vs uniqueness.

Protocol: BLEU references are one seeded draw of `--refs` (500, Texygen's fast mode) held-out lines, the same for
every row. The real row's "samples" are `--n` other held-out lines (so no hypothesis is among its references): what
a perfect model, one that draws from the data's distribution, would score with this protocol.

    python benchmarks/text.py words                       # 2 minutes of training, 7 temperatures, 1,000 samples each
    python benchmarks/text.py sentences --minutes 4 --out runs/text-sentences
    python benchmarks/text.py text --set data.path=my_lines.txt --runs gan_points.json

`--runs RUN_DIR|FILE.json ...` adds points (e.g. GAN runs) to the table and the plot, scored with the same protocol
(the same references, the same `--n` and `--self-n`) as the MLE points. A ganforge run directory is a point by
itself: its exported generator (RUN_DIR/generator) samples `--n` strings (seed `--seed`), named after the folder:

    python benchmarks/text.py words --runs runs/words-gumbel                  # from `ganforge train words-gumbel`
    python benchmarks/text.py words --runs runs/gumbel-a runs/gumbel-b gan_points.json

A JSON file lists points:

    {"points": [
      {"name": "gumbel", "run": "runs/words-gumbel"},                 # a ganforge run; path relative to FILE
      {"name": "seqgan", "samples": "seqgan_samples.txt"},             # one sample per line; path relative to FILE
      {"name": "paper", "values": {"bleu4": 0.29, "self_bleu4": 0.67}}   # numbers already computed (not re-checked)
    ]}

(a bare list of points is accepted too). With `samples`, the first `--n` lines are scored here; `values` may hold
any of the table's keys (bleu2..5, self_bleu2..5, novelty, uniqueness, heldout_valid, heldout_found, length_tv).
A run must be a text run of the same dataset (`data.name`); when its other data settings differ from this
script's (data.path, data.heldout, data.max_len, ...), a note says so: a run that trained on some of these held-out
lines would score too well on BLEU and the valid rate. Pass the run's settings with `--set` to compare like with like.
`--out DIR` keeps results.json (every row with its metrics' protocols), the plot text_<dataset>.png and the samples.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from ganforge.components import resolve  # noqa: E402
from ganforge.data.text import text_splits, tokenizer_of  # noqa: E402
from ganforge.data.tokenize import EOS, PAD  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.models import MODELS  # noqa: E402
from ganforge.metrics.text import N_REFERENCES, N_SELF, ORDERS, frechet_codes, text_metrics  # noqa: E402
from ganforge.utils.device import cpu_description  # noqa: E402

TEMPERATURES = (0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.3)
KEYS = [f"bleu{n}" for n in ORDERS] + [f"self_bleu{n}" for n in ORDERS] + ["novelty", "uniqueness", "heldout_valid",
                                                                             "heldout_found", "length_tv", "code_fd"]


class LSTMLM(nn.Module):
    """Embedding -> LSTM -> logits over the vocabulary; the input at step t is the token at t - 1 (EOS at t = 0)."""

    def __init__(self, vocab: int, emb: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.emb = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, inp: torch.Tensor, state=None):
        h, state = self.rnn(self.drop(self.emb(inp)), state)      # [B, T, H]
        return self.out(self.drop(h)), state                      # [B, T, V]


def shifted(x: torch.Tensor) -> torch.Tensor:
    """Targets [B, L] -> inputs [B, L]: EOS (as start symbol), then the targets but the last."""
    return torch.cat([torch.full_like(x[:, :1], EOS), x[:, :-1]], 1)


def nll(model: LSTMLM, x: torch.Tensor, batch: int = 512) -> float:
    """Mean negative log-likelihood per token (EOS included, PAD not) in nats."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            t = x[i:i + batch]
            logits, _ = model(shifted(t))
            total += float(F.cross_entropy(logits.transpose(1, 2), t, ignore_index=PAD, reduction="sum"))
            count += int((t != PAD).sum())
    return total / max(count, 1)


def train_lm(x: torch.Tensor, vocab: int, a, seed: int) -> tuple[LSTMLM, dict]:
    """Maximum likelihood on x (int64 [N, L]) for a.minutes of wall clock or a.steps steps, whichever ends first."""
    torch.manual_seed(seed)
    model = LSTMLM(vocab, a.emb, a.hidden, a.layers, a.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    gen = torch.Generator().manual_seed(seed)
    perm, pos, step, t0, losses = torch.randperm(len(x), generator=gen), 0, 0, time.perf_counter(), []
    model.train()
    while (not a.steps or step < a.steps) and time.perf_counter() - t0 < a.minutes * 60:
        if pos + a.batch > len(x):
            perm, pos = torch.randperm(len(x), generator=gen), 0
        t = x[perm[pos:pos + a.batch]]                            # [B, L]
        pos += a.batch
        t = t[:, : int((t != PAD).sum(1).max())]                  # drop the all-PAD tail of the minibatch
        logits, _ = model(shifted(t))
        loss = F.cross_entropy(logits.transpose(1, 2), t, ignore_index=PAD)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            losses.append(float(loss.detach()))
    secs = time.perf_counter() - t0
    return model, dict(steps=step, seconds=round(secs, 1), epochs=round(step * a.batch / len(x), 2),
                       lines_per_s=round(step * a.batch / max(secs, 1e-9)),
                       last_train_nll=losses[-1] if losses else None)


@torch.no_grad()
def sample_lm(model: LSTMLM, n: int, length: int, temperature: float, seed: int, batch: int = 500) -> torch.Tensor:
    """n sequences int64 [n, length] sampled from softmax(logits / T), one token at a time; PAD after EOS."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        b = min(batch, n - i)
        tok, state = torch.full((b, 1), EOS, dtype=torch.int64), None
        rows, done = [], torch.zeros(b, dtype=torch.bool)
        for _ in range(length):
            logits, state = model(tok, state)
            logits = logits[:, -1] / temperature
            logits[:, PAD] = -math.inf                            # PAD is never a target: never sampled
            tok = torch.multinomial(F.softmax(logits, -1), 1, generator=gen)   # [b, 1]
            rows.append(torch.where(done[:, None], torch.full_like(tok, PAD), tok))
            done |= tok[:, 0] == EOS
            if done.all():
                break
        x = torch.cat(rows, 1)
        out.append(F.pad(x, (0, length - x.shape[1]), value=PAD))
    return torch.cat(out)


class Coder:
    """The code-space judge (--codes RUN): the encoder of a trained `arae` run maps lines to its codes, and a row's
    code_fd is the Fréchet distance between its samples' codes and those of the held-out lines no row samples
    (metrics/text.py frechet_codes). A line longer than the run's rows is cut to fit (its first max_len - 1 tokens)."""

    def __init__(self, run: Path, dataset: str):
        import ganforge

        g = ganforge.load(run)
        if g.kind != "text" or not MODELS.get(g.model.arch).latent:
            raise GanforgeError(f"--codes {run}: not a text run of the 'arae' family (the code space is its "
                                f"autoencoder's); train one with `ganforge train {dataset}-arae`")
        if g.meta.get("config", {}).get("data", {}).get("name") != dataset:
            raise GanforgeError(f"--codes {run}: trained on other data than {dataset!r}")
        self.g, self.run = g, run

    def __call__(self, lines: list[str]) -> torch.Tensor:
        return torch.from_numpy(self.g.encode_text(list(lines), batch=1000))


def score(samples: list[str], train: list[str], heldout: list[str], refs: list[str], tokens: str, a,
          codes: tuple | None = None) -> dict:
    m = text_metrics(samples, train, heldout, tokens, references=refs, n_self=a.self_n, valid=True)
    if codes is not None:  # (coder, the reference lines' codes)
        m["code_fd"] = frechet_codes(codes[0](samples), codes[1], what=f"the encoder of {codes[0].run}")
        m["code_fd"] = ({"code_fd": m["code_fd"][0]["fd"]}, m["code_fd"][1])
    values = {k: v for vals, _ in m.values() for k, v in vals.items()}
    return dict(values=values, protocol={k: p for k, (_, p) in m.items()})


def run_points(run: Path, name: str, n: int, seed: int, data_cfg, truncations=(None,)) -> list[dict]:
    """A ganforge run directory -> points: `n` strings sampled from its exported generator (seed `seed`), one point
    per latent truncation (None: the prior itself; psi < 1 draws latents nearer the prior's centre, the GAN's
    quality-diversity knob as temperature is the language model's)."""
    import dataclasses

    import ganforge
    from ganforge.config import Config, to_dict
    from ganforge.data.text import TextOptions

    g = ganforge.load(run)
    if g.kind != "text":
        raise GanforgeError(f"--runs {run}: a {g.kind} run; this benchmark scores text runs")
    trained = g.meta.get("config", {}).get("data", {})
    if trained.get("name") != data_cfg.name:
        raise GanforgeError(f"--runs {run}: the run was trained on {trained.get('name')!r} data, this benchmark "
                            f"scores {data_cfg.name!r}; run `python benchmarks/text.py {trained.get('name')}`")
    ours = to_dict(Config(data=data_cfg))["data"]   # flat, as the run's config.json holds it
    lines_keys = ("path", "split", "max_items", *(f.name for f in dataclasses.fields(TextOptions)))  # what makes
    differ = sorted(k for k in lines_keys if k in trained and k in ours and trained[k] != ours[k])  # the lines
    note = (f"the run's data settings differ from this benchmark's in {', '.join(differ)} (run: "
            f"{ {k: trained[k] for k in differ} }); pass them with --set to compare like with like") if differ else ""
    return [dict(name=name if psi is None else f"{name} psi={psi:g}", group=name,
                 samples=g.sample(n, seed=seed, truncation=psi), note=note,
                 source=f"{run} (generator at {g.meta.get('nimg', 0) / 1000:g} kimg, seed {seed}"
                        f"{'' if psi is None else f', truncation {psi:g}'})") for psi in truncations]


def read_runs(path: Path, n: int, seed: int = 0, data_cfg=None, truncations=(None,)) -> list[dict]:
    if path.is_dir():
        return run_points(path, path.resolve().name, n, seed, data_cfg, truncations)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GanforgeError(f"--runs {path}: cannot read it as JSON ({e}); give a JSON file of points or a ganforge "
                            "run directory") from None
    points = doc.get("points") if isinstance(doc, dict) else doc
    if not isinstance(points, list) or not all(isinstance(p, dict) and "name" in p and sum(
            k in p for k in ("samples", "values", "run")) == 1 for p in points):
        raise GanforgeError(f"--runs {path}: expected {{\"points\": [{{\"name\": ..., \"samples\": FILE}}, "
                            f"{{\"name\": ..., \"run\": RUN_DIR}} or {{\"name\": ..., \"values\": {{...}}}}, ...]}}")
    out = []
    for p in points:
        if "run" in p:
            out += run_points((path.parent / p["run"]).expanduser(), str(p["name"]), n, seed, data_cfg, truncations)
        elif "samples" in p:
            f = (path.parent / p["samples"]).expanduser()
            try:
                lines = f.read_text(encoding="utf-8").split("\n")
            except (OSError, UnicodeDecodeError) as e:
                raise GanforgeError(f"--runs {path}: point {p['name']!r}: cannot read {f} ({e})") from None
            lines = [" ".join(s.split()) for s in lines]
            if lines and lines[-1] == "":
                lines.pop()
            out.append(dict(name=str(p["name"]), samples=lines[:n], source=str(f)))
        else:
            bad = [k for k in p["values"] if k not in KEYS]
            if bad:
                raise GanforgeError(f"--runs {path}: point {p['name']!r}: unknown value(s) {bad}; known: {KEYS}")
            out.append(dict(name=str(p["name"]), values={k: float(v) for k, v in p["values"].items()},
                            source="given"))
    return out


def fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def print_table(rows: list[dict], words: bool) -> None:
    codes = any("code_fd" in r["values"] for r in rows)
    cols = [f"BLEU-{n}" for n in ORDERS] + [f"SBLEU-{n}" for n in ORDERS] + ["novel", "unique"] + (
        ["valid", "found"] if words else []) + ["len TV"] + (["code FD"] if codes else [])
    keys = [k for k in KEYS if (words or not k.startswith("heldout")) and (codes or k != "code_fd")]
    print("| point | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for r in rows:
        print(f"| {r['name']} | " + " | ".join(fmt(r["values"].get(k)) for k in keys) + " |")


def plot(rows: list[dict], words: bool, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    panels = [("self_bleu4", "bleu4", "self-BLEU-4 (lower = more diverse)", "BLEU-4 vs held-out (quality)")]
    if words:
        panels.append(("uniqueness", "heldout_valid", "uniqueness (distinct / samples)",
                       "held-out valid (novel samples: unseen real words)"))
    fig = Figure(figsize=(5.5 * len(panels), 4.6), dpi=100)
    for i, (kx, ky, lx, ly) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        lm = [r for r in rows if r["kind"] == "lm" and kx in r["values"] and ky in r["values"]]
        if lm:
            ax.plot([r["values"][kx] for r in lm], [r["values"][ky] for r in lm], "o-", c="tab:blue",
                    label="MLE LSTM, temperature sweep")
            for r in lm:
                ax.annotate(f"T={r['temperature']:g}", (r["values"][kx], r["values"][ky]), textcoords="offset points",
                            xytext=(4, 4), fontsize=7)
        groups: dict[str, list[dict]] = {}  # a run's points (one per truncation) as one line
        for r in rows:
            if r["kind"] != "lm" and kx in r["values"] and ky in r["values"]:
                groups.setdefault(r.get("group", r["name"]), []).append(r)
        for name, pts in groups.items():
            real = pts[0]["kind"] == "real"
            ax.plot([r["values"][kx] for r in pts], [r["values"][ky] for r in pts], ("*" if real else "s") + "--",
                    ms=12 if real else 7, lw=0.8, c="black" if real else None, label=name)
            for r in pts:
                if r["name"] != name:
                    ax.annotate(r["name"][len(name):].strip(), (r["values"][kx], r["values"][ky]),
                                textcoords="offset points", xytext=(4, -9), fontsize=6)
        if ky == "heldout_valid":
            ax.set_yscale("log")   # a model's rate is a few percent; the real row's is 1 by construction
        ax.set_xlabel(lx)
        ax.set_ylabel(ly)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", default="words", help="a text dataset: words, sentences or text")
    ap.add_argument("--set", action="append", default=[], help="a data.* override, e.g. data.max_len=12")
    ap.add_argument("--minutes", type=float, default=2.0, help="training budget in minutes (default 2)")
    ap.add_argument("--steps", type=int, default=0, help="stop training after this many steps (0: the budget only)")
    ap.add_argument("--temperatures", default=",".join(map(str, TEMPERATURES)), help="comma-separated")
    ap.add_argument("--n", type=int, default=1000, help="samples scored per temperature (default 1,000)")
    ap.add_argument("--refs", type=int, default=N_REFERENCES, help="held-out lines as BLEU references (500)")
    ap.add_argument("--self-n", type=int, default=N_SELF, help="samples in self-BLEU (500)")
    ap.add_argument("--runs", type=Path, nargs="+", action="extend", default=[],
                    help="ganforge run directories and/or JSON files of extra points (see above)")
    ap.add_argument("--truncations", default="1", help="comma-separated latent truncations for each run's points "
                    "(1 = none; e.g. 1,0.7,0.5 traces a GAN's own quality-diversity curve)")
    ap.add_argument("--codes", type=Path, default=None, help="an `arae` run of this dataset: its encoder is the "
                    "code space of the code_fd column (every row, the real one included)")
    ap.add_argument("--out", type=Path, default=None, help="write results.json, the plot and samples here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--emb", type=int, default=0, help="embedding size (0: 32 for char tokens, 64 for subwords)")
    ap.add_argument("--hidden", type=int, default=0, help="LSTM width (0: 256)")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    try:
        run(a)
    except GanforgeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run(a) -> None:
    t_start = time.perf_counter()
    cfg = resolve(None, [f"data.name={a.dataset}", *a.set]).data
    parts = text_splits(cfg)
    tr, te = parts["train"], parts["test"]
    if len(te) < 2:
        raise GanforgeError(f"{a.dataset}: the held-out split has {len(te)} line(s); raise data.heldout")
    tok, info = tokenizer_of(tr), tr.info
    tokens, words = info["metric_tokens"], a.dataset == "words"
    char = info["tokenizer_kind"] == "char"
    a.emb, a.hidden = a.emb or (32 if char else 64), a.hidden or 256
    train_lines, held = info["lines"], te.info["lines"]
    # one seeded draw of BLEU references, the same for every row; the real row's samples are other held-out lines
    order = np.random.default_rng(a.seed).permutation(len(held))
    n_refs = min(a.refs, len(held) // 2)
    refs = [held[i] for i in sorted(order[:n_refs])]
    real = [held[i] for i in order[n_refs:n_refs + a.n]]
    print(f"# {a.dataset}: {info['source']}; {len(tr)} train / {len(te)} held-out lines; {info['tokenizer_kind']} "
          f"tokens, vocabulary {info['vocab_size']}, max_len {info['max_len']}; metrics on {tokens}; "
          f"{n_refs} BLEU references; data {time.perf_counter() - t_start:.0f} s")

    codes = None
    if a.codes is not None:  # the FD's references: every held-out line but the real row's samples
        coder = Coder(a.codes, a.dataset)
        others = [held[i] for i in sorted(np.concatenate([order[:n_refs], order[n_refs + a.n:]]))]
        codes = (coder, coder(others))
        print(f"# code_fd: the encoder of {a.codes}; {len(others)} held-out lines as references")
    truncations = [None if float(t) == 1 else float(t) for t in a.truncations.split(",")]
    model, stats = train_lm(tr.x, info["vocab_size"], a, a.seed)
    held_nll = nll(model, te.x)
    print(f"# LSTM LM (emb {a.emb}, hidden {a.hidden}, {a.layers} layer(s), "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params): {stats['steps']} steps of "
          f"{a.batch} in {stats['seconds']} s ({stats['epochs']} epochs, {stats['lines_per_s']} lines/s, "
          f"{a.threads} thread(s)); held-out NLL {held_nll:.3f} nats/token (perplexity {math.exp(held_nll):.1f})")

    rows = []
    t0 = time.perf_counter()
    rows.append(dict(name="real (held-out)", kind="real", **score(real, train_lines, held, refs, tokens, a, codes)))
    print(f"# real row scored in {time.perf_counter() - t0:.0f} s ({len(real)} lines)")
    samples_of = {}
    for i, temp in enumerate(float(t) for t in a.temperatures.split(",")):
        t0 = time.perf_counter()
        lines = tok.decode(sample_lm(model, a.n, info["max_len"], temp, a.seed + 1 + i))
        samples_of[f"T={temp:g}"] = lines
        rows.append(dict(name=f"MLE T={temp:g}", kind="lm", temperature=temp,
                         **score(lines, train_lines, held, refs, tokens, a, codes)))
        print(f"# T={temp:g}: sampled and scored in {time.perf_counter() - t0:.0f} s; e.g. {lines[:4]}")
    for runs in a.runs:
        for p in read_runs(runs, a.n, a.seed, cfg, truncations):
            if p.get("note"):
                print(f"# note: {p['name']}: {p['note']}")
            if "samples" in p:
                t0 = time.perf_counter()
                rows.append(dict(name=p["name"], kind="run", source=p["source"], group=p.get("group", p["name"]),
                                 **score(p["samples"], train_lines, held, refs, tokens, a, codes)))
                print(f"# {p['name']}: {len(p['samples'])} samples scored in {time.perf_counter() - t0:.0f} s; e.g. "
                      f"{p['samples'][:4]}")
            else:
                rows.append(dict(name=p["name"], kind="run", source=p["source"], values=p["values"]))

    print()
    print_table(rows, words)
    total = time.perf_counter() - t_start
    cpu = cpu_description()
    print(f"\n# {a.n} samples per row; total {total / 60:.1f} min on {cpu}, torch {torch.__version__}, "
          f"{a.threads} thread(s)")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        png = a.out / f"text_{a.dataset}.png"
        plot(rows, words, f"{a.dataset}: MLE LSTM temperature sweep vs real held-out data\n"
                          f"({a.n} samples per point, {n_refs} BLEU references)", png)
        for name, lines in samples_of.items():
            (a.out / f"samples_{name.replace('=', '')}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = dict(dataset=a.dataset, data=dict(info, lines=None, tokenizer=None), model=dict(
            emb=a.emb, hidden=a.hidden, layers=a.layers, dropout=a.dropout, batch=a.batch, lr=a.lr, **stats,
            heldout_nll=held_nll), n=a.n, seed=a.seed, cpu=cpu, threads=a.threads, seconds=round(total, 1), rows=rows)
        (a.out / "results.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"# wrote {png} and {a.out / 'results.json'}")


if __name__ == "__main__":
    main()
