"""The only code that talks to Plex: a GET-only client that carries the real token, and the two lookups every
part of the tool makes the same way (the sections, one item by ratingKey): the proxy's prefetch, `check`
and `find` share them, so they agree on what "the target exists" means.

mitmproxy never forwards a request itself (every flow is answered by an addon), so the real token
lives here and never in a flow object — `save`/`-w` and mitmweb only ever see redacted requests.
Every read is bounded: a deadline for the whole response (slow-loris) and a cap on decoded bytes
(gzip bombs, runaway listings).
"""
from __future__ import annotations

import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import urllib3

from ..common.limits import MAX_UPSTREAM_BYTES
from . import xml as plexml

#: Request headers passed on from the client; everything else (cookies, auth, overrides) is dropped.
FORWARDED_HEADERS = ("accept", "accept-language", "user-agent", "x-plex-product", "x-plex-version",
                     "x-plex-client-identifier", "x-plex-platform", "x-plex-platform-version",
                     "x-plex-device", "x-plex-device-name", "x-plex-language", "x-plex-provides",
                     "x-plex-features", "x-plex-sync-version")


def describe(exc: BaseException) -> str:
    """What went wrong talking to Plex, in words a user can act on."""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason).lower()
    if isinstance(reason, urllib3.exceptions.NameResolutionError) or "name or service not known" in text:
        return "its host name does not resolve"
    if isinstance(reason, urllib3.exceptions.SSLError) or "certificate" in text:
        return "its TLS certificate was not accepted (set plex.verify_ssl: false for a self-signed one)"
    if "refused" in text:  # before timeouts: NewConnectionError subclasses ConnectTimeoutError
        return "connection refused"
    if isinstance(reason, (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "it did not answer in time"
    return type(reason).__name__


class UpstreamError(Exception):
    """Plex could not be read: unreachable, too slow, too large. The message is safe to log."""


class PlexAnswerError(UpstreamError):
    """Plex answered, but not usably: the token refused, an error status, XML that is not safe to parse."""


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    content_type: str
    body: bytes


class Upstream:
    def __init__(self, base_url: str, token: str, timeout: float = 60, verify_ssl: bool = True) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=2, maxsize=4, retries=False,
            cert_reqs="CERT_REQUIRED" if verify_ssl else "CERT_NONE")
        self.requests = 0
        self.bytes = 0

    def __repr__(self) -> str:
        return f"Upstream({self.base_url!r})"

    def _headers(self, client_headers: dict[str, str] | None, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {k: v for k, v in (client_headers or {}).items() if k.lower() in FORWARDED_HEADERS}
        headers.update(extra or {})
        headers["X-Plex-Token"] = self._token
        headers["Accept-Encoding"] = "gzip, deflate"
        return headers

    def get(self, path: str, *, client_headers: dict[str, str] | None = None, extra: dict[str, str] | None = None,
            max_bytes: int = MAX_UPSTREAM_BYTES, sink: Callable[[bytes], None] | None = None,
            method: str = "GET") -> UpstreamResponse:
        """GET (or HEAD) `path` from Plex. With `sink`, the decoded body is handed over chunk by chunk
        and not kept. Raises `UpstreamError`."""
        if method not in ("GET", "HEAD"):
            raise UpstreamError(f"refusing to send {method} upstream")
        deadline = time.monotonic() + self.timeout
        try:
            response = self._pool.request(
                method, self.base_url + path, headers=self._headers(client_headers, extra),
                preload_content=False, redirect=False,
                timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout))
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"Plex at {self.base_url} is unreachable: {describe(exc)}") from None
        self.requests += 1
        chunks: list[bytes] = []
        size = 0
        complete = False
        too_slow = f"Plex took longer than {self.timeout:g}s to answer {path.split('?')[0]}"
        # A per-read timeout does not stop an answer that trickles in a byte at a time (slow-loris):
        # a watchdog shuts the socket down when the whole answer is late, which ends the blocked read.
        expired = threading.Event()
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (response, expired))
        watchdog.daemon = True
        watchdog.start()
        try:
            for chunk in response.stream(65536, decode_content=True):
                size += len(chunk)
                if size > max_bytes:
                    raise UpstreamError(f"Plex answered {path.split('?')[0]} with more than {max_bytes} bytes")
                if expired.is_set():
                    raise UpstreamError(too_slow)
                if sink is not None:
                    sink(chunk)
                else:
                    chunks.append(chunk)
            if expired.is_set():
                raise UpstreamError(too_slow)
            complete = True
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if expired.is_set():
                raise UpstreamError(too_slow) from None
            raise UpstreamError(f"reading from Plex failed: {describe(exc)}") from None
        finally:
            watchdog.cancel()
            # An unfinished body leaves the connection in an unknown state: close it, never drain it.
            response.release_conn() if complete else response.close()
            self.bytes += size
        return UpstreamResponse(response.status, response.headers.get("Content-Type", ""), b"".join(chunks))

    def close(self) -> None:
        self._pool.clear()


def _shut(response: urllib3.BaseHTTPResponse, expired: threading.Event) -> None:
    expired.set()
    sock = getattr(getattr(response, "connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def document(upstream: Upstream, path: str) -> ET.Element | None:
    """`path`'s MediaContainer; None when Plex says 404. Raises `UpstreamError`/`PlexAnswerError`."""
    response = upstream.get(path)
    if response.status == 401:
        raise PlexAnswerError(f"Plex at {upstream.base_url} refused the token (401)")
    if response.status == 404:
        return None
    if response.status != 200:
        raise PlexAnswerError(f"Plex at {upstream.base_url} answered {response.status} to {path}")
    try:
        return plexml.parse(response.body)
    except plexml.UnsafeXML as exc:
        raise PlexAnswerError(f"Plex's answer to {path} is not usable: {exc}") from None


def server(upstream: Upstream) -> ET.Element:
    """Plex's root document (friendlyName, version): proves the URL is Plex and the token works."""
    root = document(upstream, "/")
    if root is None:
        raise PlexAnswerError(f"{upstream.base_url} does not answer like Plex (404 at /)")
    return root


def sections(upstream: Upstream) -> list[ET.Element]:
    """The library sections' `<Directory>` elements."""
    root = document(upstream, "/library/sections")
    return [] if root is None else list(root.iter("Directory"))


def item(upstream: Upstream, rating_key: str) -> ET.Element | None:
    """One item's metadata element (with its `librarySectionID`), or None when Plex has no such ratingKey."""
    root = document(upstream, f"/library/metadata/{rating_key}")
    if root is None:
        return None
    element = next((child for child in root if child.get("ratingKey") == rating_key), None)
    if element is not None and element.get("librarySectionID") is None and root.get("librarySectionID"):
        element.set("librarySectionID", root.get("librarySectionID"))
    return element


def children(upstream: Upstream, rating_key: str, sub: str) -> list[ET.Element]:
    """A show's or season's `children` (seasons, or a season's episodes) or `allLeaves` (every episode), as Plex
    lists them (with `<Media>`, without streams). Raises `UpstreamError`/`PlexAnswerError`."""
    assert sub in ("children", "allLeaves")
    root = document(upstream, f"/library/metadata/{rating_key}/{sub}")
    return [] if root is None else [child for child in root if child.get("ratingKey")]


#: Items per page when a whole library is read (Kometa reads 100 at a time; fewer round trips here).
LIBRARY_PAGE = 500


def library_items(upstream: Upstream, section_key: str, libtype_number: int,
                  page: int = LIBRARY_PAGE) -> Iterator[ET.Element]:
    """Every item of one type in a section, as Plex lists them (`includeGuids=1`), a page at a time: the paged
    listing a whole-library dry run is built from. Raises `UpstreamError`/`PlexAnswerError`."""
    start = 0
    while True:
        root = document(upstream, f"/library/sections/{section_key}/all?type={libtype_number}&includeGuids=1"
                                  f"&X-Plex-Container-Start={start}&X-Plex-Container-Size={page}")
        items = [] if root is None else [child for child in root if child.get("ratingKey")]
        for item in items:
            if item.get("librarySectionID") is None:
                item.set("librarySectionID", section_key)
            yield item
        start += len(items)
        total = int(root.get("totalSize") or 0) if root is not None else 0
        if not items or start >= total:
            return

