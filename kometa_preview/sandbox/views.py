"""Plex XML for the sample library, shaped like the payloads plexapi parses (docs/PLEX-PROTOCOL.md).

Listings carry no `<Stream>`s and carry `<Guid>`s only with `includeGuids=1`, as Plex does;
`/library/metadata/{rk}` carries everything, with `librarySectionID` on the element (plexapi's
`reload()` needs it there).
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

from .library import GENRES, Item, Library, Media, Section
from .releases import Release

MACHINE_ID = "5a3f0c1e9b7d4e2a8c6f1b3d5e7a9c0b2d4f6a81"
VERSION = "1.41.3.9314-a0bfb8370"
LIBTYPE_NUMBER = {"movie": 1, "show": 2, "season": 3, "episode": 4}


def container(**attrs: object) -> ET.Element:
    return ET.Element("MediaContainer", {k: str(v) for k, v in attrs.items()})


def serialize(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8", xml_declaration=False)


def _guid(item: Item) -> str:
    return f"plex://{item.type}/{hashlib.md5(str(item.rating_key).encode()).hexdigest()[:24]}"


def _section_attrs(section: Section) -> dict[str, str]:
    return {"librarySectionID": str(section.id), "librarySectionTitle": section.title,
            "librarySectionUUID": section.uuid}


def item_element(library: Library, item: Item, *, full: bool, guids: bool) -> ET.Element:
    """One item as Plex lists it (`full=False`) or as `/library/metadata/{rk}` returns it."""
    section = library.sections[item.section_id]
    attrs = {"ratingKey": str(item.rating_key), "guid": _guid(item), "type": item.type, "title": item.title,
             "summary": f"Summary of {item.title}.", "thumb": item.thumb_path, "art": item.art_path,
             "addedAt": str(item.added_at), "updatedAt": str(item.added_at + item.poster_version),
             "index": str(item.index or 1)}
    if item.type in ("movie", "show"):
        attrs.update(titleSort=item.title_sort, year=str(item.year), contentRating=item.content_rating,
                     studio=item.studio, originallyAvailableAt=f"{item.year}-06-01")
    if item.edition:
        attrs["editionTitle"] = item.edition
    if item.type in ("show", "season"):
        attrs["key"] = f"/library/metadata/{item.rating_key}/children"
    else:
        attrs["key"] = f"/library/metadata/{item.rating_key}"
    if item.view_count:
        attrs["viewCount"] = str(item.view_count)
    if item.type == "show":
        leaves = sum(len(library.items[s].children) for s in item.children)
        attrs.update(childCount=str(len(item.children)), leafCount=str(leaves), viewedLeafCount="0")
    parent, grandparent = library.parent(item), library.grandparent(item)
    if parent is not None:
        attrs.update(parentRatingKey=str(parent.rating_key), parentKey=f"/library/metadata/{parent.rating_key}",
                     parentTitle=parent.title, parentThumb=parent.thumb_path, parentGuid=_guid(parent))
        attrs["parentIndex"] = str(parent.index or 1)
    if item.type == "season":
        attrs.update(leafCount=str(len(item.children)), viewedLeafCount="0", parentYear=str(parent.year))
    if grandparent is not None:
        attrs.update(grandparentRatingKey=str(grandparent.rating_key),
                     grandparentKey=f"/library/metadata/{grandparent.rating_key}",
                     grandparentTitle=grandparent.title, grandparentThumb=grandparent.thumb_path,
                     grandparentGuid=_guid(grandparent), year=str(item.year), contentRating=item.content_rating,
                     originallyAvailableAt=f"{item.year}-03-{item.index:02d}")
    if full:
        attrs.update({"librarySectionKey": f"/library/sections/{section.id}", **_section_attrs(section)})
    element = ET.Element("Video" if item.type in ("movie", "episode") else "Directory", attrs)
    for number, media in enumerate(item.media):
        element.append(media_element(item, number, media, full=full))
    for genre in item.genres:
        ET.SubElement(element, "Genre", {"id": str(GENRES[genre]), "tag": genre, "filter": f"genre={GENRES[genre]}"})
    for label in item.labels:
        label_id = library.label_id(label)
        ET.SubElement(element, "Label", {"id": str(label_id), "tag": label, "filter": f"label={label_id}"})
    if guids or full:
        for guid in item.guids:
            ET.SubElement(element, "Guid", {"id": guid})
    if full and item.location:
        ET.SubElement(element, "Location", {"path": item.location})
    for name in sorted(item.locked_fields):
        ET.SubElement(element, "Field", {"name": name, "locked": "1"})
    return element


#: What Plex writes for a resolution in a video stream's displayTitle ("4K DoVi/HDR10 (HEVC Main 10)").
_RESOLUTION_LABEL = {"4k": "4K", "1080": "1080p", "720": "720p", "576": "576p", "480": "480p", "sd": "360p"}
#: Per video codec: Plex's name of it in a displayTitle, its profile, level and bit depth.
_VIDEO_CODEC = {"hevc": ("HEVC Main 10", "main 10", "150", "10"), "h264": ("H.264", "high", "41", "8"),
                "mpeg2video": ("MPEG2VIDEO", "main", "8", "8")}
#: Video kbps of a 1080p file by source (scaled by resolution), audio kbps by format.
_VIDEO_KBPS = {"Remux": 30000, "Bluray": 12000, "WEBDL": 8000, "WEBRip": 6000, "HDTV": 7000, "DVD": 5000, "SDTV": 1500}
_KBPS_SCALE = {"4k": 2.0, "1080": 1.0, "720": 0.5, "576": 0.4, "480": 0.35, "sd": 0.25}
_AUDIO_KBPS = {"TrueHD Atmos": 4600, "TrueHD": 3600, "DTS-X": 4200, "DTS-HD MA": 3300, "DTS-HD HRA": 2000,
               "DTS-ES": 1509, "DTS": 1509, "EAC3 Atmos": 768, "EAC3": 640, "AC3": 448, "AAC": 192, "FLAC": 1200}
_SUBTITLE_CODEC = {"Remux": "pgs", "Bluray": "pgs", "DVD": "vobsub"}


def _duration(item: Item) -> int:
    return 2_700_000 if item.type == "episode" else 5_400_000


def media_element(item: Item, number: int, media: Media, *, full: bool) -> ET.Element:
    """A `<Media>` with its `<Part>` (and, in full metadata, the part's `<Stream>`s), shaped like a real server's
    (docs/PLEX-PROTOCOL.md): listings carry Media and Part, never Streams."""
    release = media.release
    assert release is not None, "the library dresses every media version (library._dress)"
    media_id = item.rating_key * 10 + number
    scale = 1.0 if release.source in ("DVD", "SDTV") else _KBPS_SCALE[media.resolution]
    video_kbps = int(_VIDEO_KBPS[release.source] * scale)
    kbps = video_kbps + _AUDIO_KBPS[release.audio.format]
    video_profile = _VIDEO_CODEC[release.video_codec][1]
    common = {"duration": str(_duration(item)), "container": "mkv", "videoProfile": video_profile}
    if release.audio.profile:
        common["audioProfile"] = release.audio.profile
    element = ET.Element("Media", {
        "id": str(media_id), "bitrate": str(kbps), "width": str(media.width), "height": str(media.height),
        "aspectRatio": "1.78", "audioChannels": str(release.audio.channels), "audioCodec": media.audio_codec,
        "videoCodec": release.video_codec, "videoResolution": media.resolution,
        "videoFrameRate": {"576": "PAL", "480": "NTSC"}.get(media.resolution, "24p"), **common})
    part = ET.SubElement(element, "Part", {
        "id": str(media_id * 10), "key": f"/library/parts/{media_id * 10}/{item.added_at}/file.mkv",
        "file": media.file, "size": str(kbps * _duration(item) // 8), **common})
    if full:
        stream_id = media_id * 100
        part.append(_video_stream(stream_id, media, release, video_kbps))
        part.append(_audio_stream(stream_id + 1, release))
        codec = _SUBTITLE_CODEC.get(release.source, "srt")
        ET.SubElement(part, "Stream", {
            "id": str(stream_id + 2), "streamType": "3", "codec": codec, "index": "2", "language": "English",
            "languageTag": "en", "languageCode": "eng", "displayTitle": f"English ({codec.upper()})",
            "extendedDisplayTitle": f"English ({codec.upper()})"})
    return element


def _dynamic_range(media: Media, release: Release) -> dict[str, str]:
    """The colour attributes of a video stream, and the Dolby Vision ones Kometa's `has_dolby_vision` reads
    (`DOVIPresent`): profile 7 on discs (with an enhancement layer), 8 on encodes and web files."""
    if not media.hdr:
        return {"colorPrimaries": "bt709", "colorSpace": "bt709", "colorTrc": "bt709"}
    attrs = {"colorPrimaries": "bt2020", "colorSpace": "bt2020nc",
             "colorTrc": "arib-std-b67" if release.hdr_format == "HLG" else "smpte2084"}
    if media.dovi:
        disc = release.source == "Remux"
        attrs.update(DOVIBLCompatID="6" if disc else "1", DOVIBLPresent="1", DOVIELPresent="1" if disc else "0",
                     DOVILevel="6", DOVIPresent="1", DOVIProfile="7" if disc else "8", DOVIRPUPresent="1",
                     DOVIVersion="1.0")
    return attrs


def _video_stream(stream_id: int, media: Media, release: Release, kbps: int) -> ET.Element:
    """The video `<Stream>`, titled as Plex titles it ("4K DoVi/HDR10 (HEVC Main 10)", "1080p (H.264)"); Plex has
    no name for HDR10+ here (only a file's name says it)."""
    codec_name, profile, level, depth = _VIDEO_CODEC[release.video_codec]
    dynamic = ""
    if media.hdr:
        dynamic = ("DoVi/" if media.dovi else "") + ("HLG" if release.hdr_format == "HLG" else "HDR10") + " "
    title = f"{_RESOLUTION_LABEL[media.resolution]} {dynamic}({codec_name})"
    coded_height = 1088 if media.height == 1080 and release.video_codec == "h264" else media.height
    return ET.Element("Stream", {
        "id": str(stream_id), "streamType": "1", "default": "1", "codec": release.video_codec, "index": "0",
        "bitrate": str(kbps), "bitDepth": depth, "chromaSubsampling": "4:2:0", "codedHeight": str(coded_height),
        "codedWidth": str(media.width), "colorRange": "tv", **_dynamic_range(media, release),
        "frameRate": "23.976", "height": str(media.height), "width": str(media.width), "level": level,
        "profile": profile, "refFrames": "4", "scanType": "progressive", "displayTitle": title,
        "extendedDisplayTitle": title})


def _audio_stream(stream_id: int, release: Release) -> ET.Element:
    """The audio `<Stream>`: Kometa's `audio_track_title` filter reads its `extendedDisplayTitle`."""
    audio = release.audio
    attrs = {"id": str(stream_id), "streamType": "2", "selected": "1", "default": "1", "codec": audio.codec,
             "index": "1", "channels": str(audio.channels), "bitrate": str(_AUDIO_KBPS[audio.format]),
             "language": "English", "languageTag": "en", "languageCode": "eng",
             "audioChannelLayout": audio.layout, "samplingRate": "48000"}
    if audio.format in ("TrueHD Atmos", "TrueHD", "DTS-X", "DTS-HD MA", "DTS-HD HRA", "FLAC"):
        attrs["bitDepth"] = "24"
    if audio.profile:
        attrs["profile"] = audio.profile
    if audio.title:
        attrs["title"] = audio.title
    attrs.update(displayTitle=audio.display_title, extendedDisplayTitle=audio.extended_display_title)
    return ET.Element("Stream", attrs)


def section_directory(section: Section) -> ET.Element:
    element = ET.Element("Directory", {
        "allowSync": "1", "art": f"/:/resources/{section.type}-fanart.jpg", "filters": "1", "refreshing": "0",
        "thumb": f"/:/resources/{section.type}.png", "key": str(section.id), "type": section.type,
        "title": section.title, "agent": section.agent, "scanner": section.scanner, "language": "en-US",
        "uuid": section.uuid, "updatedAt": "1734000000", "createdAt": "1600000000", "scannedAt": "1734000000",
        "content": "1", "directory": "1", "hidden": "0"})
    ET.SubElement(element, "Location", {"id": str(section.id), "path": section.location})
    return element


def root() -> ET.Element:
    element = container(size=3, friendlyName="Sample Plex (kometa-preview)", machineIdentifier=MACHINE_ID,
                        version=VERSION, platform="Linux", platformVersion="6.1.0", myPlex="1",
                        myPlexSubscription="1", allowSync="1", transcoderPhoto="1", updatedAt="1734000000")
    for key in ("hubs", "library", "search"):
        ET.SubElement(element, "Directory", {"count": "1", "key": key, "title": key})
    return element


def settings(entries: list[tuple[str, str, str, str]]) -> ET.Element:
    """A prefs document. A setting with choices carries them in `enumValues` (`value:label|…`), as Plex's do:
    Kometa 2.0 indexes `enumValues` by the current value of `ratingsSource` and fails without it."""
    element = container(size=len(entries))
    for name, kind, value, choices in entries:
        attrs = {"id": name, "label": name, "summary": "", "type": kind, "default": value, "value": value,
                 "hidden": "0", "advanced": "0", "group": "general"}
        if choices:
            attrs["enumValues"] = choices
        ET.SubElement(element, "Setting", attrs)
    return element


SERVER_PREFS = [("FriendlyName", "text", "Sample Plex", ""), ("DatabaseCacheSize", "int", "40", ""),
                ("ButlerStartHour", "int", "2", ""), ("ButlerEndHour", "int", "5", ""),
                ("ScheduledLibraryUpdatesEnabled", "bool", "0", "")]
SECTION_PREFS = [("ratingsSource", "text", "rottentomatoes",
                  "rottentomatoes:Rotten Tomatoes|imdb:IMDb|themoviedb:The Movie Database"),
                 ("enableCinemaTrailers", "bool", "1", ""),
                 ("collectionMode", "int", "0", "-1:Library default|0:Hide collection|1:Hide items in this collection"
                                               "|2:Show this collection and its items")]

#: (field, Meta field type, offers a choice list?) per libtype. Field keys carry the libtype prefix
#: except on movies (docs/PLEX-PROTOCOL.md); filter and sort names stay bare, as plexapi matches them.
_FIELDS = {
    "movie": [("title", "string", False), ("studio", "string", False), ("editionTitle", "string", False),
              ("year", "integer", True), ("decade", "integer", True), ("contentRating", "tag", True),
              ("genre", "tag", True), ("label", "tag", True), ("resolution", "resolution", True),
              ("audioCodec", "tag", True), ("hdr", "boolean", False), ("dovi", "boolean", False),
              ("unwatched", "boolean", False), ("addedAt", "date", False)],
    "show": [("title", "string", False), ("studio", "string", False), ("year", "integer", True),
             ("contentRating", "tag", True), ("genre", "tag", True), ("label", "tag", True),
             ("unwatched", "boolean", False), ("addedAt", "date", False)],
    "season": [("title", "string", False), ("year", "integer", True), ("label", "tag", True),
               ("addedAt", "date", False)],
    "episode": [("title", "string", False), ("year", "integer", True), ("label", "tag", True),
                ("resolution", "resolution", True), ("audioCodec", "tag", True), ("hdr", "boolean", False),
                ("dovi", "boolean", False), ("unwatched", "boolean", False), ("addedAt", "date", False)],
}
_SORTS = ["titleSort", "addedAt", "year", "originallyAvailableAt"]
_OPERATORS = {
    "string": [("=", "contains"), ("!=", "does not contain"), ("==", "is"), ("!==", "is not"),
               ("<=", "begins with"), (">=", "ends with")],
    "integer": [("=", "is"), ("!=", "is not"), (">>=", "is greater than"), ("<<=", "is less than")],
    "tag": [("=", "is"), ("!=", "is not")],
    "resolution": [("=", "is"), ("!=", "is not")],
    "boolean": [("=", "is true"), ("!=", "is false")],
    "date": [("<<=", "is before"), (">>=", "is after")],
}


def meta(section: Section) -> ET.Element:
    """The `<Meta>` block of `includeMeta=1`: filter paths, sorts, fields and operators."""
    element = ET.Element("Meta")
    libtypes = ["movie"] if section.type == "movie" else ["show", "season", "episode"]
    for libtype in libtypes:
        number = LIBTYPE_NUMBER[libtype]
        prefix = "" if libtype == "movie" else f"{libtype}."
        type_el = ET.SubElement(element, "Type", {"key": f"/library/sections/{section.id}/all?type={number}",
                                                  "type": libtype, "title": libtype.title(), "active": "1"})
        for field, kind, has_choices in _FIELDS[libtype]:
            if has_choices:
                ET.SubElement(type_el, "Filter", {
                    "filter": field, "filterType": "string" if kind != "integer" else "integer",
                    "key": f"/library/sections/{section.id}/{field}?type={number}", "title": field, "type": "filter"})
        for sort in _SORTS:
            ET.SubElement(type_el, "Sort", {"defaultDirection": "asc" if sort == "titleSort" else "desc",
                                            "descKey": f"{sort}:desc", "key": sort,
                                            "title": sort})
        for field, kind, _ in _FIELDS[libtype]:
            ET.SubElement(type_el, "Field", {"key": f"{prefix}{field}", "title": field, "type": kind})
    for kind, operators in _OPERATORS.items():
        field_type = ET.SubElement(element, "FieldType", {"type": kind})
        for key, title in operators:
            ET.SubElement(field_type, "Operator", {"key": key, "title": title})
    return element


def collections_meta(section: Section) -> ET.Element:
    element = ET.Element("Meta")
    type_el = ET.SubElement(element, "Type", {"key": f"/library/sections/{section.id}/collections",
                                              "type": "collection", "title": "Collections", "active": "0"})
    ET.SubElement(type_el, "Field", {"key": "collection.title", "title": "title", "type": "string"})
    ET.SubElement(type_el, "Sort", {"defaultDirection": "asc", "descKey": "titleSort:desc", "key": "titleSort",
                                    "title": "titleSort"})
    return element


def choices(library: Library, section: Section, field: str, items: list[Item]) -> ET.Element:
    """`/library/sections/{id}/{field}`: the distinct values of a field with their filter keys."""
    values: dict[str, str] = {}
    for item in items:
        if field == "label":
            values.update((str(library.label_id(t)), t) for t in item.labels)
        elif field == "genre":
            values.update((str(GENRES[g]), g) for g in item.genres)
        elif field == "year":
            values[str(item.year)] = str(item.year)
        elif field == "decade":
            values[str(item.year // 10 * 10)] = f"{item.year // 10 * 10}s"
        elif field == "contentRating" and item.content_rating:
            values[item.content_rating] = item.content_rating
        elif field == "resolution":
            values.update((m.resolution, m.resolution.upper() if m.resolution != "4k" else "4K") for m in item.media)
        elif field == "audioCodec":
            values.update((m.audio_codec, m.audio_codec.upper()) for m in item.media)
    element = container(size=len(values), **_section_attrs(section), title1=section.title, title2=field,
                        viewGroup="secondary")
    for key, title in sorted(values.items(), key=lambda kv: kv[1].lower()):
        ET.SubElement(element, "Directory", {"fastKey": f"/library/sections/{section.id}/all?{field}={key}",
                                             "key": key, "title": title})
    return element
