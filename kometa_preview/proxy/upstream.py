"""The only code that talks to Plex: a GET-only client that carries the real token.

mitmproxy never forwards a request itself (every flow is answered by an addon), so the real token
lives here and never in a flow object — `save`/`-w` and mitmweb only ever see redacted requests.
Every read is bounded: a deadline for the whole response (slow-loris) and a cap on decoded bytes
(gzip bombs, runaway listings).
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import urllib3

#: Request headers passed on from the client; everything else (cookies, auth, overrides) is dropped.
FORWARDED_HEADERS = ("accept", "accept-language", "user-agent", "x-plex-product", "x-plex-version",
                     "x-plex-client-identifier", "x-plex-platform", "x-plex-platform-version",
                     "x-plex-device", "x-plex-device-name", "x-plex-language", "x-plex-provides",
                     "x-plex-features", "x-plex-sync-version")
DEFAULT_MAX_BYTES = 64 << 20


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
            max_bytes: int = DEFAULT_MAX_BYTES, sink: Callable[[bytes], None] | None = None,
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
