"""MetadataGate: metadata, children, artwork lists and images go upstream only for allowed ratingKeys.

Allowed = the live targets and the parents learned from them (a target episode's season and show).
Any other key gets an empty `<MediaContainer size="0"/>` and never reaches Plex; a comma list is
reduced to its allowed keys. Forwarded item XML loses its `Overlay` label, so Kometa does not skip
an item it overlaid before.
"""
from __future__ import annotations

from urllib.parse import urlencode

from mitmproxy import http

from ..plex import xml as plexml
from ..plex.routes import Kind, Route, image_path_of
from .flows import Proxy, answer, fail_closed
from .journal import log
from .state import OVERLAY_LABEL, PreviewState
from .upstream import UpstreamResponse

GATED = frozenset({Kind.METADATA, Kind.CHILDREN, Kind.ARTWORK_LIST, Kind.IMAGE, Kind.TRANSCODE})


def _query(route: Route) -> str:
    """The client's query, as given; `Proxy.fetch` reduces it to what may be forwarded."""
    return "?" + urlencode(route.params) if route.params else ""


class MetadataGate:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None or claimed[1].kind not in GATED:
            return
        state, route = claimed
        if route.kind is Kind.TRANSCODE:
            await self._transcode(flow, route, state)
            return
        allowed = [key for key in route.rating_keys if state.is_allowed(key)]
        if not allowed:
            self._block(flow, route, state, route.rating_keys)
            return
        if route.kind is Kind.METADATA:
            refused = [key for key in route.rating_keys if key not in allowed]
            if refused:
                self._record_block(state, route, refused)
            path = f"/library/metadata/{','.join(allowed)}{_query(route)}"
            await self.proxy.forward(flow, route, "ALLOW_FORWARD", path=path, rating_key=",".join(allowed),
                                     transform=lambda response: self._clean(state, response))
        elif route.kind is Kind.CHILDREN:
            await self._children(flow, route, state)
        else:
            await self.proxy.forward(flow, route, "ALLOW_FORWARD", rating_key=route.rating_key)
        state.journal.write("ALLOW_FORWARD", path=route.path, route=route.kind.value, rating_keys=allowed)
        log.info("ALLOW_FORWARD ratingKey=%s endpoint=%s", ",".join(allowed), route.path)

    def _record_block(self, state: PreviewState, route: Route, keys) -> None:
        for key in keys:
            state.counters["BLOCK_METADATA"] += 1
            state.journal.write("BLOCK_METADATA", rating_key=key, path=route.path, route=route.kind.value)
            log.info("BLOCK_METADATA ratingKey=%s not in allowlist", key)

    def _block(self, flow: http.HTTPFlow, route: Route, state: PreviewState, keys) -> None:
        self._record_block(state, route, keys or ("?",))
        answer(flow, "BLOCK_METADATA", plexml.empty_container(), rating_key=",".join(keys))

    def _clean(self, state: PreviewState, response: UpstreamResponse) -> bytes:
        """Drop the Overlay label and learn each item's season and show."""
        try:
            root = plexml.parse(response.body)
            if root.tag != "MediaContainer":
                raise plexml.UnsafeXML(f"<{root.tag}> is not a Plex MediaContainer")
        except plexml.UnsafeXML as exc:
            # Not XML at all (an HTML error page…): plexapi raises on it as it would on Plex's own.
            log.warning("FORWARD_UNPARSED metadata answer passed through unchanged: %s", exc)
            state.journal.write("FORWARD_UNPARSED", reason=str(exc))
            return response.body
        for element in root:
            key = element.get("ratingKey")
            if key and plexml.strip_label(element, OVERLAY_LABEL):
                state.journal.write("STRIPPED_OVERLAY_LABEL", rating_key=key)
            if key and state.is_target(key):
                state.learn(element, key)
        return plexml.serialize(root)

    async def _children(self, flow: http.HTTPFlow, route: Route, state: PreviewState) -> None:
        """Filter mode: Plex's children listing, with only allowed children left in it."""
        stream = plexml.StreamFilter(lambda element: state.is_allowed(element.get("ratingKey")))
        response = await self.proxy.fetch(route, route.path + _query(route), sink=stream.feed)
        root = stream.close() if response.status == 200 else plexml.container()
        answer(flow, "FILTER_CHILDREN", plexml.serialize(root), rating_key=route.rating_key,
               before=stream.before, after=int(root.get("size", "0")))

    async def _transcode(self, flow: http.HTTPFlow, route: Route, state: PreviewState) -> None:
        """`/photo/:/transcode?url=` points back at the proxy; forward it with a relative, token-free url."""
        image = image_path_of(route.param("url") or "")
        if image is None or not state.is_allowed(image.rating_key):
            self._block(flow, route, state, image.rating_keys if image else ())
            return
        params = [(k, image.path if k == "url" else v) for k, v in route.params]
        await self.proxy.forward(flow, route, "ALLOW_FORWARD", path=f"{route.path}?{urlencode(params)}",
                                 rating_key=image.rating_key)
