"""The proxy's journal writer: one JSON line per decision, appended as it happens so a crash loses nothing.

What may be written is `events.Event` and nothing else; the render reads the lines back with `events.parse`.
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

from ..common.events import Event
from ..common.redaction import SECRET_HEADERS, redact  # noqa: F401 - the addons' one import for both

log = logging.getLogger("kometa_preview.proxy")


class Journal:
    """Append-only JSON lines, each written in one `write(2)` (O_APPEND), so concurrent hooks never interleave."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, event: Event, **fields: Any) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"journal events are events.Event members, not {event!r}")
        record = {"t": round(time.time(), 6), "event": event.value, **fields}
        line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd >= 0:
                os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
