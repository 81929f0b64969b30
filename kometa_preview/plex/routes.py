"""The one place that knows Plex URL grammar: classify a request into a `Route`.

Classification works on the raw path, before any percent-decoding: a path with `%`, `..`, `//`,
or anything else outside the grammar below is `UNKNOWN`, and an unknown route is never forwarded.
`READ_ONLY` is the table of route kinds that may go upstream at all — an allowlist of reads, so a
write cannot reach Plex by looking like something new.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl, urlsplit

from plexapi.utils import SEARCHTYPES


class Kind(str, Enum):
    ROOT = "root"
    IDENTITY = "identity"
    SERVER_PREFS = "server_prefs"
    LIBRARY = "library"
    SECTIONS = "sections"
    SECTION = "section"
    SECTION_PREFS = "section_prefs"
    LISTING = "listing"
    HUB_SEARCH = "hub_search"
    COLLECTIONS = "collections"
    FILTER_CHOICES = "filter_choices"
    METADATA = "metadata"
    CHILDREN = "children"
    ARTWORK_LIST = "artwork_list"
    IMAGE = "image"
    TRANSCODE = "transcode"
    UPLOAD = "upload"
    SIDE_EFFECT = "side_effect"
    UNKNOWN = "unknown"


#: Read-only route kinds whose answer lists items (ratingKeys) of the library: each is answered from the
#: targets, either by the mock (mock mode) or by stripping Plex's answer to the targets and learned parents
#: (filter mode, and the metadata gate in both modes). None is ever passed through.
ITEM_LISTS = frozenset({Kind.LISTING, Kind.HUB_SEARCH, Kind.COLLECTIONS, Kind.METADATA, Kind.CHILDREN})
#: Read-only route kinds that are fixed documents: server and section facts, filter choices by a fixed list
#: of field names, one item's artwork. They name no other item.
FIXED_DOCUMENTS = frozenset({
    Kind.ROOT, Kind.IDENTITY, Kind.SERVER_PREFS, Kind.LIBRARY, Kind.SECTIONS, Kind.SECTION,
    Kind.SECTION_PREFS, Kind.FILTER_CHOICES, Kind.ARTWORK_LIST, Kind.IMAGE, Kind.TRANSCODE,
})
#: Route kinds that are pure reads in Plex and may be forwarded for GET/HEAD.
READ_ONLY = ITEM_LISTS | FIXED_DOCUMENTS
READ_METHODS = frozenset({"GET", "HEAD"})
#: Headers some servers and frameworks honour to turn a GET into a write.
METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")

#: Plex's `type=` numbers for the libtypes a preview lists, from plexapi's own table (the one Kometa sends).
LIBTYPES = {str(SEARCHTYPES[name]): name for name in ("movie", "show", "season", "episode", "collection")}
#: Upload sub-paths of `/library/metadata/{rk}/…` and the capture kind each one means.
UPLOAD_KINDS = {"posters": "poster", "poster": "poster", "arts": "art", "art": "art", "thumbs": "thumb",
                "thumb": "thumb", "clearLogos": "logo", "clearLogo": "logo", "squareArts": "square_art",
                "squareArt": "square_art", "themes": "theme"}

_KEY = r"[0-9]{1,12}"
#: `/library/sections/{id}/<sub>` routes whose answer lists items: answered from the targets (mock mode) or
#: stripped to them (filter mode), never passed through.
SECTION_LISTINGS = frozenset({"all", "search", "recentlyAdded", "newest", "onDeck", "unwatched", "recentlyViewed",
                              "allLeaves"})
#: `/library/sections/{id}/<field>` filter-choice documents, by Plex's own field names in Plex's exact case (the
#: `key` of each `<Filter>` in a section's `<Meta>`). Anything else under a section is UNKNOWN: `Refresh`,
#: `emptytrash`, `autocomplete`, `common`, `firstCharacter` are never read upstream.
FILTER_FIELDS = frozenset({
    "genre", "year", "decade", "contentRating", "collection", "director", "actor", "writer", "producer",
    "country", "studio", "network", "resolution", "audioCodec", "label", "mood", "style", "format", "subformat",
    "audioLanguage", "subtitleLanguage", "editionTitle", "contentRatingAge",
})
_SIDE_EFFECTS = re.compile(
    r"(?i)/(?::/(?:scrobble|unscrobble|timeline|rate|progress|websockets/.*)|library/sections/[^/]*/"
    r"(?:refresh|emptyTrash|analyze)|library/(?:optimize|clean/bundles)|butler.*|updater.*|playQueues.*|"
    r"player/.*|library/metadata/[^/]*/(?:refresh|analyze|match|unmatch|split|merge))")
_PATTERNS: list[tuple[re.Pattern[str], Kind]] = [
    (re.compile(r"/"), Kind.ROOT),
    (re.compile(r"/identity"), Kind.IDENTITY),
    (re.compile(r"/:/prefs"), Kind.SERVER_PREFS),
    (re.compile(r"/library"), Kind.LIBRARY),
    (re.compile(r"/library/sections"), Kind.SECTIONS),
    (re.compile(rf"/library/sections/(?P<section>{_KEY})"), Kind.SECTION),
    (re.compile(rf"/library/sections/(?P<section>{_KEY})/prefs"), Kind.SECTION_PREFS),
    (re.compile(rf"/library/sections/(?P<section>{_KEY})/collections"), Kind.COLLECTIONS),
    (re.compile(rf"/library/sections/(?P<section>{_KEY})/(?P<sub>{'|'.join(sorted(SECTION_LISTINGS))})"),
     Kind.LISTING),
    (re.compile(rf"/library/sections/(?P<section>{_KEY})/(?P<sub>{'|'.join(sorted(FILTER_FIELDS))})"),
     Kind.FILTER_CHOICES),
    (re.compile(r"/library/(?P<sub>all|search|recentlyAdded|onDeck)"), Kind.LISTING),
    (re.compile(r"/hubs/search"), Kind.HUB_SEARCH),
    (re.compile(rf"/library/metadata/(?P<keys>{_KEY}(?:,{_KEY}){{0,199}})"), Kind.METADATA),
    (re.compile(rf"/library/metadata/(?P<keys>{_KEY})/(?P<sub>children|allLeaves)"), Kind.CHILDREN),
    (re.compile(rf"/library/metadata/(?P<keys>{_KEY})/(?P<sub>posters|arts)"), Kind.ARTWORK_LIST),
    (re.compile(rf"/library/metadata/(?P<keys>{_KEY})/(?P<sub>thumb|art|banner|theme)(?:/[0-9]{{1,12}})?"),
     Kind.IMAGE),
    (re.compile(rf"/library/metadata/(?P<keys>{_KEY})/(?P<sub>file)"), Kind.IMAGE),
    (re.compile(r"/photo/:/transcode"), Kind.TRANSCODE),
]
_UPLOAD = re.compile(rf"/library/metadata/(?P<keys>{_KEY})/(?P<sub>{'|'.join(UPLOAD_KINDS)})")
_LOOSE_KEY = re.compile(rf"/library/metadata/(?P<keys>{_KEY})(?:[/?,]|$)")


@dataclass(frozen=True)
class Route:
    """What a Plex request is about. `params` keeps the query in order (filters depend on order)."""
    kind: Kind
    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    section_id: str | None = None
    rating_keys: tuple[str, ...] = ()
    sub: str | None = None
    override: bool = False

    @property
    def rating_key(self) -> str | None:
        return self.rating_keys[0] if self.rating_keys else None

    @property
    def is_read(self) -> bool:
        """Only a GET/HEAD on a read-only route with no method-override header is a read."""
        return self.method in READ_METHODS and self.kind in READ_ONLY and not self.override

    def param(self, name: str, default: str | None = None) -> str | None:
        return next((v for k, v in self.params if k == name), default)

    @property
    def libtype(self) -> str | None:
        return LIBTYPES.get(self.param("type") or "")

    @property
    def upload_kind(self) -> str | None:
        return UPLOAD_KINDS.get(self.sub or "") if self.kind is Kind.UPLOAD else None


def classify(method: str, raw_path: str, headers: dict[str, str] | None = None) -> Route:
    """Classify a request line. `raw_path` is the path with its query, exactly as the client sent it."""
    method = method.upper()
    split = urlsplit(raw_path)
    path = split.path
    params = tuple(parse_qsl(split.query, keep_blank_values=True))
    override = any(name.lower() in METHOD_OVERRIDES for name in (headers or {}))
    common = {"method": method, "path": path, "params": params, "override": override}
    if not path.startswith("/") or "%" in path or "//" in path or "/." in path or "\\" in path:
        return Route(Kind.UNKNOWN, **common)
    if _SIDE_EFFECTS.fullmatch(path):
        return Route(Kind.SIDE_EFFECT, rating_keys=_keys_anywhere(path), **common)
    if method not in READ_METHODS and (match := _UPLOAD.fullmatch(path)):
        return Route(Kind.UPLOAD, rating_keys=(match["keys"],), sub=match["sub"], **common)
    for pattern, kind in _PATTERNS:
        if match := pattern.fullmatch(path):
            groups = match.groupdict()
            keys = tuple(groups["keys"].split(",")) if groups.get("keys") else ()
            if kind is Kind.LISTING and not keys:  # an edit names its items in id= (plexapi's edit())
                keys = tuple(k for k in dict(params).get("id", "").split(",") if k.isdigit())
            return Route(kind, section_id=groups.get("section"), rating_keys=keys, sub=groups.get("sub"),
                         **common)
    return Route(Kind.UNKNOWN, rating_keys=_keys_anywhere(path), **common)


def _keys_anywhere(path: str) -> tuple[str, ...]:
    """The ratingKey a non-read request is about, for the record (never for a forwarding decision)."""
    match = _LOOSE_KEY.match(path)
    return (match["keys"],) if match else ()


def image_path_of(url: str) -> Route | None:
    """The image route a `/photo/:/transcode?url=` points at (absolute or relative), or None."""
    split = urlsplit(url)
    route = classify("GET", split.path)
    return route if route.kind is Kind.IMAGE else None


def paging(route: Route, headers: dict[str, str]) -> tuple[int, int | None]:
    """(start, size) from the `X-Plex-Container-*` headers or query parameters; size None = everything.

    plexapi pages with headers, but `totalViewSize()` and the filter lookup send query parameters.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    start = lowered.get("x-plex-container-start") or route.param("X-Plex-Container-Start") or "0"
    size = lowered.get("x-plex-container-size") or route.param("X-Plex-Container-Size")
    first = int(start) if start.isdigit() else 0
    return first, (int(size) if size is not None and size.isdigit() else None)


#: Query parameters a forwarded item read may carry; anything else a client adds is dropped. Only parameters
#: that shape the item's own document: `includeRelated`, `includeChildren`, `includeOnDeck`,
#: `includePopularLeaves`, `includeExtras`, `includeConcerts`, `includeStations`, `includeExternalMedia`…
#: would pull other items into the answer, so they are not on the list.
ITEM_PARAMS = frozenset({
    "checkFiles", "asyncCheckFiles", "X-Plex-Container-Start", "X-Plex-Container-Size", "index", "type", "sort",
    "includeGuids", "includeBandwidths", "includeChapters", "includeMarkers", "includeLoudnessRamps",
    "includeGeolocation", "includeFields", "includePreferences", "includeMeta", "excludeFields",
    "excludeElements", "excludeAllLeaves",
})
_TRANSCODE_PARAMS = {"url", "width", "height", "minSize", "upscale", "format", "quality", "opacity", "saturation",
                     "blur", "background", "blendColor"}
_NEVER_FORWARDED = re.compile(r"(?i)x-plex-token|.*override.*|_?method")


def forwardable_params(route: Route) -> list[tuple[str, str]]:
    """The query a read may take to Plex: a known set for item reads, filters (minus method overrides) for
    listings, nothing for fixed documents."""
    params = [(k, v) for k, v in route.params if not _NEVER_FORWARDED.fullmatch(k)]
    if route.kind in (Kind.METADATA, Kind.CHILDREN, Kind.ARTWORK_LIST, Kind.IMAGE):
        return [(k, v) for k, v in params if k in ITEM_PARAMS]
    if route.kind is Kind.TRANSCODE:
        return [(k, v) for k, v in params if k in _TRANSCODE_PARAMS]
    if route.kind in (Kind.LISTING, Kind.HUB_SEARCH, Kind.FILTER_CHOICES, Kind.COLLECTIONS):
        return params
    return [(k, v) for k, v in params if k.startswith("X-Plex-Container-")]
