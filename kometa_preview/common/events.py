"""The journal's vocabulary: every event the proxy may write, the records the render reads back, and the reader.

The proxy appends one JSON line per decision to `JobLayout.journal`; the render builds summary.json from
those lines after both children exit. Both sides import this module (it has no mitmproxy import), so an
event name is written in one place: a typo is an `AttributeError`, not a silently empty counter.
The same names are the flow verdicts mitmweb shows and the words users grep for in the logs.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from .files import Tail


class Event(StrEnum):
    # --- the proxy's life -----------------------------------------------------------------------------
    PROXY_START = "PROXY_START"                  # options accepted; the mode and targets it serves
    PREFETCH = "PREFETCH"                        # targets' metadata read from Plex at start-up
    STARTUP_ERROR = "STARTUP_ERROR"              # the proxy cannot serve this preview (Plex unreachable…)
    PROXY_READY = "PROXY_READY"                  # listening; the ready file is written
    PROXY_DONE = "PROXY_DONE"                    # shutting down: its CPU, memory and upstream figures
    PROXY_ERROR = "PROXY_ERROR"                  # an addon raised; the flow was answered 502 locally
    NOT_CONFIGURED = "NOT_CONFIGURED"            # no preview_config: every request answered 503
    # --- targets --------------------------------------------------------------------------------------
    TARGET = "TARGET"                            # a target as Plex knows it (titles, library): Kometa's log names it
    RESOLVED_RATINGKEY = "RESOLVED_RATINGKEY"    # a target given by title matched exactly one item
    MISSING_RATINGKEY = "MISSING_RATINGKEY"      # a target given by title matched none, or several (candidates)
    MISSING_ITEM = "MISSING_ITEM"                # a target's ratingKey does not exist in Plex
    TYPE_MISMATCH = "TYPE_MISMATCH"              # a target's ratingKey is another type than preview.yml says
    LEARNED_PARENT = "LEARNED_PARENT"            # a target's season or show, readable from now on
    STRIPPED_OVERLAY_LABEL = "STRIPPED_OVERLAY_LABEL"  # the Overlay label hidden so Kometa does not skip it
    OVERLAID_POSTER = "OVERLAID_POSTER"          # Plex's poster already carries Kometa's overlay mark
    POSTER_SOURCE = "POSTER_SOURCE"              # the poster served to Kometa (input:, stored original, Plex)
    # --- every answered flow --------------------------------------------------------------------------
    FLOW = "FLOW"                                # one line per answered request: verdict, status, size
    FLOW_ERROR = "FLOW_ERROR"                    # a flow that ended without a response
    # --- mock library mode ----------------------------------------------------------------------------
    MOCK_LIBRARY = "MOCK_LIBRARY"
    MOCK_SECTIONS = "MOCK_SECTIONS"
    MOCK_SECTION = "MOCK_SECTION"
    MOCK_LIST = "MOCK_LIST"
    MOCK_COLLECTIONS = "MOCK_COLLECTIONS"
    MOCK_CHOICES = "MOCK_CHOICES"
    MOCK_CHILDREN = "MOCK_CHILDREN"
    MOCK_BAD_TYPE = "MOCK_BAD_TYPE"              # a listing `type=` Plex does not know: 400, as Plex answers
    META_FETCHED = "META_FETCHED"                # a section's `<Meta>` block read from Plex (once per section)
    FILTER_FALLBACK = "FILTER_FALLBACK"          # a filter or sort evaluated by Plex, intersected with targets
    # --- forwarded reads ------------------------------------------------------------------------------
    ALLOW_FORWARD = "ALLOW_FORWARD"              # metadata/children/images of an allowed ratingKey
    BLOCK_METADATA = "BLOCK_METADATA"            # a ratingKey outside the allowlist: empty container
    PASS_THROUGH = "PASS_THROUGH"                # small reads the same at any library size (/, /identity…)
    # --- filter mode ----------------------------------------------------------------------------------
    FILTER_LIST = "FILTER_LIST"
    FILTER_CHILDREN = "FILTER_CHILDREN"
    FILTER_LOCAL_OVERLAY_LABEL = "FILTER_LOCAL_OVERLAY_LABEL"
    FILTER_PARSE_ERROR = "FILTER_PARSE_ERROR"
    # --- Plex's answers -------------------------------------------------------------------------------
    UPSTREAM_ERROR = "UPSTREAM_ERROR"            # Plex could not be read: 502
    UPSTREAM_STATUS = "UPSTREAM_STATUS"          # Plex answered >= 400; passed on
    UNSAFE_UPSTREAM = "UNSAFE_UPSTREAM"          # Plex's XML carried a DTD: answered empty
    FORWARD_UNPARSED = "FORWARD_UNPARSED"        # Plex's metadata answer was not XML: passed on unchanged
    # --- writes ---------------------------------------------------------------------------------------
    BLOCKED_WRITE = "BLOCKED_WRITE"
    BLOCKED_SIDE_EFFECT = "BLOCKED_SIDE_EFFECT"  # a GET Plex treats as an action (refresh, scrobble…)
    BLOCKED_UNKNOWN = "BLOCKED_UNKNOWN"          # a GET on no read-only route
    UPLOAD_TOO_LARGE = "UPLOAD_TOO_LARGE"
    UPLOAD_UNDECODABLE = "UPLOAD_UNDECODABLE"
    CAPTURED_UPLOAD = "CAPTURED_UPLOAD"
    CAPTURE_PARSE_ERROR = "CAPTURE_PARSE_ERROR"  # an upload with no complete image: kept under captured_requests/
    # --- the reverse door -----------------------------------------------------------------------------
    UNAUTHORIZED_CLIENT = "UNAUTHORIZED_CLIENT"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    UPLOADS_BUSY = "UPLOADS_BUSY"
    SLOW_REQUEST = "SLOW_REQUEST"                # a new connection that delivered no whole request in time: closed
    IDLE_CLIENT_CLOSED = "IDLE_CLIENT_CLOSED"    # a kept-alive connection quiet after its answers: closed
    UNCLAIMED = "UNCLAIMED"                      # no addon claimed a read: answered locally
    # --- the outside-calls door -----------------------------------------------------------------------
    OUTSIDE_PASS = "OUTSIDE_PASS"
    OFFLINE_VERSION = "OFFLINE_VERSION"
    OFFLINE_TMDB_CONFIGURATION = "OFFLINE_TMDB_CONFIGURATION"
    OFFLINE_ANIME_IDS = "OFFLINE_ANIME_IDS"
    OUTSIDE_REFUSED_PLEX = "OUTSIDE_REFUSED_PLEX"
    OUTSIDE_REFUSED_ADDRESS = "OUTSIDE_REFUSED_ADDRESS"
    OUTSIDE_REFUSED_HOST = "OUTSIDE_REFUSED_HOST"
    OUTSIDE_REFUSED_WRITE = "OUTSIDE_REFUSED_WRITE"
    OUTSIDE_REFUSED_PROTOCOL = "OUTSIDE_REFUSED_PROTOCOL"
    OUTSIDE_REFUSED_OFFLINE = "OUTSIDE_REFUSED_OFFLINE"
    OUTSIDE_UNREACHABLE = "OUTSIDE_UNREACHABLE"      # an allowed service could not be reached: no internet?


class RenderEvent(StrEnum):
    """The render's own log events (the parent process writes them to logs/render.log; they are not journal
    lines): the other half of the words users grep for."""
    MISSING_CAPTURE = "MISSING_CAPTURE"          # a target ended without an exported poster (its status says why)
    NO_OVERLAY_APPLIES = "NO_OVERLAY_APPLIES"    # Kometa finished cleanly and applied no overlay to a target
    JOB_FAILED = "JOB_FAILED"                    # the job's error (Kometa's, or the render's)
    KOMETA_PROGRESS = "KOMETA_PROGRESS"          # what Kometa is doing during its long silent phases
    RENDER_ERROR = "RENDER_ERROR"                # the render itself failed (a full disk…)
    RENDER_DONE = "RENDER_DONE"
    EXPORT_ERROR = "EXPORT_ERROR"
    REPORT_ERROR = "REPORT_ERROR"
    UNKNOWN_EVENT = "UNKNOWN_EVENT"              # the journal holds events this version does not know
    PLAN_CHANGED = "PLAN_CHANGED"                # the proxy did not start as Kometa was told: Kometa runs again
    KOMETA_ISOLATION = "KOMETA_ISOLATION"        # Kometa in its box, or not (and why not)


#: What the proxy learns once, at start-up or the first time it serves a target's poster: true for every run a
#: long-lived proxy serves (`watch`), unlike the flows, captures and refusals of each run.
STATE_EVENTS = frozenset({Event.PROXY_START, Event.PREFETCH, Event.STARTUP_ERROR, Event.PROXY_READY, Event.TARGET,
                          Event.RESOLVED_RATINGKEY, Event.MISSING_RATINGKEY, Event.MISSING_ITEM, Event.TYPE_MISMATCH,
                          Event.LEARNED_PARENT, Event.STRIPPED_OVERLAY_LABEL, Event.OVERLAID_POSTER,
                          Event.POSTER_SOURCE})
#: Requests that would have changed Plex (or asked it to act), answered locally.
BLOCKED = frozenset({Event.BLOCKED_WRITE, Event.BLOCKED_SIDE_EFFECT, Event.BLOCKED_UNKNOWN, Event.UPLOAD_TOO_LARGE,
                     Event.UPLOAD_UNDECODABLE})
#: Refused attempts to leave by another door than the reverse proxy's reads (`--offline` refusals are
#: expected and not counted).
SIDE_DOORS = frozenset({Event.OUTSIDE_REFUSED_PLEX, Event.OUTSIDE_REFUSED_ADDRESS, Event.OUTSIDE_REFUSED_HOST,
                        Event.OUTSIDE_REFUSED_WRITE, Event.OUTSIDE_REFUSED_PROTOCOL, Event.UNAUTHORIZED_CLIENT,
                        Event.HEADERS_TOO_LARGE, Event.UPLOADS_BUSY, Event.UPLOAD_TOO_LARGE,
                        Event.UPLOAD_UNDECODABLE, Event.SLOW_REQUEST, Event.BLOCKED_SIDE_EFFECT,
                        Event.BLOCKED_UNKNOWN})
OUTSIDE = (Event.OUTSIDE_PASS, Event.OFFLINE_VERSION, Event.OFFLINE_TMDB_CONFIGURATION, Event.OFFLINE_ANIME_IDS,
           Event.OUTSIDE_REFUSED_PLEX, Event.OUTSIDE_REFUSED_ADDRESS, Event.OUTSIDE_REFUSED_HOST,
           Event.OUTSIDE_REFUSED_WRITE, Event.OUTSIDE_REFUSED_PROTOCOL, Event.OUTSIDE_REFUSED_OFFLINE,
           Event.OUTSIDE_UNREACHABLE)
#: Outside calls Kometa made that did not get their data: refused by the allowlist, by --offline, or unreachable.
#: An overlay whose items come from such a call cannot be previewed faithfully.
OUTSIDE_DENIED = frozenset(OUTSIDE) - {Event.OUTSIDE_PASS, Event.OFFLINE_VERSION, Event.OFFLINE_TMDB_CONFIGURATION,
                                       Event.OFFLINE_ANIME_IDS}


# --- the records: what a journal line of each event holds --------------------------------------------------

#: Set to 1 (the tests do, and every process they start inherits it), a journal line that carries a field its
#: record does not declare is an error (`UnknownField`) instead of a field dropped unread: the writer and the
#: reader cannot drift apart unnoticed. The render leaves it unset, so a newer proxy's extra fields never fail it.
STRICT_ENV = "KOMETA_PREVIEW_STRICT_JOURNAL"


@dataclass(frozen=True, kw_only=True)
class Record:
    """A journal line: when, what, and the event's own fields. The proxy writes one (`to_line`, stamped with `t`
    as it is appended) and the render reads it back (`parse`) with the same dataclass, so both name a field once.
    An event without a record type of its own is a diagnostic: its fields are free-form and nothing reads them."""
    event: Event
    t: float = 0.0

    @classmethod
    def of(cls, raw: dict[str, Any], *, strict: bool = False) -> Self:
        """The record of one line. `strict`: a field the record does not declare raises `UnknownField`."""
        names = {f.name for f in fields(cls)}
        if strict and (unknown := raw.keys() - names):
            raise UnknownField(f"a {raw.get('event')} line carries {', '.join(sorted(unknown))}, which "
                               f"{cls.__name__} does not declare")
        return cls(**{k: v for k, v in raw.items() if k in names and k != "event"}, event=Event(raw["event"]))

    def to_line(self) -> dict[str, Any]:
        """The line's content besides its time: the event, then each field that is not None (the reader's default
        for an optional field is None, so it reads back the same)."""
        line: dict[str, Any] = {"event": self.event.value}
        line.update((f.name, value) for f in fields(self) if f.name not in ("t", "event")
                    and (value := getattr(self, f.name)) is not None)
        return line


@dataclass(frozen=True, kw_only=True)
class ProxyStart(Record):
    event: Event = Event.PROXY_START
    mock_library: bool = True
    targets: list[str] = field(default_factory=list)
    allowed_rating_keys: list[str] = field(default_factory=list)
    #: Plex's URL, redacted.
    plex: str = ""


@dataclass(frozen=True, kw_only=True)
class ProxyDone(Record):
    event: Event = Event.PROXY_DONE
    #: How many times each event was recorded, and `answered_with_plex`.
    counters: dict[str, int] = field(default_factory=dict)
    learned_parent_keys: list[str] = field(default_factory=list)
    upstream_requests: int | None = None
    upstream_bytes: int | None = None
    cpu_seconds: float | None = None
    peak_rss_mib: float | None = None


@dataclass(frozen=True, kw_only=True)
class ItemEvent(Record):
    """MISSING_ITEM, OVERLAID_POSTER (with the target), LEARNED_PARENT (with the `child` it was learned from): one
    ratingKey."""
    rating_key: str = ""
    target: str | None = None
    child: str | None = None


@dataclass(frozen=True, kw_only=True)
class PosterServed(Record):
    event: Event = Event.POSTER_SOURCE
    rating_key: str = ""
    target: str = ""
    source: str = ""
    bytes: int = 0
    ext: str = ""
    saved: str = ""


@dataclass(frozen=True, kw_only=True)
class Captured(Record):
    event: Event = Event.CAPTURED_UPLOAD
    rating_key: str = ""
    kind: str = ""
    bytes: int = 0
    ext: str = ""
    saved: str = ""
    target: str | None = None
    #: The upload's request: method and redacted path.
    method: str | None = None
    path: str | None = None
    #: True on a capture export found on disk that the journal missed (a full disk); the proxy never sets it.
    recovered_from_disk: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Blocked(Record):
    """A write (or side-effecting GET) answered locally; `reason` for an upload that could not be decoded."""
    method: str = ""
    path: str = ""
    route: str | None = None
    rating_key: str | None = None
    kind: str | None = None
    content_length: int | None = None
    url: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Refused(Record):
    """An outside call refused, or that got no data: the request (`METHOD scheme://host:port/path`), the host it
    was aimed at, the service it would have reached, and why."""
    request: str | None = None
    host: str | None = None
    service: str | None = None
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Resolved(Record):
    """RESOLVED_RATINGKEY / MISSING_RATINGKEY: a target given by title, and what Plex's search found."""
    target: str = ""
    title: str = ""
    rating_key: str | None = None
    candidates: list = field(default_factory=list)
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TargetSeen(Record):
    """A target as Plex knows it, journaled at start-up: enough to name it the way Kometa's log does."""
    event: Event = Event.TARGET
    target: str = ""
    rating_key: str = ""
    type: str = ""
    title: str = ""
    year: str | None = None
    parent_title: str | None = None
    grandparent_title: str | None = None
    index: str | None = None
    parent_index: str | None = None
    library: str | None = None
    #: The item's poster path in Plex (`/library/metadata/<rk>/thumb/<stamp>`).
    thumb: str | None = None

    @property
    def kometa_title(self) -> str:
        """How Kometa names the item in its log (`get_item_display_title`, the same in 2.0 to nightly): a movie or
        show by its title, a season as `<Show> Season <n>`, an episode as `<Show> S01E02`."""
        if self.type == "season":
            return f"{self.parent_title} Season {self.index}"
        if self.type == "episode":
            return f"{self.grandparent_title} S{int(self.parent_index or 0):02d}E{int(self.index or 0):02d}"
        return self.title


@dataclass(frozen=True, kw_only=True)
class MockList(Record):
    """A mock answer (MOCK_LIST, and the library, a section, collections, filter choices, children): the route
    asked and how many items came back."""
    path: str = ""
    query: str | None = None
    route: str | None = None
    type: str | None = None
    returned_items: int = 0
    #: A listing: how many items matched before paging, and why Plex was asked instead (`FILTER_FALLBACK`).
    total: int | None = None
    fallback: str | None = None
    #: Filter choices: the field; children: the parent's ratingKey.
    field: str | None = None
    rating_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class FilterList(Record):
    event: Event = Event.FILTER_LIST
    path: str = ""
    query: str | None = None
    items_before: int = 0
    items_after: int = 0
    removed: int = 0
    #: How many ratingKeys may pass (live targets).
    allowed: int = 0
    #: The size of Plex's answer, when it was small enough to keep for a pass-through.
    upstream_bytes: int | None = None


@dataclass(frozen=True, kw_only=True)
class FilterFallback(Record):
    event: Event = Event.FILTER_FALLBACK
    path: str = ""
    query: str | None = None
    reason: str = ""
    upstream_items: int = 0
    #: The targets Plex's answer named.
    matched: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Flow(Record):
    """Every answered request. `upstream` is how many reads of Plex answering it took: the one definition of
    "answered with Plex's help"."""
    event: Event = Event.FLOW
    method: str = ""
    path: str = ""
    verdict: str | None = None
    status: int = 0
    bytes: int = 0
    upstream: int = 0


#: The record type of each event that has one; every other event is a diagnostic, counted by the render.
RECORD_TYPES: dict[Event, type[Record]] = {
    Event.PROXY_START: ProxyStart, Event.PROXY_DONE: ProxyDone,
    Event.MISSING_ITEM: ItemEvent, Event.OVERLAID_POSTER: ItemEvent, Event.LEARNED_PARENT: ItemEvent,
    Event.POSTER_SOURCE: PosterServed, Event.CAPTURED_UPLOAD: Captured,
    **{event: MockList for event in (Event.MOCK_LIBRARY, Event.MOCK_SECTION, Event.MOCK_LIST, Event.MOCK_COLLECTIONS,
                                     Event.MOCK_CHOICES, Event.MOCK_CHILDREN)},
    Event.FILTER_LIST: FilterList, Event.FILTER_FALLBACK: FilterFallback,
    Event.FLOW: Flow, Event.TARGET: TargetSeen, Event.RESOLVED_RATINGKEY: Resolved, Event.MISSING_RATINGKEY: Resolved,
    **{event: Blocked for event in BLOCKED},
    **{event: Refused for event in OUTSIDE_DENIED},
}


class UnknownEvent(ValueError):
    """A journal line names an event this version does not know (a newer proxy, or a corrupt line)."""


class UnknownField(ValueError):
    """A journal line carries a field its record does not declare (raised only when reading strictly)."""


def parse(raw: dict[str, Any], *, strict: bool | None = None) -> Record:
    """One journal line as its record type. Raises `UnknownEvent`; and `UnknownField` when `strict` (by default:
    when `STRICT_ENV` is set to 1). A diagnostic event's fields are free-form, so strictness does not apply to it."""
    try:
        event = Event(raw.get("event"))
    except ValueError:
        raise UnknownEvent(f"unknown journal event {raw.get('event')!r}") from None
    kind = RECORD_TYPES.get(event, Record)
    if strict is None:
        strict = os.environ.get(STRICT_ENV) == "1"
    return kind.of({**raw, "t": float(raw.get("t", 0))}, strict=strict and kind is not Record)


# --- reading the journal ---------------------------------------------------------------------------------

class Follower:
    """Reads the records appended since the last call: live progress while Kometa runs, and the whole journal
    once at the end. A torn last line (a crash mid-write) is left for the next call, never half-parsed."""

    def __init__(self, path: Path, *, start_at_end: bool = False) -> None:
        """`start_at_end`: only what is appended from now on (a later run of a proxy that keeps running)."""
        self.path = path
        self._tail = Tail(path, from_end=start_at_end)

    def new_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self._tail.lines():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                lines.append(value)
        return lines


def read(path: Path) -> list[dict[str, Any]]:
    """Every complete journal line of `path`, as written."""
    return Follower(path).new_lines()
