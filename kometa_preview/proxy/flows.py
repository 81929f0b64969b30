"""Answering flows: tag each decision, fail closed, and forward reads through one choke point.

mitmproxy fails open — a hook that raises lets the flow go upstream (mitmproxy-notes.md) — so every
request hook is wrapped in `fail_closed`, which answers 502 locally instead. And only `Proxy.fetch`
ever reaches Plex: it classifies the path it is about to send, refuses anything not on the read-only
table, and strips the query to the parameters known for that route.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mitmproxy import http

from ..plex import xml as plexml
from ..plex.routes import Route, classify, forwardable_params
from .journal import log, redact
from .state import PreviewState
from .upstream import UpstreamError, UpstreamResponse

META_KEY = "preview"
#: Set on Kometa's outside calls (GitHub, TMDb) by `OutsideCalls`; the Plex addons leave those flows alone.
OUTSIDE_KEY = "preview.outside"


_ROUTES: "weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, str, Route]]" = weakref.WeakKeyDictionary()


def header_map(request: http.Request) -> dict[str, str]:
    """The request's headers as a dict, in one pass. (`dict(headers.items())` looks each name up again in
    the whole list: quadratic, and 20,000 headers stalled the proxy for tens of seconds.)"""
    return {name.decode("latin-1"): value.decode("utf-8", "surrogateescape") for name, value in request.headers.fields}


def route_of(flow: http.HTTPFlow) -> Route:
    """The flow's Route, classified once per request line (every addon asks)."""
    request = flow.request
    cached = _ROUTES.get(flow)
    if cached is not None and cached[0] == request.method and cached[1] == request.path:
        return cached[2]
    route = classify(request.method, request.path, header_map(request))
    _ROUTES[flow] = (request.method, request.path, route)
    return route


def tag(flow: http.HTTPFlow, verdict: str, **info: Any) -> None:
    """Record why a flow was answered the way it was; mitmweb shows it and `-w` saves it."""
    flow.metadata[META_KEY] = {"verdict": verdict, **{k: v for k, v in info.items() if v is not None}}
    flow.comment = verdict


def answer(flow: http.HTTPFlow, verdict: str, body: bytes = b"", *, status: int = 200,
           content_type: str = plexml.XML_CONTENT_TYPE, **info: Any) -> None:
    flow.response = http.Response.make(status, body, {"Content-Type": content_type})
    tag(flow, verdict, **info)


def fail_closed(hook: Callable) -> Callable:
    """Wrap a request-phase hook: whatever it raises, the flow is answered locally, never forwarded."""

    def contain(self, flow: http.HTTPFlow, exc: BaseException) -> None:
        log.exception("PROXY_ERROR %s %s in %s: %s", flow.request.method, redact(flow.request.path),
                      type(self).__name__, exc)
        if flow.response is None or not flow.metadata.get(META_KEY):
            answer(flow, "PROXY_ERROR", plexml.empty_container(), status=502, error=type(exc).__name__)

    if inspect.iscoroutinefunction(hook):
        @functools.wraps(hook)
        async def async_wrapper(self, flow: http.HTTPFlow) -> None:
            try:
                await hook(self, flow)
            except Exception as exc:  # noqa: BLE001 - failing closed is the point
                contain(self, flow, exc)
        return async_wrapper

    @functools.wraps(hook)
    def wrapper(self, flow: http.HTTPFlow) -> None:
        try:
            hook(self, flow)
        except Exception as exc:  # noqa: BLE001 - failing closed is the point
            contain(self, flow, exc)
    return wrapper


def unanswered(flow: http.HTTPFlow) -> bool:
    """The guard mitmproxy's own addons open every hook with, plus: not one of Kometa's outside
    calls (those belong to `OutsideCalls`, on the forward-proxy mode)."""
    return flow.response is None and flow.error is None and flow.live and not flow.metadata.get(OUTSIDE_KEY)


@dataclass
class Proxy:
    """What the addons share: the state (None until configured) and the forwarding choke point."""
    state: PreviewState | None = None

    def pending_read(self, flow: http.HTTPFlow) -> tuple[PreviewState, Route] | None:
        """The state and route of a read no addon has answered yet; None for anything else."""
        if self.state is None or not unanswered(flow):
            return None
        route = route_of(flow)
        return (self.state, route) if route.is_read else None

    async def fetch(self, route: Route, path: str | None = None, *, headers: dict[str, str] | None = None,
                    sink: Callable[[bytes], None] | None = None, max_bytes: int | None = None) -> UpstreamResponse:
        """Read `path` (default: the client's own request) from Plex. Both the client's request and the path
        actually sent must be reads on the read-only table; the query sent is reduced to the parameters
        known for that route."""
        sent = route if path is None else classify(route.method, path)
        if not (route.is_read and sent.is_read):
            raise PermissionError(f"{sent.method} {sent.path} is not a read-only route")
        assert self.state is not None
        params = forwardable_params(sent)
        kwargs: dict[str, Any] = {"client_headers": headers, "sink": sink, "method": route.method}
        if max_bytes is not None:
            kwargs["max_bytes"] = max_bytes
        response = await asyncio.to_thread(self.state.upstream.get,
                                           sent.path + ("?" + urlencode(params) if params else ""), **kwargs)
        self.state.counters["forwarded"] += 1
        return response

    def upstream_error(self, flow: http.HTTPFlow, route: Route, exc: UpstreamError) -> None:
        """Plex could not be read: answer 502 (plexapi raises BadRequest, Kometa moves on) and record why."""
        log.error("UPSTREAM_ERROR %s %s: %s", route.method, redact(route.path), exc)
        if self.state is not None:
            self.state.journal.write("UPSTREAM_ERROR", path=redact(route.path), error=str(exc))
        answer(flow, "UPSTREAM_ERROR", plexml.empty_container(), status=502, error=str(exc))

    async def forward(self, flow: http.HTTPFlow, route: Route, verdict: str, *, path: str | None = None,
                      transform: Callable[[UpstreamResponse], bytes] | None = None, **info: Any) -> None:
        """Answer the flow with Plex's answer to the same read (optionally rewritten)."""
        try:
            response = await self.fetch(route, path, headers=header_map(flow.request))
        except UpstreamError as exc:
            self.upstream_error(flow, route, exc)
            return
        if response.status >= 400 and self.state is not None:
            self.state.journal.write("UPSTREAM_STATUS", path=redact(route.path), status=response.status)
        body = response.body
        if body[:1] == b"<" and plexml.has_dtd(body):
            log.warning("UNSAFE_UPSTREAM %s: Plex's answer carries a DTD; answered with an empty container",
                        redact(route.path))
            if self.state is not None:
                self.state.journal.write("UNSAFE_UPSTREAM", path=redact(route.path), reason="DTD in XML answer")
            answer(flow, "UNSAFE_UPSTREAM", plexml.empty_container(), upstream_status=response.status)
            return
        if transform is not None and response.status == 200:
            body = transform(response)
        flow.response = http.Response.make(response.status, body,
                                           {"Content-Type": response.content_type or plexml.XML_CONTENT_TYPE})
        tag(flow, verdict, upstream_status=response.status, **info)
