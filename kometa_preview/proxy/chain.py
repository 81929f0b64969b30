"""The addon chain, in the order mitmproxy must call it.

Order is part of the safety design: header and in-flight limits come first (before any work that grows
with the request), then the outside door's allowlist, then the token, writes are answered before any
addon that might forward, and `ReadOnlyRoutes` is last so nothing falls through to mitmproxy's own
upstream connection. `ExitWhenDone` is last so that every other addon's `done` has run when it ends the process.
"""
from __future__ import annotations

from .exit_when_done import ExitWhenDone
from .flows import Proxy
from .listing_filter import ListingFilter
from .metadata_gate import MetadataGate
from .mock_library import MockLibrary
from .outside_calls import OutsideCalls
from .poster_source import PosterSource
from .read_only import ReadOnlyRoutes
from .request_limits import RequestLimits
from .setup import FlowJournal, Setup
from .token_guard import TokenGuard
from .write_block import WriteBlock


def build(*, mock_library_default: bool = True) -> list[object]:
    proxy = Proxy()
    return [Setup(proxy, mock_library_default=mock_library_default), FlowJournal(proxy), RequestLimits(proxy),
            OutsideCalls(proxy), TokenGuard(proxy),
            WriteBlock(proxy),
            MockLibrary(proxy), PosterSource(proxy), MetadataGate(proxy), ListingFilter(proxy), ReadOnlyRoutes(proxy),
            ExitWhenDone()]
