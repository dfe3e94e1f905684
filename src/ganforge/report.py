"""One self-contained HTML report of a run: config, training curves, sample grids across training, metrics.

    write_report(run_dir)  ->  RUN_DIR/report.html

It reads only the files a run leaves (config.yaml, log.jsonl, samples/*.png, generator/config.json and, when the
eval command wrote one, metrics.jsonl or metrics.json): no torch, no dataset, no training code. Plots are drawn with
matplotlib's Agg renderer and embedded as base64 PNGs, the sample grids too, and the CSS is inline: the file loads
no external resource (no CDN, font or script), so it can be mailed, archived or opened offline as it is.

log.jsonl is read as the loop writes it: after `--resume` from an older checkpoint the later ticks are re-run, so a
"resume" line drops the ticks past its point and, per nimg, the last tick record wins; "diverged" lines become a
warning at the top and a red line in the plots.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .errors import GanforgeError

SAMPLE_RE = re.compile(r"^tick-(\d+)-kimg-([0-9.]+)\.png$")
MAX_SAMPLES = 9           # up to 8 evenly spaced grids plus the last
MAX_SAMPLE_PX = 1024      # larger sample grids are downscaled before embedding, to keep the file small
D_COLOR, G_COLOR = "#1f77b4", "#ff7f0e"


@dataclass
class RunLog:
    """log.jsonl after resolving resumes: ticks sorted by nimg (the last record per nimg), and the events."""

    ticks: list[dict]
    resumes: list[dict] = field(default_factory=list)
    diverged: list[dict] = field(default_factory=list)
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


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write one self-contained HTML report of a run (default RUN_DIR/report.html); returns its path."""
    from .training.checkpoint import atomic_write

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise GanforgeError(f"run directory {str(run_dir)!r} not found")
    if not run_dir.is_dir():
        raise GanforgeError(f"{str(run_dir)!r} is not a directory; give a run directory (it holds log.jsonl)")
    log = read_log(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    if out.is_dir():
        out = out / "report.html"
    page = render_report(run_dir, log)
    atomic_write(out, lambda f: f.write(page.encode("utf-8")))
    return out


# ---------------------------------------------------------------------------------------------------------------
# the page


def render_report(run_dir: Path, log: RunLog) -> str:
    """The report as one HTML string."""
    name = run_dir.resolve().name
    cfg_text, cfg = _read_config(run_dir)
    gen_meta = _read_json(run_dir / "generator" / "config.json")
    metric_rows, metric_notes = _read_metrics_files(run_dir)
    samples, sample_notes = _sample_section(run_dir, log)

    notes: list[tuple[str, str]] = []  # (css class, html)
    for d, later in zip(log.diverged, log.resumed_after, strict=True):
        bad = [k for k, v in d.items() if isinstance(v, float) and not math.isfinite(v)]
        notes.append(("warn", f"<b>Training diverged</b> at {_kimg(d):.3f} kimg (tick {_esc(d.get('tick', '?'))}; "
                              f"non-finite: {_esc(', '.join(bad) or 'G weights')})."
                              + (" The run was resumed afterwards." if later else
                                 " Nothing after it was trained; resume from an earlier checkpoint, e.g. with a "
                                 "lower learning rate.")))
    if log.bad_lines:
        where = ", ".join(map(str, log.bad_lines[:8])) + (" ..." if len(log.bad_lines) > 8 else "")
        notes.append(("warn", f"{len(log.bad_lines)} unreadable line(s) in log.jsonl were skipped (line {where})."))
    for r in log.resumes:
        notes.append(("info", f"Resumed at {_kimg(r):.3f} kimg from <code>{_esc(r.get('from', '?'))}</code>."))
    target = _get(cfg, "train", "kimg")
    if log.ticks and isinstance(target, (int, float)) and _kimg(log.ticks[-1]) + 1e-9 < target and not log.diverged:
        notes.append(("info", f"The log ends at {_kimg(log.ticks[-1]):.3f} of the configured {target:g} kimg: "
                              "the run is still going, or was stopped (<code>--minutes</code>, Ctrl-C) and can be "
                              f"continued with <code>ganforge train --resume {_esc(str(run_dir))}</code>."))
    if cfg_text is None:
        notes.append(("warn", "config.yaml not found in the run directory."))
    notes += [("warn", n) for n in sample_notes + metric_notes]

    parts = [_HEAD.format(title=_esc(f"ganforge report: {name}"), css=_CSS),
             f"<h1>ganforge report: <span class=\"run\">{_esc(name)}</span></h1>",
             f"<p class=\"sub\">{_esc(str(run_dir.resolve()))} &middot; generated "
             f"{_esc(_dt.datetime.now().strftime('%Y-%m-%d %H:%M'))}</p>"]
    parts += [f"<div class=\"note {cls}\">{text}</div>" for cls, text in notes]
    parts.append(_summary(log, cfg, gen_meta))
    if metric_rows:
        parts.append(_metrics_section(metric_rows))
    parts.append(_curves_section(log))
    parts.append(samples)
    parts.append(_config_section(cfg_text, cfg))
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def _summary(log: RunLog, cfg: dict | None, gen_meta: dict | None) -> str:
    last = log.ticks[-1] if log.ticks else (log.diverged[-1] if log.diverged else {})
    rows: list[tuple[str, str]] = []
    if cfg:
        if cfg.get("preset"):
            rows.append(("preset", _esc(cfg["preset"]) + (f" &mdash; {_esc(cfg['description'])}"
                                                          if cfg.get("description") else "")))
        d, m, lo, o = (cfg.get(k) if isinstance(cfg.get(k), dict) else {} for k in ("data", "model", "loss", "optim"))
        if d:
            rows.append(("data", _esc(", ".join([str(d.get("name", "?"))] + _present(d, resolution="resolution {}",
                                                                                   width="width {}", path="path {}")))))
        if m:
            rows.append(("model", _esc(", ".join([str(m.get("arch", "?"))] + _present(
                m, z_dim="z_dim {}", prior="prior {}", g_width="G width {}", d_width="D width {}", pack="pack {}")))))
        if lo:
            extra = [f"{k} {v}" for k, v in lo.items()  # the settings that are on (gp_weight -1: the loss's default)
                     if k != "name" and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0]
            rows.append(("loss", _esc(", ".join([str(lo.get("name", "?"))] + extra))))
        if o:
            rows.append(("optimiser", _esc(", ".join([str(o.get("name", "?"))] + _present(
                o, g_lr="G lr {}", d_lr="D lr {}", g_betas="G betas {}", d_betas="D betas {}")))))
    target = _get(cfg, "train", "kimg")
    if last:
        reach = f"{_kimg(last):.3f} kimg" + (f" of {target:g}" if isinstance(target, (int, float)) else "")
        rows.append(("trained", _esc(f"{reach}, {len(log.ticks)} tick(s)")))
    if log.ticks:
        rows.append(("training time", _esc(_hms(_num(log.ticks[-1].get("time_s"))))))
        speeds = sorted(v for v in (_num(t.get("img_per_s")) for t in log.ticks) if math.isfinite(v))
        if speeds:
            rows.append(("throughput", _esc(f"{speeds[len(speeds) // 2]:.1f} img/s (median over ticks)")))
        fin = [(k, _num(last.get(k))) for k in ("loss_d", "loss_g", "d_real", "d_fake", "d_real_logit",
                                                 "d_fake_logit", "penalty") if k in last]
        rows.append(("last tick", _esc(",  ".join(f"{k} {v:.4g}" for k, v in fin))))
    if gen_meta:
        n = gen_meta.get("nimg")
        rows.append(("exported generator", "<code>generator/</code>"
                     + (_esc(f" at {n / 1000:.3f} kimg") if isinstance(n, (int, float)) else "")
                     + _esc(f", ganforge {gen_meta.get('ganforge_version', '?')}")))
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2>Summary</h2>\n<table class=\"kv\">{body}</table>"


def _curves_section(log: RunLog) -> str:
    ticks = log.ticks
    if not ticks:
        return "<h2>Training curves</h2>\n<p>No completed tick to plot.</p>"
    x = [_kimg(t) for t in ticks]
    marks = [(_kimg(r), "resume") for r in log.resumes] + [(_kimg(d), "diverged") for d in log.diverged]
    figs: list[tuple[str, bytes]] = []

    losses = [("loss_d", D_COLOR, "-"), ("loss_g", G_COLOR, "-")]
    if any(_num(t.get("penalty")) not in (0.0,) and math.isfinite(_num(t.get("penalty"))) for t in ticks):
        losses.append(("penalty", "#2ca02c", "--"))
    figs.append(("Losses", _plot(x, [(k, _col(ticks, k), c, ls) for k, c, ls in losses], "Losses", "loss", marks)))

    if any("d_real" in t for t in ticks):
        figs.append(("D(x), D(G(z))", _plot(
            x, [("D(x)  (d_real)", _col(ticks, "d_real"), D_COLOR, "-"),
                ("D(G(z))  (d_fake)", _col(ticks, "d_fake"), G_COLOR, "-")],
            "D(x) and D(G(z))", "probability", marks, ylim=(-0.02, 1.02))))
    else:
        figs.append(("D logits", _plot(
            x, [("real logit", _col(ticks, "d_real_logit"), D_COLOR, "-"),
                ("fake logit", _col(ticks, "d_fake_logit"), G_COLOR, "-")],
            "D's logits on real and generated samples", "logit", marks)))

    figs.append(("Throughput", _plot(x, [("img/s", _col(ticks, "img_per_s"), "#555555", "-")],
                                     "Throughput", "images / s", marks, ymin0=True)))
    noise = _col(ticks, "noise_std")
    noise_note = ""
    if any(math.isfinite(v) and v != 0 for v in noise):
        figs.append(("Instance noise", _plot(x, [("noise_std", noise, "#9467bd", "-")],
                                             "Instance noise", "std", marks, ymin0=True)))
    else:
        noise_note = "<p class=\"small\">Instance noise: off (noise_std = 0 at every tick).</p>"

    metric_names: list[str] = []
    for t in ticks:
        for m in (t.get("metrics") or {}) if isinstance(t.get("metrics"), dict) else {}:
            if m not in metric_names:
                metric_names.append(m)
    metric_figs = []
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for m in metric_names:
        values: list[str] = []
        for t in ticks:
            v = (t.get("metrics") or {}).get(m)
            for k in (v if isinstance(v, dict) else {m: v}):
                if k not in values:
                    values.append(k)
        series = [(k, [_metric_value(t, m, k) for t in ticks], palette[i % len(palette)], "-")
                  for i, k in enumerate(values)]
        metric_figs.append((f"metric {m}", _plot(x, series, f"{m} (tick-time)", "value", marks)))

    out = ["<h2>Training curves</h2>", "<div class=\"plots\">"]
    out += [_img(png, alt, "plot") for alt, png in figs]
    out.append("</div>")
    out.append(noise_note)
    if metric_figs:
        out += ["<h3>Tick-time metrics</h3>",
                "<p class=\"small\">Computed during training on few samples: compare them with each other, "
                "not with published numbers.</p>", "<div class=\"plots\">"]
        out += [_img(png, alt, "plot") for alt, png in metric_figs]
        out.append("</div>")
    if marks:
        out.append("<p class=\"small\">Dotted grey lines: resumes; dashed red lines: divergence.</p>")
    return "\n".join(out)


def _sample_section(run_dir: Path, log: RunLog) -> tuple[str, list[str]]:
    notes: list[str] = []
    found = []
    for p in sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []:
        mt = SAMPLE_RE.match(p.name)
        if mt:
            found.append((float(mt.group(2)), int(mt.group(1)), p))
    found.sort()
    # Keep the grids of the ticks the log keeps (a resume from an older checkpoint leaves stale ones behind).
    kept = {(int(t.get("tick", -1)), round(_kimg(t), 2)) for t in log.ticks}
    current = [f for f in found if (f[1], round(f[0], 2)) in kept]
    found = current or found
    if not found:
        return "<h2>Samples</h2>\n<p>No sample grids in <code>samples/</code>.</p>", notes
    if len(found) > MAX_SAMPLES:
        idx = sorted({round(i * (len(found) - 1) / (MAX_SAMPLES - 1)) for i in range(MAX_SAMPLES)})
        chosen = [found[i] for i in idx]
    else:
        chosen = found
    cells: list[str] = []
    for kimg, tick, p in chosen:
        got = _sample_png(p)
        if got is None:
            notes.append(f"sample grid <code>{_esc(p.name)}</code> is damaged and was left out.")
            continue
        png, grid = got
        final = " (last)" if p == found[-1][2] else ""
        cls = "sample grid" if grid else "sample"  # image grids keep hard pixel edges; scatter plots are smoothed
        cells.append(f"<figure>{_img(png, f'samples at {kimg:.2f} kimg', cls)}"
                     f"<figcaption>tick {tick} &middot; {kimg:.2f} kimg{final}</figcaption></figure>")
    head = (f"<h2>Samples</h2>\n<p class=\"small\">Fixed latents, generator moving average; {len(cells)} of "
            f"{len(found)} grids.</p>")
    return head + "\n<div class=\"samples\">" + "\n".join(cells) + "</div>", notes


def _metrics_section(rows: list[dict]) -> str:
    latest: dict[str, dict] = {}
    for r in rows:
        latest[r["name"]] = r  # the last evaluation per metric
    out = ["<h2>Metrics</h2>",
           "<p class=\"small\">Each number with the protocol that produced it; numbers are comparable only "
           "under the same protocol.</p>",
           "<table class=\"grid\"><tr><th>metric</th><th>values</th><th>at kimg</th><th>protocol</th></tr>"]
    for r in latest.values():
        out.append(_metric_row(r))
    out.append("</table>")
    if len(rows) > len(latest):
        out.append("<details><summary>All evaluations</summary>"
                   "<table class=\"grid\"><tr><th>metric</th><th>values</th><th>at kimg</th><th>protocol</th></tr>")
        out += [_metric_row(r) for r in rows]
        out.append("</table></details>")
    return "\n".join(out)


def _metric_row(r: dict) -> str:
    vals = r.get("values")
    vals_html = ("<br>".join(f"{_esc(k)} = <b>{_fmt(v)}</b>" for k, v in vals.items()) if isinstance(vals, dict)
                 else _esc(_fmt(vals)))
    kimg = r.get("kimg")
    proto = r.get("protocol")
    proto_html = _kv_table(_flatten(proto)) if isinstance(proto, dict) else _esc(proto if proto is not None else "")
    return (f"<tr><td>{_esc(r['name'])}</td><td>{vals_html}</td>"
            f"<td>{_esc(_fmt(kimg)) if kimg is not None else ''}</td><td>{proto_html}</td></tr>")


def _config_section(text: str | None, cfg: dict | None) -> str:
    if text is None:
        return "<h2>Configuration</h2>\n<p>config.yaml not found.</p>"
    out = ["<h2>Configuration</h2>"]
    if cfg:
        out.append("<div class=\"cfg\">")
        for section, values in cfg.items():
            if isinstance(values, dict):
                rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_yaml_value(v))}</td></tr>" for k, v in values.items())
                out.append(f"<table class=\"kv\"><caption>{_esc(section)}</caption>{rows}</table>")
        out.append("</div>")
        out.append("<details><summary>config.yaml</summary>")
    out.append(f"<pre>{_esc(text)}</pre>")
    if cfg:
        out.append("</details>")
    return "\n".join(out)


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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_metrics_files(run_dir: Path) -> tuple[list[dict], list[str]]:
    """Rows {name, values, protocol, kimg} from RUN_DIR/metrics.jsonl (one evaluation per line) and metrics.json."""
    rows: list[dict] = []
    notes: list[str] = []
    p = run_dir / "metrics.json"
    if p.is_file():
        obj = _read_json(p)
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

    A grid (training/visuals.image_grid) has a black or transparent padding at its corner; a scatter plot of
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
# plots and small helpers


def _plot(x: list[float], series: list[tuple[str, list[float], str, str]], title: str, ylabel: str,
          marks: list[tuple[float, str]], ylim: tuple[float, float] | None = None, ymin0: bool = False) -> bytes:
    """A line plot (matplotlib, Agg, no pyplot state) as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2), dpi=144)
    ax = fig.add_subplot()
    few = len(x) <= 30
    for label, y, color, ls in series:
        ax.plot(x, y, ls, color=color, label=label, lw=1.4, marker="o" if few else None, ms=3)
    for k, kind in marks:
        ax.axvline(k, color="#d62728" if kind == "diverged" else "#999999", ls="--" if kind == "diverged" else ":",
                   lw=1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("kimg", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", lw=0.6)
    if ylim:
        ax.set_ylim(*ylim)
    elif ymin0 and any(math.isfinite(v) for _, y, _, _ in series for v in y):
        ax.set_ylim(bottom=0)
    if len(series) > 1 or series[0][0] != ylabel:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _img(png: bytes, alt: str, cls: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img class=\"{cls}\" alt=\"{_esc(alt)}\" src=\"data:image/png;base64,{data}\">"


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
    n = rec.get("nimg")
    if isinstance(n, (int, float)) and not isinstance(n, bool):
        return int(n)
    k = rec.get("kimg")
    if isinstance(k, (int, float)) and not isinstance(k, bool) and math.isfinite(k):
        return int(round(k * 1000))
    return None


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


def _kv_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_yaml_value(v))}</td></tr>" for k, v in items)
    return f"<table class=\"kv small\">{rows}</table>"


def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="ganforge report">
<title>{title}</title>
<style>{css}</style>
</head>
<body>"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222;
       max-width: 1280px; margin: 1.5em auto; padding: 0 1.2em; line-height: 1.45; background: #fff; }
h1 { font-size: 1.55em; margin-bottom: 0.1em; } h1 .run { font-family: ui-monospace, Menlo, Consolas, monospace; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; }
.sub, .small { color: #666; font-size: 0.88em; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; border-radius: 4px; }
.note { padding: 0.55em 0.9em; margin: 0.5em 0; border-radius: 4px; border-left: 4px solid; }
.note.warn { background: #fff4e5; border-color: #e67e22; }
.note.info { background: #eef5fb; border-color: #4a90d9; }
table { border-collapse: collapse; }
table.kv th { text-align: left; font-weight: 600; padding: 0.15em 1em 0.15em 0; vertical-align: top;
              white-space: nowrap; }
table.kv td { padding: 0.15em 0; }
table.kv caption { text-align: left; font-weight: 700; padding-bottom: 0.2em; }
table.grid th, table.grid td { border: 1px solid #ddd; padding: 0.35em 0.6em; vertical-align: top; text-align: left; }
table.grid th { background: #f6f8fa; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 0.8em; }
img.plot { width: 100%; height: auto; border: 1px solid #eee; }
.samples { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 0.8em; }
.samples figure { margin: 0; text-align: center; }
img.sample { width: 100%; height: auto; border: 1px solid #eee; }
img.sample.grid { image-rendering: pixelated; background: #000; }
figcaption { font-size: 0.85em; color: #555; }
.cfg { display: flex; flex-wrap: wrap; gap: 0.6em 2.5em; align-items: flex-start; }
details { margin: 0.6em 0; } summary { cursor: pointer; color: #444; }
"""
