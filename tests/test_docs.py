"""The guide builds with `mkdocs build --strict` and the built site works offline.

Strict mode turns every MkDocs warning into an error: broken links and anchors between pages, pages
missing from the navigation, unknown configuration. The offline check parses every built HTML page and
stylesheet and fails on any http(s) reference to a script, stylesheet, font or image.
"""
from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[docs]')",
)

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
CSS_REMOTE = re.compile(r"""(url\(\s*["']?\s*(https?:)?//|@import\s+["']\s*(https?:)?//)""", re.IGNORECASE)
# <link rel=...> values that make the browser fetch the target
FETCHING_RELS = {"stylesheet", "preload", "modulepreload", "prefetch", "preconnect", "dns-prefetch", "icon",
                 "shortcut", "apple-touch-icon", "manifest", "font"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["NO_MKDOCS_2_WARNING"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


class _Refs(HTMLParser):
    """Collect (tag, attribute, value) for everything the browser would fetch, plus inline CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.fetched: list[tuple[str, str, str]] = []
        self.css: list[str] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self._in = ""

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "script" and a.get("src"):
            self.fetched.append((tag, "src", a["src"]))
        elif tag == "link" and set(a.get("rel", "").lower().split()) & FETCHING_RELS:
            self.fetched.append((tag, "href", a.get("href", "")))
        elif tag in ("img", "source", "iframe", "embed", "audio", "video") and a.get("src"):
            self.fetched.append((tag, "src", a["src"]))
        elif tag == "object" and a.get("data"):
            self.fetched.append((tag, "data", a["data"]))
        if a.get("style"):
            self.css.append(a["style"])
        if tag in ("style", "script"):
            self._in = tag

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._in = ""

    def handle_data(self, data):
        {"style": self.css, "script": self.scripts}.get(self._in, self.text).append(data)


def _parse(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_every_page_is_rendered(site):
    pages = sorted(DOCS.rglob("*.md"))
    assert {p.name for p in pages} >= {"index.md", "theory.md", "howto.md", "config.md", "faq.md"}
    for md in pages:
        built = site / md.relative_to(DOCS).with_suffix(".html")
        assert built.is_file(), f"{md.relative_to(ROOT)} was not rendered to {built.relative_to(site)}"
        title = next(line[2:].strip() for line in md.read_text(encoding="utf-8").splitlines()
                     if line.startswith("# "))
        body = html.unescape(" ".join(_parse(built).text))
        assert title in body, f"{built.name}: title {title!r} missing"
    assert (site / "search" / "search_index.json").is_file()


def test_built_site_fetches_nothing_from_the_network(site):
    problems = []
    for page in sorted(site.rglob("*.html")):
        refs = _parse(page)
        problems += [f"{page.relative_to(site)}: <{tag} {attr}={value!r}>"
                     for tag, attr, value in refs.fetched if REMOTE.match(value)]
        problems += [f"{page.relative_to(site)}: inline CSS {m.group(0)!r}"
                     for css in refs.css for m in CSS_REMOTE.finditer(css)]
    for sheet in sorted(site.rglob("*.css")):
        problems += [f"{sheet.relative_to(site)}: {m.group(0)!r}"
                     for m in CSS_REMOTE.finditer(sheet.read_text(encoding="utf-8", errors="replace"))]
    assert not problems, "remote resources in the built site:\n" + "\n".join(problems)


def test_no_web_fonts_or_maths_renderer(site):
    """No font service and no MathJax/KaTeX, neither fetched nor loaded by an inline script."""
    needles = ("fonts.googleapis.com", "fonts.gstatic.com", "mathjax", "katex")
    for page in sorted(site.rglob("*.html")):
        refs = _parse(page)
        loaded = [value for _, _, value in refs.fetched] + refs.scripts + refs.css
        for needle in needles:
            assert not any(needle in item.lower() for item in loaded), f"{page.relative_to(site)} loads {needle}"


def test_maths_reads_as_plain_text(site):
    """The derivations are Unicode text in code blocks: the key results survive rendering verbatim."""
    body = html.unescape(" ".join(_parse(site / "theory.html").text))
    for formula in ("D*_G(x) = p_data(x) / (p_data(x) + p_g(x))",
                    "= 2 · JSD(p_data ‖ p_g) − log 4",
                    "dL_G/dl  = −(1 − σ(l))",
                    "W1(P, Q) = sup_{‖f‖_L ≤ 1}"):
        assert formula in body, f"theory.html: {formula!r} not found"
