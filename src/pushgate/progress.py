"""Progress reporting: the core calls :class:`Progress`; only the CLI draws a bar."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Receives byte counts from the core. The base class ignores them."""

    def start(self, label: str, total: int) -> None:
        """A phase begins that will move ``total`` bytes."""

    def advance(self, n: int) -> None:
        """``n`` more bytes are done (called from worker threads)."""

    def finish(self) -> None:
        """The phase ended."""


class TerminalProgress(Progress):
    """A one-line bar on a terminal, redrawn at most 10 times a second, only for phases that last
    longer than ``delay`` seconds."""

    def __init__(self, stream: TextIO | None = None, delay: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.delay = delay
        self._lock = threading.Lock()
        self._label, self._total, self._done = "", 0, 0
        self._t0 = self._last = 0.0
        self._drawn = False

    def start(self, label: str, total: int) -> None:
        with self._lock:
            self._label, self._total, self._done = label, total, 0
            self._t0 = self._last = time.monotonic()
            self._drawn = False

    def advance(self, n: int) -> None:
        with self._lock:
            self._done += n
            now = time.monotonic()
            due = now - self._last >= 0.1 or (self.delay == 0 and not self._drawn)
            if now - self._t0 >= self.delay and due:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        total = max(self._total, 1)
        frac = min(self._done / total, 1.0)
        rate = self._done / max(now - self._t0, 1e-6) / 2**20
        bar = "#" * int(frac * 30)
        self.stream.write(
            f"\r{self._label:<10} [{bar:<30}] {frac:6.1%} "
            f"{self._done / 2**20:8.1f}/{self._total / 2**20:.1f} MiB {rate:7.1f} MiB/s"
        )
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        with self._lock:
            if self._drawn:
                self._draw(time.monotonic())
                self.stream.write("\n")
                self.stream.flush()
