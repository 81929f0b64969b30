"""ReadOnlyRoutes: the last addon. Forwards the small, always-safe reads nobody else claimed, and
answers everything still unanswered locally, so no flow ever falls through to mitmproxy's own
upstream connection."""
from __future__ import annotations

from mitmproxy import http

from ..plex import xml as plexml
from ..plex.routes import Kind
from .flows import Proxy, answer, fail_closed, route_of, unanswered
from .journal import log, redact

#: Reads that are the same at any library size and say nothing about other items.
PASS_THROUGH = frozenset({Kind.ROOT, Kind.IDENTITY, Kind.SERVER_PREFS, Kind.SECTION_PREFS})
#: Filter mode shows Plex's own library structure (listings are filtered by ListingFilter).
PASS_THROUGH_FILTER_MODE = PASS_THROUGH | {Kind.LIBRARY, Kind.SECTIONS, Kind.SECTION, Kind.FILTER_CHOICES}


class ReadOnlyRoutes:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        if not unanswered(flow):
            return
        state = self.proxy.state
        route = route_of(flow)
        allowed = PASS_THROUGH if state is None or state.mock else PASS_THROUGH_FILTER_MODE
        if state is not None and route.is_read and route.kind in allowed:
            await self.proxy.forward(flow, route, "PASS_THROUGH")
            return
        answer(flow, "UNCLAIMED", plexml.empty_container(), route=route.kind.value)
        if state is not None:
            state.counters["UNCLAIMED"] += 1
            state.journal.write("UNCLAIMED", method=route.method, path=redact(route.path), route=route.kind.value)
        log.warning("UNCLAIMED %s %s answered locally (no addon knows it as a safe read)", route.method,
                    redact(route.path))
