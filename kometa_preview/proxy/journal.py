"""The proxy's journal writer: one JSON line per decision, appended as it happens so a crash loses nothing.

What may be written is an `events.Record` for every event that has a record type, so the writer and the render's
reader (`events.parse`) name each field once; only the diagnostics (events without one) are written free-form.
Nothing secret goes in: paths are recorded through `redaction.redact`, and no header is ever recorded.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..common.events import RECORD_TYPES, Event, Record
from ..common.redaction import SECRET_HEADERS, redact  # noqa: F401 - the addons' one import for both

log = logging.getLogger("kometa_preview.proxy")


class Journal:
    """Append-only JSON lines, each written in one `write(2)` (O_APPEND), so concurrent hooks never interleave."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, record: Record) -> None:
        """A line of an event that has a record type, as that record."""
        kind = RECORD_TYPES.get(record.event) if isinstance(record, Record) else None
        if kind is None or type(record) is not kind:
            raise TypeError(f"a typed journal line is its event's record (events.RECORD_TYPES), not {record!r}")
        self._append(record.to_line())

    def note(self, event: Event, **fields: Any) -> None:
        """A diagnostic line: an event without a record type, whose fields nothing reads back."""
        if not isinstance(event, Event):
            raise TypeError(f"journal events are events.Event members, not {event!r}")
        if event in RECORD_TYPES:
            raise TypeError(f"{event} has a record type ({RECORD_TYPES[event].__name__}): write one")
        self._append({"event": event.value, **fields})

    def _append(self, content: dict[str, Any]) -> None:
        stamped = {"t": round(time.time(), 6), **content}
        line = (json.dumps(stamped, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
