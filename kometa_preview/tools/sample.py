"""A sample that shows every badge: at most N items of a library that together cover the distinct values of the
fields overlays decide on, found read-only with Plex's own filter choices.

"Show me one of each badge" should cost one ordinary preview, not a whole-library dry run. For each field Plex
offers for the library's items (its `<Meta>`: resolution, audio codec, edition, content rating; network for
shows) every value is a filter choice, and HDR and Dolby Vision are yes/no filters; one listing per value names
the items that have it. A greedy cover then picks, N times, the item that adds the most values not yet covered.
Only GET requests, through the GET-only Plex client.

A show's status (returning, ended, canceled) is not among Plex's fields or filters: Kometa's status overlay reads
it from TMDb (`tmdb_status`), so a read-only sample cannot cover it without TMDb; it is left out, not guessed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from urllib.parse import urlencode

from plexapi.utils import SEARCHTYPES

from ..plex.client import Upstream, document, sections
from .find import Entry, describe_element, unique_ids

#: The fields whose values decide which overlay an item gets, per library type, with the level each is read at
#: (when Plex offers them): a show's badges come from its episodes' resolutions and codecs (docs/KOMETA-TRAFFIC.md).
FIELDS = {"movie": (("resolution", "movie"), ("audioCodec", "movie"), ("editionTitle", "movie"),
                    ("contentRating", "movie")),
          "show": (("network", "show"), ("contentRating", "show"), ("resolution", "episode"),
                   ("audioCodec", "episode"))}
#: Yes/no fields (`<Field type="boolean">` in Plex's `<Meta>`), and their level.
FLAGS = {"movie": (("hdr", "movie"), ("dovi", "movie")), "show": (("hdr", "episode"), ("dovi", "episode"))}
FLAG_NAMES = frozenset(name for flags in FLAGS.values() for name, _ in flags)
#: How much covering one value of a field is worth: the fields that pick a badge first.
WEIGHTS = {"resolution": 100, "hdr": 100, "dovi": 100, "editionTitle": 10}
#: Items read per value: enough to choose from, bounded on a large library.
PER_VALUE = 200
#: How a covered value is named in the note `find` prints beside each sampled item.
WORDS = {"resolution": "resolution", "audioCodec": "audio", "editionTitle": "edition", "contentRating": "rating",
         "network": "network", "hdr": "HDR", "dovi": "Dolby Vision"}


class SampleError(Exception):
    """The library cannot be sampled. One line for the user."""


@dataclass
class Candidate:
    element: object
    covers: set[tuple[str, str]] = field(default_factory=set)


def _meta(upstream: Upstream, section_key: str, libtype: str) -> tuple[dict[str, str], set[str]]:
    """Plex's filter choices for a libtype ({field: choices path}) and its boolean fields."""
    number = SEARCHTYPES[libtype]
    root = document(upstream, f"/library/sections/{section_key}/all?type={number}&includeMeta=1"
                              "&X-Plex-Container-Start=0&X-Plex-Container-Size=0")
    meta = root.find("Meta") if root is not None else None
    choices: dict[str, str] = {}
    booleans: set[str] = set()
    for kind in (meta.iter("Type") if meta is not None else []):
        if kind.get("type") != libtype:
            continue
        choices.update((f.get("filter", ""), f.get("key", "")) for f in kind.iter("Filter") if f.get("key"))
        booleans.update(f.get("key", "").rsplit(".", 1)[-1] for f in kind.iter("Field") if f.get("type") == "boolean")
    return choices, booleans


def pick(upstream: Upstream, library: str, count: int) -> tuple[list[Entry], list[tuple[str, str]]]:
    """At most `count` items of `library` covering its distinct values; also the values none of them covers.
    Raises `SampleError`, `UpstreamError`."""
    found = {s.get("title"): s for s in sections(upstream)}
    section = found.get(library)
    if section is None or section.get("type") not in FIELDS:
        raise SampleError(f"no movie or TV library named {library!r} (libraries: {', '.join(sorted(found))})")
    libtype, key = section.get("type", ""), section.get("key", "")
    meta = {level: _meta(upstream, key, level) for level in {level for _, level in FIELDS[libtype] + FLAGS[libtype]}}
    values: list[tuple[str, str, str]] = []      # (filter parameter, value key, value title)
    for name, level in FIELDS[libtype]:
        parameter = name if level == libtype else f"{level}.{name}"
        if name in meta[level][0]:
            root = document(upstream, meta[level][0][name])
            values += [(parameter, d.get("key", ""), d.get("title", "")) for d in (root if root is not None else [])
                       if d.get("key")]
    for name, level in FLAGS[libtype]:
        if name in meta[level][1]:
            values.append((name if level == libtype else f"{level}.{name}", "1", name.upper()))
    candidates: dict[str, Candidate] = {}
    for name, value, title in values:
        query = urlencode({"type": SEARCHTYPES[libtype], name: value, "X-Plex-Container-Start": 0,
                           "X-Plex-Container-Size": PER_VALUE})
        root = document(upstream, f"/library/sections/{key}/all?{query}")
        for element in (root if root is not None else []):
            if element.get("ratingKey"):
                candidate = candidates.setdefault(element.get("ratingKey"), Candidate(element))
                candidate.covers.add((name, title))
    wanted = {(name, title) for name, _, title in values}

    def worth(candidate: Candidate) -> tuple[int, int]:
        """New values covered, the badge-deciding ones (resolution, HDR, Dolby Vision) counting most."""
        gained = candidate.covers & wanted
        return (sum(WEIGHTS.get(name.rsplit(".", 1)[-1], 1) for name, _ in gained),
                -int(candidate.element.get("ratingKey")))

    chosen: list[tuple[Candidate, set[tuple[str, str]]]] = []
    while len(chosen) < count and wanted:
        best = max(candidates.values(), key=worth, default=None)
        if best is None or not best.covers & wanted:
            break
        chosen.append((best, best.covers & wanted))
        wanted -= best.covers
        del candidates[best.element.get("ratingKey")]
    entries = unique_ids([dataclasses.replace(describe_element(c.element, library), note=why(gained))
                          for c, gained in chosen])
    return entries, sorted(wanted)


def why(gained: set[tuple[str, str]]) -> str:
    """The badges an item is in the sample for, in words: `for resolution 4K, HDR, audio TrueHD`."""
    def word(name: str, title: str) -> str:
        field_name = name.rsplit(".", 1)[-1]
        return WORDS[field_name] if field_name in FLAG_NAMES else f"{WORDS.get(field_name, field_name)} {title}"
    order = list(WORDS)
    ranked = sorted(gained, key=lambda g: (order.index(g[0].rsplit(".", 1)[-1]) if g[0].rsplit(".", 1)[-1] in order
                                           else len(order), g[1]))
    return "for " + ", ".join(word(name, title) for name, title in ranked)
