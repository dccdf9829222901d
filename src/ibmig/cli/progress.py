"""A progress line on stderr for long runs; silent when stderr is not a terminal."""

from __future__ import annotations

import time
from types import TracebackType
from typing import IO


class Progress:
    """`update(count)` redraws "label: N unit (rate/s)" at most a few times a second."""

    def __init__(self, label: str, *, unit: str, stream: IO[str], total: int | None = None):
        self.label = label
        self.unit = unit
        self.stream = stream
        self.total = total
        self.enabled = stream.isatty()
        self._start = time.perf_counter()
        self._last = 0.0
        self._drawn = False

    def update(self, count: int) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        done = f"{count:,}" if self.total is None else f"{count:,}/{self.total:,}"
        self.stream.write(
            f"\r{self.label}: {done} {self.unit} ({count / elapsed:,.0f}/s, {elapsed:.0f} s)"
        )
        self.stream.flush()
        self._drawn = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
