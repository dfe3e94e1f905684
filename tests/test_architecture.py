"""The package's layers are one-way: a module imports only from its own layer or below, nothing imports in a
circle, and only the top layer (cli, the public API) imports ganforge modules lazily inside functions.

The imports are read from the source with `ast` (no module is run), relative imports resolved. The layer
table below is the architecture of docs/architecture.md; a change to it is a change to the architecture.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

PKG = ROOT / "src" / "ganforge"

# Bottom to top. A module is placed by its first component below ganforge (a package or a module).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "registry", "version", "utils", "presets"),  # infrastructure (presets: YAML files only)
    ("config",),                                   # the schema: dataclasses, YAML, overrides, value checks
    ("data", "schedules", "augment"),              # datasets; lr / noise schedules; D's input augmentation
    ("models",),                                   # G, D, E families; latent priors
    ("losses", "optim", "metrics"),                # the objective; optimisers; features -> statistics -> metric
    ("components", "recipes"),                     # every built-in registered; a config checked against them;
                                                   # presets that look at the data (ganforge train DIR)
    ("inversion",),                                # data -> latents by optimisation
    ("sampling",),                                 # the exported generator: save, load, sample
    ("training",),                                 # the loop, its state, checkpoints, ticks
    ("evaluation", "report", "editing"),           # eval of a run or a samples file; the HTML report; encoder use
    ("cli", "__init__", "__main__"),               # the command line and the public API
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
LAZY_OK = {"cli", "__init__", "__main__"}          # may import ganforge modules inside functions (startup time)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    p = PKG.parent.joinpath(*name.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported ganforge module, imported inside a function?, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PKG.parent).parent.parts)  # the package the file is in
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, inner, child.lineno) for a in child.names if a.name.split(".")[0] == "ganforge")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] != "ganforge":
                    continue
                for a in child.names:  # `from pkg import mod` names a module; `from mod import X` a name in it
                    sub = f"{target}.{a.name}"
                    out.append((sub if _is_module(sub) else target, inner, child.lineno))
            visit(child, inner)

    visit(tree, False)
    return out


def _unit(module: str) -> str:
    """The layer table's name for a module: its first component below ganforge ("__init__" for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    key = _unit(module)
    assert key in LAYER_OF, f"{module}: not in the layer table of tests/test_architecture.py; place it there"
    return LAYER_OF[key]


FILES = sorted(p for p in PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    for p in FILES:
        _layer(_module_name(p))


def test_imports_go_down_only():
    problems = []
    for p in FILES:
        mod = _module_name(p)
        here = _layer(mod)
        for target, _, line in _imports(p):
            if target == "ganforge.version" or target.startswith("ganforge.presets"):
                continue
            there = _layer(target)
            if there > here:
                problems.append(f"{p.relative_to(PKG.parent.parent)}:{line}: {mod} (layer {here}) imports {target} "
                                f"(layer {there})")
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_lazy_imports_below_the_top_layer():
    """Function-local imports of ganforge modules hide the structure; only cli and the public API use them."""
    problems = [f"{p.relative_to(PKG.parent.parent)}:{line}: imports {target} inside a function"
                for p in FILES if p.stem not in LAZY_OK or p.parent != PKG
                for target, lazy, line in _imports(p) if lazy]
    assert not problems, "\n".join(problems)


def _graph() -> dict[str, set[str]]:
    names = {_module_name(p) for p in FILES}
    graph: dict[str, set[str]] = {}
    for p in FILES:
        deps = set()
        for target, lazy, _ in _imports(p):
            # `from .base import X` names a module; `from . import x` too; a name inside a module maps to it
            while target and target not in names:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != _module_name(p):
                deps.add(target)
        graph[_module_name(p)] = deps
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := dfs(m)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (found := dfs(n)):
            return found
    return None


def test_no_import_cycles():
    """Neither between modules nor between the packages of the layer table (data <-> metrics, say)."""
    graph = _graph()
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle between modules: " + " -> ".join(cycle)
    units: dict[str, set[str]] = {}
    for n, deps in graph.items():
        units.setdefault(_unit(n), set()).update(_unit(d) for d in deps if _unit(d) != _unit(n))
    cycle = _find_cycle(units)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)


def test_the_checker_sees_violations(tmp_path):
    """The rule test itself: an upward import and a cycle in a made-up package are found."""
    global PKG
    fake = tmp_path / "src" / "ganforge"
    (fake / "data").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "data" / "__init__.py").write_text("from ..training import loop\n")
    (fake / "training").mkdir()
    (fake / "training" / "__init__.py").write_text("")
    (fake / "training" / "loop.py").write_text("from ..data import base\n")
    (fake / "data" / "base.py").write_text("def f():\n    from ..models import x\n")
    old = PKG
    try:
        PKG = fake
        up = [(t, lazy) for t, lazy, _ in _imports(fake / "data" / "__init__.py")]
        assert up == [("ganforge.training.loop", False)] and _layer(up[0][0]) > _layer("ganforge.data")
        assert _imports(fake / "data" / "base.py")[0][:2] == ("ganforge.models", True)
    finally:
        PKG = old
