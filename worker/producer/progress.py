"""Progress of a phase (validating bytes, enqueueing rows): a rich bar on a terminal, a plain
line every few seconds otherwise. Only counts are shown, never a row's content."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Literal, Protocol

Unit = Literal["rows", "bytes"]


class Progress(Protocol):
    def start(self, label: str, total: float | None, unit: Unit) -> None: ...

    def advance(self, amount: float = 1) -> None: ...

    def finish(self) -> None: ...

    def message(self, text: str) -> None:
        """Print a line (a bad row, a failure) without garbling the bar."""


def _amount(value: float, unit: Unit) -> str:
    """``1,234 rows`` or ``1.2 MB``."""
    if unit == "rows":
        return f"{value:,.0f} rows"
    for size, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= size:
            return f"{value / size:,.1f} {name}"
    return f"{value:,.0f} B"


def _count(done: float, total: float | None, unit: Unit) -> str:
    """``1,234/5,000 rows`` or ``1.2 MB/3.4 MB``."""
    if not total:
        return _amount(done, unit)
    if unit == "rows":
        return f"{done:,.0f}/{total:,.0f} rows"
    return f"{_amount(done, unit)}/{_amount(total, unit)}"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PlainProgress:
    """One line to ``stream`` every ``interval_s`` and one at the end of each phase."""

    def __init__(self, stream: IO[str], interval_s: float = 5.0) -> None:
        self._stream = stream
        self._interval = interval_s
        self._label = ""
        self._unit: Unit = "rows"
        self._total: float | None = None
        self._done = 0.0
        self._started = self._last = 0.0
        self._active = False
        self._printed = -1.0

    def start(self, label: str, total: float | None, unit: Unit) -> None:
        self._label, self._total, self._unit, self._done = label, total, unit, 0.0
        self._started = self._last = time.monotonic()
        self._active = True
        self._printed = -1.0

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        now = time.monotonic()
        if self._interval > 0 and now - self._last >= self._interval:
            self._last = now
            self._print(now)

    def finish(self) -> None:
        if self._active:
            self._active = False
            if self._printed != self._done:
                self._print(time.monotonic())

    def message(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def _print(self, now: float) -> None:
        self._printed = self._done
        elapsed = max(now - self._started, 1e-9)
        rate = self._done / elapsed
        parts = [f"{self._label}: {_count(self._done, self._total, self._unit)}"]
        if self._total:
            parts[0] += f" ({min(self._done / self._total, 1):.0%})"
        parts.append(f"{_amount(rate, self._unit)}/s")
        if self._total and rate > 0 and self._done < self._total:
            parts.append(f"ETA {_duration((self._total - self._done) / rate)}")
        parts.append(f"elapsed {_duration(elapsed)}")
        print(" | ".join(parts), file=self._stream, flush=True)


class NoProgress:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def start(self, label: str, total: float | None, unit: Unit) -> None:
        pass

    def advance(self, amount: float = 1) -> None:
        pass

    def finish(self) -> None:
        pass

    def message(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


class RichProgress:
    """A rich progress bar on the terminal: count, percentage, rate, elapsed, ETA."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as Bar

        self._console = Console(file=stream)
        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._task: Any = None
        self._unit: Unit = "rows"
        self._total: float | None = None
        self._done = 0.0
        self._started = 0.0

    def start(self, label: str, total: float | None, unit: Unit) -> None:
        self._unit, self._total, self._done = unit, total, 0.0
        self._started = time.monotonic()
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, count="", rate="")

    def advance(self, amount: float = 1) -> None:
        self._done += amount
        elapsed = max(time.monotonic() - self._started, 1e-9)
        count = _count(self._done, self._total, self._unit)
        rate = f"{_amount(self._done / elapsed, self._unit)}/s"
        self._bar.update(self._task, advance=amount, count=count, rate=rate)

    def finish(self) -> None:
        if self._task is not None:
            self.advance(0)
            self._bar.stop()  # leaves the finished bar on the terminal
            self._bar.remove_task(self._task)
            self._task = None

    def message(self, text: str) -> None:
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)


def make_progress(mode: str, stream: IO[str] | None = None, interval_s: float = 5.0) -> Progress:
    """``mode``: ``bar``, ``plain``, ``none`` or ``auto`` (a bar when ``stream`` is a
    terminal and rich is installed, else plain lines)."""
    stream = stream or sys.stderr
    if mode == "none":
        return NoProgress(stream)
    if mode in ("auto", "bar") and (mode == "bar" or stream.isatty()):
        try:
            return RichProgress(stream)
        except ImportError:
            pass
    return PlainProgress(stream, interval_s)
