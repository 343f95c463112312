"""Terminal output: one console bound to the real terminal, progress bars with rows/s.

Stages such as the crawl run libraries that print to stdout/stderr; those streams are sent
to a log file (`quiet_fds`), while our console keeps writing to the terminal.
"""
from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Speed(TextColumn):
    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):
        speed = task.finished_speed or task.speed
        return f"{speed:,.1f} {self.unit}/s" if speed else ""


class UI:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        # A duplicate of stderr survives the redirection of fd 2 while libraries run.
        self.console = Console(file=os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1), stderr=True)

    def print(self, *args, **kwargs) -> None:
        self.console.print(*args, **kwargs)

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None, unit: str = "rows"):
        """Yield a function advance(n) that moves a progress bar."""
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), Speed(unit),
            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, disable=self.quiet, transient=False,
        ) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1, completed=None: progress.update(task, advance=None if completed is not None else n, completed=completed)


@contextlib.contextmanager
def quiet_fds(log_path):
    """Send everything written to fds 1 and 2 (this process and its children) to `log_path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
