"""How the stand-in finds each overlay's items in Plex, with the requests real Kometa 2.4 makes for them (seen in
the proxy's journal of real runs, docs/KOMETA-TRAFFIC.md), through the real plexapi client:

- the resolution choices of the level's media (`/library/sections/{id}/resolution?type=1`, `type=4` in a TV
  library whatever the level);
- a `plex_search` as one listing: `type={level}&sort=…&push=1&resolution=4k&or=1&…&pop=1[&and=1&hdr=1]`, its fields
  prefixed `episode.` in a TV library (at show, season and episode level alike);
- `plex_all`: every item of the level (`includeGuids=1&type={level}`), read once;
- filters on the item reloaded (`/library/metadata/{key}`), and at show or season level on its episodes
  (`show.episodes()` is `/allLeaves`, `season.episodes()` is `/children`), each reloaded. What a reload and an
  episode list say is kept for the run (Kometa asks again for each overlay; Plex answers the same).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from standin_defaults import EPISODE_PERCENT, SUB_FILTERS, Condition, Definition

LIBTYPE_NUMBER = {"movie": 1, "show": 2, "season": 3, "episode": 4}
#: The sort Kometa asks for in a listing of each level.
SORT = {"season": "season.index,season.titleSort"}
#: What Kometa's `library.reload(item)` asks of Plex (modules/plex.py): nothing it does not need.
RELOAD = {name: False for name in (
    "checkFiles", "includeAllConcerts", "includeBandwidths", "includeChapters", "includeChildren", "includeConcerts",
    "includeExternalMedia", "includeExtras", "includeFields", "includeGeolocation", "includeLoudnessRamps",
    "includeMarkers", "includeOnDeck", "includePopularLeaves", "includeRelated", "includeReviews", "includeStations")}


class Log(Protocol):
    def info(self, text: str = "") -> None: ...
    def warning(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...
    def separator(self, text: str | None = None, space: bool = True, border: bool = True) -> None: ...


def has_dolby_vision(item) -> bool:
    """Kometa's `has_dolby_vision` filter: a video stream of any version says `DOVIPresent`."""
    return any(getattr(stream, "DOVIPresent", False) for media in item.media for part in media.parts
               for stream in part.videoStreams())


class Gatherer:
    """Finds the items of overlays at one level of one library section, caching what Kometa caches (the level's
    items, the resolution choices, every reloaded item)."""

    def __init__(self, plex, section, level: str, log: Log, reloaded: dict[int, object],
                 everything: list | None = None) -> None:
        """`reloaded` is shared by a library's levels; `everything` is the level's items when already listed."""
        self.plex, self.section, self.level, self.log = plex, section, level, log
        self.number = LIBTYPE_NUMBER[level]
        self.prefix = "" if section.type == "movie" else "episode."
        self.reloaded = reloaded
        self._choices: list | None = None
        self._everything = everything
        self._facts: dict[int, Facts] = {}
        self._episodes: dict[int, list] = {}

    def everything(self) -> list:
        if self._everything is None:
            self._everything = self.section.search(libtype=self.level, includeGuids=True)
        return self._everything

    def _resolution_keys(self, regex: str) -> list[str] | None:
        if self._choices is None:
            self._choices = self.section.listFilterChoices(
                "resolution", libtype="movie" if self.section.type == "movie" else "episode")
        keys = [choice.key for choice in self._choices if re.search(regex, choice.title)]
        if not keys:  # Kometa's validation error; the overlay is left out
            self.log.error(f"Plex Error: resolution: No matches found with regex pattern {regex}")
            return None
        return keys

    def _query(self, definition: Definition) -> str | None:
        query = f"type={self.number}&sort={SORT.get(self.level, 'titleSort')}"
        if definition.search is not None:
            keys = self._resolution_keys(definition.search)
            if keys is None:
                return None
            query += "&push=1&" + "&or=1&".join(f"{self.prefix}resolution={quote(k)}" for k in keys) + "&pop=1"
            return query + (f"&and=1&{self.prefix}hdr=1" if definition.hdr else "")
        return query + f"&{self.prefix}hdr=1"

    def candidates(self, query: str | None) -> list:
        """The items a builder gives before the filters: a listing, or every item of the level (`plex_all`)."""
        if query is None:
            return self.everything()
        found = self.section.fetchItems(f"/library/sections/{self.section.key}/all?{query}")
        if not found:
            self.log.warning("Plex Error: No Items found in Plex")
        return found

    def reload(self, item):
        """The item with its media, streams and files, reloaded once (Kometa's `library.reload`)."""
        if item.ratingKey not in self.reloaded:
            item.reload(includeRelatedCount=0, **RELOAD)
            self.reloaded[item.ratingKey] = item
        return self.reloaded[item.ratingKey]

    def facts(self, item) -> Facts:
        """What Kometa's filters read of a movie or episode, read once from the reloaded item."""
        if item.ratingKey not in self._facts:
            self._facts[item.ratingKey] = Facts.of(self.reload(item))
        return self._facts[item.ratingKey]

    def episodes(self, item) -> list:
        """A show's or season's episodes (`/allLeaves`, `/children`), listed once: Kometa lists them again for each
        overlay and gets the same answer."""
        if item.ratingKey not in self._episodes:
            self._episodes[item.ratingKey] = item.episodes()
        return self._episodes[item.ratingKey]

    def passes(self, item, filters: tuple[tuple[Condition, ...], ...]) -> bool:
        """Kometa's filters: any alternative whose conditions all hold."""
        return not filters or any(all(self.holds(item, condition) for condition in group) for group in filters)

    def holds(self, item, condition: Condition) -> bool:
        """One condition; asked of the episodes at show and season level (Kometa's `episodes` filter: fails once more
        than half of them fail)."""
        if self.level not in ("show", "season") or condition[0] not in SUB_FILTERS:
            return self.facts(item).satisfy(condition)
        episodes = self.episodes(item)
        allowed = len(episodes) * ((100 - EPISODE_PERCENT) / 100)
        failures = 0
        for episode in episodes:
            failures += 0 if self.facts(episode).satisfy(condition) else 1
            if failures > allowed:
                return False
        return True

    def gather(self, mapping: str, definition: Definition) -> list | None:
        """The items of one overlay, logged as Kometa logs it; None when the overlay could not run (its resolution
        regex matched none of Plex's choices: Kometa's validation error, before any gathering)."""
        self.plex.query(f"/library/sections/{self.section.key}/all?includeGuids=1&title={quote(definition.name)}"
                        "&type=18")                                   # Kometa looks for a collection of that name
        query = None
        if definition.search is not None or definition.hdr:
            query = self._query(definition)
            if query is None:
                return None
        self.log.separator(f"Gathering Items for {definition.name} Overlay", space=False, border=False)
        found = [item for item in self.candidates(query) if self.passes(item, definition.filters)]
        if found:
            self.log.info(f"{len(found)} Items found for {mapping}")
        else:
            self.log.warning(f"No Items found for {mapping}")
        return found


@dataclass(frozen=True)
class Facts:
    """What Kometa's filters read of a movie or episode Plex gave in full (modules/plex.py `check_filter`)."""
    locations: tuple[str, ...]
    audio_titles: tuple[str, ...]
    dolby_vision: bool
    edition: str

    @classmethod
    def of(cls, item) -> Facts:
        titles = tuple(stream.extendedDisplayTitle for media in item.media for part in media.parts
                       for stream in part.audioStreams() if stream.extendedDisplayTitle)
        return cls(tuple(location for location in item.locations if location), titles, has_dolby_vision(item),
                   getattr(item, "editionTitle", None) or "")

    def satisfy(self, condition: Condition) -> bool:
        field, wanted = condition
        if field == "has_dolby_vision":
            return self.dolby_vision is wanted
        if field == "edition":
            return str(wanted).lower() in self.edition.lower()
        values = self.locations if field == "filepath.regex" else self.audio_titles
        return any(re.search(pattern, value) for value in values for pattern in wanted)
