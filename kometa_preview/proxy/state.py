"""`PreviewState`: what every addon reads — targets, allowlist, learned parents, the targets' metadata.

Built once when the proxy starts, by a read-only prefetch of each target's `/library/metadata/{rk}`
(and its season and show), so that mock listings can be answered from real metadata.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import secrets
import sys
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..common import names
from ..common.config import ProxyConfig, Shard, Target
from ..common.events import Event, ItemEvent, Record, Resolved, TargetSeen
from ..common.job import JobLayout
from ..common.limits import MAX_UPLOAD_BYTES
from ..plex import client, filters, titles
from ..plex import xml as plexml
from ..plex.client import Upstream, UpstreamError
from ..plex.routes import Route
from .journal import Journal


class Recorder(Protocol):
    """How the state reports what it learned without writing the journal itself: `Proxy.record` and `Proxy.note`."""

    def record(self, line: Record, says: str = "", *, level: int = logging.INFO) -> None: ...

    def note(self, event: Event, says: str = "", *, level: int = logging.INFO, **fields: Any) -> None: ...


OVERLAY_LABEL = "Overlay"
#: Up to this many targets, each one's listing form is kept serialized (a dry run of a whole library holds more).
LISTING_CACHE_TARGETS = 2000
#: Plex's `type=` numbers for the levels of each kind of library (plexapi.utils.SEARCHTYPES).
LIBRARY_LEVELS = {"movie": (("movie", 1),), "show": (("show", 2), ("season", 3), ("episode", 4))}


class StartupError(Exception):
    """The proxy cannot serve this preview (Plex unreachable, token refused). One line, no secrets."""


@dataclass
class Section:
    id: str
    title: str
    type: str
    uuid: str
    directory: ET.Element


@dataclass
class PreviewState:
    config: ProxyConfig
    job: Path
    mock: bool
    upstream: Upstream
    journal: Journal
    client_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    max_upload: int = MAX_UPLOAD_BYTES
    targets: dict[str, Target] = field(default_factory=dict)
    items: dict[str, ET.Element] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)
    learned_parents: dict[str, str] = field(default_factory=dict)
    #: The seasons and episodes of target shows and seasons, as Plex lists them: readable (Kometa's TV overlays
    #: filter a show by its episodes), never targets, never listed, never uploaded. ratingKey → element.
    descendants: dict[str, ET.Element] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    meta_cache: dict[str, bytes] = field(default_factory=dict)
    overlay_label_ids: set[str] = field(default_factory=set)
    _listing_bytes: dict[tuple[str, bool], bytes] = field(default_factory=dict, repr=False)
    #: A dry run's items as Plex listed them, compressed (with and without `<Guid>`s): what listings answer with,
    #: while `items` keeps only what the filters and the proxy read of them (`compact`).
    _packed: dict[str, tuple[bytes, bytes]] = field(default_factory=dict, repr=False)
    counters: Counter = field(default_factory=Counter)

    @property
    def layout(self) -> JobLayout:
        return JobLayout(self.job)

    @property
    def allowed(self) -> set[str]:
        """ratingKeys whose metadata may be forwarded: live targets, their learned parents, and the descendants of
        target shows and seasons."""
        return {k for k in self.targets if k not in self.missing} | set(self.learned_parents) | set(self.descendants)

    def element(self, rating_key: str | None) -> ET.Element | None:
        """A known item: a target, a learned parent, or a target's descendant."""
        found = self.items.get(rating_key or "")
        return found if found is not None else self.descendants.get(rating_key or "")

    def family(self, parent: str, sub: str) -> list[ET.Element]:
        """`/library/metadata/{parent}/children` or `/allLeaves` from what the proxy holds: a show's seasons or
        every episode, a season's episodes; only readable items, in Plex's order (season, then episode)."""
        pool = {**self.descendants, **self.items}
        if sub == "children":
            kids = [e for e in pool.values() if e.get("parentRatingKey") == parent]
        else:
            kids = [e for e in pool.values() if e.get("type") == "episode"
                    and parent in (e.get("parentRatingKey"), e.get("grandparentRatingKey"))]
        kids = [e for e in kids if self.is_allowed(e.get("ratingKey"))]
        return sorted(kids, key=lambda e: (int(e.get("parentIndex") or 0), int(e.get("index") or 0)))

    def choice_elements(self, route: Route) -> list[ET.Element]:
        """The items a filter-choice list is drawn from: the listing's candidates, and the descendants of target
        shows and seasons of the type asked for (a show's episodes' resolutions, which Kometa's TV overlays
        search by)."""
        listed, libtype = self.candidates(route)
        if route.section_id not in self.target_sections():
            return listed
        return listed + [e for e in self.descendants.values() if e.get("type") == libtype
                         and e.get("librarySectionID") == route.section_id]

    def relatives(self) -> filters.Items:
        """What the filter evaluator may read besides a listed item: its ancestors and descendants held here."""
        return filters.Items(self.element, self.descendants_of)

    def descendants_of(self, element: ET.Element, libtype: str) -> list[ET.Element] | None:
        """A target show's or season's descendants of `libtype` (None when the proxy does not hold them)."""
        key = element.get("ratingKey", "")
        if key not in self.targets or element.get("type") not in ("show", "season"):
            return None
        if libtype == "episode":
            return self.family(key, "allLeaves")
        return [e for e in self.family(key, "children") if e.get("type") == libtype]

    def is_target(self, rating_key: str | None) -> bool:
        return rating_key in self.targets and rating_key not in self.missing

    def is_allowed(self, rating_key: str | None) -> bool:
        return rating_key is not None and rating_key in self.allowed

    def asks_about_overlay_label(self, params) -> bool:
        """Does a listing filter on the Overlay label (which the proxy hides from Kometa)?"""
        names = {OVERLAY_LABEL.lower(), *self.overlay_label_ids}
        for name, value in params:
            field = name.rstrip("!=<>").rsplit(".", 1)[-1]
            if field == "label" and names & {v.strip().lower() for v in value.split(",")}:
                return True
        return False

    def target_items(self) -> list[ET.Element]:
        return [self.items[k] for k in self.targets if k in self.items and k not in self.missing]

    def listing_copy(self, rating_key: str, *, guids: bool) -> ET.Element:
        """A target's element as a listing shows it: no streams, `<Guid>`s only when asked for."""
        if rating_key in self._packed:
            return ET.fromstring(self.listing_bytes(rating_key, guids=guids))
        element = copy.deepcopy(self.element(rating_key))
        for part in element.iterfind("Media/Part"):
            for stream in part.findall("Stream"):
                part.remove(stream)
        if not guids:
            for guid in element.findall("Guid"):
                element.remove(guid)
        return element

    def listing_bytes(self, rating_key: str, *, guids: bool) -> bytes:
        """`listing_copy` serialized; cached for a preview of a few targets (they do not change after start-up);
        a dry run's items are kept compressed in this form from the start (`remember_packed`)."""
        packed = self._packed.get(rating_key)
        if packed is not None:
            return zlib.decompress(packed[0 if guids else 1])
        key = (rating_key, guids)
        cached = self._listing_bytes.get(key)
        if cached is None:
            cached = ET.tostring(self.listing_copy(rating_key, guids=guids), encoding="utf-8")
            if len(self.targets) <= LISTING_CACHE_TARGETS:
                self._listing_bytes[key] = cached
        return cached

    def learn(self, element: ET.Element, child: str, recorder: Recorder) -> None:
        """Remember the season and show of an allowed item: Kometa asks for them (`item.show()`)."""
        for attr in ("parentRatingKey", "grandparentRatingKey"):
            parent = element.get(attr)
            if parent and parent not in self.learned_parents and parent not in self.targets:
                self.learned_parents[parent] = child
                recorder.record(ItemEvent(event=Event.LEARNED_PARENT, rating_key=parent, child=child),
                                f"ratingKey={parent} child={child}")

    def remember_packed(self, element: ET.Element, recorder: Recorder) -> None:
        """A dry-run item, kept compactly: its listing forms compressed, and for the filters and the proxy only what
        they read of it (`compact`) — about a third of the memory of the parsed element (docs/PERFORMANCE.md)."""
        if plexml.strip_label(element, OVERLAY_LABEL):
            recorder.note(Event.STRIPPED_OVERLAY_LABEL, level=logging.DEBUG, rating_key=element.get("ratingKey"))
        key = element.get("ratingKey", "")
        with_guids = ET.tostring(element, encoding="utf-8")
        for guid in element.findall("Guid"):
            element.remove(guid)
        self._packed[key] = (zlib.compress(with_guids), zlib.compress(ET.tostring(element, encoding="utf-8")))
        self.items[key] = compact(element)

    def remember(self, element: ET.Element, recorder: Recorder) -> None:
        """Keep an allowed item's metadata, without the label that would make Kometa skip it."""
        self.overlay_label_ids.update(label.get("id", "").lower() for label in element.iter("Label")
                                      if label.get("tag", "").lower() == OVERLAY_LABEL.lower() and label.get("id"))
        if plexml.strip_label(element, OVERLAY_LABEL):
            recorder.note(Event.STRIPPED_OVERLAY_LABEL, level=logging.DEBUG, rating_key=element.get("ratingKey"))
        self.items[element.get("ratingKey", "")] = element
        self._listing_bytes.clear()

    # --- the queries several addons ask -----------------------------------------------------------------

    def target_sections(self) -> list[str]:
        """The sections holding at least one live target, in Plex's order: the only ones Kometa sees."""
        held = {e.get("librarySectionID") for e in self.target_items()}
        return [key for key in self.sections if key in held]

    def candidates(self, route: Route) -> tuple[list[ET.Element], str | None]:
        """Targets a listing may return, and the libtype it lists (None: movies and shows)."""
        if route.section_id is not None and route.section_id not in self.target_sections():
            return [], route.libtype
        section = self.sections.get(route.section_id or "")
        libtype = route.libtype
        if libtype is None and section is not None:
            libtype = section.type if section.type in ("movie", "show") else None
            if route.sub == "allLeaves" and libtype == "show":  # a show library's every episode
                libtype = "episode"
        elements = [e for e in self.target_items()
                    if route.section_id is None or e.get("librarySectionID") == route.section_id]
        if libtype is not None:
            return [e for e in elements if e.get("type") == libtype], libtype
        return [e for e in elements if e.get("type") in ("movie", "show")], libtype


#: What the proxy itself reads of a held item, besides the filter fields: who it is and where it sits (the state's
#: bookkeeping, the relatives the filters reach, the order of children), the title hub search and `query=` match,
#: the sort keys of mock listings (mock_library.SORTS) and the section views (`unwatched`, `recentlyViewed`,
#: `onDeck`: viewCount, lastViewedAt, viewOffset). tests/test_compact_items.py proves each answers the same on a
#: compact item.
PROXY_READS = filters.Reads(attributes=frozenset({
    "ratingKey", "type", "title", "librarySectionID", "parentRatingKey", "grandparentRatingKey", "index",
    "parentIndex", "titleSort", "originallyAvailableAt", "addedAt", "updatedAt", "year", "viewCount", "duration",
    "lastViewedAt", "viewOffset"}))
#: What a dry run's compact item keeps: exactly what is read of it.
COMPACT_READS = filters.FIELD_READS | PROXY_READS


def _kept(element: ET.Element, wanted: frozenset[str]) -> dict[str, str]:
    """The element's attributes named, interned: a dry run's 100,000 items share their few distinct values."""
    return {k: sys.intern(v) for k, v in element.attrib.items() if k in wanted}


def compact(element: ET.Element) -> ET.Element:
    """A listed item reduced to `COMPACT_READS`: the attributes, tags, media and streams the filters declare
    (plex/filters.FIELDS) and the proxy reads (`PROXY_READS`), and nothing else."""
    small = ET.Element(element.tag, _kept(element, COMPACT_READS.attributes))
    for child in element:
        if child.tag in COMPACT_READS.tags:
            ET.SubElement(small, child.tag, _kept(child, filters.TAG_ATTRIBUTES))
        elif child.tag == "Media":
            media = ET.SubElement(small, "Media", _kept(child, COMPACT_READS.media))
            for part in child.iterfind("Part"):
                streams = part.findall("Stream")
                if streams:
                    kept = ET.SubElement(media, "Part")
                    kept.extend(ET.Element("Stream", _kept(s, COMPACT_READS.streams)) for s in streams)
    return small


def resolve_title(state: PreviewState, target: Target, recorder: Recorder) -> Target | None:
    """A target named by title, with the ratingKey Plex's search gives it (None: no single match, recorded as
    MISSING_RATINGKEY with the candidates found). Raises `UpstreamError`."""
    sections = [s.directory for s in state.sections.values()]
    found = titles.resolve(state.upstream, sections, target.type, target.title, target.library)
    if found.rating_key is None:
        # WARNING, not ERROR: mitmdump exits when anything is logged at ERROR during start-up.
        recorder.record(Resolved(event=Event.MISSING_RATINGKEY, target=target.id, title=target.title,
                                 candidates=found.candidates, reason=found.reason),
                        f"target={target.id} title={target.title!r}: {found.reason}", level=logging.WARNING)
        return None
    recorder.record(Resolved(event=Event.RESOLVED_RATINGKEY, target=target.id, title=target.title,
                             rating_key=found.rating_key, candidates=found.candidates),
                    f"target={target.id} title={target.title!r} ratingKey={found.rating_key}")
    return dataclasses.replace(target, rating_key=found.rating_key)


def prefetch_libraries(state: PreviewState, recorder: Recorder) -> None:
    """A dry run: every item of the libraries named becomes a target (id = ratingKey), read with paged listings
    (never one request per item) — movies, or shows with their seasons and episodes. A shard keeps the top-level
    items at its positions, each with its seasons and episodes. Raises `StartupError`, `UpstreamError`.

    The id becomes a file name (`<id>_before.jpg`) and a link: an item whose ratingKey is not a target id (`names`;
    Plex's are numbers, so `../../x` or `javascript:…` is a broken or hostile server) is no target — Kometa is not
    shown it, nothing is written for it — and each library's PREFETCH line (a warning then) counts and names them."""
    shard = state.config.shard or Shard()
    by_title = {section.title: section for section in state.sections.values()}
    given = {t.rating_key for t in state.config.targets if t.rating_key}
    for title in state.config.libraries:
        section = by_title.get(title)
        if section is None or section.type not in LIBRARY_LEVELS:
            raise StartupError(f"preview.libraries: no movie or TV library named {title!r} in Plex (libraries: "
                               f"{', '.join(sorted(by_title))})")
        owner_position: dict[str, int] = {}
        kept, refused = 0, []
        for level, number in LIBRARY_LEVELS[section.type]:
            for position, element in enumerate(client.library_items(state.upstream, section.id, number)):
                key = element.get("ratingKey", "")
                if level in ("movie", "show"):
                    owner_position[key] = position
                    owner = key
                else:
                    owner = element.get("grandparentRatingKey" if level == "episode" else "parentRatingKey") or ""
                if key in given or not shard.holds(owner_position.get(owner, -1), owner) or \
                        (level != "movie" and owner in shard.skip):
                    continue
                if not names.is_target_id(key):
                    refused.append(key)
                    continue
                state.targets[key] = Target(id=key, type=level, rating_key=key, title=element.get("title", ""))
                state.remember_packed(element, recorder)
                recorder.record(target_seen(state.targets[key], element, title), level=logging.DEBUG)
                kept += 1
        said = f"; {len(refused)} items refused, their ratingKeys are no target ids: " \
               f"{', '.join(repr(k) for k in refused[:5])}{' …' if len(refused) > 5 else ''}" if refused else ""
        # WARNING, not ERROR: mitmdump exits when anything is logged at ERROR during start-up.
        recorder.note(Event.PREFETCH, f"library {title!r}: {kept} items are targets{said}",
                      level=logging.WARNING if refused else logging.INFO, library=title, targets=kept,
                      shard=f"{shard.index + 1}/{shard.count}", skipped=len(shard.skip), refused=len(refused))


def target_seen(target: Target, element: ET.Element, library: str | None) -> TargetSeen:
    """A target's TARGET line: how Plex knows it (its titles, its place, its poster), which the render names it by
    the way Kometa's log does."""
    return TargetSeen(target=target.id, rating_key=target.rating_key or "", type=element.get("type") or target.type,
                      title=element.get("title", ""), year=element.get("year"), parent_title=element.get("parentTitle"),
                      grandparent_title=element.get("grandparentTitle"), index=element.get("index"),
                      parent_index=element.get("parentIndex"), library=library, thumb=element.get("thumb"))


def _prefetch_target(state: PreviewState, target: Target, recorder: Recorder) -> None:
    """One target given in preview.yml: its metadata, its season and show, and a target show's or season's
    descendants. Raises `UpstreamError`."""
    upstream = state.upstream
    if target.rating_key is None:
        target = resolve_title(state, target, recorder)
        if target is None:
            return
    state.targets[target.rating_key] = target
    element = client.item(upstream, target.rating_key)
    if element is None:
        state.missing[target.rating_key] = "not found in Plex"
        # WARNING, not ERROR: mitmdump exits when anything is logged at ERROR during start-up.
        recorder.record(ItemEvent(event=Event.MISSING_ITEM, rating_key=target.rating_key, target=target.id),
                        f"ratingKey={target.rating_key} target={target.id}: Plex has no such item",
                        level=logging.WARNING)
        return
    if element.get("type") != target.type:
        recorder.note(Event.TYPE_MISMATCH, f"target={target.id} ratingKey={target.rating_key} is a "
                      f"{element.get('type')}, not a {target.type}", level=logging.WARNING,
                      rating_key=target.rating_key, target=target.id, expected=target.type, actual=element.get("type"))
    state.remember(element, recorder)
    state.learn(element, target.rating_key, recorder)
    if element.get("type") in ("show", "season"):
        for sub in ("children", "allLeaves") if element.get("type") == "show" else ("children",):
            for child in client.children(upstream, target.rating_key, sub):
                plexml.strip_label(child, OVERLAY_LABEL)
                child.set("librarySectionID", element.get("librarySectionID", ""))
                state.descendants.setdefault(child.get("ratingKey", ""), child)
    section = state.sections.get(element.get("librarySectionID", ""))
    recorder.record(target_seen(target, element, section.title if section else element.get("librarySectionTitle")),
                    level=logging.DEBUG)


def prefetch(state: PreviewState, recorder: Recorder) -> None:
    """Read sections and every target's metadata (read-only), with `plex.client`'s lookups — the same ones
    `check` makes. Raises `StartupError`."""
    upstream = state.upstream
    try:
        for directory in client.sections(upstream):
            key = directory.get("key", "")
            state.sections[key] = Section(key, directory.get("title", ""), directory.get("type", ""),
                                          directory.get("uuid", ""), directory)
        for target in state.config.targets:
            _prefetch_target(state, target, recorder)
        for parent in list(state.learned_parents):
            if parent not in state.items and (element := client.item(upstream, parent)) is not None:
                state.remember(element, recorder)
        if state.config.libraries:
            prefetch_libraries(state, recorder)
    except UpstreamError as exc:
        raise StartupError(str(exc)) from None
    holding = {state.items[k].get("librarySectionID") for k in state.targets if k in state.items}
    for key in list(state.descendants):
        if key in state.targets:
            del state.descendants[key]  # a target is a target, even when it is also a target show's episode
    recorder.note(Event.PREFETCH, level=logging.DEBUG, targets=len(state.targets), missing=sorted(state.missing),
                  sections=sorted(s for s in holding if s), learned_parents=sorted(state.learned_parents),
                  descendants=len(state.descendants), upstream_requests=upstream.requests)
