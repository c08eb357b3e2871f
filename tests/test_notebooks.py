"""Notebooks run in a real Jupyter kernel (nbclient), as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT

BACKENDS = ("thread", "inline", "process")
EXAMPLES = sorted((ROOT / "example_notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def execute(nb: nbformat.NotebookNode, kernel_name: str, cwd: Path) -> nbformat.NotebookNode:
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=300, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def stream_text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_notebook_runs_in_a_kernel(path: Path, kernel_name: str, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys, nbpar\nprint(sys.executable)\nprint(nbpar.__file__)"))
    execute(nb, kernel_name, path.parent)
    lines = stream_text(nb.cells[-1]).split()
    assert Path(lines[0]).resolve() == Path(__import__("sys").executable).resolve()
    assert Path(lines[1]).resolve().is_relative_to(ROOT)  # the nbpar under test


def test_two_cpu_steps_overlap_in_worker_processes(kernel_name: str, tmp_path: Path):
    """Done-when of the core issue: in a real kernel, two independent
    one-second CPU steps on 2 process workers run at the same time."""
    busy = "import time\n_end = time.process_time() + 1.0\nwhile time.process_time() < _end:\n    pass\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell(f"%%step first\n{busy}first = 1"),
        nbformat.v4.new_code_cell(f"%%step second\n{busy}second = 2"),
        nbformat.v4.new_code_cell("%parrun --backend process --workers 2"),
        nbformat.v4.new_code_cell(
            "import json, nbpar\nr = nbpar.last_run()\n"
            "print(json.dumps({'wall': r.wall, 'first': first, 'second': second, 'steps': "
            "{n: [s.start, s.end, s.worker] for n, s in r.steps.items()}}))"
        ),
    ]
    execute(nb, kernel_name, tmp_path)
    report = json.loads(stream_text(nb.cells[-1]))
    (s1, e1, w1), (s2, e2, w2) = report["steps"]["first"], report["steps"]["second"]
    assert (report["first"], report["second"]) == (1, 2)
    assert w1 != w2 and w1.startswith("pid ") and w2.startswith("pid ")
    assert s1 < e2 and s2 < e1, "the two steps did not overlap in time"
    print(f"wall {report['wall']:.2f}s for two 1.0s CPU steps")  # shown with -s; not asserted


def test_failed_step_in_a_kernel_shows_the_user_traceback(kernel_name: str, tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("%%step bad\nx = 1\ny = x / 0"),
        nbformat.v4.new_code_cell("%parrun --workers 1"),
        nbformat.v4.new_code_cell("print(sorted(k for k in ('x', 'y') if k in globals()))"),
    ]
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, allow_errors=True)
    client.execute()
    error = next(o for o in nb.cells[2].outputs if o.output_type == "error")
    assert error.ename == "RunError"
    text = "\n".join(error.traceback)
    assert 'File "<step bad>", line 3, in <module>' in text and "ZeroDivisionError" in text
    assert "scheduler.py" not in text
    assert stream_text(nb.cells[3]).strip() == "[]"


def widget_values(nb: nbformat.NotebookNode) -> list[str]:
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]


def test_background_run_in_a_kernel_updates_the_monitor_and_keeps_cells_clean(kernel_name: str, tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("%%step slow\nimport time\nprint('from the step')\ntime.sleep(1.5)\nslow = 1"),
        nbformat.v4.new_code_cell("%%step after\nafter = slow + 1"),
        nbformat.v4.new_code_cell("%parrun --background --workers 2"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(0.5)\nprint('meanwhile', 'after' in globals())"),
        nbformat.v4.new_code_cell("%parwait"),
        nbformat.v4.new_code_cell("print('finally', after)"),
    ]
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, store_widget_state=True)
    client.execute()
    assert stream_text(nb.cells[4]).strip() == "meanwhile False"  # the kernel was free, the run not done
    assert "from the step" not in stream_text(nb.cells[4])  # a step's output never lands in another cell
    assert stream_text(nb.cells[6]).strip() == "finally 2"
    graphs = [v for v in widget_values(nb) if 'class="nbpar-graph"' in v]
    assert graphs and 'data-step="after" data-status="done"' in graphs[-1].replace("\n", " ")
    logs = [v for v in widget_values(nb) if "from the step" in v]
    assert logs  # the step's print reached the monitor's log


def test_background_run_without_widget_prints_only_when_asked(kernel_name: str, tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("%%step talk\nimport time\nprint('step speaking')\ntime.sleep(1.0)\nt = 1"),
        nbformat.v4.new_code_cell("%parrun --background --no-widget --workers 1"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(1.5)\nprint('other cell')"),
        nbformat.v4.new_code_cell("%parwait"),
    ]
    NotebookClient(nb, kernel_name=kernel_name, timeout=120).execute()
    assert "step speaking" not in stream_text(nb.cells[2]) + stream_text(nb.cells[3])
    assert "[talk] step speaking" in stream_text(nb.cells[4])


def test_interrupting_the_kernel_stops_the_run_and_keeps_the_kernel_usable(kernel_name: str):
    """The notebook's stop button: SIGINT to the kernel (and, on Linux, its
    process group). The run stops, finished steps keep their outputs, the
    workers survive or are replaced, and the next %parrun resumes."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name)
    try:

        def run(code: str, timeout: float = 60) -> dict:
            msg_id = kc.execute(code)
            outputs: list[str] = []
            while True:
                msg = kc.get_iopub_msg(timeout=timeout)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    outputs.append(msg["content"]["text"])
                if msg["msg_type"] == "error":
                    outputs.append("\n".join(msg["content"]["traceback"]))
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    return {"text": "".join(outputs), "reply": kc.get_shell_msg(timeout=timeout)["content"]}

        run("%load_ext nbpar")
        run("%%step quick\nquick = 1")
        run("%%step slow --after quick\nimport time\ntime.sleep(30)\nslow = 2")
        msg_id = kc.execute("%parrun --workers 2 --no-widget")
        import time

        time.sleep(3)
        km.interrupt_kernel()
        deadline = time.time() + 20
        reply = None
        while time.time() < deadline:
            msg = kc.get_shell_msg(timeout=20)
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg["content"]
                break
        assert reply is not None and reply["status"] == "error" and reply["ename"] == "RunError"
        after = run("print(quick, 'slow' in globals())\n%parstatus")
        assert after["text"].startswith("1 False")
        assert "cancelled" in after["text"]
        resumed = run("%parrun --workers 2 --no-widget quick\nprint('resumed', quick)")
        assert "resumed 1" in resumed["text"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_future_flags_and_magics_in_steps_as_in_a_top_to_bottom_run(kernel_name: str, tmp_path: Path):
    """In a real kernel: a notebook-wide `from __future__ import annotations`
    reaches the steps (on worker processes too), and `%time y = 2` in a step
    binds y as the cell would."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("from __future__ import annotations\ny = 1"),
        nbformat.v4.new_code_cell("%%step a\n%time y = 2"),
        nbformat.v4.new_code_cell("%%step b\nz = y + 1"),
        nbformat.v4.new_code_cell("%%step typed\ndef f(a: Model) -> Report:\n    return a\nseen = f.__annotations__"),
        nbformat.v4.new_code_cell("%parrun --no-widget"),
        nbformat.v4.new_code_cell(
            "import json, nbpar\nr = nbpar.last_run()\n"
            "print(json.dumps({'y': y, 'z': z, 'seen': seen, 'workers': {n: s.worker for n, s in r.steps.items()}}))"
        ),
    ]
    execute(nb, kernel_name, tmp_path)
    assert "step b: reads y | writes z | after a" in stream_text(nb.cells[3])
    report = json.loads(stream_text(nb.cells[-1]))
    assert (report["y"], report["z"]) == (2, 3)
    assert report["seen"] == {"a": "Model", "return": "Report"}
    assert report["workers"]["a"] == "kernel" and report["workers"]["typed"].startswith("pid ")


def test_a_flood_of_output_is_a_few_stream_messages_in_a_kernel(kernel_name: str, tmp_path: Path):
    """Issue 11: a step printing 5,000 lines with --no-widget made 5,004
    stream outputs (a 0.6-1.0 MB notebook); the text display writes a few
    times a second and shows the first lines of each step."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell("%%step flood\nfor _i in range(5000):\n    print('line', _i)\nx = 1"),
        nbformat.v4.new_code_cell("%parrun --workers 2 --no-widget"),
        nbformat.v4.new_code_cell(
            "import nbpar\nr = nbpar.last_run()\nprint(r.wall, len(r.steps['flood'].output.splitlines()))"
        ),
    ]
    execute(nb, kernel_name, tmp_path)
    wall, kept = stream_text(nb.cells[3]).split()
    outputs = [o for o in nb.cells[2].outputs if o.output_type == "stream"]
    assert int(kept) == 5000  # the records keep every line
    assert len(outputs) <= 3 + float(wall) / 0.25 + 1, len(outputs)  # the announcement, then one a quarter second
    text = stream_text(nb.cells[2])
    assert "[flood] line 39\n" in text and "[flood] line 40\n" not in text
    assert "[flood] 4,960 more lines not shown: all are in nbpar.last_run().steps['flood'].output" in text


def test_logging_in_a_kernel_is_shown_once_in_the_notebooks_format(kernel_name: str, tmp_path: Path):
    """Issue 11: on thread and inline each record was printed twice (raw on
    stderr, then in the step's output), and worker processes ignored the
    notebook's format."""
    nb = nbformat.v4.new_notebook()
    step = "%%step logs\nimport logging\nlogging.getLogger('nb').warning('from %s', 'the step')\nx = 1"
    nb.cells = [
        nbformat.v4.new_code_cell("import logging\nlogging.basicConfig(format='%(levelname)s|%(name)s|%(message)s')"),
        nbformat.v4.new_code_cell("%load_ext nbpar"),
        nbformat.v4.new_code_cell(step),
        *(nbformat.v4.new_code_cell(f"%parrun --backend {b} --force --no-widget") for b in BACKENDS),
    ]
    execute(nb, kernel_name, tmp_path)
    for cell in nb.cells[3:]:
        text = stream_text(cell)
        assert text.count("from the step") == 1, text
        assert "  [logs] WARNING|nb|from the step\n" in text
