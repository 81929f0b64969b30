"""What Kometa's `resolution`, `audio_codec` and `video_format` defaults must put on a sample item, worked out from
what the sample library says the item is (its versions' resolution, HDR, Dolby Vision, release and edition) — not
from the XML the server writes nor from the stand-in's code, so a test that compares them proves both right.

The tables are Kometa 2.4's defaults (defaults/overlays/*.yml) read as facts about releases: a TrueHD Atmos track
is "Dolby-TrueHD-Atmos" whether Kometa learns it from the track's title or from the file's name (the sample always
says it in one of them); a Remux is "REMUX" when the file is named for its release, nothing when it is a bare
`Title (Year).mkv`.
"""
from __future__ import annotations

RESOLUTIONS = {"4k": ("4K", 130), "1080": ("1080P", 100), "720": ("720P", 70), "576": ("576P", 40),
               "480": ("480P", 10), "sd": ("480P", 10)}
#: resolution.yml's weights of each alternative above its resolution's (HLG is not defined for 576P and 480P).
ALTS = {"DV-HDR-Plus": 29, "DV-HDR": 28, "Plus": 25, "DV": 20, "HLG": 11, "HDR": 10}
EDITIONS = {"Director's Cut": "Directors-Cut", "Extended Edition": "Extended-Edition", "IMAX": "IMAX",
            "Theatrical Cut": "Theatrical-Cut"}
#: audio_codec.yml's overlay (and weight) for each audio format a release carries.
AUDIO = {"TrueHD Atmos": ("Dolby-TrueHD-Atmos", 160), "DTS-X": ("DTS-X", 150),
         "EAC3 Atmos": ("Dolby-Digital-Plus-Atmos", 140), "TrueHD": ("Dolby-TrueHD", 120),
         "DTS-HD MA": ("DTS-HD-MA", 110), "FLAC": ("FLAC", 100), "DTS-HD HRA": ("DTS-HD-HRA", 80),
         "EAC3": ("Dolby-Digital-Plus", 70), "DTS-ES": ("DTS-ES", 60), "DTS": ("DTS", 50), "AC3": ("Dolby-Digital", 40),
         "AAC": ("AAC", 30)}
#: video_format.yml's overlay (and weight) for each release source, when the file is named for its release.
VIDEO_FORMATS = {"Remux": ("REMUX", 60), "Bluray": ("BLU-RAY", 50), "WEBDL": ("WEB", 40), "WEBRip": ("WEB", 40),
                 "HDTV": ("HDTV", 30), "DVD": ("DVD", 20), "SDTV": ("SDTV", 10)}


def alternatives(item) -> set[str]:
    """What the item's versions offer beyond a resolution: Plex's HDR and Dolby Vision, and what a release-named
    file says of DV HDR10, HDR10+ and HLG (a bare `Title (Year).mkv` says nothing)."""
    found = {"HDR"} if any(m.hdr for m in item.media) else set()
    found |= {"DV"} if any(m.dovi for m in item.media) else set()
    for media in item.media:
        named, hdr = media.release.style != "plain", media.release.hdr_format
        if named and media.dovi:
            found.add("DV-HDR-Plus" if hdr == "HDR10+" else "DV-HDR")
        if named and hdr in ("HDR10+", "HLG"):
            found.add("Plus" if hdr == "HDR10+" else "HLG")
    return found


#: The `alt:` key of each alternative in resolution.yml.
ALT_KEYS = {"DV-HDR-Plus": "dvhdrplus", "DV-HDR": "dvhdr", "Plus": "plus", "DV": "dv", "HLG": "hlg", "HDR": "hdr"}


def defined_alternatives(checkout) -> frozenset[str]:
    """The alternatives a Kometa checkout's resolution.yml defines (HLG came in 2.3; before it an HLG release is what
    its other alternatives say)."""
    text = (checkout / "defaults" / "overlays" / "resolution.yml").read_text(encoding="utf-8")
    return frozenset(alt for alt, key in ALT_KEYS.items() if f"alt: {key}," in text or f"alt: {key}}}" in text)


def resolution(item, alts: frozenset[str] = frozenset(ALTS)) -> list[str]:
    """The resolution overlay Kometa's weights choose (any version's resolution with the item's alternatives, as
    Plex's filters and Kometa's filters each look at every version), dovetailed with the edition when a movie has
    one. `alts`: the alternatives the Kometa in question defines (Kometa 2.4's, unless said)."""
    options = []
    for media in item.media:
        name, weight = RESOLUTIONS[media.resolution]
        options.append((weight, name))
        options += [(weight + ALTS[alt], f"{name}-{alt}") for alt in alternatives(item) & alts
                    if not (alt == "HLG" and name in ("576P", "480P"))]
    best = max(options)[1]
    if item.type == "movie" and item.edition:
        return [f"{best}-Dovetail", f"{EDITIONS[item.edition]}-Dovetail"]
    return [best]


def audio_codec(item) -> str:
    """The audio overlay: the heaviest of its versions' formats."""
    return max((AUDIO[m.release.audio.format] for m in item.media), key=lambda pair: pair[1])[0]


def video_format(item) -> str | None:
    """The video format overlay: the heaviest source among its release-named files; None when no file says one."""
    named = [VIDEO_FORMATS[m.release.source] for m in item.media if m.release.style != "plain"]
    return max(named, key=lambda pair: pair[1])[0] if named else None


def overlays(item, files: tuple[str, ...] = ("audio_codec", "resolution", "video_format"),
             alts: frozenset[str] = frozenset(ALTS)) -> list[str]:
    """Kometa's names of the overlays an item gets from these default files, in the order Kometa lists them (by
    file, `Overlay File (n)` numbering the files)."""
    names = []
    for number, default in enumerate(files):
        found = {"audio_codec": lambda: [audio_codec(item)], "resolution": lambda: resolution(item, alts),
                 "video_format": lambda: [name] if (name := video_format(item)) else []}[default]()
        names += [f"Overlay File ({number}) {name}" for name in found]
    return names


def covering(library, libtype: str, limit: int) -> list[int]:
    """At most `limit` items of a type that together show every audio, resolution and video format overlay the
    library's items of that type get (the first item to show each), by ratingKey."""
    seen: set[tuple[str, str | None]] = set()
    chosen = []
    for key in sorted(library.items):
        item = library.items[key]
        if item.type != libtype:
            continue
        values = {("audio", audio_codec(item)), ("resolution", resolution(item)[0]), ("video", video_format(item))}
        if values - seen and len(chosen) < limit:
            chosen.append(key)
            seen |= values
    return chosen


#: The three default files, on movies and on episodes.
MEDIA_FILES = [{"default": "audio_codec"}, {"default": "resolution"}, {"default": "video_format"}]
MEDIA_OVERLAYS = {"Movies": {"overlay_files": MEDIA_FILES},
                  "TV Shows": {"overlay_files": MEDIA_FILES, "template_variables": {"builder_level": "episode"}}}


def media_targets(library) -> list[dict]:
    """Preview targets: movies and episodes that together show every audio, resolution and video format badge of
    the library."""
    return [{"id": f"{libtype}{key}", "type": libtype, "ratingKey": str(key)}
            for libtype, limit in (("movie", 30), ("episode", 6)) for key in covering(library, libtype, limit)]
