"""The one redaction policy: which names carry credentials, and how they are removed from what is kept.

Used for the journal and the logs (paths and URLs), for flows mitmweb shows and `-w` saves (headers), and for
the redacted copy of kometa_run.yml (YAML documents). No mitmproxy import: both processes use it.

Names carry credentials when they end in a secret word (`X-Plex-Token`, `tmdb_api_key`, `accessToken`,
`client_secret`, `trakt_client_id`) or are an OAuth code or PIN as a whole (`code=`, `pin`: a suffix would also
take `countrycode`). In a YAML document, a service section (`SERVICE_SECTIONS`: Plex, TMDb, Trakt, MyAnimeList,
AniDB, notifiers, webhooks…) is redacted the other way round: every value in it except the few settings known to
be harmless (`KEPT_IN_SERVICES`), so ids, OAuth blocks, callback URLs holding a `code=` and keys Kometa adds later
are all covered without being listed.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

#: Headers that carry credentials: never journaled, removed from Plex-side flows, redacted from outside flows
#: once they have been sent (so `-w` never saves them).
SECRET_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "X-Plex-Token", "X-Api-Key", "trakt-api-key")
#: Query parameter names that carry credentials, matched at the end of a name: Plex's token, TMDb's api_key,
#: OAuth tokens and client ids (Trakt's and MyAnimeList's `client_id` is the account's key), passwords.
_SECRET_NAMES = ("x-plex-token", "api_key", "apikey", "token", "access_token", "refresh_token", "secret",
                 "client_secret", "client_id", "password", "passwd")
#: Names that carry credentials as a whole name only: OAuth authorization codes (MyAnimeList's `code=`), Trakt's
#: PIN, PKCE's verifier.
_EXACT_SECRET_NAMES = ("code", "pin", "code_verifier")
#: Top-level sections of a Kometa config that hold an account with a service: redacted but for KEPT_IN_SERVICES.
SERVICE_SECTIONS = frozenset({"plex", "tmdb", "omdb", "mdblist", "trakt", "mal", "anidb", "notifiarr", "gotify",
                              "ntfy", "apprise", "tautulli", "radarr", "sonarr", "github", "webhooks"})
#: Settings of a service section that are no credential (a URL is kept with its credentials redacted).
KEPT_IN_SERVICES = frozenset({"url", "language", "region", "cache_expiration", "timeout", "verify_ssl", "db_cache",
                              "clean_bundles", "empty_trash", "optimize"})
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
_SUFFIXES = "|".join(_name(w) for w in sorted(_SECRET_NAMES, key=len, reverse=True))
_WHOLE = "|".join(_name(w) for w in sorted(_EXACT_SECRET_NAMES, key=len, reverse=True))
_SECRET = re.compile(rf"(?i)({_SEPARATOR}(?:[a-z0-9_.%-]*?(?:{_SUFFIXES})|(?:{_WHOLE})){_EQUALS})[^&#\s;]*")
#: `scheme://user:password@` in a URL.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")


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
    return lowered in {h.lower().replace("-", "_") for h in SECRET_HEADERS} or lowered in _EXACT_SECRET_NAMES or \
        any(lowered.endswith(word.replace("-", "_")) for word in _SECRET_NAMES)


REDACTED = "<redacted>"


def redact_document(value: Any) -> Any:
    """A YAML/JSON document (a Kometa config) with its credentials replaced by `<redacted>`: every value of a
    service section but its harmless settings, every secret-named key's value at any depth, and the credentials in
    any text (`?apikey=…`, `user:password@`). Unset values (null, "") stay as they are: they show what is unset."""
    if not isinstance(value, dict):
        return _redacted(value)
    return {key: _service(item) if key in SERVICE_SECTIONS and isinstance(item, dict) else _redacted(item, key)
            for key, item in value.items()}


def _service(section: dict[Any, Any]) -> dict[Any, Any]:
    return {key: _redacted(item, key) if key in KEPT_IN_SERVICES else _hidden(item) for key, item in section.items()}


def _hidden(value: Any) -> Any:
    return value if value in (None, "") else REDACTED


def _redacted(value: Any, key: object = None) -> Any:
    """`value` under `key`, anywhere outside a service section's own settings."""
    if isinstance(key, str) and is_secret_name(key):
        return _hidden(value)
    if isinstance(value, dict):
        return {k: _redacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, str):
        text = _USERINFO.sub(rf"\1{REDACTED}@", value)
        cleaned = redact(text)
        return cleaned if REDACTED in cleaned else text
    return value
