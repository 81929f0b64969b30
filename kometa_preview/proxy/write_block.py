"""WriteBlock: every request that is not a known read is answered here with 200 and never forwarded;
images in upload bodies are captured under `output/by_ratingkey/`.

The answer is set before anything that can fail (body parsing, disk writes): a broken body or a
full disk costs the capture, never the block.
"""
from __future__ import annotations

import logging

from mitmproxy import http

from ..common.events import Blocked, Captured, Event
from ..common.job import CaptureName
from ..plex import xml as plexml
from ..plex.routes import Kind, Route
from . import capture
from .bodies import BodyError, decoded
from .flows import Proxy, fail_closed, route_of, unanswered
from .journal import redact


def _verdict(route: Route) -> Event:
    if route.method in ("GET", "HEAD") and not route.override:
        return Event.BLOCKED_SIDE_EFFECT if route.kind is Kind.SIDE_EFFECT else Event.BLOCKED_UNKNOWN
    return Event.BLOCKED_WRITE


def _blocked(verdict: Event, route: Route, content_length: int, **more: str | None) -> Blocked:
    """The journal line of a request answered here: what it was (method, redacted path, route, the item and image
    kind it names) and how big; `more` is a `reason` (undecodable) or the `url` of an upload by URL."""
    return Blocked(event=verdict, method=route.method, path=redact(route.path), route=route.kind.value,
                   rating_key=route.rating_key, kind=route.upload_kind, content_length=content_length, **more)


class WriteBlock:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Refuse oversized bodies before mitmproxy reads them into memory."""
        state = self.proxy.state
        if not unanswered(flow) or state is None:
            return
        length = flow.request.headers.get("Content-Length", "0")
        declared = max((int(v) for v in length.split(",") if v.strip().isdigit()), default=0)
        if declared > state.max_upload:
            route = route_of(flow)
            self.proxy.decide(flow, _blocked(Event.UPLOAD_TOO_LARGE, route, declared),
                              f"{route.method} {redact(route.path)} ratingKey={route.rating_key} bytes={declared} "
                              f"limit={state.max_upload}", body=plexml.empty_container(), status=413,
                              level=logging.WARNING, content_length=declared, rating_key=route.rating_key,
                              kind=route.upload_kind)

    @fail_closed
    def request(self, flow: http.HTTPFlow) -> None:
        state = self.proxy.state
        if not unanswered(flow) or state is None:
            return
        route = route_of(flow)
        if route.is_read:
            return
        request = flow.request
        raw = request.raw_content or b""
        try:
            body = decoded(raw, request.headers.get("content-encoding", ""), state.max_upload)
        except BodyError as exc:
            # Judged by the decoded size: a small compressed body that inflates past the limit is refused, and
            # decoding stopped at the limit, so nothing of it is held or kept.
            verdict = Event.UPLOAD_TOO_LARGE if exc.status == 413 else Event.UPLOAD_UNDECODABLE
            self.proxy.decide(flow, _blocked(verdict, route, len(raw), reason=str(exc)),
                              f"{route.method} {redact(route.path)} ratingKey={route.rating_key} bytes={len(raw)}: "
                              f"{exc}", body=plexml.empty_container(), status=exc.status, level=logging.WARNING,
                              reason=str(exc), rating_key=route.rating_key, kind=route.upload_kind,
                              content_length=len(raw))
            return
        verdict = _verdict(route)
        says = f"{route.method} {redact(route.path)}" + (f" ratingKey={route.rating_key}" if route.rating_key else "")
        self.proxy.decide(flow, _blocked(verdict, route, len(body), url=redact(route.param("url") or "") or None),
                          (": " if verdict is Event.BLOCKED_WRITE else "") + says, body=plexml.empty_container(),
                          rating_key=route.rating_key, kind=route.upload_kind, content_length=len(body))
        if body:
            self._capture(route, body, flow.request.headers.get("Content-Type", ""))
        elif route.kind is Kind.UPLOAD:
            url = route.param("url")
            self.proxy.log_only(logging.WARNING, f"BLOCKED_WRITE (no image): {says}"
                                + (f" url={redact(url)}" if url else ""))

    def _capture(self, route: Route, body: bytes, content_type: str) -> None:
        state = self.proxy.state
        layout = state.layout
        found = capture.find_image(body, content_type)
        where = {"method": route.method, "path": redact(route.path)}
        if found is None:
            saved = capture.save(layout.captured_requests, CaptureName.new(route.rating_key, route.upload_kind, "bin"),
                                 body)
            name = CaptureName.parse(saved.name)
            self.proxy.note(Event.CAPTURE_PARSE_ERROR, f"ratingKey={name.rating_key} kind={name.kind} "
                            f"bytes={len(body)} saved={saved}: no complete JPEG/PNG/WebP in the body",
                            level=logging.WARNING, rating_key=name.rating_key, kind=name.kind, bytes=len(body),
                            saved=str(saved), **where)
            return
        data, ext = found
        saved = capture.save(layout.by_ratingkey, CaptureName.new(route.rating_key, route.upload_kind, ext), data)
        name = CaptureName.parse(saved.name)
        target = state.targets.get(name.rating_key)
        self.proxy.record(Captured(rating_key=name.rating_key, kind=name.kind, bytes=len(data), ext=ext,
                                   saved=str(saved), target=target.id if target else None, **where),
                          f"ratingKey={name.rating_key} kind={name.kind} bytes={len(data)} saved={saved}")
