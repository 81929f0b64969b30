"""ListingFilter (filter mode, `PREVIEW_MOCK_LIBRARY=0`): Plex answers listings; only targets survive.

The listing is asked for whole (no paging upstream: a page of Plex's library would hide targets
on later pages) and filtered as it streams in, so memory is bounded by the largest item, not the
library. The client's paging is then applied to the targets, with `size`/`totalSize` fixed.
An answer that is not XML is passed through unchanged with a warning (docs/PREVIEW-MODE.md) when it is small,
and replaced by an empty container when it is not (memory stays bounded).
"""
from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlencode

from mitmproxy import http

from ..common.events import Event, FilterList
from ..common.limits import MAX_STREAMED_LISTING_BYTES, PASS_THROUGH_BYTES
from ..plex import filters
from ..plex import xml as plexml
from ..plex.client import UpstreamError
from ..plex.routes import Kind, Route, paging
from .flows import Proxy, fail_closed, header_map
from .journal import redact
from .state import OVERLAY_LABEL, PreviewState

#: Route kinds whose Plex answer this addon strips to the targets.
STRIPPED = frozenset({Kind.LISTING, Kind.HUB_SEARCH, Kind.COLLECTIONS})


class _Answer:
    """Plex's listing as it streams in: filtered item by item, and kept raw only while it is small enough to pass
    through unchanged should it not parse."""

    def __init__(self, keep: Callable[[ET.Element], bool]) -> None:
        self.stream = plexml.StreamFilter(keep)
        self.raw = bytearray()
        self.parse_error: str | None = None

    def feed(self, chunk: bytes) -> None:
        if len(self.raw) <= PASS_THROUGH_BYTES:
            self.raw.extend(chunk)
        elif self.parse_error is not None:
            raise plexml.UnsafeXML(self.parse_error)  # unparseable and too large: stop reading
        if self.parse_error is None:
            try:
                self.stream.feed(chunk)
            except plexml.UnsafeXML as exc:
                self.parse_error = str(exc)

    def close(self) -> ET.Element:
        """The filtered listing. Raises `UnsafeXML`."""
        if self.parse_error is not None:
            raise plexml.UnsafeXML(self.parse_error)
        return self.stream.close()

    @property
    def kept_raw(self) -> bool:
        return len(self.raw) <= PASS_THROUGH_BYTES


class ListingFilter:
    CLAIMS = {"mock": frozenset(), "filter": STRIPPED}

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None or claimed[0].mock or claimed[1].kind not in self.CLAIMS["filter"]:
            return
        state, route = claimed
        answer = _Answer(self._keeper(state, route))
        params = [(k, v) for k, v in route.params if not k.startswith("X-Plex-Container-")]
        path = route.path + ("?" + urlencode(params) if params else "")
        try:
            response = await self.proxy.fetch(flow, route, path, sink=answer.feed,
                                              max_bytes=MAX_STREAMED_LISTING_BYTES)
            if response.status != 200:
                self.proxy.decide(flow, Event.UPSTREAM_STATUS, f"{route.path} status={response.status}",
                                  body=bytes(answer.raw), status=response.status,
                                  content_type=response.content_type or "text/html",
                                  journal={"path": route.path, "status": response.status})
                return
            root = answer.close()
        except plexml.UnsafeXML as exc:
            self._unparsed(flow, route, state, answer.raw, str(exc))
            return
        except UpstreamError as exc:
            self.proxy.upstream_error(flow, route, exc)
            return
        self._answer(flow, route, state, root, answer, params)

    def _keeper(self, state: PreviewState, route: Route) -> Callable[[ET.Element], bool]:
        """Which of Plex's items survive: the targets, or those an Overlay-label search matches locally."""
        local = self._overlay_label_search(state, route)
        keep = local.__contains__ if local is not None else state.is_target

        def target(element: ET.Element) -> bool:
            if not keep(element.get("ratingKey")):
                return False
            plexml.strip_label(element, OVERLAY_LABEL)  # the same view of the item as its metadata
            return True
        return target

    def _answer(self, flow: http.HTTPFlow, route: Route, state: PreviewState, root: ET.Element, answer: _Answer,
                params: list[tuple[str, str]]) -> None:
        """The targets Plex listed, paged as the client asked, with `size`/`totalSize` fixed."""
        items = [child for child in root if child.get("ratingKey")]
        for child in items:
            root.remove(child)
        start, size = paging(route, header_map(flow.request))
        chosen, attrs = plexml.page(items, start, size)
        root.extend(chosen)
        root.attrib.update(attrs)
        if route.kind is Kind.LISTING:
            root.set("size", str(len(chosen)))
        before = answer.stream.before
        after = sum(1 for _ in root.iter() if _.get("ratingKey"))
        allowed = len(state.targets) - len(state.missing)
        line = FilterList(path=route.path, query=redact(urlencode(params)), items_before=before, items_after=after,
                          removed=before - after, allowed=allowed,
                          upstream_bytes=len(answer.raw) if answer.kept_raw else None)
        self.proxy.decide(flow, line, f"endpoint={route.path} items_before={before} items_after={after} "
                          f"allowed_keys={allowed}", body=plexml.serialize(root), before=before, after=after)
        self.proxy.log_only(logging.INFO, f"FILTER_XML items: before={before} after={after} "
                                          f"removed={before - after} allowed={allowed}")

    def _overlay_label_search(self, state: PreviewState, route: Route) -> set[str] | None:
        """Plex cannot know the proxy hides the Overlay label: such searches are answered from the
        targets' (label-stripped) metadata, so listings and metadata tell Kometa the same story."""
        if route.kind is not Kind.LISTING or not state.asks_about_overlay_label(route.params):
            return None
        try:
            chosen = filters.select(route.params, state.candidates(route)[0], state.relatives())
        except filters.Unsupported:
            return None
        self.proxy.note(Event.FILTER_LOCAL_OVERLAY_LABEL, level=logging.DEBUG, path=route.path,
                        matched=[e.get("ratingKey") for e in chosen])
        return {e.get("ratingKey") for e in chosen}

    def _unparsed(self, flow: http.HTTPFlow, route: Route, state: PreviewState, raw: bytearray, reason: str) -> None:
        if plexml.has_dtd(bytes(raw[:65536])):
            self.proxy.decide(flow, Event.UNSAFE_UPSTREAM, f"endpoint={route.path}: {reason}; answered with an empty "
                              "container", body=plexml.empty_container(), level=logging.WARNING, reason=reason,
                              journal={"path": route.path})
            return
        small = len(raw) <= PASS_THROUGH_BYTES
        outcome = "response passed through unchanged" if small else "too large to pass through, answered empty"
        self.proxy.decide(flow, Event.FILTER_PARSE_ERROR, f"endpoint={route.path}: {reason}; {outcome}",
                          body=bytes(raw) if small else plexml.empty_container(),
                          content_type="text/xml;charset=utf-8" if small else plexml.XML_CONTENT_TYPE,
                          level=logging.WARNING, reason=reason, journal={"path": route.path, "bytes": len(raw)})

