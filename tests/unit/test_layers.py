"""The house rules of ``app/``: imports run one way (down the layers), every package says its job,
and no module grows past what a reader takes in at once."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.harness import REPO

APP = REPO / "app"
# Lowest first: a module may import its own package and anything in a lower layer, nothing higher.
LAYERS = [
    ("app.errors",),
    ("app.jobs_config",),
    ("app.config",),
    ("app.server",),
    ("app.audio",),
    ("app.engine",),
    ("app.diarization",),
    ("app.models",),
    ("app.transcription",),
    ("app.realtime",),
    ("app.jobs",),
    ("app.routes",),
    ("app.main",),
    ("app.cli",),
    ("app.__main__",),
]
MAX_MODULE_LINES = 300


def unit_of(module: str) -> str:
    """The layer entry a dotted module name belongs to (its package, or the top-level module)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def rank(module: str) -> int:
    unit = unit_of(module)
    for i, units in enumerate(LAYERS):
        if unit in units:
            return i
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every ``app`` module a file imports, at any depth (functions and TYPE_CHECKING blocks too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "app":  # ``from app import diarization``
                names |= {f"app.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("app.")}


SOURCES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_imports_only_go_down(path: Path) -> None:
    here = module_name(path)
    upward = [m for m in imported(path) if unit_of(m) != unit_of(here) and rank(m) >= rank(here)]
    assert not upward, f"{here} (layer {rank(here)}) imports {upward}: move the code or the layer"


def test_the_layer_rule_catches_an_upward_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from app.transcription.render import render_body\n")
    assert rank("app.audio.vad") < min(rank(m) for m in imported(probe))


def test_every_package_says_its_job() -> None:
    for init in APP.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.relative_to(REPO)} has no docstring"


def test_no_module_is_too_long() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in SOURCES
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
