"""The package's shape, read from its source with ``ast``: the core never imports Gradio or the UI, and no
module imports another that (directly or through others) imports it back — imports inside functions included,
since a cycle hidden in a function is still a cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "symptomgen"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module this file imports (absolute names), at any depth of the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            # ``from . import config`` imports the module ``symptomgen.config``
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in files.items():
        edges[name] = {m for m in imports_of(path) if m in files and m != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules on it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            # a package's __init__ is imported by its submodules' import machinery, not by their code
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    edges = graph()
    assert len(edges) > 20, "the graph must see the package's modules"
    assert find_cycle(edges) is None, f"import cycle: {' → '.join(find_cycle(edges) or [])}"


def test_core_never_imports_gradio_or_the_ui():
    offenders = []
    for name, path in sorted((module_name(p), p) for p in PACKAGE.rglob("*.py")):
        if name.startswith("symptomgen.ui"):
            continue
        bad = {m for m in imports_of(path) if m.split(".")[0] == "gradio" or m.startswith("symptomgen.ui")}
        if bad:
            offenders.append(f"{name}: {sorted(bad)}")
    assert not offenders, offenders


def test_ui_lives_in_its_own_package():
    assert (PACKAGE / "ui" / "__init__.py").is_file()
    assert not list(PACKAGE.glob("ui_*.py")), "UI modules belong in symptomgen/ui/"


def test_ranges_are_written_only_in_config():
    """A literal (min, max, default) triple or a scheduler list outside config.py is a second source of truth."""
    literal_range = re.compile(r"\(\s*-?[\d.e-]+\s*,\s*-?[\d.e-]+\s*,\s*-?[\d.e-]+\s*\)")
    schedulers = re.compile(r"[\"']constant[\"']\s*,\s*[\"']linear[\"']")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "config.py":
            continue
        text = path.read_text(encoding="utf-8")
        for pattern in (literal_range, schedulers):
            offenders += [f"{path.relative_to(PACKAGE)}: {m.group(0)}" for m in pattern.finditer(text)]
    assert not offenders, offenders
