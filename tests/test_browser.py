"""The live monitor as a user sees it: example_notebooks/monitor.ipynb run in
a real JupyterLab, in headless Chromium driven by Playwright.

    JupyterLab server (this interpreter, a tmp root dir, the test kernel spec)
      <- Chromium opens the notebook, waits for an idle kernel, Run > Run All Cells
      <- polls the %parrun cell's output until every timeline bar is final
      -> checks the graph, the timeline and the progress line, saves a screenshot

Needs Debian's Chromium (/usr/bin/chromium: `apt-get install -y chromium`)
and the `browser` extra (`pip install -e '.[browser]'`: jupyterlab,
playwright). Browsers are never downloaded (`playwright install` is not used).
Without them the test is skipped, except in CI (NBPAR_BROWSER_TEST=required),
where it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from .conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = ROOT / "example_notebooks" / "monitor.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = (
    "The browser test needs Debian's Chromium at /usr/bin/chromium (as root: "
    "`apt-get update && apt-get install -y chromium`) and JupyterLab and Playwright in this "
    "environment (`pip install -e '.[browser]'`; the dev extra includes them). "
    "Do not run `playwright install`: the test drives the system Chromium."
)
FINAL = {"done", "failed", "skipped", "cancelled", "up-to-date"}

# What the notebook's run must end with (checked against its %%step cells).
FAILED, SKIPPED = "calibrate", "report"
SLICES = {"features": 6, "scaled": 6}  # fanned out, and its chain (which inherits the slicing)
RUN_TIMEOUT = 120  # seconds, from Run All Cells to the final monitor


@dataclass(frozen=True)
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    log: Path

    def api(self, method: str, path: str) -> Any:
        """Call the server's REST API; the JSON answer (None when empty)."""
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self) -> None:
        """What Kernel > Shut Down All Kernels does: ask each kernel to exit."""
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


def require_browser_tools() -> Any:
    """playwright.sync_api, or say how to install what is missing: a failure
    in CI (.ci/run sets NBPAR_BROWSER_TEST=required and installs Chromium),
    a skip on a machine with only Python (the README's test command)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} not found")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("jupyterlab is not installed")
    try:
        from playwright import sync_api
    except ImportError:
        missing.append("playwright is not installed")
    if missing:
        message = f"{'; '.join(missing)}. {INSTALL}"
        if os.environ.get("NBPAR_BROWSER_TEST") == "required":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return sync_api


def notebook_steps(nb: nbformat.NotebookNode) -> list[str]:
    """The names of the notebook's %%step cells, in order."""
    return [m.group(1) for c in nb.cells if c.cell_type == "code" and (m := re.match(r"%%step\s+(\S+)", c.source))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The processes of `pids` still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.fixture
def lab(tmp_path: Path, kernel_name: str) -> Iterator[Lab]:
    """A JupyterLab server on a free localhost port whose root holds a copy of
    monitor.ipynb set to the test kernel spec (this interpreter)."""
    require_browser_tools()
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": "nbpar test", "language": "python"}
    nbformat.write(nb, root / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ)  # JUPYTER_PATH from kernel_name: the server finds the test kernel spec
    env.update(
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),  # no user settings or workspaces
        JUPYTER_DATA_DIR=str(tmp_path / "data"),  # the server's own files (kernel specs come from JUPYTER_PATH)
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.allow_root=True",  # CI runs as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",  # no network: no news, no update check, no PyPI
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer in 60 s:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)
        yield Lab(url, token, log)
    finally:
        with contextlib.suppress(OSError, ValueError):
            Lab(url, token, log).shut_down_kernels()
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


# Runs in the page: true once the notebook's kernel, by display name, is idle.
KERNEL_IDLE = """name => {
    const kernel = document.querySelector('.jp-NotebookPanel-toolbar .jp-KernelName');
    const busy = document.querySelector('.jp-Notebook-ExecutionIndicator');
    return kernel?.innerText.trim() === name && busy?.getAttribute('data-status') === 'idle';
}"""

# Runs in the page: the state of the %parrun cell's monitor, or null before it shows.
MONITOR_STATE = """() => {
    const cells = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')];
    const cell = cells.find(c => (c.querySelector('.jp-InputArea-editor')?.innerText || '').includes('%parrun'));
    if (!cell) return null;
    const graph = cell.querySelector('svg.nbpar-graph');
    const timeline = cell.querySelector('svg.nbpar-timeline');
    const bar = [...cell.querySelectorAll('.widget-html')]
        .find(w => /steps done/.test(w.innerText || ''));
    const status = el => [...el.querySelectorAll('[data-step]')].map(
        n => [n.getAttribute('data-step'), n.getAttribute('data-slice'), n.getAttribute('data-status')]);
    return {
        graph: graph ? status(graph) : null,
        timeline: timeline ? status(timeline) : null,
        progress: bar ? bar.innerText.trim() : null,
        workers: timeline ? [...timeline.querySelectorAll('text')].map(t => t.textContent)
            .filter(t => /^pid \\d+$/.test(t)).map(t => Number(t.slice(4))) : [],
        text: cell.querySelector('.jp-OutputArea')?.innerText || '',
        prompt: cell.querySelector('.jp-InputPrompt')?.innerText || '',
    };
}"""

# Runs in the page: whether any cell is executing or waiting ([*]), and the
# stderr / error outputs of all cells (to say why Run All stopped early).
NOTEBOOK_STATE = """() => ({
    busy: [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')].some(p => p.innerText.includes('*')),
    errors: [...document.querySelectorAll('.jp-Notebook [data-mime-type="application/vnd.jupyter.stderr"]')]
        .map(e => e.innerText.slice(0, 1500)),
})"""


def test_monitor_in_jupyterlab(lab: Lab, tmp_path: Path):
    sync_api = require_browser_tools()
    nb = nbformat.read(NOTEBOOK, as_version=4)
    steps = notebook_steps(nb)
    assert {FAILED, SKIPPED, *SLICES} <= set(steps), f"the notebook's steps changed: {steps}"
    shot = tmp_path / "monitor.png"
    began = time.monotonic()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        state: dict[str, Any] | None = None
        try:
            page.goto(f"{lab.url}/lab/tree/{NOTEBOOK.name}?token={lab.token}", timeout=60_000)
            page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=60_000)
            # the kernel of the notebook's kernel spec (this interpreter) has started and is idle
            try:
                page.wait_for_function(KERNEL_IDLE, arg="nbpar test", timeout=60_000)
            except sync_api.TimeoutError:
                status = page.locator(".jp-StatusBar-Widget").all_inner_texts()
                raise AssertionError(f"the kernel 'nbpar test' did not become idle; status bar: {status}") from None
            news = page.get_by_role("button", name="No", exact=True)  # "notified about official Jupyter news?"
            if news.count():
                news.first.click()

            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

            deadline = time.monotonic() + RUN_TIMEOUT
            idle_since: float | None = None
            while True:
                state = page.evaluate(MONITOR_STATE)
                if (
                    state
                    and state["timeline"]
                    and all(s in FINAL for _, _, s in state["timeline"])
                    and (state["progress"] or "").startswith(("Finished", "Interrupted"))
                    and "*" not in state["prompt"]  # the cell is done executing
                ):
                    break
                cells = page.evaluate(NOTEBOOK_STATE)
                idle_since = None if cells["busy"] else (idle_since or time.monotonic())
                stopped = idle_since is not None and time.monotonic() - idle_since > 5
                if stopped or time.monotonic() > deadline:
                    why = "Run All stopped (no cell running)" if stopped else f"not done after {RUN_TIMEOUT} s"
                    errors = "\n---\n".join(cells["errors"]) or "none"
                    raise AssertionError(f"the monitor did not finish: {why}.\nMonitor: {state}\nErrors: {errors}")
                time.sleep(0.25)
            waited = time.monotonic() - began

            # the picture the user sees: the monitor at the top of the window
            page.locator(".jp-CodeCell:has(svg.nbpar-timeline) .jp-OutputArea").first.evaluate(
                "el => el.scrollIntoView({block: 'start'})"
            )
            page.wait_for_timeout(300)
        finally:
            page.screenshot(path=str(shot))
            print(f"\nscreenshot: {shot}\nJupyterLab log: {lab.log}")
            browser.close()

    assert state is not None
    print(f"run finished in the browser {waited:.1f} s after the page was opened")
    graph = {step: status for step, _, status in state["graph"]}
    assert set(graph) == set(steps), f"graph nodes {sorted(graph)} != the notebook's steps {sorted(steps)}"
    expected = {step: "done" for step in steps} | {FAILED: "failed", SKIPPED: "skipped"}
    assert graph == expected

    bars: dict[str, list[tuple[str | None, str]]] = {}
    for step, index, status in state["timeline"]:
        bars.setdefault(step, []).append((index, status))
    ran = [s for s in steps if s != SKIPPED]
    assert set(bars) == set(ran), f"timeline bars for {sorted(bars)}, steps that ran {sorted(ran)}"
    for step, n in SLICES.items():
        indexes = sorted(int(i) for i, _ in bars[step] if i is not None)
        assert indexes == list(range(n)), f"{step}: bars for slices {indexes}, expected {n}"
    for step in ran:
        assert {status for _, status in bars[step]} == {expected[step]}, f"{step}: {bars[step]}"

    progress = state["progress"]
    assert progress.startswith("Finished"), progress
    assert "1 failed" in progress and "1 skipped" in progress, progress
    assert f"{len(steps) - 2}/{len(steps)} steps done" in progress, progress
    assert "Loading widget" not in state["text"] and "Error displaying widget" not in state["text"]
    assert "ValueError: calibration data missing" in state["text"]  # the failed step's traceback

    # Kernel > Shut Down: the kernel's worker processes (the timeline's lanes) go with it
    workers = state["workers"]
    assert workers, "the timeline names no worker process ('pid N' lanes)"
    stopping = time.monotonic()
    lab.shut_down_kernels()
    left = wait_gone(workers, 15)
    print(f"kernel shut down; its workers {workers} gone after {time.monotonic() - stopping:.1f} s")
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their kernel's shutdown by 15 s (killed now)"
