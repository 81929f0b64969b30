"""Answering flows: tag each decision, fail closed, and forward reads through one choke point.

mitmproxy fails open — a hook that raises lets the flow go upstream (docs/MITMPROXY-NOTES.md) — so every
request hook is wrapped in `fail_closed`, which answers 502 locally instead. And only `Proxy.fetch`
ever reaches Plex: it classifies the path it is about to send, refuses anything not on the read-only
table, and strips the query to the parameters known for that route.
"""
from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mitmproxy import http

from ..common.events import BLOCKED, SIDE_DOORS, Event, Record
from ..common.limits import MAX_UPSTREAM_BYTES
from ..plex import xml as plexml
from ..plex.client import UpstreamError, UpstreamResponse
from ..plex.routes import Route, classify, forwardable_params
from .journal import log, redact
from .state import PreviewState

META_KEY = "preview"
#: How many reads of Plex answering this flow took (`Proxy.fetch` counts, `FlowJournal` records).
UPSTREAM_KEY = "preview.upstream"
#: Set on Kometa's outside calls (GitHub, TMDb) by `OutsideCalls`; the Plex addons leave those flows alone.
OUTSIDE_KEY = "preview.outside"


_ROUTES: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, str, Route]] = weakref.WeakKeyDictionary()


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


#: How mitmweb's flow list shows each kind of verdict (`flow.marked`): a blocked write no longer looks like a
#: plain green 200.
MARK_BLOCKED, MARK_WARNING, MARK_LOCAL, MARK_PLEX, MARK_OUTSIDE = ":no_entry:", ":warning:", ":house:", \
    ":arrow_up:", ":outbox_tray:"
_WARNINGS = frozenset({Event.PROXY_ERROR, Event.UPSTREAM_ERROR, Event.UPSTREAM_STATUS, Event.UNSAFE_UPSTREAM,
                       Event.FILTER_PARSE_ERROR, Event.NOT_CONFIGURED, Event.UNCLAIMED})
_VIA_PLEX = frozenset({Event.ALLOW_FORWARD, Event.PASS_THROUGH, Event.FILTER_LIST, Event.FILTER_CHILDREN})


def mark_of(verdict: Event) -> str:
    if verdict in BLOCKED or verdict in SIDE_DOORS or verdict is Event.BLOCK_METADATA \
            or verdict.startswith("OUTSIDE_REFUSED"):
        return MARK_BLOCKED
    if verdict in _WARNINGS:
        return MARK_WARNING
    if verdict in _VIA_PLEX:
        return MARK_PLEX
    if verdict is Event.OUTSIDE_PASS:
        return MARK_OUTSIDE
    return MARK_LOCAL


def tag(flow: http.HTTPFlow, verdict: Event, **info: Any) -> None:
    """Record on the flow why it was answered the way it was: mitmweb shows it (list mark, comment) and `-w`
    saves it."""
    flow.metadata[META_KEY] = {"verdict": verdict.value, **{k: v for k, v in info.items() if v is not None}}
    flow.comment = verdict.value
    flow.marked = mark_of(verdict)


def answer(flow: http.HTTPFlow, verdict: Event, body: bytes = b"", *, status: int = 200,
           content_type: str = plexml.XML_CONTENT_TYPE, **info: Any) -> None:
    """Answer locally and tag. Addons call `Proxy.decide`, which also journals, logs and counts."""
    flow.response = http.Response.make(status, body, {"Content-Type": content_type})
    tag(flow, verdict, **info)


def fail_closed(hook: Callable) -> Callable:
    """Wrap a request-phase hook: whatever it raises, the flow is answered locally, never forwarded."""

    def contain(self, flow: http.HTTPFlow, exc: BaseException) -> None:
        path = redact(flow.request.path)
        log.exception("PROXY_ERROR %s %s in %s: %s", flow.request.method, path, type(self).__name__, exc)
        state = getattr(getattr(self, "proxy", None), "state", None)
        if state is not None:
            state.journal.note(Event.PROXY_ERROR, method=flow.request.method, path=path, addon=type(self).__name__,
                               error=type(exc).__name__)
        if flow.response is None or not flow.metadata.get(META_KEY):
            answer(flow, Event.PROXY_ERROR, plexml.empty_container(), status=502, error=type(exc).__name__)

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
    """What the addons share: the state (None until configured), the one recorder of decisions, and the one
    forwarding choke point."""
    state: PreviewState | None = None

    def pending_read(self, flow: http.HTTPFlow) -> tuple[PreviewState, Route] | None:
        """The state and route of a read no addon has answered yet; None for anything else."""
        if self.state is None or not unanswered(flow):
            return None
        route = route_of(flow)
        return (self.state, route) if route.is_read else None

    # --- the recorder: every decision is journaled, logged and counted here, and only here ----------------

    def record(self, line: Record, says: str = "", *, level: int = logging.INFO) -> None:
        """A decision not tied to one answer (a learned parent, a refused connection), of an event that has a record
        type: journal line, log line (`EVENT says`, the exact event name users grep for), counter."""
        if self.state is not None:
            self.state.journal.write(line)
        self._count_and_log(line.event, says, level, line.to_line())

    def note(self, event: Event, says: str = "", *, level: int = logging.INFO, **fields: Any) -> None:
        """`record` for a diagnostic event (one without a record type): its fields are free-form."""
        fields = {k: v for k, v in fields.items() if v is not None}
        if self.state is not None:
            self.state.journal.note(event, **fields)
        self._count_and_log(event, says, level, fields)

    def _count_and_log(self, event: Event, says: str, level: int, fields: dict[str, Any]) -> None:
        if self.state is not None:
            self.state.counters[event] += 1
        text = says or " ".join(f"{k}={v}" for k, v in fields.items() if k != "event")
        log.log(level, "%s%s%s", event.value, "" if text.startswith(":") else " ", text)

    @staticmethod
    def log_only(level: int, text: str) -> None:
        """A log line that adds detail to a decision already recorded (no journal line, no counter)."""
        log.log(level, "%s", text)

    def decide(self, flow: http.HTTPFlow, line: Record | Event, says: str = "", *, body: bytes | None = None,
               status: int = 200, content_type: str = plexml.XML_CONTENT_TYPE, level: int = logging.INFO,
               journal: dict[str, Any] | None = None, **info: Any) -> None:
        """Answer a flow (when `body` is given), tag it with the verdict and `info`, and record the decision.
        `line` is the journal line: the record of an event that has a record type, else the bare event of a
        diagnostic, whose line is then `info` plus `journal` (fields only the journal needs: the flow's own tag
        stays small)."""
        verdict = line.event if isinstance(line, Record) else line
        if body is not None:
            answer(flow, verdict, body, status=status, content_type=content_type, **info)
        else:
            tag(flow, verdict, **info)
        if isinstance(line, Record):
            if journal:
                raise TypeError(f"a {verdict} record holds its own fields; `journal` is for diagnostics")
            self.record(line, says, level=level)
        else:
            self.note(line, says, level=level, **info, **(journal or {}))

    # --- the only way to Plex --------------------------------------------------------------------------

    async def fetch(self, flow: http.HTTPFlow, route: Route, path: str | None = None, *,
                    headers: dict[str, str] | None = None, sink: Callable[[bytes], None] | None = None,
                    max_bytes: int = MAX_UPSTREAM_BYTES) -> UpstreamResponse:
        """Read `path` (default: the client's own request) from Plex, on behalf of `flow`. Both the client's
        request and the path actually sent must be reads on the read-only table; the query sent is reduced
        to the parameters known for that route. Counted on the flow: `FLOW.upstream`."""
        sent = route if path is None else classify(route.method, path)
        if not (route.is_read and sent.is_read):
            raise PermissionError(f"{sent.method} {sent.path} is not a read-only route")
        assert self.state is not None
        params = forwardable_params(sent)
        flow.metadata[UPSTREAM_KEY] = flow.metadata.get(UPSTREAM_KEY, 0) + 1
        return await asyncio.to_thread(self.state.upstream.get, sent.path + ("?" + urlencode(params) if params else ""),
                                       client_headers=headers, sink=sink, method=route.method, max_bytes=max_bytes)

    def upstream_error(self, flow: http.HTTPFlow, route: Route, exc: UpstreamError) -> None:
        """Plex could not be read: answer 502 (plexapi raises BadRequest, Kometa moves on) and record why."""
        self.decide(flow, Event.UPSTREAM_ERROR, f"{route.method} {redact(route.path)}: {exc}",
                    body=plexml.empty_container(), status=502, level=logging.ERROR, error=str(exc),
                    journal={"path": redact(route.path)})

    async def forward(self, flow: http.HTTPFlow, route: Route, verdict: Event, says: str = "", *,
                      path: str | None = None, transform: Callable[[UpstreamResponse], bytes] | None = None,
                      journal: dict[str, Any] | None = None, **info: Any) -> None:
        """Answer the flow with Plex's answer to the same read (optionally rewritten), and record the verdict it
        really got: `verdict`, or the error that replaced it."""
        try:
            response = await self.fetch(flow, route, path, headers=header_map(flow.request))
        except UpstreamError as exc:
            self.upstream_error(flow, route, exc)
            return
        body = response.body
        if body[:1] == b"<" and plexml.has_dtd(body):
            self.decide(flow, Event.UNSAFE_UPSTREAM, f"{redact(route.path)}: Plex's answer carries a DTD; answered "
                        "with an empty container", body=plexml.empty_container(), level=logging.WARNING,
                        upstream_status=response.status, journal={"path": redact(route.path),
                                                                   "reason": "DTD in XML answer"})
            return
        if response.status >= 400:
            self.decide(flow, Event.UPSTREAM_STATUS, f"{redact(route.path)} status={response.status}",
                        body=body, status=response.status,
                        content_type=response.content_type or plexml.XML_CONTENT_TYPE,
                        journal={"path": redact(route.path), "status": response.status})
            return
        if transform is not None and response.status == 200:
            body = transform(response)
        self.decide(flow, verdict, says, body=body, status=response.status,
                    content_type=response.content_type or plexml.XML_CONTENT_TYPE, upstream_status=response.status,
                    journal=journal, **info)
