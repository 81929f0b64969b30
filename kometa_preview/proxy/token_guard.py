"""TokenGuard: only the client holding this job's token may use the proxy.

The job token (and any `Authorization`/`Cookie` header) is removed from the request as soon as it is
checked, so no flow, log line or saved flow ever carries a token, and if anything downstream failed open,
Plex would see no token at all.
The real Plex token is added by `Upstream` alone, outside the flow.
"""
from __future__ import annotations

import hmac
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mitmproxy import http

from ..common.events import Event
from ..plex import xml as plexml
from .flows import Proxy, answer, fail_closed, unanswered
from .journal import SECRET_HEADERS, redact


def _without_nested_token(value: str) -> str:
    """`/photo/:/transcode?url=` carries a URL with its own `?X-Plex-Token=`: drop that parameter."""
    parts = urlsplit(value)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "x-plex-token"]
    return urlunsplit(parts._replace(query=urlencode(query)))


class TokenGuard:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if not unanswered(flow):
            return
        state = self.proxy.state
        if state is None:
            answer(flow, Event.NOT_CONFIGURED, b"kometa-preview: set preview_config", status=503,
                   content_type="text/plain")
            return
        request = flow.request
        offered = request.headers.get_all("X-Plex-Token")
        for name in SECRET_HEADERS:  # Plex is read by Upstream with its own headers: no flow keeps these
            request.headers.pop(name, None)
        if "x-plex-token" in request.path.lower():  # parse the query only when a token can be in it
            fields = request.query.fields
            offered += [v for k, v in fields if k.lower() == "x-plex-token"]
            request.query = [(k, _without_nested_token(v) if "x-plex-token" in v.lower() else v)
                             for k, v in fields if k.lower() != "x-plex-token"]
        if not offered or not all(hmac.compare_digest(v.encode(), state.client_token.encode()) for v in offered):
            self.proxy.decide(flow, Event.UNAUTHORIZED_CLIENT,
                              f"{request.method} {redact(request.path)}: missing or wrong job token",
                              body=plexml.empty_container(), status=401, level=logging.WARNING,
                              journal={"method": request.method, "path": redact(request.path),
                                       "client": flow.client_conn.peername[0] if flow.client_conn.peername else None})
