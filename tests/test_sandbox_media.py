"""The sample server's media, read through plexapi as Kometa reads them: every version of a movie or episode has a
Part whose file is named the way real libraries name releases, and video, audio and subtitle Streams with Plex's
`displayTitle`/`extendedDisplayTitle`; what the names and titles say agrees with what Plex's own fields (and the
server's filters) say of the item — its resolution, HDR, Dolby Vision, audio codec and edition.

The file names are read here with regexes of this test's own (not the sample's code), the way a person reads them.
"""
from __future__ import annotations

import re

import pytest
from conftest import TOKEN
from plexapi.server import PlexServer

from kometa_preview.sandbox import generate

#: What a release-named file says of the resolution: Radarr's `Bluray-2160p`, a scene `2160p`, `DVD`, `SDTV`.
HEIGHTS = {"2160p": {"4k"}, "1080p": {"1080"}, "720p": {"720"}, "576p": {"576"}, "480p": {"480"}, "360p": {"sd"},
           "DVD": {"576", "480"}, "SDTV": {"480", "sd"}}
#: Which Plex audio codec each audio token of a file name is.
AUDIO_TOKENS = [(r"TrueHD", "truehd"), (r"DTS", "dca"), (r"EAC3|DDP", "eac3"), (r"AC3|DD\d", "ac3"), (r"AAC", "aac"),
                (r"FLAC", "flac")]
HDR_TRC = {"smpte2084", "arib-std-b67"}


@pytest.fixture(scope="module")
def sample():
    """A library big enough for every style, source and format, and its items as plexapi reads them in full."""
    from kometa_preview.sandbox import SampleServer
    with SampleServer(generate(seed=5, movies=120, shows=3, seasons=2, episodes=4), TOKEN) as server:
        plex = PlexServer(server.url, TOKEN)
        keys = [k for k, item in server.library.items.items() if item.type in ("movie", "episode")]
        yield server, {key: plex.fetchItem(key) for key in keys}, plex


def _streams(item):
    return [(media, part, part.videoStreams(), part.audioStreams(), part.subtitleStreams())
            for media in item.media for part in media.parts]


def test_every_version_has_a_part_and_plex_s_three_kinds_of_streams(sample):
    server, full, _ = sample
    for key, item in full.items():
        assert len(item.media) == len(server.library.items[key].media)
        for media, part, video, audio, subtitles in _streams(item):
            assert part.file.endswith(".mkv") and part.size and part.key.startswith("/library/parts/")
            assert (len(video), len(audio), len(subtitles)) == (1, 1, 1), key
            assert (video[0].height, video[0].width) == (media.height, media.width)
            assert video[0].displayTitle == video[0].extendedDisplayTitle and video[0].displayTitle.endswith(")")
            assert audio[0].codec == media.audioCodec and audio[0].channels == media.audioChannels
            assert audio[0].displayTitle.startswith("English (") and audio[0].languageCode == "eng"
            if audio[0].title:  # Plex puts a track's own title first: "SDH (English SRT)"
                assert audio[0].extendedDisplayTitle == f"{audio[0].title} (English {audio[0].displayTitle[9:]}"
            else:
                assert audio[0].extendedDisplayTitle == audio[0].displayTitle
            assert subtitles[0].displayTitle == subtitles[0].extendedDisplayTitle


def test_listings_carry_parts_and_files_but_no_streams(sample):
    _, full, plex = sample
    listed = plex.library.section("Movies").all()
    assert all(part.file == full[movie.ratingKey].media[n].parts[0].file and not part.streams
               for movie in listed for n, media in enumerate(movie.media) for part in media.parts)


def test_what_streams_say_agrees_with_plex_s_fields_and_filters(sample):
    """HDR, Dolby Vision, audio codec and resolution, as the streams tell them, are what the server's own filters
    find: the sample evaluates filters on its data, and writes that same data as XML."""
    server, full, plex = sample
    movies = {k: item for k, item in full.items() if item.type == "movie"}
    section = plex.library.section("Movies")
    hdr = {k for k, item in movies.items() if any(v.colorTrc in HDR_TRC for *_, video, _, _ in _streams(item)
                                                  for v in video)}
    dovi = {k for k, item in movies.items() if any(v.DOVIPresent for *_, video, _, _ in _streams(item) for v in video)}
    assert {m.ratingKey for m in section.search(hdr=True)} == hdr and hdr > dovi > set()
    assert {m.ratingKey for m in section.search(filters={"dovi": True})} == dovi
    for codec in ("truehd", "dca", "eac3", "ac3", "aac", "flac"):
        said = {k for k, item in movies.items() if any(a.codec == codec for *_, audio, _ in _streams(item)
                                                       for a in audio)}
        assert {m.ratingKey for m in section.search(audioCodec=codec)} == said and said, codec
    assert server.log.changes() == []


def _tokens(name: str) -> set[str]:
    return set(re.split(r"[ .\[\]\-]+", name))


def test_file_names_say_what_the_release_is(sample):
    """A release-named file (Radarr/Sonarr or scene) says the resolution, HDR and Dolby Vision, the audio codec and
    the edition Plex reports; a bare `Title (Year).mkv` says only the edition, as Plex's `{edition-…}` naming."""
    _, full, _ = sample
    styles = set()
    for item in full.values():
        edition = getattr(item, "editionTitle", None)
        for media, part, video, audio, _ in _streams(item):
            name = part.file.rsplit("/", 1)[1]
            assert part.file.startswith(f"/data/{'movies' if item.type == 'movie' else 'tv'}/")
            words = name.replace(".", " ").replace("'", "")
            for known in ("Director's Cut", "Extended Edition", "IMAX", "Theatrical Cut"):
                assert (known.replace("'", "") in words) == (edition == known), name
            if re.fullmatch(r".+ \(\d{4}\)( - S\d\dE\d\d - [^\[]+)?( \{edition-[^}]+})?( - \d+x\d+)?\.mkv", name):
                styles.add("plain")
                continue
            styles.add("trash" if "][" in name or name.count("[") else "scene")
            tokens = _tokens(name)
            assert any(media.videoResolution in HEIGHTS.get(t, ()) for t in tokens), name
            assert ("DV" in tokens) == bool(video[0].DOVIPresent), name
            assert bool({"HDR10", "HDR10Plus", "HDR10+", "HLG"} & tokens or "HDR10+" in name) == \
                (video[0].colorTrc in HDR_TRC), name
            audio_codec = next(codec for pattern, codec in AUDIO_TOKENS if re.search(rf"\b({pattern})", name))
            assert audio_codec == audio[0].codec, name
    assert styles == {"trash", "scene", "plain"}


def test_episodes_are_named_by_show_season_and_episode(sample):
    server, full, _ = sample
    for key, item in full.items():
        if item.type == "episode":
            show = server.library.items[server.library.items[key].grandparent_key]
            file = item.media[0].parts[0].file
            assert file.startswith(f"{show.location}/Season {item.parentIndex:02d}/")
            assert f"S{item.parentIndex:02d}E{item.index:02d}" in file


def test_releases_vary_and_the_same_seed_gives_the_same_files():
    library = generate(seed=5, movies=120, shows=3)
    again = generate(seed=5, movies=120, shows=3)
    files = [m.file for item in library.items.values() for m in item.media]
    assert files == [m.file for item in again.items.values() for m in item.media] and len(set(files)) == len(files)
    releases = [m.release for item in library.items.values() for m in item.media]
    assert {r.source for r in releases} == {"Remux", "Bluray", "WEBDL", "WEBRip", "HDTV", "DVD", "SDTV"}
    assert {r.audio.format for r in releases} >= {"TrueHD Atmos", "DTS-X", "EAC3 Atmos", "DTS-HD MA", "AAC", "FLAC"}
    assert {r.hdr_format for r in releases} == {"", "HDR10", "HDR10+", "HLG"}


def test_drawing_the_releases_leaves_the_rest_of_the_library_as_it_was():
    """Releases are drawn from generators of their own: titles, years, resolutions, HDR and audio codecs of a seed's
    library are what they were before releases existed (the first movies of seed 1, as the examples name them)."""
    library = generate(seed=1)
    first = [(i.title, i.year, i.edition, [(m.resolution, m.hdr, m.dovi, m.audio_codec) for m in i.media])
             for i in (library.items[1001], library.items[1002], library.items[1003])]
    assert first == [("Cobalt River", 2006, "Theatrical Cut", [("1080", True, True, "aac"), ("480", False, False, "aac")]),
                     ("The Winter", 1976, "", [("sd", False, False, "aac")]),
                     ("Echo Orbit", 2023, "Theatrical Cut", [("sd", False, False, "truehd")])]
