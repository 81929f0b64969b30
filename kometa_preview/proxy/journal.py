"""The proxy's journal: one JSON line per decision, appended as it happens so a crash loses nothing.

The render step builds summary.json from it. Nothing secret goes in: queries are recorded with
every `X-Plex-Token` removed, and no header is ever recorded.
"""
from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("kometa_preview.proxy")
#: Query parameters that carry credentials: Plex's token, TMDb's api_key, OAuth tokens, passwords.
_SECRET_NAMES = r"(?:x-plex-token|api_?key|[a-z_]*token|[a-z_]*secret|password|passwd)"
_SECRET_IN_QUERY = re.compile(rf"(?i)(\b{_SECRET_NAMES}=)[^&#\s]*")
_SECRET_NESTED = re.compile(rf"(?i)(\b{_SECRET_NAMES}%3d)[^&%#\s]*")


def redact(text: str) -> str:
    """Remove credential values from a path or URL (including ones nested, encoded, in `url=`)."""
    return _SECRET_NESTED.sub(r"\1<redacted>", _SECRET_IN_QUERY.sub(r"\1<redacted>", text))


class Journal:
    """Append-only JSON lines; each line flushed and fsync'd-free but written in one call."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def write(self, event: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 6), "event": event, **fields}
        line = (json.dumps(record, default=str, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, line)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read(path: Path) -> list[dict[str, Any]]:
    """All complete records (a torn last line from a crash is skipped)."""
    return Follower(path).new_records()


class Follower:
    """Reads records appended since the last call (live progress while Kometa runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        records = []
        for line in complete.splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records
