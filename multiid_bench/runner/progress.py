"""Per-case progress on stderr for ``evaluate``, ``score``, ``generate`` and the Python API.

On a terminal: a rich bar updated per case (cases/s, failures, time left). Elsewhere (SLURM logs,
``nohup``, CI): one plain line every ``every`` cases or ``seconds`` seconds, whichever comes first, and
at the end, so a batch job's log shows that it is alive and how fast it goes. The first line says that
models are loading, since that can take minutes before the first case.
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["Progress"]


class Progress:
    """Use as a context manager; feed :meth:`plan` once and :meth:`step` per case (status of the case)."""

    def __init__(self, verb: str = "evaluating", *, stream: IO[str] | None = None, every: int = 25,
                 seconds: float = 30.0, enabled: bool = True) -> None:
        self.verb, self.every, self.seconds, self.enabled = verb, max(1, every), seconds, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = self.done = self.failed = self._printed = 0
        self.t0 = self.last = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> "Progress":
        self._line(f"{self.verb}: loading models and data ...")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.enabled and self.done != self._printed:
            self._plain()  # the final count, unless the last step already printed it

    def _line(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def plan(self, pending: int, skipped: int = 0) -> None:
        """``pending`` cases to run now, ``skipped`` already done (resume)."""
        self.total, self.t0 = pending, time.monotonic()
        label = self.verb + (f" (resumed: {skipped} done)" if skipped else "")
        if not self.enabled:
            return
        if not self.terminal:
            self._line(f"{label}: {pending} case(s) to run")
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]} cases/s"), TextColumn("[red]{task.fields[failed]} failed"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=self.stream))
        self._bar.__enter__()
        self._task = self._bar.add_task(label, total=pending, rate="-", failed=0)

    def step(self, status: str | None = "ok") -> None:
        """One case finished with ``status`` (``ok``, ``failed``, ``not_applicable``)."""
        self.done += 1
        self.failed += status == "failed"
        elapsed = time.monotonic() - self.t0
        if self._bar is not None:
            rate = f"{self.done / elapsed:.2f}" if elapsed > 0 else "-"
            self._bar.update(self._task, advance=1, rate=rate, failed=self.failed)
        elif self.enabled and (self.done % self.every == 0 or self.done == self.total
                               or time.monotonic() - self.last >= self.seconds):
            self._plain()

    def _plain(self) -> None:
        self.last, self._printed = time.monotonic(), self.done
        elapsed = self.last - self.t0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f", ~{(self.total - self.done) / rate:.0f}s left" if rate > 0 and self.total > self.done else ""
        self._line(f"{self.verb}: {self.done}/{self.total} cases, {self.failed} failed, {rate:.2f} cases/s, "
                   f"{elapsed:.0f}s elapsed{left}")
