"""How fast this machine runs Python at the moment: a yardstick for CPU figures on a shared host.

On a VM whose host is shared, the same work takes more CPU time while the host is busy: the
same row's CPU per message has moved by 2x within twenty minutes here, so rows run minutes
apart cannot be compared by their CPU milliseconds. While a row runs, a thread does a fixed
pure-Python unit of work four times a second and records the CPU time each unit took (about
1% of a core). A row's CPU per message divided by the median unit is what a message costs in
units: the figure rows are compared by (``cpu_units_per_msg``).
"""

from __future__ import annotations

import statistics
import threading
import time

#: The unit of work: this many turns of a small arithmetic loop (a millisecond or two).
UNIT_LOOPS = 20_000
INTERVAL_S = 0.25


def unit_s() -> float:
    """The CPU time one unit of work takes this thread now."""
    start = time.thread_time()
    total = 0
    for i in range(UNIT_LOOPS):
        total += i * i % 7
    return time.thread_time() - start


class SpeedProbe:
    """Units of work timed in a thread of their own, from ``start()`` to ``stop()``."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speed-probe", daemon=True)

    def _run(self) -> None:
        while not self._stopping.wait(INTERVAL_S):
            self.samples.append(unit_s())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def unit_ms(self) -> float | None:
        """The median unit's CPU time, in ms (``None`` before any sample)."""
        return round(statistics.median(self.samples) * 1000, 4) if self.samples else None
