"""The one redaction policy: which names carry credentials, and how they are removed from what is kept.

Used for the journal and the logs (paths and URLs), for flows mitmweb shows and `-w` saves (headers), and for
the redacted copy of kometa_run.yml (YAML keys). No mitmproxy import: both processes use it.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

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


def is_secret_name(name: str) -> bool:
    """Does a parameter, header or YAML key of this name carry a credential (`X-Plex-Token`, `tmdb_api_key`,
    `apikey`, `client_secret`, `Authorization`)?"""
    lowered = name.lower().replace("-", "_")
    return lowered in {h.lower().replace("-", "_") for h in SECRET_HEADERS} or \
        any(lowered.endswith(word.replace("-", "_")) for word in _SECRET_NAMES)


def redact_document(value: Any) -> Any:
    """A YAML/JSON document with the value of every secret-named key replaced by `<redacted>`, at any depth."""
    if isinstance(value, dict):
        return {k: ("<redacted>" if isinstance(k, str) and is_secret_name(k) and v not in (None, "")
                    else redact_document(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_document(v) for v in value]
    return value
