"""`kometa-preview find`: search Plex (read-only) and print ready-to-paste `preview.targets` entries,
so nobody has to dig ratingKeys out of Plex URLs. Only GET requests are made (plexapi searches)."""
from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import RequestException

from ..plex import client, titles

FIRST_EPISODES = 3


class FindError(Exception):
    """Plex could not be searched. One line for the user."""


@dataclass(frozen=True)
class Entry:
    id: str
    type: str
    #: As a target's `title:` is written (`titles.written`): pasted without its ratingKey, it still resolves.
    title: str
    rating_key: str
    library: str
    #: What else names it for a person (an episode's own title).
    note: str = ""


def slug(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-z0-9]+", "_", text.lower())).strip("_")[:48] or "item"


def describe(item) -> tuple[str, str, str]:
    """(id suggestion, title as a target writes it, note) of a plexapi item."""
    if item.type == "movie" or item.type == "show":
        return (slug(f"{item.title} {item.year or ''}"), titles.written(item.type, item.title, item.year), "")
    if item.type == "season":
        return (slug(f"{item.parentTitle} s{item.index:02d}"),
                titles.written("season", item.title, show=item.parentTitle, season=item.index), "")
    return (slug(f"{item.grandparentTitle} s{item.parentIndex:02d}e{item.index:02d}"),
            titles.written("episode", item.title, show=item.grandparentTitle, season=item.parentIndex,
                           episode=item.index), item.title)


def describe_element(element: ET.Element, library: str) -> Entry:
    """A movie or show as Plex lists it, as an entry (the same id and title `describe` gives a plexapi item)."""
    title, year = element.get("title", ""), element.get("year")
    return Entry(slug(f"{title} {year or ''}"), element.get("type", ""), titles.written_element(element),
                 element.get("ratingKey", ""), library)


def unique_ids(entries: list[Entry]) -> list[Entry]:
    """The entries, with `_2`, `_3`… added to an id already taken (two films of one title and year)."""
    seen: dict[str, int] = {}
    unique = []
    for entry in entries:
        count = seen.get(entry.id, 0)
        seen[entry.id] = count + 1
        unique.append(entry if count == 0 else dataclasses.replace(entry, id=f"{entry.id}_{count + 1}"))
    return unique


def connect(url: str, token: str, timeout: int = 30) -> PlexServer:
    """Plex as plexapi's server object, after the same reachability and token check `check` and the proxy's
    prefetch make (`plex.client.server`), so the three say the same thing about the same Plex."""
    try:
        client.server(client.Upstream(url, token, timeout))
    except client.UpstreamError as exc:
        raise FindError(str(exc)) from None
    try:
        return PlexServer(url, token, timeout=timeout)
    except Unauthorized:
        raise FindError(f"Plex at {url} refused the token (401)") from None
    except RequestsConnectionError:
        raise FindError(f"Plex at {url} is unreachable") from None
    except (RequestException, BadRequest, NotFound) as exc:
        raise FindError(f"Plex at {url} did not answer as a Plex server ({type(exc).__name__})") from None


def search(plex: PlexServer, text: str, *, library: str | None = None, libtype: str | None = None,
           children: bool = False) -> list[Entry]:
    if library is not None:
        try:
            sections = [plex.library.section(library)]
        except NotFound:
            names = ", ".join(s.title for s in plex.library.sections())
            raise FindError(f"no library named {library!r} (libraries: {names})") from None
    else:
        sections = [s for s in plex.library.sections() if s.type in ("movie", "show")]
    entries: list[Entry] = []
    for section in sections:
        types = [libtype] if libtype else (["movie"] if section.type == "movie" else ["show", "episode"])
        for kind in types:
            if (section.type == "movie") != (kind == "movie"):
                continue
            for item in section.search(title=text, libtype=kind, includeGuids=False):
                entries.append(_entry(item, section.title))
                if children and kind == "show":
                    entries.extend(_children(item, section.title))
    return unique_ids(entries)


def _entry(item, library: str) -> Entry:
    target_id, title, note = describe(item)
    return Entry(target_id, item.type, title, str(item.ratingKey), library, note)


def _children(show, library: str) -> list[Entry]:
    found = []
    for season in show.seasons():
        found.append(_entry(season, library))
        for episode in season.episodes()[:FIRST_EPISODES]:
            found.append(_entry(episode, library))
    return found


def as_yaml(entries: list[Entry]) -> str:
    """The entries as they go under `preview:` → `targets:` in preview.yml."""
    lines = []
    for entry in entries:
        title = entry.title.replace("\\", "\\\\").replace('"', '\\"')
        note = f": {entry.note}" if entry.note else ""
        lines += [f"    - id: {entry.id}{'':<{max(1, 30 - len(entry.id))}}# {entry.type} in {entry.library}{note}",
                  f"      type: {entry.type}",
                  f'      title: "{title}"',
                  f'      ratingKey: "{entry.rating_key}"']
    return "\n".join(lines)
