"""Fixtures: a real IPython shell with nbpar loaded, and a Jupyter kernel
spec that runs this interpreter (so nbclient tests use the nbpar under test)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell

from nbpar.magics import NbparMagics

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "nbpar-test"
DEPENDENCIES = ("cloudpickle", "loky", "ipython", "ipykernel", "ipywidgets", "numpy", "pandas")


def pytest_report_header() -> str:
    """The versions this run resolved, in every log (CI's too): a release that
    breaks nbpar is named by the run that saw it (see test_dependencies.py)."""
    from importlib.metadata import PackageNotFoundError, version

    def found(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return "nbpar dependencies: " + ", ".join(f"{name} {found(name)}" for name in DEPENDENCIES)


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    """A real InteractiveShell with an empty namespace and a fresh nbpar."""
    ip = InteractiveShell.instance(colors="nocolor")
    ip.reset(new_session=False)
    flags = ip.compile.flags  # a `from __future__` import in a test's cells outlives a reset
    ip.run_line_magic("load_ext", "nbpar")
    ip.register_magics(NbparMagics(ip))  # a fresh pipeline for each test
    yield ip
    ip.reset(new_session=False)
    ip.compile.flags = flags


def run_cell(ip: InteractiveShell, source: str) -> ExecutionResult:
    """Run one cell as a notebook would."""
    return ip.run_cell(source, store_history=True)


def run_cells(ip: InteractiveShell, *sources: str) -> None:
    """Run cells that must all succeed."""
    for source in sources:
        result = run_cell(ip, source)
        assert result.success, f"cell failed: {source!r}: {result.error_before_exec or result.error_in_exec!r}"


@pytest.fixture(scope="session")
def kernel_name(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A kernel spec running this very interpreter, found before any user spec."""
    data = tmp_path_factory.mktemp("jupyter")
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "nbpar test",
                "language": "python",
            }
        )
    )
    os.environ["JUPYTER_PATH"] = str(data) + os.pathsep + os.environ.get("JUPYTER_PATH", "")
    return KERNEL
