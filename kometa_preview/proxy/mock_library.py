"""MockLibrary (mock library mode, the default): the library Kometa sees holds only the preview targets.

Sections, listings, hub search, filter choices, collections and children are answered here from the
targets' real metadata (prefetched at start-up), so the cost of a preview does not depend on the
size of the library. Plex advanced filters are evaluated locally; a filter the evaluator does not
support is asked of Plex and intersected with the targets (`FILTER_FALLBACK`), never guessed.
"""
from __future__ import annotations

import copy
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from mitmproxy import http

from ..common.events import Event, FilterFallback, MockList
from ..plex import filters
from ..plex import xml as plexml
from ..plex.routes import Kind, Route, paging
from .flows import Proxy, fail_closed, header_map
from .journal import redact
from .state import PreviewState

#: Filter-choice lists this addon builds from the targets; any other field is asked of Plex.
LOCAL_CHOICES = ("label", "genre", "year", "decade", "contentRating", "resolution", "audioCodec")
_SECTION_DIRECTORIES = ("all", "unwatched", "newest", "recentlyAdded", "recentlyViewed", "onDeck", "collections")


def _title_order(element: ET.Element) -> str:
    return (element.get("titleSort") or element.get("title") or "").lower()


def _numeric(attribute: str) -> Callable[[ET.Element], int]:
    return lambda element: int(element.get(attribute) or 0)


#: The sorts this module evaluates (`sort=field:direction`), each reading the item attributes of the same name
#: (proxy/state.PROXY_READS keeps them on a dry run's items); any other sort is asked of Plex.
SORTS: dict[str, Callable[[ET.Element], object]] = {
    "titleSort": _title_order, "title": _title_order,
    "originallyAvailableAt": lambda element: element.get("originallyAvailableAt") or "",
    **{name: _numeric(name) for name in ("addedAt", "year", "index", "ratingKey", "updatedAt", "viewCount",
                                         "duration", "lastViewedAt")},
}


def unsupported_sort(sort: str | None) -> str | None:
    """The first part of a `sort=` this module cannot evaluate as Plex does, or None."""
    for spec in (sort or "").split(","):
        field, _, direction = spec.partition(":")
        if spec and (field.rsplit(".", 1)[-1] not in SORTS or direction not in ("", "asc", "desc")):
            return spec
    return None


def sort_elements(elements: list[ET.Element], sort: str | None) -> list[ET.Element]:
    """Plex's default order is titleSort; ties fall back to ratingKey so paging is stable. A sort this module
    cannot evaluate is never guessed: callers check `unsupported_sort` first and ask Plex."""
    ordered = sorted(elements, key=lambda e: (_title_order(e), int(e.get("ratingKey") or 0)))
    for spec in reversed((sort or "").split(",")):
        if not spec:
            continue
        field, _, direction = spec.partition(":")
        key = SORTS.get(field.rsplit(".", 1)[-1])
        if key is None:
            raise filters.Unsupported(f"sort {spec}")
        ordered.sort(key=key, reverse=direction == "desc")
    return ordered


#: The order Plex lists a section's views in when the client names no sort.
_DEFAULT_SORTS = {"recentlyAdded": "addedAt:desc", "newest": "addedAt:desc", "recentlyViewed": "lastViewedAt:desc"}


def in_view(sub: str | None, element: ET.Element) -> bool:
    """Does a target belong in the section view `sub` (`unwatched`, `recentlyViewed`, `onDeck`)?"""
    if sub == "unwatched":
        return (element.get("viewCount") or "0") == "0"
    if sub == "recentlyViewed":
        return bool(element.get("lastViewedAt"))
    if sub == "onDeck":
        return bool(element.get("viewOffset"))
    return True


def choice_values(field: str, elements: Iterable[ET.Element]) -> dict[str, str]:
    """A filter-choice list (`/library/sections/{id}/{field}`, a `LOCAL_CHOICES` field) of these items, as Plex
    lists it: key → title. It reads of an item what the filter field of the same name reads (plex/filters.FIELDS)."""
    values: dict[str, str] = {}
    for element in elements:
        if field in ("label", "genre"):
            values.update((c.get("id") or c.get("tag", ""), c.get("tag", "")) for c in element.findall(field.title()))
        elif field in ("year", "decade"):
            if (element.get("year") or "").isdigit():
                year = int(element.get("year"))
                key = year if field == "year" else year // 10 * 10
                values[str(key)] = str(key) if field == "year" else f"{key}s"
        elif field == "contentRating":
            if element.get("contentRating"):
                values[element.get("contentRating")] = element.get("contentRating")
        else:
            attr = "videoResolution" if field == "resolution" else "audioCodec"
            values.update((m.get(attr), m.get(attr).upper()) for m in element.findall("Media") if m.get(attr))
    return values


class MockLibrary:
    #: Route kinds answered here, per mode: the library's whole structure in mock mode, nothing in filter mode.
    CLAIMS = {"mock": frozenset({Kind.LIBRARY, Kind.SECTIONS, Kind.SECTION, Kind.LISTING, Kind.HUB_SEARCH,
                                 Kind.COLLECTIONS, Kind.FILTER_CHOICES, Kind.CHILDREN}),
              "filter": frozenset()}

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    @fail_closed
    async def request(self, flow: http.HTTPFlow) -> None:
        claimed = self.proxy.pending_read(flow)
        if claimed is None or not claimed[0].mock or claimed[1].kind not in self.CLAIMS["mock"]:
            return
        state, route = claimed
        handler = {Kind.LIBRARY: self._library, Kind.SECTIONS: self._sections, Kind.SECTION: self._section,
                   Kind.LISTING: self._listing, Kind.HUB_SEARCH: self._hubs, Kind.COLLECTIONS: self._collections,
                   Kind.FILTER_CHOICES: self._choices, Kind.CHILDREN: self._children}[route.kind]
        await handler(flow, route, state)

    # --- helpers ---------------------------------------------------------------------------
    def _mock(self, flow: http.HTTPFlow, route: Route, state: PreviewState, body: bytes | ET.Element,
              verdict: Event, returned: int, paging_attrs: dict[str, str] | None = None, **info: Any) -> None:
        """Answer with a mock body; `info` (a listing's `total` and `fallback`, a choice list's `field`, children's
        `rating_key`) goes on the flow and into its `MockList` line."""
        if isinstance(body, ET.Element):
            paging_attrs = {k: v for k, v in body.attrib.items() if k in ("offset", "totalSize")}
            body = plexml.serialize(body)
        line = MockList(event=verdict, path=route.path, query=redact(urlencode(route.params)),
                        route=route.kind.value, type=route.libtype, returned_items=returned, **info)
        self.proxy.decide(flow, line, f"endpoint={route.path} returned_items={returned}", body=body,
                          returned_items=returned, **info)
        if paging_attrs and "totalSize" in paging_attrs:
            flow.response.headers["X-Plex-Container-Start"] = paging_attrs.get("offset", "0")
            flow.response.headers["X-Plex-Container-Total-Size"] = paging_attrs["totalSize"]

    def _section_attrs(self, state: PreviewState, section_id: str | None) -> dict[str, str]:
        section = state.sections.get(section_id or "")
        if section is None:
            return {}
        return {"librarySectionID": section.id, "librarySectionTitle": section.title,
                "librarySectionUUID": section.uuid, "title1": section.title, "allowSync": "1",
                "identifier": "com.plexapp.plugins.library"}

    async def _meta(self, flow: http.HTTPFlow, state: PreviewState, route: Route, upstream_path: str) -> bytes:
        """Plex's own `<Meta>` block for a section (small, read-only, the same at any library size)."""
        query = [("includeMeta", "1"), ("includeAdvanced", "1"), ("X-Plex-Container-Start", "0"),
                 ("X-Plex-Container-Size", "0")]
        if route.param("type"):
            query.insert(0, ("type", route.param("type")))
        path = f"{upstream_path}?{urlencode(query)}"
        if path not in state.meta_cache:
            response = await self.proxy.fetch(flow, route, path)
            meta = plexml.parse(response.body).find("Meta") if response.status == 200 else None
            state.meta_cache[path] = ET.tostring(meta) if meta is not None else b""
            self.proxy.note(Event.META_FETCHED, level=logging.DEBUG, path=upstream_path, found=meta is not None)
        return state.meta_cache[path]

    async def _fallback(self, flow: http.HTTPFlow, state: PreviewState, route: Route, listed: list[ET.Element],
                        reason: str) -> list[ET.Element]:
        """Ask Plex the same filtered (and sorted) question and keep the targets it names, in Plex's order."""
        if not listed:
            return []
        wanted = {e.get("ratingKey") for e in listed}
        stream = plexml.StreamFilter(lambda element: element.get("ratingKey") in wanted)
        params = [(k, v) for k, v in route.params if not k.startswith("X-Plex-Container-")]
        response = await self.proxy.fetch(flow, route, f"{route.path}?{urlencode(params)}", sink=stream.feed)
        if response.status != 200:
            raise filters.Unsupported(f"Plex answered {response.status} to the fallback listing")
        order = [e.get("ratingKey") for e in stream.close() if e.get("ratingKey")]
        self.proxy.record(FilterFallback(path=route.path, query=redact(urlencode(params)), reason=reason,
                                         upstream_items=stream.before, matched=sorted(order)),
                          f"endpoint={route.path} reason={reason} upstream_items={stream.before} matched={len(order)}")
        by_key = {e.get("ratingKey"): e for e in listed}
        return [by_key[key] for key in dict.fromkeys(order) if key in by_key]

    # --- endpoints --------------------------------------------------------------------------
    async def _library(self, flow, route, state) -> None:
        root = plexml.container({"allowSync": "0", "title1": "Plex Library"})
        for key in ("sections", "recentlyAdded", "onDeck"):
            ET.SubElement(root, "Directory", {"key": key, "title": key})
        self._mock(flow, route, state, root, Event.MOCK_LIBRARY, 0)

    async def _sections(self, flow, route, state) -> None:
        directories = []
        for key in state.target_sections():
            directory = copy.deepcopy(state.sections[key].directory)
            directory.set("allowSync", "1")
            directories.append(directory)
        root = plexml.container({"allowSync": "0", "title1": "Plex Library"}, directories)
        root.set("size", str(len(directories)))
        self.proxy.decide(flow, Event.MOCK_SECTIONS, f"returned_sections={len(directories)}",
                          body=plexml.serialize(root), returned_sections=len(directories),
                          journal={"path": route.path})

    async def _section(self, flow, route, state) -> None:
        if route.section_id not in state.target_sections():
            self._mock(flow, route, state, plexml.container(), Event.MOCK_SECTION, 0)
            return
        root = plexml.container(self._section_attrs(state, route.section_id))
        for key in _SECTION_DIRECTORIES:
            ET.SubElement(root, "Directory", {"key": key, "title": key})
        root.set("size", str(len(_SECTION_DIRECTORIES)))
        self._mock(flow, route, state, root, Event.MOCK_SECTION, 0)

    async def _listing(self, flow, route, state) -> None:
        if route.param("type") and route.libtype is None:
            self.proxy.decide(flow, Event.MOCK_BAD_TYPE, f"endpoint={route.path} type={route.param('type')}",
                              body=b"", status=400, content_type="text/html", journal={"path": route.path})
            return
        listed, libtype = state.candidates(route)
        fallback = None
        sort = route.param("sort") or _DEFAULT_SORTS.get(route.sub or "")
        if libtype == "collection":
            ordered: list[ET.Element] = []
        else:
            try:
                chosen = filters.select(route.params, listed, state.relatives())
                if (spec := unsupported_sort(sort)) is not None:
                    raise filters.Unsupported(f"sort {spec}")
                query = (route.param("query") or "").lower()
                chosen = [e for e in chosen if query in (e.get("title") or "").lower()]
                ordered = sort_elements([e for e in chosen if in_view(route.sub, e)], sort)
            except filters.Unsupported as exc:
                # Plex evaluates the whole question (filters, query, view, sort); its order is kept.
                fallback = str(exc)
                ordered = await self._fallback(flow, state, route, listed, fallback)
        start, size = paging(route, header_map(flow.request))
        chosen_page, paging_attrs = plexml.page(ordered, start, size)
        guids = route.param("includeGuids") == "1"
        children = [state.listing_bytes(e.get("ratingKey"), guids=guids) for e in chosen_page]
        if route.param("includeMeta") == "1" and route.section_id in state.sections:
            children.insert(0, await self._meta(flow, state, route,
                                                f"/library/sections/{route.section_id}/{route.sub}"))
        body = plexml.container_bytes({**self._section_attrs(state, route.section_id), **paging_attrs}, children,
                                      len(chosen_page))
        self._mock(flow, route, state, body, Event.MOCK_LIST, len(chosen_page), paging_attrs, total=len(ordered),
                   fallback=fallback)

    async def _hubs(self, flow, route, state) -> None:
        query = (route.param("query") or "").lower()
        limit_text = route.param("limit") or ""
        limit = int(limit_text) if limit_text.isdigit() else 10
        section_id = route.param("sectionId")
        root = plexml.container()
        returned = 0
        for libtype in ("movie", "show", "season", "episode"):
            found = [e for e in state.target_items() if e.get("type") == libtype
                     and query in (e.get("title") or "").lower()
                     and (section_id is None or e.get("librarySectionID") == section_id)]
            found = sort_elements(found, None)
            hub = ET.SubElement(root, "Hub", {"title": f"{libtype.title()}s", "type": libtype,
                                              "hubIdentifier": libtype, "size": str(min(len(found), limit)),
                                              "more": "1" if len(found) > limit else "0", "style": "shelf"})
            for element in found[:limit]:
                hub.append(state.listing_copy(element.get("ratingKey"), guids=False))
                returned += 1
        root.set("size", "4")
        self._mock(flow, route, state, root, Event.MOCK_LIST, returned)

    async def _collections(self, flow, route, state) -> None:
        root = plexml.container(self._section_attrs(state, route.section_id), ())
        if route.param("includeMeta") == "1" and route.section_id in state.target_sections():
            meta = await self._meta(flow, state, route, f"/library/sections/{route.section_id}/collections")
            if meta:
                root.append(ET.fromstring(meta))
        start, size = paging(route, header_map(flow.request))
        root.attrib.update(plexml.page([], start, size)[1])
        self._mock(flow, route, state, root, Event.MOCK_COLLECTIONS, 0)

    async def _choices(self, flow, route, state) -> None:
        field = route.sub or ""
        if field not in LOCAL_CHOICES or route.section_id not in state.target_sections():
            if route.section_id in state.target_sections():
                await self.proxy.forward(flow, route, Event.ALLOW_FORWARD, f"endpoint={route.path} (filter choices)",
                                         reason="filter choices", journal={"path": route.path,
                                                                           "route": route.kind.value})
            else:
                self._mock(flow, route, state, plexml.container(), Event.MOCK_CHOICES, 0)
            return
        values = choice_values(field, state.choice_elements(route))
        root = plexml.container(self._section_attrs(state, route.section_id))
        for key, title in sorted(values.items(), key=lambda kv: kv[1].lower()):
            ET.SubElement(root, "Directory", {"fastKey": f"/library/sections/{route.section_id}/all?{field}={key}",
                                              "key": key, "title": title})
        root.set("size", str(len(values)))
        self._mock(flow, route, state, root, Event.MOCK_CHOICES, len(values), field=field)

    async def _children(self, flow, route, state) -> None:
        parent = route.rating_key
        if not state.is_allowed(parent):
            self.proxy.decide(flow, Event.BLOCK_METADATA, f"ratingKey={parent} not in allowlist",
                              body=plexml.empty_container(), rating_key=parent, journal={"path": route.path})
            return
        kids = state.family(parent, route.sub or "children")
        start, size = paging(route, header_map(flow.request))
        chosen, paging_attrs = plexml.page(kids, start, size)
        guids = route.param("includeGuids") == "1"
        owner = state.element(parent)
        attrs = {**self._section_attrs(state, owner.get("librarySectionID") if owner is not None else None),
                 **paging_attrs, "key": parent}
        if owner is not None:
            attrs.update(parentTitle=owner.get("title", ""), title2=owner.get("title", ""))
        body = plexml.container_bytes(attrs, [state.listing_bytes(e.get("ratingKey"), guids=guids) for e in chosen],
                                      len(chosen))
        self._mock(flow, route, state, body, Event.MOCK_CHILDREN, len(chosen), paging_attrs, rating_key=parent)
