"""Changes in place are versions (issue 12), from the user's side: a step
that changes an input in place (`items.append(2)`, `df['c'] = ...`, `del
d[k]`, `obj.b = 2`) writes a new version of it, which reaches the steps
below it and the notebook on every backend, and leaves the version above
it as it was; steps with global effects keep their notebook order, and
those on the kernel's own state run there. Each is compared with what a
top-to-bottom run of the same cells gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbpar

from .conftest import run_cell, run_cells

BACKENDS = ["process", "thread", "inline"]


def parrun(ip: InteractiveShell, backend: str, *targets: str) -> nbpar.RunResult:
    run_cells(ip, f"%parrun {' '.join(targets)} --backend {backend} --workers 2")
    result = nbpar.last_run()
    assert result is not None and result.ok, result
    return result


def steps(ip: InteractiveShell) -> dict[str, nbpar.Step]:
    return dict(ip.magics_manager.registry["NbparMagics"].pipeline.steps)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_append_reaches_the_steps_below_and_the_notebook(shell: InteractiveShell, capsys, backend: str):
    run_cells(shell, "%%step make\nitems = [1]", "%%step grow\nitems.append(2)", "%%step count\nn = len(items)")
    out = capsys.readouterr().out
    assert "step grow: reads items (from make) | writes items | after make | changes items in place" in out
    assert "step count: reads items (from grow) | writes n | after grow" in out
    parrun(shell, backend)
    assert (shell.user_ns["n"], shell.user_ns["items"]) == (2, [1, 2])
    # the version `make` made is kept as it was: running `grow` again appends to it once, as the cells above say
    assert parrun(shell, backend, "grow", "--force").steps["grow"].status == "done"
    assert shell.user_ns["items"] == [1, 2]
    assert {r.status for r in parrun(shell, backend).steps.values()} == {"up-to-date"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_draws_from_one_generator_follow_each_other(shell: InteractiveShell, backend: str):
    run_cells(
        shell,
        "%%step seed\nimport numpy as np\nrng = np.random.default_rng(0)",
        "%%step first\na = rng.normal(size=3)",
        "%%step second\nb = rng.normal(size=3)",
    )
    parrun(shell, backend)
    rng = np.random.default_rng(0)  # a top-to-bottom run
    a, b = rng.normal(size=3), rng.normal(size=3)
    ns = shell.user_ns
    assert not np.array_equal(ns["a"], ns["b"])
    assert np.array_equal(ns["a"], a) and np.array_equal(ns["b"], b)
    assert np.array_equal(ns["rng"].normal(size=3), rng.normal(size=3))  # the notebook's rng advanced as there


def test_an_inplace_method_on_threads_leaves_the_step_above_its_version(shell: InteractiveShell):
    # `peek` (above) and `clean` both read load's `final`, and run side by side: clean changes a copy
    run_cells(
        shell,
        "%%step load\nimport pandas as pd\nfinal = pd.DataFrame({'a': [1.0, None, 3.0]})",
        "%%step peek\nimport time\ntime.sleep(0.3)\nrows_seen = len(final)",
        "%%step clean\nfinal.dropna(inplace=True)\nrows_after = len(final)",
    )
    assert steps(shell)["clean"].changes == {"final"} and steps(shell)["peek"].changes == set()
    parrun(shell, "thread")
    ns = shell.user_ns
    assert (ns["rows_seen"], ns["rows_after"], len(ns["final"])) == (3, 2, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_column_reaches_the_steps_below_and_the_notebook(shell: InteractiveShell, capsys, backend: str):
    run_cells(
        shell,
        "import pandas as pd",
        "%%step load\ndf = pd.DataFrame({'a': [1, 2, 3]})",
        "%%step add_col\ndf['c'] = df['a'] * 2",
        "%%step total\nt = int(df['c'].sum())",
    )
    out = capsys.readouterr().out
    assert "step add_col: reads df (from load) | writes df | after load | changes df in place\n" in out
    run_cells(shell, "%parsteps")
    table = capsys.readouterr().out
    assert "changes df in place" in table.splitlines()[3]  # add_col's row: what it binds, then what it changes
    parrun(shell, backend)
    assert shell.user_ns["t"] == 12 and list(shell.user_ns["df"]["c"]) == [2, 4, 6]


@pytest.mark.parametrize("backend", BACKENDS)
def test_del_of_an_item_and_a_store_into_an_attribute_are_versions(shell: InteractiveShell, backend: str):
    run_cells(
        shell,
        "%%step make\nimport types\nd = {'a': 1, 'b': 2}\nobj = types.SimpleNamespace(a=1)",
        "%%step drop\ndel d['a']",
        "%%step mark\nobj.b = 2",
        "%%step read\nks = sorted(d)\nv = obj.b",
    )
    assert steps(shell)["drop"].changes == {"d"} and steps(shell)["mark"].changes == {"obj"}
    parrun(shell, backend)
    ns = shell.user_ns
    assert (ns["ks"], ns["v"], ns["d"], ns["obj"].b) == (["b"], 2, {"b": 2}, 2)


def test_a_pure_method_makes_no_version(shell: InteractiveShell, capsys):
    run_cells(
        shell,
        "import pandas as pd",
        "%%step load\ndf = pd.DataFrame({'a': [1, 2, 3]})",
        "%%step first\nh = df.head(2)",
        "%%step stats\ndesc = df.describe()\ngroups = df.groupby('a').size()",
    )
    out = capsys.readouterr().out
    assert "step first: reads df | writes h | after load\n" in out  # no `changes`: both read load's df at once
    assert "step stats: reads df | writes desc, groups | after load\n" in out
    parrun(shell, "thread")
    assert len(shell.user_ns["h"]) == 2 and shell.user_ns["df"].shape == (3, 1)


@pytest.mark.parametrize("backend", ["process", "thread"])
def test_steps_writing_files_keep_their_order(shell: InteractiveShell, tmp_path: Path, capsys, backend: str):
    shell.user_ns["path"] = str(tmp_path / "out.txt")
    run_cells(
        shell,
        "import time",
        "%%step first\ntime.sleep(0.3)\nwith open(path, 'w') as _f:\n    _f.write('one')",
        "%%step second\nwith open(path, 'a') as _f:\n    _f.write('two')",
    )
    out = capsys.readouterr().out
    assert "step second: reads path | writes - | after first | in notebook order: it writes files\n" in out
    parrun(shell, backend)
    assert (tmp_path / "out.txt").read_text() == "onetwo"


def test_a_step_on_the_global_random_state_runs_in_the_kernel(shell: InteractiveShell, capsys):
    run_cells(
        shell,
        "import numpy as np",
        "%%step seed\nnp.random.seed(1)",
        "%%step draw\nx = np.random.rand()",
    )
    out = capsys.readouterr().out
    assert (
        "step draw: reads np | writes x | after seed | in notebook order: it uses a global random state "
        "| runs in the kernel\n"
    ) in out
    result = parrun(shell, "process")
    assert {result.steps[n].worker for n in ("seed", "draw")} == {"kernel"}
    state = np.random.RandomState(1)  # a top-to-bottom run (not this process's global state: the kernel's)
    x, y = state.rand(), state.rand()
    assert shell.user_ns["x"] == x
    assert run_cell(shell, "np.random.rand()").result == y  # the kernel's global state advanced as there


def test_an_input_that_cannot_be_copied_says_so(shell: InteractiveShell, tmp_path: Path):
    path = tmp_path / "log.txt"
    run_cells(shell, f"fh = open({str(path)!r}, 'w')", "%%step log\nfh.write('x')\nfh.flush()")
    result = parrun(shell, "thread")
    output = result.steps["log"].output
    assert "nbpar: step 'log' changes `fh` in place, and `fh` (TextIOWrapper) cannot be copied (TypeError" in output
    assert path.read_text() == "x"
    shell.user_ns["fh"].close()


def test_a_step_drawing_with_pyplot_draws_into_the_kernels_figure(shell: InteractiveShell, capsys):
    import matplotlib.pyplot as plt

    plt.close("all")
    run_cells(shell, "%%step draw\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3])")
    assert "| in notebook order: it draws with pyplot | runs in the kernel\n" in capsys.readouterr().out
    assert parrun(shell, "process").steps["draw"].worker == "kernel"
    assert len(plt.gca().lines) == 1  # the cells after it see the figure, as in a top-to-bottom run
    plt.close("all")
