"""The Markdown sources of the guide and the README, checked without building the site (tests/test_docs.py
builds it when mkdocs is installed): code fences close, and every `--set KEY=VALUE` a page shows names a real
configuration key, so a user who copies a command gets a run, not an "unknown key" error."""
from __future__ import annotations

import re

import pytest

from ganforge.components import catalog
from ganforge.config import SECTIONS, common_keys

from .conftest import ROOT

PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
SET = re.compile(r"""--set\s+['"]?([A-Za-z_][\w]*\.[\w.<>]+)=""")
# keys the pages show on purpose that no built-in component has: the syntax itself, and the option of the
# plugin loss that docs/architecture.md registers (tests/test_components.py trains it)
NOT_BUILT_IN = {"a.b", "loss.margin"}


def _known_keys() -> set[str]:
    keys = {k for sec in SECTIONS for k in common_keys(sec)}
    for _, _, entries in catalog():
        keys |= {opt[0] for _, _, options in entries for opt in options}
    return keys


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_fences_close_on_a_line_of_their_own(page):
    """A closing fence with text after it (```` ``` More prose ````) is not a closing fence in Markdown: the
    code block would swallow the rest of the page."""
    open_at, bad = None, []
    for i, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if not m:
            continue
        if open_at is None:
            open_at = (i, m.group(2))
        elif m.group(2).startswith(open_at[1][0]) and len(m.group(2)) >= len(open_at[1]):
            if m.group(3).strip():
                bad.append(f"line {i}: {line.strip()[:60]!r} closes the block of line {open_at[0]} but has text")
            open_at = None
    assert not bad, bad
    assert open_at is None, f"the code block opened on line {open_at[0]} never closes"


def test_every_set_key_in_the_docs_is_a_configuration_key():
    known = _known_keys()
    assert {"train.kimg", "model.arch", "model.blocks", "loss.r2_gamma"} <= known  # common and family keys
    unknown = sorted({f"{p.relative_to(ROOT)}: {k}" for p in PAGES
                      for k in SET.findall(p.read_text(encoding="utf-8"))
                      if k not in known | NOT_BUILT_IN and not k.startswith("metrics.")})
    assert not unknown, f"--set keys the configuration does not have: {unknown}"
