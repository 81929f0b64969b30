"""What the stand-in knows of Kometa's default overlay files `resolution`, `audio_codec` and `video_format`
(defaults/overlays/*.yml of Kometa 2.4): each overlay as a definition (how its items are found, its weight, group
and suppressions), and Kometa's way of choosing an item's overlays among those that matched it
(`Overlays.compile_overlays` in modules/overlays.py). Pure data and pure functions: no Plex, no Pillow.

How a definition finds items, as Kometa's builder does:
- `search`: a Plex advanced-filter listing on the resolution choices its regex matches (`plex_search: all: any:
  resolution.regex`), with `hdr` when the overlay is an HDR one; without `search` the overlay lists every item of
  its level (`plex_all`);
- `filters`: a list of alternatives, each a list of conditions that must all hold, checked on the item Kometa
  reloaded: `has_dolby_vision`, `filepath.regex`, `audio_track_title.regex` (the tracks' extendedDisplayTitle),
  `edition` (the edition title contains the word). At show and season level a file or track condition is asked of
  the item's episodes instead (`episodes: {…, percentage: 50}`, builder.py `_filters`).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

#: Kometa's `episodes` filter default (builder.py: default_percent).
EPISODE_PERCENT = 50
#: Conditions Kometa asks of a show's or season's episodes (builder.py `sub_filters`, those the defaults use).
SUB_FILTERS = ("filepath.regex", "audio_track_title.regex", "has_dolby_vision")
#: resolution.yml: the resolutions (name, regex on Plex's resolution choices) and, per alternative, the weights of
#: the overlay and of its dovetail twin (None: not defined, as 576P-HLG).
RESOLUTIONS = [("4K", r"(?i)2160|4k"), ("1080P", r"(?i)1080|2k"), ("720P", r"(?i)720|hd"), ("576P", r"(?i)576"),
               ("480P", r"(?i)480|sd")]
ALTS = ("DV-HDR-Plus", "DV-HDR", "Plus", "DV", "HLG", "HDR", "")
WEIGHTS = {"4K": ((159, 160), 158, 155, 150, 141, 140, 130), "1080P": ((129, 130), 128, 125, 120, 111, 110, 100),
           "720P": (99, 98, 95, 90, 81, 80, 70), "576P": (69, 68, 65, 60, None, 50, 40),
           "480P": (39, 38, 35, 30, None, 20, 10), "": (9, 8, 7, 5, 2, 1, None)}
#: What each alternative asks beyond the resolution: Plex's `hdr`, the Dolby Vision filter, or a file-name regex.
ALT_FILTERS = {"DV-HDR-Plus": ("filepath.regex", (r"(?i)\bdv.HDR10(\+|P(lus)?\b)",)),
               "DV-HDR": ("filepath.regex", (r"(?i)\bdv(.hdr10?\b)",)),
               "Plus": ("filepath.regex", (r"(?i)\bhdr10(\+|p(lus)?\b)",)), "DV": ("has_dolby_vision", True),
               "HLG": ("filepath.regex", (r"(?i)\bhlg\b",))}
#: resolution.yml's editions: (name, weight, the word the edition title must contain, a file-name regex of its own).
EDITIONS = [
    ("Extended-Edition", 190, "Extend", None), ("Uncut-Edition", 180, "Uncut", None),
    ("Unrated-Edition", 170, "Unrated", None), ("Special-Edition", 160, "Special", None),
    ("Anniversary-Edition", 150, "Anniversary", None), ("Collectors-Edition", 140, "Collector", None),
    ("Diamond-Edition", 130, "Diamond", None), ("Platinum-Edition", 120, "Platinum", None),
    ("Directors-Cut", 110, "Director", None), ("Final-Cut", 100, "Final", None),
    ("International-Cut", 90, "International", None), ("Theatrical-Cut", 80, "Theatrical", None),
    ("Ultimate-Cut", 70, "Ultimate", None), ("Alternate-Cut", 60, "Alternate", None), ("Coda-Cut", 50, "Coda", None),
    ("IMAX-Enhanced", 40, "IMAX Enhanced", r"(?i)\bIMAX Enhanced\b|^(?=.*(DSNP|Disney\+|CORE(?=[ ._-]web[ ._-]?(dl|rip)"
                                           r"\b)|\bBC(?=[ ._-]web[ ._-]?(dl|rip)\b)|IMAX[- .]Enhanced)\b)(?=.*\b(IMAX"
                                           r"|IMAX[- .]Enhanced)\b).*"),
    ("IMAX", 30, "IMAX", r"(?i)\bIMAX\b"), ("Remastered", 20, "Remaster", None),
    ("Criterion", 10, "Criterion", r"(?i)Criterion|\[CC\]"), ("Richard-Donner", 9, "Rich", None),
    ("Black-And-Chrome", 8, "Black", None), ("Definitive", 7, "Definitive", None),
    ("Open-Matte", 6, "Open Matte", r"(?i)\b(Open[ ._-]?Matte)\b"), ("Ulysses", 5, "Ulysses", None),
    ("Producers-Cut", 4, "Producer", None)]
#: audio_codec.yml: (name, weight, regex on track titles and file paths).
AUDIO_CODECS = [
    ("Dolby-TrueHD-Atmos", 160, r"(?i)^(?=.*\btrue[ ._-]?hd(\b|\d))(?=.*\batmos(\b|\d))"),
    ("DTS-X", 150, r"(?i)\b(dts[-_. ]?x7?)\b(?![-_. ]?(26[456]))"),
    ("Dolby-Digital-Plus-Atmos", 140,
     r"(?i)^(?=.*\b((dd[p+])|(dolby[ ._-]digital[ ._-]plus)|(e[ ._-]?ac3)\b))(?=.*\batmos(\b|\d))"),
    ("Dolby-Atmos", 130, r"(?i)\batmos(\b|\d)"), ("Dolby-TrueHD", 120, r"(?i)\btrue[ ._-]?hd(\b|\d)"),
    ("DTS-HD-MA", 110, r"(?i)\bdts[ ._-]?(hd[ ._-])?(ma|xll|hd)(\b|\d)(?![ ._-]hra)"),
    ("FLAC", 100, r"(?i)\bflac(\b|\d)"), ("PCM", 90, r"(?i)\bl?pcm(\b|\d)"),
    ("DTS-HD-HRA", 80, r"(?i)\bdts[ ._-]?(hd[ ._-])?(hr|hra|hi|ra)(\b|\d)"),
    ("Dolby-Digital-Plus", 70, r"(?i)\b(dd[p+])|(dolby[ ._-]digital[ ._-]plus)|(e[ ._-]?ac3)\b"),
    ("DTS-ES", 60, r"(?i)\bdts[ ._-]?es(\b|\d)"), ("DTS", 50, r"(?i)\bdts(\b|\d)"),
    ("Dolby-Digital", 40, r"(?i)\b(dd)|(ac3)|(dolby)(\b|\d)"), ("AAC", 30, r"(?i)\b(aac|stereo|2\.0)\b"),
    ("MP3", 20, r"(?i)\bmp3(\b|\d)"), ("Opus", 10, r"(?i)\b(?<!-)OPUS(\b|\d)")]
#: video_format.yml: (name, weight, regex on file paths).
VIDEO_FORMATS = [
    ("REMUX", 60, r"(?i)\bremux\b"), ("BLU-RAY", 50, r"(?i)\b(blu[ ._-]?ray|bd|br|hd[ ._-]?dvd)\b"),
    ("WEB", 40, r"(?i)web[ ._-]?(dl|rip)"), ("HDTV", 30, r"(?i)\bhd[ ._-]?tv\b"), ("DVD", 20, r"(?i)\bdvd\b"),
    ("SDTV", 10, r"(?i)\bsd[ ._-]?tv\b"), ("TELESYNC", 9, r"(?i)\b(TS|HDTS|TELESYNC)\b"),
    ("CAM", 8, r"(?i)\b(HQ|HD)?CAM\b")]
#: The default files the stand-in evaluates; others it knows (defaults/overlays/) apply to nothing.
EVALUATED = ("resolution", "audio_codec", "video_format")

Condition = tuple[str, object]


@dataclass(frozen=True)
class Definition:
    """One overlay of a default file, as Kometa's builder runs it."""
    name: str
    weight: int
    group: str
    kind: str                      # resolution, resolution_dovetail, edition, edition_dovetail, audio_codec, quality
    search: str | None = None      # the regex on Plex's resolution choices (plex_search), None: every item
    hdr: bool = False              # plex_search `hdr: true`
    filters: tuple[tuple[Condition, ...], ...] = ()
    suppress: tuple[str, ...] = ()
    movies_only: bool = False      # `allowed_libraries: movie`


def _resolution(dovetail: bool) -> list[Definition]:
    kind = "resolution_dovetail" if dovetail else "resolution"
    editions = tuple(name for name, *_ in EDITIONS)
    found = []
    for key, regex in [*RESOLUTIONS, ("", None)]:
        for alt, weight in zip(ALTS, WEIGHTS[key], strict=True):
            if weight is None:
                continue
            weight = weight[dovetail] if isinstance(weight, tuple) else weight
            name = "-".join(part for part in (key, alt) if part) + ("-Dovetail" if dovetail else "")
            condition = ALT_FILTERS.get(alt)
            found.append(Definition(
                name, weight, "resolution", kind, search=regex, hdr=alt == "HDR",
                filters=((condition,),) if condition else (), movies_only=dovetail,
                suppress=editions if dovetail else (f"{name}-Dovetail",)))
    return found


def _editions(dovetail: bool, resolutions: tuple[str, ...]) -> list[Definition]:
    """The edition overlays: the edition title contains the word, or the file name says the edition (its own regex,
    Plex's `{edition-…}` naming, or TRaSH's original naming after the year)."""
    found = []
    for name, weight, word, regex in EDITIONS:
        patterns = (*((regex,) if regex else ()), rf"(?i)edition-\b(4k )?{word}(s|ed)?\b",
                    rf"(?<=[0-9]{{4}}[)}}>\]]\s)\b(4k )?{word}(s|ed)?\b")
        found.append(Definition(
            f"{name}-Dovetail" if dovetail else name, weight, "edition", "edition_dovetail" if dovetail else "edition",
            filters=((("edition", word),), (("filepath.regex", patterns),)), movies_only=True,
            suppress=resolutions if dovetail else (f"{name}-Dovetail",)))
    return found


@functools.cache
def definitions(default: str) -> tuple[Definition, ...]:
    """The overlays of one default file, in the file's order (it decides ties and Kometa's suppression)."""
    if default == "audio_codec":
        return tuple(Definition(name, weight, "audio_codec", "audio_codec",
                                filters=((("audio_track_title.regex", (regex,)),), (("filepath.regex", (regex,)),)))
                     for name, weight, regex in AUDIO_CODECS)
    if default == "video_format":
        return tuple(Definition(name, weight, "quality", "quality", filters=((("filepath.regex", (regex,)),),))
                     for name, weight, regex in VIDEO_FORMATS)
    if default == "resolution":
        plain = _resolution(dovetail=False)
        resolutions = tuple(d.name for d in plain)
        return (*_resolution(dovetail=True), *_editions(True, resolutions), *plain, *_editions(False, ()))
    return ()


@functools.cache
def kind_of(name: str) -> str | None:
    """Which kind of badge an overlay name is (for drawing), None for a name of no default file."""
    for default in EVALUATED:
        for definition in definitions(default):
            if definition.name == name:
                return definition.kind
    return None


def choose(matched: list[str], suppress: dict[str, tuple[str, ...]], groups: dict[str, tuple[str, int]]) -> list[str]:
    """Kometa's choice among the overlays that matched one item (`compile_overlays`), faithfully: each overlay
    removes those it suppresses from the very list being walked (so the overlay after a removed one is skipped,
    as in Kometa), then in each group only the highest weight stays, the first of equal weights winning."""
    names = list(matched)
    for name in names:
        for suppressed in suppress.get(name, ()):
            if suppressed in names:
                names.remove(suppressed)
    best: dict[str, str] = {}
    for name in names:
        if name in groups:
            group, weight = groups[name]
            if group not in best or weight > groups[best[group]][1]:
                best[group] = name
    return [name for name in names if name not in groups or best[groups[name][0]] == name]
