"""RequestLimits: the first addon on every door. A request with too many or too large headers is answered
431, and the bytes of request bodies being received at once are capped, before any other addon does work
that grows with them.

mitmproxy buffers a whole request body before the `request` hook; one 63 MiB upload is fine, twenty at
once are 1.3 GB. So every body reserves its size (its Content-Length, or the upload limit when chunked)
from `INFLIGHT_UPLOADS` × the upload limit at `requestheaders`, and gives it back when the flow ends. A
request that does not fit is killed there: its connection is closed unread. (Answering it instead would not
help: mitmproxy 12.3 still buffers the whole body of a request answered in `requestheaders` — measured, 20
such uploads took 2.1 GB.) Kometa uploads one poster at a time, so it never meets this limit. Header work
elsewhere is linear (`flows.header_map`), and these limits bound it anyway.

A client that sends its request slowly (a byte every few seconds keeps mitmproxy's idle timeout from ever
firing) is closed once `preview_request_timeout` passes without a complete request: from the connection's
start, or from the last answer on a kept-alive connection, to the end of the request's body. The close is
mitmproxy's own (`ConnectionHandler.on_timeout`, what its idle timeout calls).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from mitmproxy import connection, ctx, http

from ..common.events import Event
from ..common.limits import MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_UPLOAD_BYTES, MiB
from ..plex import xml as plexml
from .flows import Proxy
from .journal import redact

#: Real clients send about ten headers (plexapi: 12, a browser: ~20); Plex's own limit is lower than
#: `MAX_HEADER_COUNT`.
#: How many upload bytes may be buffered at once, across all connections, in upload limits. mitmproxy holds a
#: body up to three times while assembling and handing it over, so the proxy's peak memory stays under its
#: idle size (~90 MiB) + 3 × INFLIGHT_UPLOADS × the upload limit: 474 MiB at the default 64 MiB, however many
#: uploads arrive at once (measured by test_reliability_doors: docs/RELIABILITY.md).
INFLIGHT_UPLOADS = 2
#: The bound above, for the default upload limit, in MiB.
PEAK_RSS_BOUND_MIB = 90 + 3 * INFLIGHT_UPLOADS * MAX_UPLOAD_BYTES // MiB
RESERVED_KEY = "preview.reserved"


class RequestLimits:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.inflight = 0
        #: client id → when the request it owes us started being owed, and whether it is the connection's first
        #: (a kept-alive connection that goes quiet after an answer is idle, not a slow request)
        self.owed: dict[str, tuple[float, bool]] = {}
        self._watch: asyncio.Task | None = None

    # --- slow requests ------------------------------------------------------------------------------

    def running(self) -> None:
        self._watch = asyncio.get_running_loop().create_task(self._close_slow_clients())

    def done(self) -> None:
        if self._watch is not None:
            self._watch.cancel()

    def client_connected(self, client: connection.Client) -> None:
        self.owed[client.id] = (time.monotonic(), True)

    def client_disconnected(self, client: connection.Client) -> None:
        self.owed.pop(client.id, None)
        _close_left_open(client)

    def request(self, flow: http.HTTPFlow) -> None:
        self.owed.pop(flow.client_conn.id, None)  # the whole request, body included, has arrived

    async def _close_slow_clients(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, max(ctx.options.preview_request_timeout / 4, 0.1)))
            deadline = time.monotonic() - ctx.options.preview_request_timeout
            late = {client_id for client_id, (since, _) in self.owed.items() if since < deadline}
            if not late:
                continue
            server = ctx.master.addons.get("proxyserver")
            for handler in list(getattr(server, "connections", {}).values()):
                client = handler.client
                owed = self.owed.pop(client.id, None) if client.id in late else None
                if owed is None:
                    continue
                peer = f"{client.peername[0]}:{client.peername[1]}" if client.peername else "?"
                if owed[1]:
                    self.proxy.note(Event.SLOW_REQUEST, level=logging.WARNING, client=peer,
                                    reason=f"no complete request within {ctx.options.preview_request_timeout} s")
                else:  # a kept-alive connection a client's pool left open: closed, and it reconnects when it needs to
                    self.proxy.note(Event.IDLE_CLIENT_CLOSED, level=logging.DEBUG, client=peer,
                                    reason=f"no new request within {ctx.options.preview_request_timeout} s")
                with contextlib.suppress(Exception):
                    await handler.on_timeout()

    # --- headers and bodies ---------------------------------------------------------------------------

    def _max_upload(self) -> int:
        state = self.proxy.state
        return state.max_upload if state is not None else MAX_UPLOAD_BYTES

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        request = flow.request
        fields = request.headers.fields
        size = sum(len(name) + len(value) + 4 for name, value in fields)
        if len(fields) > MAX_HEADER_COUNT or size > MAX_HEADER_BYTES:
            self.proxy.decide(flow, Event.HEADERS_TOO_LARGE, body=plexml.empty_container(), status=431,
                              level=logging.WARNING, headers=len(fields), header_bytes=size,
                              journal={"method": request.method, "path": redact(request.path[:200])})
            return
        if request.method in ("GET", "HEAD") and "content-length" not in request.headers \
                and "transfer-encoding" not in request.headers:
            return
        reserve = self._reservation(request)
        limit = INFLIGHT_UPLOADS * self._max_upload()
        if reserve and self.inflight + reserve > limit:
            self.proxy.note(Event.UPLOADS_BUSY, level=logging.WARNING, method=request.method,
                            path=redact(request.path[:200]), reserve=reserve, inflight=self.inflight, limit=limit)
            flow.kill()
            return
        self.inflight += reserve
        flow.metadata[RESERVED_KEY] = reserve

    def _reservation(self, request: http.Request) -> int:
        """The bytes this body may take while buffered: what it declares, or the limit when chunked."""
        limit = self._max_upload()
        if "chunked" in request.headers.get("transfer-encoding", "").lower():
            return limit
        declared = [int(v) for v in request.headers.get("content-length", "0").split(",") if v.strip().isdigit()]
        return min(max(declared, default=0), limit)

    def response(self, flow: http.HTTPFlow) -> None:
        self._release(flow)
        if flow.live:
            self.owed[flow.client_conn.id] = (time.monotonic(), False)  # kept alive: the next request is owed

    def error(self, flow: http.HTTPFlow) -> None:
        self._release(flow)

    def _release(self, flow: http.HTTPFlow) -> None:
        self.inflight -= flow.metadata.pop(RESERVED_KEY, 0)


def _close_left_open(client: connection.Client) -> None:
    """Close the socket of a connection mitmproxy has finished with but left open.

    A flow killed at `requestheaders` while its client is still sending (an upload over the in-flight budget) is
    closed by cancelling its connection's handler; mitmproxy 12 skips the handler's `writer.close()` when that
    cancel lands while the handler waits for its event lock, so the socket stayed open with nobody reading it: the
    client's upload hung until its own timeout (60 s in test_reliability_doors) and the proxy kept the descriptor
    for good, one more for every busy upload. At `client_disconnected` the handler is still registered; a
    transport it still holds is closed here (unread data, so the client gets a reset at once)."""
    server = ctx.master.addons.get("proxyserver")
    for handler in list(getattr(server, "connections", {}).values()):
        if handler.client is client:
            io = handler.transports.get(client)
            if io is not None and io.writer is not None and not io.writer.is_closing():
                io.writer.close()
            return
