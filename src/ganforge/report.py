"""One self-contained HTML report of a run: config, training curves, sample grids across training, metrics.

    write_report(run_dir)  ->  RUN_DIR/report.html

It reads only the files a run leaves (config.yaml, log.jsonl, samples/*.png, generator/config.json and, when the
eval command wrote one, metrics.jsonl or metrics.json): no torch, no dataset, no training code. This module decides
what to show and draws the plots (matplotlib's Agg renderer, via ganforge.utils.plots); the page itself is the
packaged Jinja2 template ganforge/templates/report.html.j2 (its style sheet report.css is inlined), rendered with
autoescape from plain data. Plots and sample grids are embedded as base64 PNGs: the file loads no external resource
(no CDN, font or script), so it can be mailed, archived or opened offline as it is.

The training curves follow the statistics by name (ganforge.utils.statinfo): each one's group puts it in the
losses, D-output, throughput or instance-noise figure, and a statistic of no group gets its own plot under
"Other statistics", so a new statistic in training needs no change here.

log.jsonl is read as the loop writes it: after `--resume` from an older checkpoint the later ticks are re-run, so a
"resume" line drops the ticks past its point and, per nimg, the last tick record wins; "diverged" lines become a
warning at the top and a red line in the plots.
"""
from __future__ import annotations

import base64
import datetime as _dt
import functools
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from .errors import GanforgeError
from .utils.files import atomic_write, read_json
from .utils.plots import line_plot_png
from .utils.statinfo import STATS, info, statistics_of

SAMPLE_RE = re.compile(r"^tick-(\d+)-kimg-([0-9.]+)\.png$")
TEXT_SAMPLE_RE = re.compile(r"^tick-(\d+)-kimg-([0-9.]+)\.txt$")  # text runs: decoded samples per tick
MAX_TEXT_LINES = 32       # text samples shown (of the last tick's file)
MAX_SAMPLES = 9           # up to 8 evenly spaced grids plus the last
MAX_SAMPLE_PX = 1024      # larger sample grids are downscaled before embedding, to keep the file small
D_COLOR, G_COLOR = "#1f77b4", "#ff7f0e"
# Line colours of the statistics that have one; any other takes the PALETTE colour of its place in its figure.
COLORS = {"loss_d": D_COLOR, "loss_g": G_COLOR, "penalty": "#2ca02c", "d_real": D_COLOR, "d_fake": G_COLOR,
          "d_real_logit": D_COLOR, "d_fake_logit": G_COLOR, "img_per_s": "#555555", "noise_std": "#9467bd"}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
MAIN_LOSSES = ("loss_d", "loss_g")  # always in the losses figure; the group's others only when non-zero somewhere
FIGURE_GROUPS = ("losses", "probability", "logits", "speed", "noise")  # statinfo groups with a figure of their own
TEMPLATE = "report.html.j2"
GENERATOR_TAG = b'<meta name="generator" content="ganforge report">'  # in the template's head: marks our files


@dataclass
class RunLog:
    """log.jsonl after resolving resumes: ticks sorted by nimg (the last record per nimg), and the events."""

    ticks: list[dict]
    resumes: list[dict] = field(default_factory=list)
    diverged: list[dict] = field(default_factory=list)
    alarms: list[dict] = field(default_factory=list)     # health alarms (training.health): mode collapse, ...
    resumed_after: list[bool] = field(default_factory=list)  # per diverged record: whether a resume followed it
    bad_lines: list[int] = field(default_factory=list)   # 1-based line numbers that were not JSON objects


def read_log(run_dir: str | Path) -> RunLog:
    """Parse RUN_DIR/log.jsonl; a missing or empty log is a GanforgeError."""
    run_dir = Path(run_dir)
    path = run_dir / "log.jsonl"
    if not path.is_file():
        raise GanforgeError(f"{path} not found: {str(run_dir)!r} is not a ganforge run directory, or its run has "
                            "not finished a tick yet (the loop writes log.jsonl at every tick)")
    ticks: dict[int, dict] = {}
    log = RunLog(ticks=[])
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)  # accepts NaN / Infinity, which a diverged line holds
        except ValueError:
            log.bad_lines.append(i)  # e.g. a last line cut short by a crash
            continue
        if not isinstance(rec, dict):
            log.bad_lines.append(i)
            continue
        event = rec.get("event", "tick")
        if event == "resume":
            # Ticks past the resume point belong to a branch the resumed run replaces.
            at = _nimg(rec)
            if at is not None:
                ticks = {n: r for n, r in ticks.items() if n <= at}
            log.resumes.append(rec)
            log.resumed_after = [True] * len(log.diverged)
        elif event == "alarm":
            log.alarms.append(rec)
        elif event == "diverged":
            log.diverged.append(rec)
            log.resumed_after.append(False)
        elif event == "tick":
            n = _nimg(rec)
            if n is not None:
                ticks.pop(n, None)
                ticks[n] = rec
        # other events: ignored, so that a newer writer does not break an older report
    log.ticks = [ticks[n] for n in sorted(ticks)]
    if not log.ticks and not log.diverged:
        extra = f" ({len(log.bad_lines)} unreadable line(s))" if log.bad_lines else ""
        raise GanforgeError(f"{path} holds no tick records{extra}; the first one is written after "
                            "train.tick_kimg thousand images")
    return log


def write_report(run_dir: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Path:
    """Write one self-contained HTML report of a run (default RUN_DIR/report.html); returns its path. An existing
    file is replaced only when it is a ganforge report, or with overwrite=True."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GanforgeError(f"run directory {str(run_dir)!r} not found")
    if not run_dir.is_dir():
        raise GanforgeError(f"{str(run_dir)!r} is not a directory; give a run directory (it holds log.jsonl)")
    log = read_log(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir():
        out = out / "report.html"
    if out.is_file() and not overwrite and not _is_report(out):
        raise GanforgeError(f"{out} exists and is not a ganforge report; choose another --out, or pass --overwrite")
    page = render_report(run_dir, log)
    atomic_write(out, page)
    return out


def _is_report(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return GENERATOR_TAG in f.read(4096)
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------------------
# the page: what to show, as plain data for the template


def render_report(run_dir: Path, log: RunLog) -> str:
    """The report as one HTML string."""
    name = run_dir.resolve().name
    cfg_text, cfg = _read_config(run_dir)
    gen_meta = read_json(run_dir / "generator" / "config.json")
    metric_rows, metric_notes = _read_metrics_files(run_dir)
    samples, sample_notes = _samples(run_dir, log)
    text_samples = _text_samples(run_dir, log)
    encoder = _encoder(run_dir)

    notes: list[dict] = []  # {cls: warn | info, kind: what the template writes, its fields}
    for d, later in zip(log.diverged, log.resumed_after, strict=True):
        bad = [k for k, v in d.items() if isinstance(v, float) and not math.isfinite(v)]
        notes.append({"cls": "warn", "kind": "diverged", "kimg": f"{_kimg(d):.3f}", "tick": d.get("tick", "?"),
                      "bad": ", ".join(bad) or "G weights", "resumed": later})
    if log.bad_lines:
        where = ", ".join(map(str, log.bad_lines[:8])) + (" ..." if len(log.bad_lines) > 8 else "")
        notes.append({"cls": "warn", "kind": "bad_lines", "count": len(log.bad_lines), "where": where})
    for a in log.alarms:
        notes.append({"cls": "warn", "kind": "alarm", "kimg": f"{_kimg(a):.3f}", "message": str(a.get("message", "")),
                      "fix": str(a.get("fix", ""))})
    for r in log.resumes:
        notes.append({"cls": "info", "kind": "resumed", "kimg": f"{_kimg(r):.3f}", "source": r.get("from", "?")})
    target = _get(cfg, "train", "kimg")
    if log.ticks and _is_num(target) and _kimg(log.ticks[-1]) + 1e-9 < target and not log.diverged:
        notes.append({"cls": "info", "kind": "unfinished", "kimg": f"{_kimg(log.ticks[-1]):.3f}",
                      "target": f"{target:g}", "run_dir": str(run_dir)})
    if cfg_text is None:
        notes.append({"cls": "warn", "kind": "no_config"})
    notes += sample_notes + [{"cls": "warn", "kind": "text", "text": n} for n in metric_notes]

    return _template().render(
        name=name, run_path=str(run_dir.resolve()), generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        notes=notes, summary=_summary(log, cfg, gen_meta), metrics=_metrics(metric_rows), curves=_curves(log),
        samples=samples, text_samples=text_samples, encoder=encoder, config=_config(cfg_text, cfg))


ENCODER_FIGURES = (("reconstructions.png", "Reconstructions of held-out images (training images when the dataset has "
                    "no held-out split): the images, G(E(x)), then G(z) after refining E(x)"),
                   ("interpolation.png", "Interpolation between pairs of real images: each row starts at one image "
                    "and ends at another, the generator's samples along the path between their codes"),
                   ("edits.png", "Class-direction edits: each row is a real image moved toward the next class, "
                    "along the difference of the two classes' mean codes"))


def _encoder(run_dir: Path) -> dict | None:
    """The fitted encoder's figures and numbers (RUN/encoder/*.png, generator/encoder.json), or None."""
    meta = read_json(run_dir / "generator" / "encoder.json")
    figs = []
    for name, caption in ENCODER_FIGURES:
        got = _sample_png(run_dir / "encoder" / name) if (run_dir / "encoder" / name).is_file() else None
        if got is not None:
            figs.append({"alt": name, "png": _b64(got[0]), "cls": "sample grid", "caption": caption})
    if not figs and not isinstance(meta, dict):
        return None
    meta = meta if isinstance(meta, dict) else {}
    refined = next((k for k in meta if k.startswith("mse_refined_")), None)
    line = ""
    if _is_num(meta.get("mse_encoder")):
        line = (f"Mean squared error (model range) on {meta.get('evaluated_on', '?')}: "
                f"{meta['mse_encoder']:.4g} with E alone" + (f", {meta[refined]:.4g} after "
                                                           f"{refined.rsplit('_', 1)[-1]} refinement steps"
                                                           if refined and _is_num(meta[refined]) else "") + ".")
    return {"figs": figs, "line": line, "seconds": meta.get("seconds")}


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("ganforge", "templates"), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE)


def _summary(log: RunLog, cfg: dict | None, gen_meta: Any) -> list[dict]:
    """Rows {key, text, code: a <code> part before the text} or, for the last tick, {key, stats}."""
    last = log.ticks[-1] if log.ticks else (log.diverged[-1] if log.diverged else {})
    rows: list[dict] = []

    def row(key: str, text: str, code: str = "") -> None:
        rows.append({"key": key, "text": text, "code": code})

    if cfg:
        if cfg.get("preset"):
            row("preset", str(cfg["preset"]) + (f" \u2014 {cfg['description']}" if cfg.get("description") else ""))
        d, m, lo, o = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "model", "loss", "optim"))
        if d:
            row("data", ", ".join([str(d.get("name", "?"))] + _present(d, resolution="resolution {}",
                                                                      width="width {}", path="path {}")))
        if m:
            row("model", ", ".join([str(m.get("arch", "?"))] + _present(
                m, z_dim="z_dim {}", prior="prior {}", g_width="G width {}", d_width="D width {}", pack="pack {}")))
        if lo:
            extra = [f"{k} {v}" for k, v in lo.items()  # the settings that are on (gp_weight -1: the loss's default)
                     if k != "name" and _is_num(v) and v > 0]
            row("loss", ", ".join([str(lo.get("name", "?"))] + extra))
        if o:
            row("optimiser", ", ".join([str(o.get("name", "?"))] + _present(
                o, g_lr="G lr {}", d_lr="D lr {}", g_betas="G betas {}", d_betas="D betas {}")))
    target = _get(cfg, "train", "kimg")
    if last:
        reach = f"{_kimg(last):.3f} kimg" + (f" of {target:g}" if _is_num(target) else "")
        row("trained", f"{reach}, {len(log.ticks)} tick(s)")
    if log.ticks:
        row("training time", _hms(_num(log.ticks[-1].get("time_s"))))
        speeds = sorted(v for v in (_num(t.get("img_per_s")) for t in log.ticks) if math.isfinite(v))
        if speeds:
            row("throughput", f"{speeds[len(speeds) // 2]:.1f} img/s (median over ticks)")
        rows.append({"key": "last tick", "stats": [
            {"name": k, "label": info(k).label, "doc": info(k).doc, "value": _stat_text(k, last[k])}
            for k in statistics_of(last)]})
    if isinstance(gen_meta, dict):
        n = gen_meta.get("nimg")
        row("exported generator", (f" at {n / 1000:.3f} kimg" if _is_num(n) else "")
            + f", ganforge {gen_meta.get('ganforge_version', '?')}", code="generator/")
    return rows


def _curves(log: RunLog) -> dict | None:
    """The training-curve figures {alt, png: base64} by statinfo group, or None when there is no tick."""
    ticks = log.ticks
    if not ticks:
        return None
    x = [_kimg(t) for t in ticks]
    marks = [(_kimg(r), "resume") for r in log.resumes] + [(_kimg(d), "diverged") for d in log.diverged]
    found = _statistics(ticks)

    def members(group: str) -> list[str]:  # the group's statistics in the log, else the ones STATS lists for it
        return [k for k in found if info(k).group == group] or [k for k, s in STATS.items() if s.group == group]

    def fig(alt: str, names: list[str], title: str, ylabel: str, dashed: tuple[str, ...] = (), **kw) -> dict:
        series = [(_legend(k), _col(ticks, k), _color(k, i), "--" if k in dashed else "-")
                  for i, k in enumerate(names)]
        return {"alt": alt, "png": _b64(line_plot_png(x, series, title, ylabel, marks, **kw))}

    losses = [k for k in dict.fromkeys([*MAIN_LOSSES, *members("losses")])
              if k in MAIN_LOSSES or any(math.isfinite(v) and v != 0 for v in _col(ticks, k))]
    figs = [fig("Losses", losses, "Losses", "loss", dashed=tuple(k for k in losses if k not in MAIN_LOSSES))]
    probability = [k for k in found if info(k).group == "probability"]
    if probability:
        figs.append(fig("D(x), D(G(z))", probability, "D(x) and D(G(z))", "probability", ylim=(-0.02, 1.02)))
    else:
        figs.append(fig("D logits", members("logits"), "D's logits on real and generated samples", "logit"))
    figs.append(fig("Throughput", members("speed"), "Throughput", "images / s", ymin0=True))
    noise = members("noise")
    noise_on = any(math.isfinite(v) and v != 0 for k in noise for v in _col(ticks, k))
    if noise_on:
        figs.append(fig("Instance noise", noise, "Instance noise", "std", ymin0=True))

    other = []
    for k in found:
        if info(k).group not in FIGURE_GROUPS:
            label = info(k).label
            other.append({"alt": k, "png": _b64(line_plot_png(
                x, [(k, _col(ticks, k), _color(k, 0), "-")], k if label == k else f"{label}  ({k})", k, marks))})

    metric_names: list[str] = []
    for t in ticks:
        for m in (t.get("metrics") or {}) if isinstance(t.get("metrics"), dict) else {}:
            if m not in metric_names:
                metric_names.append(m)
    metric_figs = []
    for m in metric_names:
        values: list[str] = []
        for t in ticks:
            v = (t.get("metrics") or {}).get(m)
            for k in (v if isinstance(v, dict) else {m: v}):
                if k not in values:
                    values.append(k)
        series = [(k, [_metric_value(t, m, k) for t in ticks], PALETTE[i % len(PALETTE)], "-")
                  for i, k in enumerate(values)]
        metric_figs.append({"alt": f"metric {m}",
                            "png": _b64(line_plot_png(x, series, f"{m} (tick-time)", "value", marks))})
    return {"figs": figs, "noise_off": not noise_on, "other": other, "metrics": metric_figs, "marks": bool(marks)}


def _samples(run_dir: Path, log: RunLog) -> tuple[dict | None, list[dict]]:
    """({cells: [{alt, png, cls, tick, kimg, last}], total}, or None when there is no grid; notes)."""
    notes: list[dict] = []
    found = []
    for p in sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []:
        mt = SAMPLE_RE.match(p.name)
        if mt:
            found.append((float(mt.group(2)), int(mt.group(1)), p))
    found.sort()
    # Keep the grids of the ticks the log keeps (a resume from an older checkpoint leaves stale ones behind).
    kept = {(_int(t.get("tick")), round(_kimg(t), 2)) for t in log.ticks}
    current = [f for f in found if (f[1], round(f[0], 2)) in kept]
    found = current or found
    if not found:
        return None, notes
    if len(found) > MAX_SAMPLES:
        idx = sorted({round(i * (len(found) - 1) / (MAX_SAMPLES - 1)) for i in range(MAX_SAMPLES)})
        chosen = [found[i] for i in idx]
    else:
        chosen = found
    cells: list[dict] = []
    for kimg, tick, p in chosen:
        got = _sample_png(p)
        if got is None:
            notes.append({"cls": "warn", "kind": "damaged_sample", "file": p.name})
            continue
        png, grid = got
        cells.append({"alt": f"samples at {kimg:.2f} kimg", "png": _b64(png), "tick": tick, "kimg": f"{kimg:.2f}",
                      "last": p == found[-1][2],
                      # image grids keep hard pixel edges; scatter plots are smoothed
                      "cls": "sample grid" if grid else "sample"})
    return {"cells": cells, "total": len(found)}, notes


def _text_samples(run_dir: Path, log: RunLog) -> dict | None:
    """The last tick's text samples {tick, kimg, lines, total} (samples/tick-*.txt of a text run), or None."""
    found = []
    for p in (run_dir / "samples").glob("*.txt") if (run_dir / "samples").is_dir() else []:
        mt = TEXT_SAMPLE_RE.match(p.name)
        if mt:
            found.append((float(mt.group(2)), int(mt.group(1)), p))
    kept = {(_int(t.get("tick")), round(_kimg(t), 2)) for t in log.ticks}
    found = sorted([f for f in found if (f[1], round(f[0], 2)) in kept] or found)
    if not found:
        return None
    kimg, tick, p = found[-1]
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return {"tick": tick, "kimg": f"{kimg:.2f}", "lines": lines[:MAX_TEXT_LINES], "total": len(found)}


def _metrics(rows: list[dict]) -> dict | None:
    """{latest: the last evaluation per metric, all: every evaluation when there are more}, or None."""
    if not rows:
        return None
    latest: dict[str, dict] = {}
    for r in rows:
        latest[r["name"]] = r
    return {"latest": [_metric_row(r) for r in latest.values()],
            "all": [_metric_row(r) for r in rows] if len(rows) > len(latest) else []}


def _metric_row(r: dict) -> dict:
    vals, kimg, proto = r.get("values"), r.get("kimg"), r.get("protocol")
    return {"name": r["name"],
            "vals": [(str(k), _fmt(v)) for k, v in vals.items()] if isinstance(vals, dict) else None,
            "value": _fmt(vals),
            "kimg": _fmt(kimg) if kimg is not None else "",
            "protocol": [(k, _yaml_value(v)) for k, v in _flatten(proto)] if isinstance(proto, dict) else None,
            "protocol_text": str(proto) if proto is not None else ""}


def _config(text: str | None, cfg: dict | None) -> dict:
    """{text: config.yaml as it is (None when missing), sections: [{name, rows}] (None when it did not parse)}."""
    sections = None
    if cfg:
        sections = [{"name": str(s), "rows": [(str(k), _yaml_value(v)) for k, v in values.items()]}
                    for s, values in cfg.items() if isinstance(values, dict)]
    return {"text": text, "sections": sections}


# ---------------------------------------------------------------------------------------------------------------
# files


def _read_config(run_dir: Path) -> tuple[str | None, dict | None]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None, None
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        import yaml

        cfg = yaml.safe_load(text)
    except Exception:  # shown raw below; a report must not fail on a hand-edited config
        cfg = None
    return text, cfg if isinstance(cfg, dict) else None


def _read_metrics_files(run_dir: Path) -> tuple[list[dict], list[str]]:
    """Rows {name, values, protocol, kimg} from RUN_DIR/metrics.jsonl (one evaluation per line) and metrics.json."""
    rows: list[dict] = []
    notes: list[str] = []
    p = run_dir / "metrics.json"
    if p.is_file():
        obj = read_json(p)
        if obj is None:
            notes.append("metrics.json is not valid JSON and was left out.")
        else:
            rows += _metric_rows(obj, "metrics.json", notes)
    p = run_dir / "metrics.jsonl"
    if p.is_file():
        bad = 0
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                bad += 1
                continue
            rows += _metric_rows(obj, "metrics.jsonl", notes)
        if bad:
            notes.append(f"{bad} unreadable line(s) in metrics.jsonl were skipped.")
    return rows, notes


def _metric_rows(obj: Any, where: str, notes: list[str]) -> list[dict]:
    if isinstance(obj, list):
        return [r for o in obj for r in _metric_rows(o, where, notes)]
    if isinstance(obj, dict) and "values" in obj:          # {"name": .., "values": {..}, "protocol": {..}, "kimg": ..}
        return [{**obj, "name": str(obj.get("name", "?"))}]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) and "values" in v for v in obj.values()):
        # the `ganforge eval --json` layout: {name: {values, protocol}}
        return [{"name": str(k), **v} for k, v in obj.items()]
    notes.append(f"an entry of {where} has no \"values\" and was left out.")
    return []


def _sample_png(path: Path) -> tuple[bytes, bool] | None:
    """(PNG bytes to embed, downscaled when large; whether it is an image grid), or None when it does not decode.

    A grid (utils/images.image_grid) has a black or transparent padding at its corner; a scatter plot of
    vector samples has a white one.
    """
    from PIL import Image

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            corner = im.convert("RGBA").getpixel((0, 0))
            grid = corner[3] == 0 or max(corner[:3]) < 16
            if max(im.size) <= MAX_SAMPLE_PX:
                return raw, grid
            im = im.copy()
        im.thumbnail((MAX_SAMPLE_PX, MAX_SAMPLE_PX), Image.LANCZOS)
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
        return buf.getvalue(), grid
    except Exception:  # damaged or truncated file: reported, not fatal
        return None


# ---------------------------------------------------------------------------------------------------------------
# small helpers


def _col(ticks: list[dict], key: str) -> list[float]:
    return [_num(t.get(key)) for t in ticks]


def _metric_value(t: dict, metric: str, key: str) -> float:
    v = (t.get("metrics") or {}).get(metric) if isinstance(t.get("metrics"), dict) else None
    return _num(v.get(key) if isinstance(v, dict) else (v if key == metric else None))


def _present(section: dict, **fmt: str) -> list[str]:
    """fmt[key].format(value) for the keys that are set (not missing, empty or 0, which mean "the default")."""
    return [f.format(_yaml_value(section[k])) for k, f in fmt.items() if section.get(k) not in (None, "", 0)]


def _num(v: Any) -> float:
    """A float for plotting: missing, non-numeric and non-finite values become NaN (a gap in the line)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return float("nan")
    v = float(v)
    return v if math.isfinite(v) else float("nan")


def _nimg(rec: dict) -> int | None:
    """The record's image count (a hand-edited or damaged value: None, and the record has no place on the axis)."""
    for key, scale in (("nimg", 1), ("kimg", 1000)):
        v = rec.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1e15:
            return int(round(v * scale))
    return None


def _int(v: Any, default: int = -1) -> int:
    """An int of a hand-editable log value; `default` where it is none."""
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else default


def _kimg(rec: dict) -> float:
    n = _nimg(rec)
    return n / 1000 if n is not None else float("nan")


def _get(cfg: dict | None, section: str, key: str) -> Any:
    s = (cfg or {}).get(section)
    return s.get(key) if isinstance(s, dict) else None


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d} (h:m:s)" if s >= 3600 else f"{s // 60}:{s % 60:02d} (m:s)"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _yaml_value(v: Any) -> str:
    if isinstance(v, str):
        return v if v else '""'
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return _fmt(v)


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _statistics(ticks: list[dict]) -> list[str]:
    """The statistic names in any of the ticks, in statistics_of's order."""
    return statistics_of({k: 0.0 for t in ticks for k in statistics_of(t)})


def _legend(k: str) -> str:
    label = info(k).label
    return k if label == k else f"{label}  ({k})"


def _color(k: str, i: int) -> str:
    return COLORS.get(k) or PALETTE[i % len(PALETTE)]


def _stat_text(k: str, v: float) -> str:
    try:
        return info(k).fmt.format(v)
    except (ValueError, TypeError):
        return f"{v:.4g}"


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
