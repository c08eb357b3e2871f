"""The errors of a run: one that cannot start (`PlanError`), and one that
failed (`RunError`), shown as the users' tracebacks only."""

from __future__ import annotations

from .records import RunResult

SHOWN = 5  # failed steps shown in full; the rest are counted


class PlanError(ValueError):
    """A run cannot start: the message names the step and the variable (or the option)."""


class RunError(Exception):
    """Some steps of a run failed, or the run was interrupted.

    IPython shows it through `_render_traceback_`: each failed step's name
    and the traceback of the user's code, never nbpar's frames.
    """

    def __init__(self, result: RunResult) -> None:
        self.result = result
        super().__init__(self._summary())

    @property
    def failed(self) -> list[str]:
        return self.result.by_status("failed")

    def _summary(self) -> str:
        r = self.result
        parts = []
        if r.interrupted or r.cancelled:
            parts.append("run interrupted" if r.interrupted else "run cancelled")
        if self.failed:
            parts.append(f"{len(self.failed)} of {len(r.steps)} steps failed: {', '.join(self.failed)}")
        for status in ("skipped", "cancelled"):
            names = r.by_status(status)  # type: ignore[arg-type]
            if names:
                parts.append(f"{status}: {', '.join(names)}")
        return "nbpar: " + "; ".join(parts)

    def _render_traceback_(self) -> list[str]:
        lines = [self._summary()]
        if self.result.interrupted or self.result.cancelled:
            done = self.result.by_status("done")
            lines.append(
                "Steps that finished wrote their outputs"
                + (f" ({', '.join(done)})" if done else "")
                + "; cancelled steps wrote nothing. Run %parrun again to resume."
            )
        for name in self.failed[:SHOWN]:
            lines.append("")
            lines.append(f"--- step '{name}' failed " + "-" * max(0, 50 - len(name)))
            lines.extend((self.result.steps[name].error or "").rstrip("\n").splitlines())
        if len(self.failed) > SHOWN:
            lines.append(f"\n... and {len(self.failed) - SHOWN} more failed steps: see nbpar.last_run().")
        return lines

    def __str__(self) -> str:
        return "\n".join(self._render_traceback_())
