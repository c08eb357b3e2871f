"""ARCHITECTURE.md stays true: its module map lists every module of the
package and no other, each module imports (itself or through others)
nothing its row forbids, and its table of the run loop's state names the
containers the loop has, as the scheduler's docstring does."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import nbpar.scheduler

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "ARCHITECTURE.md").read_text()


def _rows(heading: str) -> list[list[str]]:
    """The rows of the table under `heading` in ARCHITECTURE.md, as cells."""
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]  # (not the header)


def _module_map() -> dict[str, list[str]]:
    """module path (nbpar/...py) -> the modules it may not import."""
    rows = _rows("The module map")
    return {path.strip("`"): [n.strip() for n in forbidden.split(",") if n.strip()] for path, _, forbidden in rows}


def test_the_module_map_lists_every_module_of_the_package_and_no_other():
    listed = set(_module_map())
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "nbpar").rglob("*.py")}
    assert present - listed == set(), "modules missing from ARCHITECTURE.md's module map"
    assert listed - present == set(), "ARCHITECTURE.md lists modules that do not exist"


def _loaded_by(module: str) -> list[str]:
    """Every module loaded by importing `module` alone, in a fresh interpreter."""
    code = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def _dotted(path: str) -> str:
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


@pytest.mark.parametrize("path", [p for p, forbidden in _module_map().items() if forbidden])
def test_a_module_imports_nothing_its_layer_forbids(path: str):
    forbidden = _module_map()[path]
    loaded = _loaded_by(_dotted(path))
    bad = sorted({f for f in forbidden for m in loaded if m == f or m.startswith(f + ".")})
    assert bad == [], f"importing {_dotted(path)} loads {', '.join(bad)}, which ARCHITECTURE.md forbids for it"


def _table_names(text: str) -> set[str]:
    return set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))


def _set_once() -> set[str]:
    section = DOC.split("## The run loop's state\n", 1)[1]
    line = section.split("Set once when the loop is made, never changed:", 1)[1].split(".\n", 1)[0]
    return set(re.findall(r"`(\w+)`", line))


def _scheduler_attributes() -> set[str]:
    """Every attribute a Scheduler's methods assign (self.NAME = ...)."""
    tree = ast.parse(Path(nbpar.scheduler.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Scheduler")
    names = set()
    for node in ast.walk(cls):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and isinstance(part.value, ast.Name) and part.value.id == "self":
                    names.add(part.attr)
    return names


def test_the_state_table_names_every_container_of_the_run_loop():
    documented = _table_names(DOC.split("## The run loop's state\n", 1)[1])
    in_docstring = set(re.findall(r"^    (\w+) {2,}\S", nbpar.scheduler.__doc__ or "", flags=re.M)) - {"container"}
    assert documented == in_docstring, "ARCHITECTURE.md's state table and scheduler.py's differ"
    assert documented | _set_once() == _scheduler_attributes(), "a container of the loop missing from the state table"
