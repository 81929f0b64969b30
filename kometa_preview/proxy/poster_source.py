"""PosterSource: the poster Kometa downloads for a target is the clean original.

Kometa refuses a poster whose EXIF says it already carries an overlay, and on a library where
Kometa already runs, Plex's current posters do. So a target's poster download (its `thumb`, or a
`/photo/:/transcode` of it) is answered with, in order: the target's `input:` image; Kometa's stored
original (`<config dir>/overlays/<Library> Original Posters/<ratingKey>.*`); else Plex's poster,
flagged `OVERLAID_POSTER` when it carries the mark. What is served is kept as the "before" image.
"""
from __future__ import annotations

import io
import logging
from pathlib import Path

from mitmproxy import http

from ..common import images
from ..common.events import Event, ItemEvent, PosterServed
from ..common.files import write_atomic
from ..common.limits import TRANSCODE_PIXELS
from ..common.posters import Poster, from_bytes, has_overlay_mark, local_original
from ..plex.routes import Kind, Route, image_path_of
from .flows import Proxy, answer, fail_closed
from .state import PreviewState


class PosterSource:
    #: Claims no route kind of its own: it answers first, within MetadataGate's IMAGE and TRANSCODE claims, for
    #: a target's own poster only (everything else falls through to the gate).
    SERVES_FIRST = frozenset({Kind.IMAGE, Kind.TRANSCODE})

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        #: ratingKey → the poster served, as kept on disk (`before/`): a dry run serves thousands, never held in
        #: memory at once.
        self._kept: dict[str, tuple[Path, str]] = {}

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None:
            return
        state, route = claimed
        image = route
        if route.kind is Kind.TRANSCODE:
            image = image_path_of(route.param("url") or "")
        if image is None or image.kind is not Kind.IMAGE or image.sub != "thumb" \
                or not state.is_target(image.rating_key):
            return
        kept = self._kept.get(image.rating_key)
        poster = Poster(kept[0].read_bytes(), kept[0].suffix.lstrip("."), kept[1]) if kept is not None else \
            await self._load(flow, state, image)
        if poster is None:
            return  # Plex had no image: let the gate forward the request and Plex answer it
        data, content_type = poster.data, poster.content_type
        if route.kind is Kind.TRANSCODE:
            data, content_type = _resize(poster.data, route)
        # The poster was journaled once, with the file kept as "before", when it was loaded: each serving is only
        # tagged on the flow (its FLOW line carries the verdict).
        answer(flow, Event.POSTER_SOURCE, data, content_type=content_type, rating_key=image.rating_key,
               source=poster.source)
        self.proxy.log_only(logging.DEBUG, f"POSTER_SOURCE ratingKey={image.rating_key} served source={poster.source}")

    async def _load(self, flow: http.HTTPFlow, state: PreviewState, image: Route) -> Poster | None:
        rating_key = image.rating_key
        target = state.targets[rating_key]
        section = state.sections.get(state.items[rating_key].get("librarySectionID", "")) \
            if rating_key in state.items else None
        poster = local_original(target.input, state.config.kometa_config, section.title if section else "",
                                rating_key)
        if poster is None:
            response = await self.proxy.fetch(flow, image, image.path)
            if response.status != 200:
                return None
            poster = from_bytes(response.body, "plex")
        if poster is None:
            return None
        if poster.source == "plex" and has_overlay_mark(poster.data):
            self.proxy.record(ItemEvent(event=Event.OVERLAID_POSTER, rating_key=rating_key, target=target.id),
                              f"target={target.id} ratingKey={rating_key}: Plex's poster already carries a Kometa "
                              "overlay; give the target an `input:` image or set kometa.config so the stored "
                              "original is used", level=logging.ERROR)
        saved = write_atomic(state.layout.before / f"{rating_key}.{poster.ext}", poster.data)
        self._kept[rating_key] = (saved, poster.source)
        self.proxy.record(PosterServed(rating_key=rating_key, target=target.id, source=poster.source,
                                       bytes=len(poster.data), ext=poster.ext, saved=str(saved)),
                          f"ratingKey={rating_key} target={target.id} source={poster.source} bytes={len(poster.data)}")
        return poster


def _resize(data: bytes, route: Route) -> tuple[bytes, str]:
    """A transcode of a target's poster, as Plex answers `/photo/:/transcode?width=&height=`. The poster is untrusted
    (Plex's, or a file): decoded by the one bounded opener; one that cannot be is served as it is, and Kometa fails
    on it the way it fails on Plex's."""
    width = int(route.param("width") or 0) if (route.param("width") or "0").isdigit() else 0
    height = int(route.param("height") or 0) if (route.param("height") or "0").isdigit() else 0
    try:
        copy = images.decode(data, budget=max(width * height * 4, TRANSCODE_PIXELS))
    except images.Unreadable:
        fmt = images.sniff(data)
        return data, fmt.content_type if fmt else "application/octet-stream"
    if width and height:
        copy.thumbnail((width, height))
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=90)
    return out.getvalue(), "image/jpeg"
