"""MetadataGate: metadata, children, artwork lists and images go upstream only for allowed ratingKeys.

Allowed = the live targets and the parents learned from them (a target episode's season and show).
Any other key gets an empty `<MediaContainer size="0"/>` and never reaches Plex; a comma list is
reduced to its allowed keys. Forwarded item XML loses its `Overlay` label, so Kometa does not skip
an item it overlaid before.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from mitmproxy import http

from ..common.events import Event
from ..plex import xml as plexml
from ..plex.client import UpstreamError, UpstreamResponse
from ..plex.routes import Kind, Route, image_path_of
from .flows import Proxy, fail_closed
from .state import OVERLAY_LABEL, PreviewState


def _query(route: Route) -> str:
    """The client's query, as given; `Proxy.fetch` reduces it to what may be forwarded."""
    return "?" + urlencode(route.params) if route.params else ""


class MetadataGate:
    #: Route kinds answered here, per mode (mock mode lists children itself: MockLibrary).
    CLAIMS = {"mock": frozenset({Kind.METADATA, Kind.ARTWORK_LIST, Kind.IMAGE, Kind.TRANSCODE}),
              "filter": frozenset({Kind.METADATA, Kind.CHILDREN, Kind.ARTWORK_LIST, Kind.IMAGE, Kind.TRANSCODE})}

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None or claimed[1].kind not in self.CLAIMS["mock" if claimed[0].mock else "filter"]:
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
        else:
            path = None
        if route.kind is Kind.CHILDREN:
            await self._children(flow, route, state)
            return
        transform = (lambda response: self._clean(state, response)) if route.kind is Kind.METADATA else None
        await self.proxy.forward(flow, route, Event.ALLOW_FORWARD,
                                 f"ratingKey={','.join(allowed)} endpoint={route.path}", path=path,
                                 transform=transform, rating_key=",".join(allowed),
                                 journal={"path": route.path, "route": route.kind.value, "rating_keys": allowed})

    def _record_block(self, state: PreviewState, route: Route, keys) -> None:
        """Keys refused inside a request that is otherwise answered (a comma list): one record each."""
        for key in keys:
            self.proxy.note(Event.BLOCK_METADATA, f"ratingKey={key} not in allowlist", rating_key=key,
                            path=route.path, route=route.kind.value)

    def _block(self, flow: http.HTTPFlow, route: Route, state: PreviewState, keys) -> None:
        keys = tuple(keys) or ("?",)
        first, rest = keys[0], keys[1:]
        self.proxy.decide(flow, Event.BLOCK_METADATA, f"ratingKey={first} not in allowlist",
                          body=plexml.empty_container(), rating_key=",".join(keys),
                          journal={"path": route.path, "route": route.kind.value})
        self._record_block(state, route, rest)

    def _clean(self, state: PreviewState, response: UpstreamResponse) -> bytes:
        """Drop the Overlay label and learn each item's season and show."""
        try:
            root = plexml.parse(response.body)
            if root.tag != "MediaContainer":
                raise plexml.UnsafeXML(f"<{root.tag}> is not a Plex MediaContainer")
        except plexml.UnsafeXML as exc:
            # Not XML at all (an HTML error page…): plexapi raises on it as it would on Plex's own.
            self.proxy.note(Event.FORWARD_UNPARSED, f"metadata answer passed through unchanged: {exc}",
                            level=logging.WARNING, reason=str(exc))
            return response.body
        for element in root:
            key = element.get("ratingKey")
            if key and plexml.strip_label(element, OVERLAY_LABEL):
                self.proxy.note(Event.STRIPPED_OVERLAY_LABEL, level=logging.DEBUG, rating_key=key)
            if key and state.is_target(key):
                state.learn(element, key, self.proxy)
        return plexml.serialize(root)

    async def _children(self, flow: http.HTTPFlow, route: Route, state: PreviewState) -> None:
        """Filter mode: Plex's children listing, with only allowed children left in it."""
        stream = plexml.StreamFilter(lambda element: state.is_allowed(element.get("ratingKey")))
        try:
            response = await self.proxy.fetch(flow, route, route.path + _query(route), sink=stream.feed)
        except UpstreamError as exc:
            self.proxy.upstream_error(flow, route, exc)
            return
        root = stream.close() if response.status == 200 else plexml.container()
        self.proxy.decide(flow, Event.FILTER_CHILDREN, f"ratingKey={route.rating_key} before={stream.before} "
                          f"after={root.get('size', '0')}", body=plexml.serialize(root), rating_key=route.rating_key,
                          before=stream.before, after=int(root.get("size", "0")), journal={"path": route.path})

    async def _transcode(self, flow: http.HTTPFlow, route: Route, state: PreviewState) -> None:
        """`/photo/:/transcode?url=` points back at the proxy; forward it with a relative, token-free url."""
        image = image_path_of(route.param("url") or "")
        if image is None or not state.is_allowed(image.rating_key):
            self._block(flow, route, state, image.rating_keys if image else ())
            return
        params = [(k, image.path if k == "url" else v) for k, v in route.params]
        await self.proxy.forward(flow, route, Event.ALLOW_FORWARD,
                                 f"ratingKey={image.rating_key} endpoint={route.path}",
                                 path=f"{route.path}?{urlencode(params)}", rating_key=image.rating_key,
                                 journal={"path": route.path, "route": route.kind.value,
                                          "rating_keys": [image.rating_key]})
