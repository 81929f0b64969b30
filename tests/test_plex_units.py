"""Pure pieces of the proxy: the filter language, the XML guard and stream filter, upload capture."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from kometa_preview.plex import filters
from kometa_preview.plex import xml as plexml
from kometa_preview.proxy import capture


def movie(key: str, title: str, year: int, resolution: str, *, hdr=False, labels=(), genres=()) -> ET.Element:
    element = ET.Element("Video", {"ratingKey": key, "type": "movie", "title": title, "year": str(year)})
    media = ET.SubElement(element, "Media", {"videoResolution": resolution, "audioCodec": "aac"})
    part = ET.SubElement(media, "Part")
    ET.SubElement(part, "Stream", {"streamType": "1", **({"colorTrc": "smpte2084"} if hdr else {})})
    for number, label in enumerate(labels):
        ET.SubElement(element, "Label", {"id": str(900 + number), "tag": label})
    for genre, gid in genres:
        ET.SubElement(element, "Genre", {"id": gid, "tag": genre})
    return element


ITEMS = [movie("1", "The Matrix", 1999, "1080", hdr=True, labels=["Kometa"], genres=[("Action", "11")]),
         movie("2", "Dune", 2021, "4k", hdr=True, genres=[("Science Fiction", "15")]),
         movie("3", "Casablanca", 1942, "sd"),
         movie("4", "Heat", 1995, "480", genres=[("Action", "11"), ("Drama", "13")])]


def pick(query: str) -> list[str]:
    from urllib.parse import parse_qsl
    params = parse_qsl(query, keep_blank_values=True)
    return [e.get("ratingKey") for e in filters.select(params, ITEMS, filters.Items(lambda _: None))]


@pytest.mark.parametrize("query, expected", [
    ("", ["1", "2", "3", "4"]),
    ("type=1&includeGuids=1&sort=titleSort", ["1", "2", "3", "4"]),
    ("resolution=4k", ["2"]),
    ("resolution=480,sd", ["3", "4"]),
    ("resolution!=480,sd", ["1", "2"]),
    ("push=1&resolution=480&or=1&resolution=sd&pop=1&and=1&hdr=0", ["3", "4"]),
    ("push=1&resolution=4k&or=1&resolution=1080&pop=1&and=1&hdr=1", ["1", "2"]),
    ("resolution=4k&or=1&resolution=1080&hdr=1", ["1", "2"]),          # AND binds tighter than OR
    ("resolution=sd&or=1&resolution=1080&and=1&hdr=0", ["3"]),
    ("year>>=1990&year<<=2000", ["1", "4"]),
    ("year!=1999", ["2", "3", "4"]),
    ("decade=1990", ["1", "4"]),
    ("title=the", ["1"]),
    ("title!=the", ["2", "3", "4"]),
    ("title%3D=Dune".replace("%3D", "="), ["2"]),
    ("title==dune", ["2"]),
    ("title<=cas", ["3"]),
    ("title>=eat", ["4"]),
    ("label=Kometa", ["1"]),
    ("label=900", ["1"]),
    ("label!=kometa", ["2", "3", "4"]),
    ("genre=11", ["1", "4"]),
    ("genre=11&genre=13", ["4"]),
    ("genre=action&push=1&year>>=1996&pop=1", ["1"]),
])
def test_filter_language(query, expected):
    assert pick(query) == expected


@pytest.mark.parametrize("query", ["studio=x", "addedAt>>=-30d", "resolution>>=4k", "push=1&year=1", "pop=1",
                                   "and=1&year=1", "year=1&or=1", "year=abc", "push=2"])
def test_unsupported_is_said_not_guessed(query):
    with pytest.raises(filters.Unsupported):
        pick(query)


def test_hdr_without_streams_is_unsupported():
    bare = ET.Element("Video", {"ratingKey": "9", "type": "movie"})
    with pytest.raises(filters.Unsupported):
        filters.select([("hdr", "1")], [bare], filters.Items(lambda _: None))


BILLION_LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">
]><MediaContainer size="1"><Video ratingKey="1" title="&lol2;"/></MediaContainer>"""
EXTERNAL = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><MediaContainer>&e;</MediaContainer>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL, b"<html>oops", b"", b"\x00\x01"])
def test_unsafe_or_broken_xml_is_refused(body):
    with pytest.raises(plexml.UnsafeXML):
        plexml.parse(body)
    stream = plexml.StreamFilter(lambda e: True)
    with pytest.raises(plexml.UnsafeXML):
        for start in range(0, len(body), 7):
            stream.feed(body[start:start + 7])
        stream.close()


def test_stream_filter_keeps_targets_meta_and_fixes_sizes():
    items = "".join(f'<Video ratingKey="{n}" title="t{n}"><Media/></Video>' for n in range(1, 2001))
    body = f'<MediaContainer size="2000" totalSize="2000"><Meta><Type key="x"/></Meta>{items}</MediaContainer>'.encode()
    stream = plexml.StreamFilter(lambda e: e.get("ratingKey") in {"7", "1999"})
    for start in range(0, len(body), 4096):
        stream.feed(body[start:start + 4096])
    root = stream.close()
    assert [c.tag for c in root] == ["Meta", "Video", "Video"]
    assert (root.get("size"), root.get("totalSize"), stream.before) == ("2", "2", 2000)


def test_stream_filter_filters_inside_hubs():
    body = (b'<MediaContainer size="2"><Hub type="movie" size="2"><Video ratingKey="1"/><Video ratingKey="2"/></Hub>'
            b'<Hub type="show" size="0"/></MediaContainer>')
    stream = plexml.StreamFilter(lambda e: e.get("ratingKey") == "2")
    stream.feed(body)
    root = stream.close()
    assert [(h.get("type"), h.get("size"), [v.get("ratingKey") for v in h]) for h in root] == \
        [("movie", "1", ["2"]), ("show", "0", [])]


def image(fmt: str, exif: bool = False) -> bytes:
    buffer = io.BytesIO()
    picture = Image.new("RGB", (40, 60), (9, 99, 199))
    extra = {}
    if exif:
        data = picture.getexif()
        data[0x04BC] = "overlay"
        extra["exif"] = data
    picture.save(buffer, format=fmt, **extra)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_raw_images_are_found_by_magic_bytes(fmt, ext):
    data = image(fmt)
    assert capture.find_image(data, "") == (data, ext)
    assert capture.find_image(data, "application/octet-stream") == (data, ext)


def test_multipart_image_is_found_and_junk_is_not():
    data = image("PNG")
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../evil.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    assert capture.find_image(body, f"multipart/form-data; boundary={boundary}") == (data, "png")
    assert capture.find_image(b"--XyZ\r\n\r\nno image\r\n--XyZ--", "multipart/form-data; boundary=XyZ") is None


@pytest.mark.parametrize("body", [
    image("JPEG")[:200],                       # truncated JPEG
    image("PNG")[:60],                         # truncated PNG
    b"RIFF\x10\x00\x00\x00WEBPVP8 garbage",     # WebP header, no image
    b"\xff\xd8\xff<?php echo 1; ?>",           # polyglot-looking junk
    b"GIF89a....",
])
def test_broken_or_foreign_bodies_are_not_images(body):
    assert capture.find_image(body, "") is None


def test_captures_never_overwrite_and_their_names_parse_back(tmp_path):
    from datetime import datetime

    from kometa_preview.common.job import CaptureName
    name = CaptureName.new("1", "poster", "jpg", datetime(2026, 12, 2, 20, 0, 0, 123456))
    first = capture.save(tmp_path, name, b"one")
    second = capture.save(tmp_path, name, b"two")
    assert first != second and first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1_poster_20261202_200000_123456.jpg",
                                                           "1_poster_20261202_200000_123456_1.jpg"]
    assert CaptureName.parse(second.name) == name.numbered(1)
    assert CaptureName.parse("1_poster_x.jpg") is None and CaptureName.parse("../1_poster_20261202_200000_123456.jpg") is None
