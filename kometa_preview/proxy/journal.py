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
from urllib.parse import unquote

log = logging.getLogger("kometa_preview.proxy")
#: Headers that carry credentials: never journaled, removed from Plex-side flows, redacted from outside flows
#: once they have been sent (so `-w` never saves them).
SECRET_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "X-Plex-Token", "X-Api-Key", "trakt-api-key")
#: Query parameter names that carry credentials: Plex's token, TMDb's api_key, OAuth tokens, passwords.
_SECRET_NAMES = ("x-plex-token", "api_key", "apikey", "token", "access_token", "refresh_token", "secret",
                 "client_secret", "password", "passwd")
#: Undo this many levels of percent-encoding at most (a `url=` inside a `url=` inside a query is three).
MAX_DEPTH = 5


def _letter(char: str) -> str:
    """A character as it may be written in a query: itself, percent-encoded, or percent-encoded twice."""
    code = f"{ord(char):02x}"
    literal = re.escape(char)
    return f"(?:{literal}|%{code}|%25{code})"


def _name(word: str) -> str:
    return "".join(_letter(c) if not c.isalpha() else f"(?:{c}|%{ord(c):02x}|%25{ord(c):02x})" for c in word)


_SEPARATOR = r"(?:^|[?&;#/\s]|%26|%3f|%2526|%253f)"
_EQUALS = r"(?:=|%3d|%253d|%25253d)"
#: `name=value` for any secret name ending a parameter name (`X-Plex-Token`, `tmdb_api_key`, `accessToken`),
#: the name in any encoding. The value runs to the next literal separator: an encoded `&` inside it may be part
#: of the value, so the rest of a nested query is redacted with it (too much, never too little).
_SECRET = re.compile(
    rf"(?i)({_SEPARATOR}[a-z0-9_.%-]*?(?:{'|'.join(_name(w) for w in sorted(_SECRET_NAMES, key=len, reverse=True))})"
    rf"{_EQUALS})[^&#\s;]*")


def redact(text: str) -> str:
    """Remove credential values from a path or URL: parameter names in any percent-encoding, and queries nested
    in `url=` at any depth. Each level of encoding is undone in turn and redacted again, so what is returned
    is the fully decoded text with no credential value left at any level."""
    current = _SECRET.sub(r"\1<redacted>", text)
    for _ in range(MAX_DEPTH):
        decoded = unquote(current)
        if decoded == current:
            break
        current = _SECRET.sub(r"\1<redacted>", decoded)
    return current


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
