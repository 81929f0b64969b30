"""ReadOnlyRoutes: the last addon. Forwards the small, always-safe reads nobody else claimed, and
answers everything still unanswered locally, so no flow ever falls through to mitmproxy's own
upstream connection."""
from __future__ import annotations

import logging

from mitmproxy import http

from ..common.events import Event
from ..plex import xml as plexml
from ..plex.routes import Kind
from .flows import Proxy, fail_closed, route_of, unanswered
from .journal import redact

#: Reads that are the same at any library size and say nothing about other items.
PASS_THROUGH = frozenset({Kind.ROOT, Kind.IDENTITY, Kind.SERVER_PREFS, Kind.SECTION_PREFS})
#: Filter mode shows Plex's own library structure (listings are filtered by ListingFilter).
PASS_THROUGH_FILTER_MODE = PASS_THROUGH | {Kind.LIBRARY, Kind.SECTIONS, Kind.SECTION, Kind.FILTER_CHOICES}


class ReadOnlyRoutes:
    CLAIMS = {"mock": PASS_THROUGH, "filter": PASS_THROUGH_FILTER_MODE}

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        if not unanswered(flow):
            return
        state = self.proxy.state
        route = route_of(flow)
        allowed = self.CLAIMS["mock" if state is None or state.mock else "filter"]
        if state is not None and route.is_read and route.kind in allowed:
            await self.proxy.forward(flow, route, Event.PASS_THROUGH, f"endpoint={route.path}",
                                     journal={"path": redact(route.path), "route": route.kind.value})
            return
        self.proxy.decide(flow, Event.UNCLAIMED, f"{route.method} {redact(route.path)} answered locally (no addon "
                          "knows it as a safe read)", body=plexml.empty_container(), level=logging.WARNING,
                          route=route.kind.value, journal={"method": route.method, "path": redact(route.path)})
