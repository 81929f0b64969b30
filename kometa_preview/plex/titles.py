"""Targets named by title instead of ratingKey, found read-only through Plex's own search.

A title is written the way people (and Kometa's log) name items: `The Matrix (1999)` for a movie or show (the
year optional), `Breaking Bad Season 1` for a season, `Breaking Bad S01E02` for an episode. Plex's `title=`
filter matches by "contains", so the candidates it lists are narrowed here to exact titles (case-insensitive)
and the year when given. Exactly one match resolves the target; none or several leave it missing, with the
candidates named so the user can pick a ratingKey. The proxy's prefetch and `check` both call `resolve`.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urlencode

from plexapi.utils import SEARCHTYPES

from .client import Upstream, children, document

_YEAR = re.compile(r"^(?P<title>.+?)\s*\((?P<year>\d{4})\)$")
_SEASON = re.compile(r"^(?P<show>.+?)\s+Season\s+(?P<season>\d+)$", re.IGNORECASE)
_EPISODE = re.compile(r"^(?P<show>.+?)\s+S(?P<season>\d+)E(?P<episode>\d+)$", re.IGNORECASE)
#: How many candidates a failed lookup names.
MAX_CANDIDATES = 5


def written(kind: str, title: str, year: str | int | None = None, *, show: str = "", season: int | str | None = None,
            episode: int | str | None = None) -> str:
    """How an item's title is written so that `resolve` finds it again: `Title (Year)` for a movie or show, `Show
    Season 1` for a season, `Show S01E02` for an episode — what `find` prints and `check` names."""
    if kind == "season":
        return f"{show} Season {int(season or 0)}"
    if kind == "episode":
        return f"{show} S{int(season or 0):02d}E{int(episode or 0):02d}"
    return f"{title} ({year})" if year else title


def written_element(element: ET.Element) -> str:
    """`written` for an item as Plex lists it."""
    kind = element.get("type", "")
    show = element.get("parentTitle" if kind == "season" else "grandparentTitle", "")
    season = element.get("index") if kind == "season" else element.get("parentIndex")
    return written(kind, element.get("title", ""), element.get("year"), show=show, season=season,
                   episode=element.get("index"))


def a(noun: str) -> str:
    """`a movie`, `an episode`."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


@dataclass
class Resolution:
    rating_key: str | None
    candidates: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""


def _describe(element: ET.Element, library: str) -> dict[str, str]:
    return {"ratingKey": element.get("ratingKey", ""), "type": element.get("type", ""),
            "title": element.get("title", ""), "year": element.get("year", ""), "library": library}


def _search(upstream: Upstream, section: ET.Element, libtype: str, title: str) -> list[ET.Element]:
    """The items of `libtype` in `section` titled exactly `title` (Plex's `title=` means "contains")."""
    query = urlencode({"type": SEARCHTYPES[libtype], "title": title})
    root = document(upstream, f"/library/sections/{section.get('key')}/all?{query}")
    found = [e for e in (root if root is not None else []) if e.get("ratingKey")]
    return [e for e in found if (e.get("title") or "").casefold() == title.casefold()]


def resolve(upstream: Upstream, sections: list[ET.Element], libtype: str, written: str,
            library: str | None = None) -> Resolution:
    """The ratingKey of the one item of `libtype` titled `written` (in `library`, when given). Raises
    `UpstreamError` when Plex cannot be read."""
    wanted_type = "movie" if libtype == "movie" else "show"
    pool = [s for s in sections if s.get("type") == wanted_type and (library is None or s.get("title") == library)]
    if not pool:
        where = f"library {library!r}" if library else f"any {wanted_type} library"
        return Resolution(None, reason=f"no {wanted_type} library to search ({where} not found in Plex)")
    show_title, season, episode = written, None, None
    if libtype == "season" and (match := _SEASON.match(written)):
        show_title, season = match["show"], match["season"]
    elif libtype == "episode" and (match := _EPISODE.match(written)):
        show_title, season, episode = match["show"], match["season"], match["episode"]
    elif libtype in ("season", "episode"):
        form = "<Show> Season <n>" if libtype == "season" else "<Show> S<nn>E<nn>"
        return Resolution(None, reason=f"{a(libtype)} title is written {form!r}")
    title, year = show_title, None
    if match := _YEAR.match(show_title):
        title, year = match["title"], match["year"]
    titled: list[tuple[ET.Element, str]] = []
    for section in pool:
        titled += [(e, section.get("title", "")) for e in _search(upstream, section, wanted_type, title)]
    found = [(e, lib) for e, lib in titled if year is None or e.get("year") == year]
    if not found and titled:  # the title exists, not in that year: name what there is
        return Resolution(None, [_describe(e, lib) for e, lib in titled[:MAX_CANDIDATES]],
                          f"no {wanted_type} titled {title!r} is from {year}")
    if libtype in ("season", "episode") and len(found) == 1:
        show = found[0][0].get("ratingKey", "")
        library_title = found[0][1]
        kids = children(upstream, show, "children" if libtype == "season" else "allLeaves")
        found = [(e, library_title) for e in kids if e.get("type") == libtype and
                 (e.get("index") if libtype == "season" else e.get("parentIndex")) == str(int(season or 0)) and
                 (libtype == "season" or e.get("index") == str(int(episode or 0)))]
    candidates = [_describe(e, lib) for e, lib in found[:MAX_CANDIDATES]]
    if len(found) == 1:
        return Resolution(found[0][0].get("ratingKey"), candidates)
    reason = "no item has this title" if not found else f"{len(found)} items have this title"
    return Resolution(None, candidates, reason)
