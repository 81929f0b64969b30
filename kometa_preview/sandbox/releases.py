"""What each media file of the sample library is: its release (source, dynamic range, codecs, audio track) and the
name it was saved under, the way Radarr, Sonarr and scene releases name files.

Kometa's `audio_codec`, `video_format` and part of its `resolution` defaults do not ask Plex's filters: they read
the audio tracks' `extendedDisplayTitle` and the files' paths with regexes (defaults/overlays/*.yml, `filters:
audio_track_title.regex / filepath.regex`). So the sample's media must carry what a real library carries there.

Everything here is drawn from a random generator of its own (seeded by the library's seed), after the item's
resolution, HDR, Dolby Vision, audio codec and edition were drawn from the library's: those stay what they were
(the same seed gives the same library as before releases existed) and the release agrees with them — a TrueHD
track is on a Blu-ray, a 4K Dolby Vision file is named `[DV HDR10]`, a Director's Cut says so in its name.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

#: Sources a release of each Plex resolution comes from (Radarr's quality names: `Remux-2160p`, `WEBDL-1080p`…).
SOURCES = {"4k": ("Remux", "Bluray", "WEBDL"), "1080": ("Remux", "Bluray", "WEBDL", "WEBRip", "HDTV"),
           "720": ("Bluray", "WEBDL", "WEBRip", "HDTV"), "576": ("DVD", "Bluray"),
           "480": ("DVD", "Bluray", "WEBDL", "SDTV"),
           "sd": ("SDTV", "WEBRip")}
#: The height a resolution is named by in a file name (`Bluray-2160p`).
_HEIGHT = {"4k": "2160p", "1080": "1080p", "720": "720p", "576": "576p", "480": "480p", "sd": "360p"}
#: Per Plex audio codec: (format as Radarr names it, Plex's stream profile, channels, how often), and the sources a
#: track of that format comes on (lossless tracks come on discs, Dolby Digital Plus on web releases).
AUDIO_FORMATS = {
    "truehd": [("TrueHD Atmos", "", 8, 6), ("TrueHD", "", 8, 2), ("TrueHD", "", 6, 2)],
    "eac3": [("EAC3 Atmos", "", 6, 35), ("EAC3", "", 6, 50), ("EAC3", "", 2, 15)],
    "dca": [("DTS-HD MA", "ma", 6, 30), ("DTS-HD MA", "ma", 8, 15), ("DTS-X", "ma", 8, 15), ("DTS", "dts", 6, 20),
            ("DTS-ES", "es", 7, 10), ("DTS-HD HRA", "hra", 8, 10)],
    "aac": [("AAC", "lc", 2, 8), ("AAC", "lc", 6, 2)],
    "ac3": [("AC3", "", 6, 8), ("AC3", "", 2, 2)],
    "flac": [("FLAC", "", 2, 6), ("FLAC", "", 6, 4)],
}
_DISC, _WEB = ("Remux", "Bluray"), ("WEBDL", "WEBRip")
AUDIO_SOURCES = {"TrueHD Atmos": _DISC, "TrueHD": _DISC, "DTS-X": _DISC, "DTS-HD MA": _DISC, "DTS-HD HRA": _DISC,
                 "FLAC": _DISC, "DTS": ("Bluray", "DVD"), "DTS-ES": ("Bluray", "DVD"), "EAC3 Atmos": _WEB,
                 "EAC3": _WEB, "AC3": ("HDTV", "DVD", "Bluray", "WEBDL"), "AAC": ("WEBRip", "WEBDL", "SDTV", "HDTV")}
#: Formats Plex's own stream titles cannot show (it names the codec: "TRUEHD", "DTS-HD MA"); a release that does
#: not say them in its file name says them in the track's title, so the sample never hides them.
_HIDDEN_BY_PLEX = {"TrueHD Atmos", "EAC3 Atmos", "DTS-X"}
#: How Plex writes a codec in a stream's displayTitle ("English (TRUEHD 7.1)"), per codec and profile.
_PLEX_CODEC = {"truehd": "TRUEHD", "eac3": "EAC3", "ac3": "AC3", "aac": "AAC", "flac": "FLAC"}
_PLEX_DTS = {"ma": "DTS-HD MA", "hra": "DTS-HD HRA", "es": "DTS-ES"}
#: Plex's names of a channel count (displayTitle, audioChannelLayout) and Radarr's (file names).
_LAYOUT = {1: ("Mono", "mono", "1.0"), 2: ("Stereo", "stereo", "2.0"), 6: ("5.1", "5.1(side)", "5.1"),
           7: ("6.1", "6.1", "6.1"), 8: ("7.1", "7.1", "7.1")}
#: Scene names of the audio formats (`TrueHD.Atmos.7.1`, `DDP5.1.Atmos`).
_SCENE_AUDIO = {"TrueHD Atmos": "TrueHD.Atmos.{ch}", "TrueHD": "TrueHD.{ch}", "DTS-X": "DTS-X.{ch}",
                "DTS-HD MA": "DTS-HD.MA.{ch}", "DTS-HD HRA": "DTS-HD.HRA.{ch}", "DTS-ES": "DTS-ES.{ch}",
                "DTS": "DTS.{ch}", "EAC3 Atmos": "DDP{ch}.Atmos", "EAC3": "DDP{ch}", "AC3": "DD{ch}",
                "AAC": "AAC{ch}", "FLAC": "FLAC{ch}"}
_SCENE_SOURCE = {"Remux": "BluRay.REMUX", "Bluray": "BluRay", "WEBDL": "WEB-DL", "WEBRip": "WEBRip", "HDTV": "HDTV",
                 "DVD": "DVD", "SDTV": "SDTV"}
#: Invented release groups (none spells a word Kometa's regexes look for).
GROUPS = ("NORTHWIND", "HARBOR", "OCTANT", "CALDER", "LANTERN")
#: File name styles and how often: Radarr/Sonarr as TRaSH's guides set them up, scene releases kept as
#: downloaded, and bare `Title (Year).mkv` names that say nothing of the release.
STYLES = (("trash", 55), ("scene", 30), ("plain", 15))


@dataclass(frozen=True)
class Audio:
    """A file's audio track, with the fields Plex gives an audio `<Stream>`."""
    format: str        # as Radarr names it: "TrueHD Atmos", "DTS-HD MA", "EAC3", "AAC"…
    codec: str         # Plex's stream codec: truehd, eac3, dca, ac3, aac, flac
    profile: str       # Plex's stream profile ("ma", "hra", "es", "dts", "lc"), "" when Plex gives none
    channels: int
    title: str = ""    # the track's own title, "" when the release left it empty

    @property
    def _codec_and_layout(self) -> str:
        codec = _PLEX_DTS.get(self.profile, "DTS") if self.codec == "dca" else _PLEX_CODEC[self.codec]
        return f"{codec} {_LAYOUT[self.channels][0]}"

    @property
    def display_title(self) -> str:
        """Plex's `displayTitle`: language, codec and layout ("English (DTS-HD MA 5.1)"); never the track title."""
        return f"English ({self._codec_and_layout})"

    @property
    def extended_display_title(self) -> str:
        """Plex's `extendedDisplayTitle`: the track's title first when it has one ("TrueHD Atmos 7.1 (English
        TRUEHD 7.1)", as Plex writes a subtitle titled SDH "SDH (English SRT)"), else the displayTitle."""
        return f"{self.title} (English {self._codec_and_layout})" if self.title else self.display_title

    @property
    def layout(self) -> str:
        """Plex's `audioChannelLayout`."""
        return _LAYOUT[self.channels][1]

    @property
    def channel_name(self) -> str:
        """The channels as file names write them ("7.1", "2.0")."""
        return _LAYOUT[self.channels][2]


@dataclass(frozen=True)
class Release:
    """Where a media file came from, and the style its file was named in."""
    source: str        # Remux, Bluray, WEBDL, WEBRip, HDTV, DVD, SDTV
    hdr_format: str    # "", "HDR10", "HDR10+", "HLG"
    video_codec: str   # Plex's videoCodec: hevc, h264, mpeg2video
    audio: Audio
    style: str         # "trash", "scene" or "plain"
    group: str

    @property
    def encode(self) -> str:
        """The video codec as a file name writes it: the encoder of an encode, the codec of a remux or web file."""
        if self.video_codec == "mpeg2video":
            return "MPEG2"
        if self.source in ("Remux", "WEBDL", "HDTV"):
            return "h265" if self.video_codec == "hevc" else "h264"
        return "x265" if self.video_codec == "hevc" else "x264"


def _weighted(rng: random.Random, options: list[tuple]) -> tuple:
    return rng.choices(options, weights=[option[-1] for option in options])[0]


def draw_release(rng: random.Random, resolution: str, audio_codec: str, hdr: bool, dovi: bool,
                 style: str | None = None) -> Release:
    """A release agreeing with the media's resolution, HDR, Dolby Vision and audio codec; `style` is given when a
    whole season shares one (a season pack)."""
    possible = SOURCES[resolution]
    variants = AUDIO_FORMATS[audio_codec]
    fitting = [v for v in variants if set(AUDIO_SOURCES[v[0]]) & set(possible)] or variants
    fmt, profile, channels, _ = _weighted(rng, fitting)
    source = rng.choice([s for s in possible if s in AUDIO_SOURCES[fmt]] or list(possible))
    hdr_format = ""
    if hdr:
        hdr_format = _weighted(rng, [("HDR10", 8), ("HDR10+", 2)] if dovi else
                               [("HDR10", 60), ("HDR10+", 25), ("HLG", 15)])[0]
    if source == "DVD":
        video_codec = "mpeg2video"
    elif resolution == "4k" or hdr:
        video_codec = "hevc"
    else:
        video_codec = "hevc" if rng.random() < 0.3 else "h264"
    style = style or _weighted(rng, list(STYLES))[0]
    titled = (style == "plain" and fmt in _HIDDEN_BY_PLEX) or rng.random() < 0.4
    title = f"{fmt} {_LAYOUT[channels][2]}" if titled else ""
    return Release(source=source, hdr_format=hdr_format, video_codec=video_codec,
                   audio=Audio(fmt, audio_codec, profile, channels, title), style=style, group=rng.choice(GROUPS))


def _dynamic_range(release: Release, dovi: bool) -> str:
    """Radarr's VideoDynamicRangeType: "DV HDR10", "HDR10Plus", "HLG"…; "" for SDR."""
    hdr = release.hdr_format.replace("HDR10+", "HDR10Plus")
    return " ".join(part for part in ("DV" if dovi else "", hdr) if part)


def _quality(release: Release, resolution: str) -> str:
    """Radarr's quality name: `Bluray-2160p`, `Remux-1080p`, `DVD`, `SDTV`."""
    return release.source if release.source in ("DVD", "SDTV") else f"{release.source}-{_HEIGHT[resolution]}"


def trash_name(stem: str, edition: str, release: Release, resolution: str, dovi: bool) -> str:
    """`Cobalt River (2019) {edition-Director's Cut} [Bluray-2160p][DV HDR10][TrueHD Atmos 7.1][x265]-GROUP.mkv`:
    the naming TRaSH's guides give Radarr and Sonarr."""
    parts = [_quality(release, resolution), _dynamic_range(release, dovi),
             f"{release.audio.format} {release.audio.channel_name}", release.encode]
    tags = "".join(f"[{part}]" for part in parts if part)
    return f"{stem}{f' {{edition-{edition}}}' if edition else ''} {tags}-{release.group}.mkv"


def scene_name(stem: str, edition: str, release: Release, resolution: str, dovi: bool) -> str:
    """`Cobalt.River.2019.Directors.Cut.2160p.BluRay.REMUX.DV.HDR10.TrueHD.Atmos.7.1.H.265-GROUP.mkv`."""
    words = stem.replace("(", "").replace(")", "").replace(" - ", " ").replace("'", "").split()
    dynamic = _dynamic_range(release, dovi).replace("HDR10Plus", "HDR10+").replace(" ", ".")
    audio = _SCENE_AUDIO[release.audio.format].format(ch=release.audio.channel_name)
    codec = {"h265": "H.265", "h264": "H.264"}.get(release.encode, release.encode)
    parts = [*words, *edition.replace("'", "").split(), _HEIGHT[resolution] if release.source != "DVD" else "",
             _SCENE_SOURCE[release.source], dynamic, audio, codec]
    return ".".join(part for part in parts if part) + f"-{release.group}.mkv"


def file_name(stem: str, edition: str, release: Release, resolution: str, dovi: bool) -> str:
    """The file's name in its release's style; `stem` is `Title (Year)` or `Show (Year) - S01E02 - Title`."""
    if release.style == "trash":
        return trash_name(stem, edition, release, resolution, dovi)
    if release.style == "scene":
        return scene_name(stem, edition, release, resolution, dovi)
    return f"{stem}{f' {{edition-{edition}}}' if edition else ''}.mkv"
