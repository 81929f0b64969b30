"""WriteBlock: every request that is not a known read is answered here with 200 and never forwarded;
images in upload bodies are captured under `output/by_ratingkey/`.

The answer is set before anything that can fail (body parsing, disk writes): a broken body or a
full disk costs the capture, never the block.
"""
from __future__ import annotations

from mitmproxy import http

from ..plex import xml as plexml
from ..plex.routes import Kind, Route
from . import capture
from .bodies import BodyError, decoded
from .flows import Proxy, answer, fail_closed, route_of, unanswered
from .journal import log, redact


def _verdict(route: Route) -> str:
    if route.method in ("GET", "HEAD") and not route.override:
        return "BLOCKED_SIDE_EFFECT" if route.kind is Kind.SIDE_EFFECT else "BLOCKED_UNKNOWN"
    return "BLOCKED_WRITE"


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
            self._record(route, "UPLOAD_TOO_LARGE", content_length=declared)
            log.warning("BLOCKED_WRITE (too large): %s %s ratingKey=%s bytes=%d limit=%d", route.method,
                        redact(route.path), route.rating_key, declared, state.max_upload)
            answer(flow, "UPLOAD_TOO_LARGE", plexml.empty_container(), status=413, content_length=declared)

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
            verdict = "UPLOAD_TOO_LARGE" if exc.status == 413 else "UPLOAD_UNDECODABLE"
            answer(flow, verdict, plexml.empty_container(), status=exc.status, reason=str(exc))
            flow.marked = ":no_entry:"
            self._record(route, verdict, content_length=len(raw), reason=str(exc))
            log.warning("BLOCKED_WRITE (%s): %s %s ratingKey=%s bytes=%d: %s", verdict, route.method,
                        redact(route.path), route.rating_key, len(raw), exc)
            return
        verdict = _verdict(route)
        answer(flow, verdict, plexml.empty_container(), rating_key=route.rating_key, kind=route.upload_kind)
        flow.marked = ":no_entry:"
        self._record(route, verdict, content_length=len(body), url=route.param("url"))
        if verdict == "BLOCKED_WRITE":
            log.info("BLOCKED_WRITE: %s %s ratingKey=%s", route.method, redact(route.path), route.rating_key)
        else:
            log.info("%s %s %s", verdict, route.method, redact(route.path))
        if body:
            self._capture(route, body, flow.request.headers.get("Content-Type", ""))
        elif route.kind is Kind.UPLOAD:
            log.warning("BLOCKED_WRITE (no image): %s %s ratingKey=%s%s", route.method, redact(route.path),
                        route.rating_key, f" url={redact(route.param('url') or '')}" if route.param("url") else "")

    def _record(self, route: Route, verdict: str, **info) -> None:
        state = self.proxy.state
        record = {"method": route.method, "path": redact(route.path), "route": route.kind.value,
                  "rating_key": route.rating_key, "kind": route.upload_kind, **info}
        state.counters[verdict] += 1
        state.journal.write(verdict, **record)

    def _capture(self, route: Route, body: bytes, content_type: str) -> None:
        state = self.proxy.state
        rating_key = route.rating_key or "unknown"
        kind = route.upload_kind or "unknown"
        found = capture.find_image(body, content_type)
        if found is None:
            saved = capture.save_atomic(state.output / "captured_requests", f"{rating_key}_{kind}_{capture.timestamp()}",
                                        "bin", body)
            state.journal.write("CAPTURE_PARSE_ERROR", rating_key=rating_key, kind=kind, bytes=len(body),
                                saved=str(saved), method=route.method, path=redact(route.path))
            log.warning("CAPTURE_PARSE_ERROR ratingKey=%s kind=%s bytes=%d saved=%s: no complete JPEG/PNG/WebP "
                        "in the body", rating_key, kind, len(body), saved)
            return
        data, ext = found
        saved = capture.save_atomic(state.output / "by_ratingkey", f"{rating_key}_{kind}_{capture.timestamp()}",
                                    ext, data)
        state.counters["captured"] += 1
        state.journal.write("CAPTURED_UPLOAD", rating_key=rating_key, kind=kind, bytes=len(data), ext=ext,
                            saved=str(saved), method=route.method, path=redact(route.path),
                            target=state.targets[rating_key].id if rating_key in state.targets else None)
        log.info("CAPTURED_UPLOAD ratingKey=%s kind=%s bytes=%d saved=%s", rating_key, kind, len(data), saved)
