"""`ganforge report`: one self-contained HTML file per run, checked as HTML, as images, and rendered in Chromium."""
import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganforge
from ganforge.errors import GanforgeError
from ganforge.report import read_log, write_report

from .conftest import TINY, run_cli

# Elements without an end tag; every other element must be closed, in order (the report closes even <p>, <tr>).
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--hide-scrollbars", "--mute-audio"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real tiny run: 3 ticks of 8x8 digits (about 15 s on 2 CPU cores)."""
    over = [o for o in TINY if not o.startswith("train.kimg=")] + ["train.kimg=0.384"]
    return ganforge.train("digits", overrides=over, out=tmp_path_factory.mktemp("report") / "run", progress=False)


class _Checker(HTMLParser):
    """Collects tags, attributes and text; fails on a mismatched end tag or a tag left open."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.imgs: list[dict] = []
        self.urls: list[tuple[str, str, str]] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for k in ("src", "href", "srcset", "poster", "action", "data"):
            if a.get(k) is not None:
                self.urls.append((tag, k, a[k]))
        if tag == "img":
            self.imgs.append(a)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}> at {self.getpos()}")
            if tag in self.stack:
                while self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(path: Path) -> tuple[_Checker, list[Image.Image]]:
    """Parse the report: balanced tags, nothing loaded from outside, every <img> a decodable base64 PNG."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(text)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed tags: {c.stack}"
    assert c.tags.count("html") == c.tags.count("head") == c.tags.count("body") == 1
    for tag in ("script", "link", "iframe", "object", "embed", "video", "audio"):
        assert tag not in c.tags, f"<{tag}> in a self-contained report"
    for tag, attr, url in c.urls:
        assert url.startswith("data:image/png;base64,") or url.startswith("#"), (tag, attr, url[:80])
    # No external reference hidden in CSS either (fonts, backgrounds, imports).
    css = "".join(re.findall(r"<style>(.*?)</style>", text, flags=re.S))
    assert "url(" not in css and "@import" not in css
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?\s*(https?:|//|file:)", text, flags=re.I)
    images = []
    for a in c.imgs:
        assert a.get("alt"), a.keys()
        raw = base64.b64decode(a["src"].split(",", 1)[1], validate=True)
        im = Image.open(io.BytesIO(raw))
        im.load()  # raises if the PNG is damaged
        assert im.format == "PNG" and im.width > 0 and im.height > 0
        images.append(im)
    return c, images


def _classes(c: _Checker) -> list[str]:
    """"plot" or "sample" per <img>, in page order."""
    return [a.get("class", "").split()[0] for a in c.imgs]


# ---------------------------------------------------------------------------------------------------------------


def test_cli_report_is_self_contained_html_with_decodable_images(run):
    r = run_cli("report", str(run))
    assert r.returncode == 0, r.stderr
    out = run / "report.html"
    assert f"wrote {out}" in r.stdout
    c, images = check_html(out)
    classes = _classes(c)
    # losses, D(x)/D(G(z)), throughput (noise is off in this run, so no noise plot), the digits preset's R1
    # norm under "Other statistics", and the 3 tick grids
    assert classes.count("plot") == 4 and classes.count("sample") == 3, classes
    text = " ".join(c.text)
    assert f"ganforge report: {run.name}" in text
    assert [a["alt"] for a in c.imgs if a["class"] == "plot"] == ["Losses", "D(x), D(G(z))", "Throughput", "r1"]
    for key in ("nonsaturating", "dcgan", "tick 3", "0.38 kimg", "ema_kimg", "Instance noise: off"):
        assert key in text, key
    # the plots are real pictures, not blank canvases
    for im in images:
        assert np.asarray(im.convert("L")).std() > 5
    # --out elsewhere; the run directory is not touched
    other = run.parent / "elsewhere" / "r.html"
    assert write_report(run, other) == other and other.is_file()
    assert not list(other.parent.glob(".*tmp*")), "atomic write left a temp file"


def _fake_run(root: Path, n_ticks: int = 12) -> Path:
    """A run directory written by hand: a resume from an older checkpoint, a divergence, metrics, stale grids."""
    run = root / "fake"
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  name: digits\n  resolution: 8\nmodel:\n  arch: dcgan\n"
                                     "loss:\n  name: hinge\ntrain:\n  kimg: 2.0\n  noise_std: 0.1\n"
                                     "preset: digits\n")

    def tick(i, loss_d, **kw):
        rec = {"event": "tick", "tick": i, "kimg": i * 0.128, "nimg": i * 128, "time_s": i * 1.5,
               "img_per_s": 100.0 + i, "noise_std": 0.1 * (1 - i / n_ticks), "loss_d": loss_d, "loss_g": 0.5,
               "d_real_logit": 1.0, "d_fake_logit": -1.0, "penalty": 0.0,
               "metrics": {"fid": {"fid": 50.0 - i}, "kid": {"kid_mean": 0.1, "kid_std": 0.01}}}
        rec.update(kw)
        return rec

    lines = [tick(i, 1.0) for i in range(1, 7)]                       # ticks 1..6, first branch
    lines.append({**tick(7, float("nan")), "event": "diverged"})       # diverged at tick 7
    lines.append({"event": "resume", "kimg": 0.512, "from": "ckpt-0000000512.pt"})  # back to tick 4
    lines += [tick(i, 2.0) for i in range(5, n_ticks + 1)]            # ticks 5..12 again: these win
    text = "\n".join(json.dumps(x) for x in lines) + "\n" + '{"event": "tick", "tick": 13, "kim'  # cut short
    (run / "log.jsonl").write_text(text)
    for i in range(1, n_ticks + 1):
        grey = int(255 * i / n_ticks)
        Image.fromarray(np.full((20, 30), grey, np.uint8)).save(
            run / "samples" / f"tick-{i:05d}-kimg-{i * 0.128:09.2f}.png")
    # a stale grid of the abandoned branch that no kept tick matches, and a damaged file
    Image.new("L", (30, 20), 0).save(run / "samples" / "tick-00007-kimg-000000.99.png")
    (run / "samples" / "tick-00002-kimg-000000.26.png").write_bytes(b"\x89PNG not really")
    (run / "metrics.jsonl").write_text(
        json.dumps({"kimg": 0.512, "name": "fid", "values": {"fid": 41.5},
                    "protocol": {"features": "inception-v3 pool3", "weights_sha256": "6726825d", "n_real": 10000,
                                 "n_fake": 10000, "reference": {"split": "train"}, "seed": 0}}) + "\n"
        + json.dumps({"kimg": 1.536, "name": "fid", "values": {"fid": 33.25},
                      "protocol": {"features": "inception-v3 pool3", "n_fake": 10000}}) + "\n"
        + json.dumps({"kimg": 1.536, "name": "prdc", "values": {"precision": 0.75, "recall": 0.5},
                      "protocol": {"k": 5}}) + "\n")
    return run


def test_report_resolves_resume_and_warns_about_divergence(tmp_path):
    run = _fake_run(tmp_path)
    log = read_log(run)
    nimgs = [t["nimg"] for t in log.ticks]
    assert nimgs == sorted(set(nimgs)) == [i * 128 for i in range(1, 13)]
    # ticks 1..4 from the first branch, 5..12 from the resumed one (the last record per nimg wins)
    assert [t["loss_d"] for t in log.ticks] == [1.0] * 4 + [2.0] * 8
    assert len(log.resumes) == 1 and len(log.diverged) == 1 and log.resumed_after == [True]
    assert len(log.bad_lines) == 1

    out = write_report(run)
    assert out == run / "report.html"
    c, _ = check_html(out)
    text = " ".join(c.text)
    assert "Training diverged" in text and "0.896 kimg" in text and "loss_d" in text and "resumed afterwards" in text
    assert "Resumed at 0.512 kimg" in text and "ckpt-0000000512.pt" in text
    assert "1 unreadable line(s)" in text
    assert "damaged" in text and "tick-00002" in text
    classes = _classes(c)
    # losses, logits (hinge: no probabilities), img/s, noise_std, and one plot per tick-time metric (fid, kid)
    plots = [a["alt"] for a in c.imgs if a["class"] == "plot"]
    assert plots == ["Losses", "D logits", "Throughput", "Instance noise", "metric fid", "metric kid"], plots
    # 12 current grids -> 9 chosen, evenly spaced with the first and the last, the stale one left out; the
    # damaged one (tick 2) is chosen but left out with a note
    samples = [a["alt"] for a in c.imgs if a["class"].startswith("sample")]
    assert classes.count("sample") == 8
    assert samples[0] == "samples at 0.13 kimg" and samples[-1] == "samples at 1.54 kimg"
    assert "0.99 kimg" not in " ".join(samples)
    # final metrics: the last evaluation per metric, with its protocol; all evaluations in a <details>
    assert "33.25" in text and "41.5" in text and "precision" in text and "inception-v3 pool3" in text
    assert "reference.split" in text and "weights_sha256" in text


def test_report_reads_eval_json_layout(tmp_path):
    run = _fake_run(tmp_path)
    (run / "metrics.jsonl").unlink()
    (run / "metrics.json").write_text(
        json.dumps({"kid": {"values": {"kid_mean": 0.0123}, "protocol": {"subsets": 100}}}))
    c, _ = check_html(write_report(run, tmp_path / "x.html"))
    text = " ".join(c.text)
    assert "0.0123" in text and "subsets" in text


def test_report_errors_are_clear(tmp_path):
    with pytest.raises(GanforgeError, match="not found"):
        write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GanforgeError, match="log.jsonl not found"):
        write_report(tmp_path / "empty")
    (tmp_path / "empty" / "log.jsonl").write_text("\n")
    with pytest.raises(GanforgeError, match="no tick records"):
        write_report(tmp_path / "empty")
    r = run_cli("report", str(tmp_path / "empty"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no tick records" in r.stderr
    assert not (tmp_path / "empty" / "report.html").exists()


def test_report_imports_no_torch():
    """The report reads a run's files only: importing it must not pull in torch (directly or through a helper)."""
    code = "import ganforge.report, sys; assert 'torch' not in sys.modules, 'ganforge.report imports torch'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr


def test_report_plots_a_statistic_of_no_figure_under_other_statistics(tmp_path):
    """A statistic that statinfo gives no figure (here one training might add) gets its own plot, unasked."""
    run = _fake_run(tmp_path)
    lines = []
    for line in (run / "log.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            lines.append(line)  # the line cut short stays as it is
            continue
        if rec.get("event", "tick") == "tick":
            rec["r1_grad_norm"] = 0.5 + 0.1 * rec["tick"]
        lines.append(json.dumps(rec))
    (run / "log.jsonl").write_text("\n".join(lines))
    c, images = check_html(write_report(run))
    plots = [a["alt"] for a in c.imgs if a["class"] == "plot"]
    assert plots == ["Losses", "D logits", "Throughput", "Instance noise", "r1_grad_norm", "metric fid",
                     "metric kid"], plots
    text = " ".join(c.text)
    assert "Other statistics" in text and "r1_grad_norm" in text.split("last tick", 1)[1]
    im = images[[a["alt"] for a in c.imgs].index("r1_grad_norm")]
    assert im.format == "PNG" and np.asarray(im.convert("L")).std() > 5


def test_report_escapes_what_it_shows(tmp_path):
    """Values from the run's files are text on the page, never markup: a <script> in the config stays inert."""
    run = _fake_run(tmp_path)
    cfg = (run / "config.yaml").read_text().replace("arch: dcgan", "arch: \"<script>alert(1)</script>\"")
    (run / "config.yaml").write_text(cfg + "description: \"<b>bold</b> & 'quoted'\"\n")
    out = write_report(run)
    c, _ = check_html(out)  # among others: no <script> element
    page = out.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt; &amp;" in page
    text = " ".join(c.text)
    assert "<script>alert(1)</script>" in text and "<b>bold</b> & 'quoted'" in text


# ---------------------------------------------------------------------------------------------------------------
# rendering in a real browser

# Injected into a test copy of the report (the report itself has no script): after load, how many images decoded
# (non-zero natural size) and were laid out, written into the page, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", () => {
  // Synchronous on purpose: --dump-dom prints the DOM right after the load event, before any promise settles.
  const imgs = Array.from(document.images);
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({
    total: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length,
    rendered: imgs.filter(i => i.getBoundingClientRect().width > 0 && i.getBoundingClientRect().height > 0).length,
    plots: document.querySelectorAll("img.plot").length,
    samples: document.querySelectorAll("img.sample").length});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str | None:
    for name in (os.environ.get("GANFORGE_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _browse(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=90)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (Debian: apt-get install chromium)")
def test_report_renders_in_headless_chromium(run, tmp_path):
    exe = _chromium()
    report = write_report(run, tmp_path / "report.html")
    c, _ = check_html(report)
    n_imgs = len(c.imgs)

    # 1. DOM after load: every <img> decoded with a non-zero natural size and laid out.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    r = _browse(exe, tmp_path / "profile1", "--dump-dom", probe.as_uri())
    m = re.search(r'<pre id="probe">(.*?)</pre>', r.stdout, flags=re.S)
    assert m, f"no probe result in Chromium's DOM (rc {r.returncode}): {r.stderr[-2000:]}"
    res = json.loads(m.group(1).replace("&quot;", '"'))
    assert res["total"] == n_imgs == res["plots"] + res["samples"] and res["plots"] >= 3 and res["samples"] == 3, res
    assert res["decoded"] == res["total"] and res["rendered"] == res["total"], res

    # 2. A screenshot of the report as it is: not blank, and the plots' colours are on it.
    shot = tmp_path / "shot.png"
    r = _browse(exe, tmp_path / "profile2", "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.is_file(), f"no screenshot (rc {r.returncode}): {r.stderr[-2000:]}"
    px = np.asarray(Image.open(shot).convert("RGB")).astype(np.int16)
    assert px.shape[:2] == (2400, 1280)
    assert px.std() > 20, "the screenshot is blank"
    non_white = (px.min(axis=2) < 200).mean()
    assert non_white > 0.03, f"only {non_white:.1%} of the page is drawn"
    # matplotlib's default blue (31, 119, 180) and orange (255, 127, 14) lines: the plots were painted
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(px - np.array(rgb)).max(axis=2) < 40).sum() > 50, f"no {rgb} pixels: plots not painted"
    if os.environ.get("GANFORGE_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["GANFORGE_KEEP_SCREENSHOT"])
