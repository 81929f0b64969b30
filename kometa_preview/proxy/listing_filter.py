"""ListingFilter (filter mode, `PREVIEW_MOCK_LIBRARY=0`): Plex answers listings; only targets survive.

The listing is asked for whole (no paging upstream: a page of Plex's library would hide targets
on later pages) and filtered as it streams in, so memory is bounded by the largest item, not the
library. The client's paging is then applied to the targets, with `size`/`totalSize` fixed.
An answer that is not XML is passed through unchanged with a warning (seed) when it is small,
and replaced by an empty container when it is not (memory stays bounded).
"""
from __future__ import annotations

from urllib.parse import urlencode

from mitmproxy import http

from ..plex import filters
from ..plex import xml as plexml
from ..plex.routes import Kind, paging
from .flows import Proxy, answer, fail_closed, header_map
from .journal import log, redact
from .mock_library import candidates
from .state import OVERLAY_LABEL
from .upstream import UpstreamError

PASS_THROUGH_LIMIT = 4 << 20
#: Route kinds whose Plex answer this addon strips to the targets.
STRIPPED = frozenset({Kind.LISTING, Kind.HUB_SEARCH, Kind.COLLECTIONS})


class ListingFilter:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None or claimed[0].mock or claimed[1].kind not in STRIPPED:
            return
        state, route = claimed
        local = self._overlay_label_search(state, route)
        if local is not None:
            keep = local.__contains__
        else:
            keep = state.is_target

        def target(element) -> bool:
            if not keep(element.get("ratingKey")):
                return False
            plexml.strip_label(element, OVERLAY_LABEL)  # the same view of the item as its metadata
            return True

        stream = plexml.StreamFilter(target)
        raw = bytearray()
        parse_errors: list[str] = []

        def sink(chunk: bytes) -> None:
            """Filter as it streams; keep the raw answer only while it is small enough to pass through."""
            if len(raw) <= PASS_THROUGH_LIMIT:
                raw.extend(chunk)
            elif parse_errors:
                raise plexml.UnsafeXML(parse_errors[0])  # unparseable and too large: stop reading
            if not parse_errors:
                try:
                    stream.feed(chunk)
                except plexml.UnsafeXML as exc:
                    parse_errors.append(str(exc))

        params = [(k, v) for k, v in route.params if not k.startswith("X-Plex-Container-")]
        path = route.path + ("?" + urlencode(params) if params else "")
        try:
            response = await self.proxy.fetch(route, path, sink=sink, max_bytes=2 << 30)
            if response.status != 200:
                state.journal.write("UPSTREAM_STATUS", path=route.path, status=response.status)
                answer(flow, "UPSTREAM_STATUS", bytes(raw), status=response.status,
                       content_type=response.content_type or "text/html")
                return
            if parse_errors:
                raise plexml.UnsafeXML(parse_errors[0])
            root = stream.close()
        except plexml.UnsafeXML as exc:
            self._unparsed(flow, route, state, raw, str(exc))
            return
        except UpstreamError as exc:
            self.proxy.upstream_error(flow, route, exc)
            return
        items = [child for child in root if child.get("ratingKey")]
        for child in items:
            root.remove(child)
        start, size = paging(route, header_map(flow.request))
        chosen, attrs = plexml.page(items, start, size)
        root.extend(chosen)
        root.attrib.update(attrs)
        if route.kind is Kind.LISTING:
            root.set("size", str(len(chosen)))
        after = sum(1 for _ in root.iter() if _.get("ratingKey"))
        answer(flow, "FILTER_LIST", plexml.serialize(root), before=stream.before, after=after)
        allowed = len(state.targets) - len(state.missing)
        state.counters["FILTER_LIST"] += 1
        state.journal.write("FILTER_LIST", path=route.path, query=redact(urlencode(params)), items_before=stream.before,
                            items_after=after, removed=stream.before - after, allowed=allowed,
                            upstream_bytes=len(raw) if len(raw) <= PASS_THROUGH_LIMIT else None)
        log.info("FILTER_LIST endpoint=%s items_before=%d items_after=%d allowed_keys=%d", route.path,
                 stream.before, after, allowed)
        log.info("FILTER_XML items: before=%d after=%d removed=%d allowed=%d", stream.before, after,
                 stream.before - after, allowed)

    def _overlay_label_search(self, state, route) -> set[str] | None:
        """Plex cannot know the proxy hides the Overlay label: such searches are answered from the
        targets' (label-stripped) metadata, so listings and metadata tell Kometa the same story."""
        if route.kind is not Kind.LISTING or not state.asks_about_overlay_label(route.params):
            return None
        try:
            chosen = filters.select(route.params, candidates(state, route)[0], filters.Items(state.items.get))
        except filters.Unsupported:
            return None
        state.journal.write("FILTER_LOCAL_OVERLAY_LABEL", path=route.path, matched=[e.get("ratingKey") for e in chosen])
        return {e.get("ratingKey") for e in chosen}

    def _unparsed(self, flow, route, state, raw: bytearray, reason: str) -> None:
        if plexml.has_dtd(bytes(raw[:65536])):
            state.journal.write("UNSAFE_UPSTREAM", path=route.path, reason=reason)
            log.warning("UNSAFE_UPSTREAM endpoint=%s: %s; answered with an empty container", route.path, reason)
            answer(flow, "UNSAFE_UPSTREAM", plexml.empty_container(), reason=reason)
            return
        state.journal.write("FILTER_PARSE_ERROR", path=route.path, reason=reason, bytes=len(raw))
        if len(raw) <= PASS_THROUGH_LIMIT:
            log.warning("FILTER_PARSE_ERROR endpoint=%s: %s; response passed through unchanged", route.path, reason)
            answer(flow, "FILTER_PARSE_ERROR", bytes(raw), content_type="text/xml;charset=utf-8", reason=reason)
        else:
            log.warning("FILTER_PARSE_ERROR endpoint=%s: %s; too large to pass through, answered empty",
                        route.path, reason)
            answer(flow, "FILTER_PARSE_ERROR", plexml.empty_container(), reason=reason)

