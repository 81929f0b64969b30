"""The sample library: a deterministic, in-memory Plex library generated from a seed and a size.

The tests use it as the oracle of what a Plex Media Server holds, so everything that decides an
overlay (resolution, HDR/Dolby Vision, audio codec, edition, labels, and what Kometa reads with regexes:
audio track titles and file names, releases.py) varies across items, and the same seed and size always
give the same library.
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from .releases import Release, draw_release, file_name

MOVIE_SECTION = 1
SHOW_SECTION = 2

#: Plex's resolution filter values, as `/library/sections/{id}/resolution` lists them.
RESOLUTIONS = ("4k", "1080", "720", "576", "480", "sd")
_RESOLUTION_SIZE = {"4k": (3840, 2160), "1080": (1920, 1080), "720": (1280, 720),
                    "576": (720, 576), "480": (720, 480), "sd": (640, 360)}
AUDIO_CODECS = ("truehd", "eac3", "dca", "aac", "ac3", "flac")
EDITIONS = ("", "", "", "", "Director's Cut", "Extended Edition", "IMAX", "Theatrical Cut")
CONTENT_RATINGS = ("G", "PG", "PG-13", "R", "NR")
TV_RATINGS = ("TV-Y7", "TV-PG", "TV-14", "TV-MA")
GENRES = {"Action": 11, "Comedy": 12, "Drama": 13, "Horror": 14, "Science Fiction": 15,
          "Animation": 16, "Documentary": 17, "Thriller": 18}
STUDIOS = ("Northwind Pictures", "Blue Harbor", "Calder Films", "Octant Studios")
_WORDS = ("Silent", "Crimson", "River", "Empire", "Night", "Glass", "Signal", "Orbit", "Paper",
          "Harbor", "Winter", "Echo", "Atlas", "Velvet", "Iron", "Lantern", "Meridian", "Hollow",
          "Cobalt", "Summit", "Ember", "Tide", "Falcon", "Quartz")
#: ratingKeys: movies from 1001, shows from 500001, seasons and episodes after them.
MOVIE_KEY_BASE = 1000
SHOW_KEY_BASE = 500000
_BASE_TIME = 1_600_000_000


@dataclass
class Media:
    """One media version of a movie or episode; Plex filters on any version. `release` and `file` are set once
    the item is known (`_dress`): what the file is, and its path."""
    resolution: str
    audio_codec: str
    hdr: bool
    dovi: bool
    file: str = ""
    release: Release | None = None

    @property
    def width(self) -> int:
        return _RESOLUTION_SIZE[self.resolution][0]

    @property
    def height(self) -> int:
        return _RESOLUTION_SIZE[self.resolution][1]


@dataclass
class Item:
    """A movie, show, season or episode. Mutable where Plex lets a client edit (labels, title, poster)."""
    rating_key: int
    type: str
    section_id: int
    title: str
    year: int
    added_at: int
    content_rating: str = ""
    studio: str = ""
    edition: str = ""
    genres: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    guids: list[str] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    index: int = 0
    parent_key: int | None = None
    grandparent_key: int | None = None
    children: list[int] = field(default_factory=list)
    poster_version: int = 0
    locked_fields: set[str] = field(default_factory=set)
    view_count: int = 0
    #: A show's folder (Plex's `<Location>`); movies and episodes have their files instead.
    location: str = ""

    @property
    def title_sort(self) -> str:
        lowered = self.title.lower()
        for article in ("the ", "a ", "an "):
            if lowered.startswith(article):
                return lowered[len(article):]
        return lowered

    @property
    def thumb_path(self) -> str:
        return f"/library/metadata/{self.rating_key}/thumb/{self.added_at + self.poster_version}"

    @property
    def art_path(self) -> str:
        return f"/library/metadata/{self.rating_key}/art/{self.added_at}"


@dataclass
class Section:
    id: int
    title: str
    type: str
    uuid: str
    agent: str
    scanner: str
    location: str


@dataclass
class Upload:
    """An image a client uploaded; served as the item's poster afterwards, like Plex does."""
    body: bytes
    content_type: str


class Library:
    """All sections and items, plus the label registry and uploaded images. Thread-safe for edits."""

    def __init__(self, sections: list[Section], items: list[Item]) -> None:
        self.sections = {section.id: section for section in sections}
        self.items = {item.rating_key: item for item in items}
        self.lock = threading.RLock()
        self.uploads: dict[int, Upload] = {}
        self.label_ids: dict[str, int] = {}
        for item in items:
            for label in item.labels:
                self.label_id(label)

    def label_id(self, title: str) -> int:
        """Plex gives each distinct tag an id; clients search labels by that id."""
        key = title.lower()
        if key not in self.label_ids:
            self.label_ids[key] = 9001 + len(self.label_ids)
        return self.label_ids[key]

    def in_section(self, section_id: int) -> list[Item]:
        return [item for item in self.items.values() if item.section_id == section_id]

    def parent(self, item: Item) -> Item | None:
        return self.items.get(item.parent_key) if item.parent_key else None

    def grandparent(self, item: Item) -> Item | None:
        return self.items.get(item.grandparent_key) if item.grandparent_key else None


def _title(rng: random.Random, used: set[str]) -> str:
    while True:
        words = rng.sample(_WORDS, rng.choice((1, 2, 2, 3)))
        title = ("The " if rng.random() < 0.2 else "") + " ".join(words)
        if title not in used:
            used.add(title)
            return title
        # Ensure uniqueness without an unbounded search on large libraries.
        title = f"{title} {len(used) + 1}"
        if title not in used:
            used.add(title)
            return title


def _media(rng: random.Random) -> Media:
    """A media version's resolution, HDR, Dolby Vision and audio codec, drawn from the library's generator (the
    order of these draws is what keeps a seed's library the same)."""
    resolution = rng.choices(RESOLUTIONS, weights=(3, 5, 3, 1, 2, 1))[0]
    hdr = resolution in ("4k", "1080") and rng.random() < 0.45
    dovi = hdr and rng.random() < 0.5
    return Media(resolution=resolution, audio_codec=rng.choice(AUDIO_CODECS), hdr=hdr, dovi=dovi)


@dataclass
class _Draws:
    """The library's two generators: `items` draws everything items had before releases existed (the order of its
    draws is what keeps a seed's library the same), `releases` what each file is (releases.py)."""
    items: random.Random
    releases: random.Random


def _dress(versions: list[Media], releases: random.Random, folder: str, stem: str, edition: str = "",
           style: str | None = None) -> list[Media]:
    """Give each version its release and file (releases.py)."""
    names: set[str] = set()
    for media in versions:
        media.release = draw_release(releases, media.resolution, media.audio_codec, media.hdr, media.dovi, style)
        name = file_name(stem, edition, media.release, media.resolution, media.dovi)
        if name in names:  # two versions under one bare name: Plex's `Title (Year) - 2160p.mkv`
            name = name.removesuffix(".mkv") + f" - {media.width}x{media.height}.mkv"
        names.add(name)
        media.file = f"{folder}/{name}"
    return versions


def _movies(draws: _Draws, count: int, used: set[str]) -> list[Item]:
    rng, items = draws.items, []
    for number in range(1, count + 1):
        rk = MOVIE_KEY_BASE + number
        title = _title(rng, used)
        year = rng.randint(1975, 2025)
        edition = rng.choice(EDITIONS)
        versions = [_media(rng)]
        if rng.random() < 0.1:
            versions.append(_media(rng))
        stem = f"{title} ({year})"
        _dress(versions, draws.releases, f"/data/movies/{stem}", stem, edition)
        items.append(Item(
            rating_key=rk, type="movie", section_id=MOVIE_SECTION, title=title, year=year,
            added_at=_BASE_TIME + number * 3600 + rng.randint(0, 3599),
            content_rating=rng.choice(CONTENT_RATINGS), studio=rng.choice(STUDIOS), edition=edition,
            genres=sorted(rng.sample(sorted(GENRES), rng.randint(1, 3))),
            guids=[f"imdb://tt{7000000 + rk}", f"tmdb://{100000 + rk}"], media=versions))
    return items


def _season(draws: _Draws, show: Item, season: Item, episodes: int, next_key: int) -> list[Item]:
    """A season's episodes, their files named in one style (a season pack)."""
    rng, items = draws.items, []
    style = draws.releases.choice(("trash", "trash", "scene", "plain"))
    for episode_index in range(1, episodes + 1):
        title = f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}"
        episode = Item(
            rating_key=next_key, type="episode", section_id=SHOW_SECTION, title=title, year=season.year,
            added_at=season.added_at + episode_index, content_rating=show.content_rating,
            index=episode_index, parent_key=season.rating_key, grandparent_key=show.rating_key,
            guids=[f"tvdb://{900000 + next_key}"], media=[_media(rng)])
        code = f"S{season.index:02d}E{episode_index:02d}"
        _dress(episode.media, draws.releases, f"{show.location}/Season {season.index:02d}",
               f"{show.title} ({show.year}) - {code} - {title}", style=style)
        next_key += 1
        items.append(episode)
        season.children.append(episode.rating_key)
    return items


def _shows(draws: _Draws, shows: int, seasons: int, episodes: int, used: set[str]) -> list[Item]:
    rng, items = draws.items, []
    next_key = SHOW_KEY_BASE + shows + 1
    for number in range(1, shows + 1):
        show_key = SHOW_KEY_BASE + number
        title = _title(rng, used)
        year = rng.randint(1990, 2024)
        show = Item(
            rating_key=show_key, type="show", section_id=SHOW_SECTION, title=title, year=year,
            added_at=_BASE_TIME + number * 7200, content_rating=rng.choice(TV_RATINGS),
            studio=rng.choice(STUDIOS), genres=sorted(rng.sample(sorted(GENRES), rng.randint(1, 2))),
            guids=[f"imdb://tt{8000000 + show_key}", f"tmdb://{200000 + number}", f"tvdb://{300000 + number}"],
            location=f"/data/tv/{title} ({year})")
        items.append(show)
        for season_index in range(1, seasons + 1):
            season = Item(
                rating_key=next_key, type="season", section_id=SHOW_SECTION, title=f"Season {season_index}",
                year=year + season_index - 1, added_at=show.added_at + season_index, index=season_index,
                parent_key=show_key, guids=[f"tvdb://{400000 + next_key}"])
            items.append(season)
            show.children.append(season.rating_key)
            season_items = _season(draws, show, season, episodes, next_key + 1)
            items += season_items
            next_key += 1 + len(season_items)
    return items


def generate(seed: int = 1, movies: int = 40, shows: int = 3, seasons: int = 2, episodes: int = 3) -> Library:
    """Build the library. Sizes must be ≥ 0; the same arguments always give the same library."""
    for name, value in (("movies", movies), ("shows", shows), ("seasons", seasons), ("episodes", episodes)):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, not {value}")
    if movies >= SHOW_KEY_BASE - MOVIE_KEY_BASE:
        raise ValueError(f"movies must be fewer than {SHOW_KEY_BASE - MOVIE_KEY_BASE}, not {movies}")
    draws = _Draws(random.Random(seed), random.Random(f"releases:{seed}"))
    sections = [
        Section(MOVIE_SECTION, "Movies", "movie", f"3d1c5b0e-6a7f-4a55-9b5e-{seed:012d}",
                "tv.plex.agents.movie", "Plex Movie", "/data/movies"),
        Section(SHOW_SECTION, "TV Shows", "show", f"7e8f9a0b-1c2d-4e3f-8a9b-{seed:012d}",
                "tv.plex.agents.series", "Plex TV Series", "/data/tv"),
    ]
    used: set[str] = set()
    items = _movies(draws, movies, used)
    return Library(sections, items + _shows(draws, shows, seasons, episodes, used))
