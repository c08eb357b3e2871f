"""The shell `nbpar run` runs a notebook in: what a Jupyter kernel runs,
without a kernel or a front end.

A plain IPython `InteractiveShell` refuses what needs a front end:
`%matplotlib inline` and `%gui qt` raise `NotImplementedError` (it has no
event loop to start). `HeadlessShell` does what ipykernel does where that
makes sense headless, and the headless equivalent where it does not:

- matplotlib draws with the inline backend (matplotlib-inline), which
  ipykernel makes the default through `MPLBACKEND` (a value you set is
  kept, as in Jupyter). A figure is drawn at `plt.show()`, which never
  blocks, and at the end of the cell that made it, into a PNG, as Jupyter
  draws it: an error in drawing shows as it would there. The image is not
  kept: the cell's output shows its text form, `<Figure size 640x480 with 1
  Axes>`.
- `%matplotlib qt` (or tk, wx, gtk, osx, widget, notebook: a window or a
  front end) draws inline too; a non-interactive backend (`%matplotlib agg`)
  is used as asked. `%gui NAME` starts no event loop. Each says so once, on
  stderr.
- `sys.argv` is `[the notebook's path]`, as for a script: `argparse` in a
  notebook sees none of `nbpar run`'s own options.

`nbpar_defaults` holds the defaults of `%parrun`'s --workers and --backend
that the magics loaded in it take (`nbpar run --workers/--backend`).

It has no `kernel` attribute: code that looks for a kernel finds none (and
`%parrun` shows its text display, not the widgets).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.core import pylabtools
from IPython.core.interactiveshell import InteractiveShell

from .options import Defaults

INLINE = "module://matplotlib_inline.backend_inline"
FRONT_ENDS = frozenset({"widget", "ipympl", "notebook", "nbagg"})  # need a Jupyter front end; ipympl may be missing


class HeadlessShell(InteractiveShell):
    """An InteractiveShell that takes GUI and inline-backend magics."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._said: set[str] = set()
        self.nbpar_defaults = Defaults()  # of %parrun's --workers and --backend (NbparMagics.defaults)

    def enable_gui(self, gui: str | None = None) -> None:
        """Start no event loop: there is no window to serve."""
        if gui not in (None, "inline"):
            self._say(f"%gui {gui}: no GUI event loop under nbpar run (no windows); nothing to do.")

    def enable_matplotlib(self, gui: str | None = None) -> Any:
        """Like a kernel's, but a backend that needs a window or a front end
        draws inline."""
        if gui in FRONT_ENDS or pylabtools.find_gui_and_backend(gui, self.pylab_gui_select)[0] not in (None, "inline"):
            self._say(f"%matplotlib {gui or ''}: under nbpar run figures are drawn with the inline backend.")
            gui = "inline"
        return super().enable_matplotlib(gui)

    def _say(self, note: str) -> None:
        if note not in self._said:
            self._said.add(note)
            print(f"nbpar: {note}", file=sys.stderr)


def headless_shell(notebook: str, defaults: Defaults | None = None) -> HeadlessShell:
    """The shell for running `notebook`, with the process set up as a
    kernel's would be (see the module's docstring); `defaults`: of the
    magics' --workers and --backend."""
    if not os.environ.get("MPLBACKEND"):  # ipykernel's test; also seen by worker processes started later
        os.environ["MPLBACKEND"] = INLINE
    sys.argv = [os.path.abspath(notebook)]
    shell: HeadlessShell = HeadlessShell.instance(colors="nocolor")
    shell.nbpar_defaults = defaults or Defaults()
    return shell
