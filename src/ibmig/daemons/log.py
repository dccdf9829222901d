"""What the daemons print: one JSON object per line, with the wall-clock time.

`{"t": <seconds since the epoch>, "who": "dom0 host1", "event": "VfUp", ...}`: engine
events carry their fields (bytes as hex); the daemons add their own ("ready",
"channel_error", "mads"). The lab reads these lines back (`read_log`) to say when
each peer heard and reconnected, across processes, on one clock.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


class EventLog:
    """Writes the lines of one process (`who`) to `out`, flushed per line."""

    def __init__(self, who: str, out: IO[str], wall_clock: Callable[[], float] = time.time) -> None:
        self.who = who
        self.out = out
        self.wall_clock = wall_clock

    def line(self, event: str, **fields: Any) -> None:
        record = {"t": round(self.wall_clock(), 6), "who": self.who, "event": event}
        record.update({k: _plain(v) for k, v in fields.items()})
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    def engine_event(self, event: Any) -> None:
        """An engine's event with its fields (not its engine-clock `time_ns`)."""
        fields = _plain(event) if dataclasses.is_dataclass(event) else {}
        if isinstance(fields, dict):
            fields.pop("time_ns", None)
            fields.pop("now_ns", None)
        else:
            fields = {}
        self.line(type(event).__name__, **fields)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The JSON lines of a daemon's output (other lines skipped)."""
    records: list[dict[str, Any]] = []
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return records
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if isinstance(record, dict):
                records.append(record)
    return records
