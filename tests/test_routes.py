"""The Route classifier: a table of Plex requests and what each one is. Only reads on the
read-only table may ever be forwarded; anything odd-looking is UNKNOWN."""
from __future__ import annotations

import pytest

from kometa_preview.plex.routes import Kind, classify, image_path_of, paging

CASES = [
    ("GET", "/", Kind.ROOT, True),
    ("GET", "/identity", Kind.IDENTITY, True),
    ("GET", "/:/prefs", Kind.SERVER_PREFS, True),
    ("PUT", "/:/prefs?FriendlyName=x", Kind.SERVER_PREFS, False),
    ("GET", "/library", Kind.LIBRARY, True),
    ("GET", "/library/sections", Kind.SECTIONS, True),
    ("GET", "/library/sections/1", Kind.SECTION, True),
    ("GET", "/library/sections/1/prefs", Kind.SECTION_PREFS, True),
    ("GET", "/library/sections/1/all?type=1&includeGuids=1", Kind.LISTING, True),
    ("PUT", "/library/sections/1/all?id=5&label%5B0%5D.tag.tag=Overlay&type=1", Kind.LISTING, False),
    ("GET", "/library/sections/1/search?title=x", Kind.LISTING, True),
    ("GET", "/library/sections/1/recentlyAdded", Kind.LISTING, True),
    ("GET", "/library/sections/1/collections?includeMeta=1", Kind.COLLECTIONS, True),
    ("GET", "/library/sections/1/resolution?type=1", Kind.FILTER_CHOICES, True),
    ("GET", "/library/sections/2/label?type=4", Kind.FILTER_CHOICES, True),
    ("GET", "/library/all?type=1", Kind.LISTING, True),
    ("GET", "/library/recentlyAdded", Kind.LISTING, True),
    ("GET", "/hubs/search?query=x", Kind.HUB_SEARCH, True),
    ("GET", "/library/metadata/12", Kind.METADATA, True),
    ("HEAD", "/library/metadata/12", Kind.METADATA, True),
    ("GET", "/library/metadata/12,13,14", Kind.METADATA, True),
    ("DELETE", "/library/metadata/12", Kind.METADATA, False),
    ("GET", "/library/metadata/12/children?excludeAllLeaves=1", Kind.CHILDREN, True),
    ("GET", "/library/metadata/12/allLeaves", Kind.CHILDREN, True),
    ("GET", "/library/metadata/12/posters", Kind.ARTWORK_LIST, True),
    ("POST", "/library/metadata/12/posters", Kind.UPLOAD, False),
    ("POST", "/library/metadata/12/posters?url=http%3A%2F%2Fx", Kind.UPLOAD, False),
    ("PUT", "/library/metadata/12/poster?url=upload%3A%2F%2Fx", Kind.UPLOAD, False),
    ("POST", "/library/metadata/12/arts", Kind.UPLOAD, False),
    ("POST", "/library/metadata/12/clearLogos", Kind.UPLOAD, False),
    ("GET", "/library/metadata/12/thumb/1700000000", Kind.IMAGE, True),
    ("GET", "/library/metadata/12/art/1700000000", Kind.IMAGE, True),
    ("GET", "/photo/:/transcode?url=%2Flibrary%2Fmetadata%2F12%2Fthumb%2F1&width=10&height=10", Kind.TRANSCODE, True),
    ("GET", "/:/scrobble?key=12", Kind.SIDE_EFFECT, False),
    ("GET", "/:/unscrobble?key=12", Kind.SIDE_EFFECT, False),
    ("GET", "/:/timeline?ratingKey=12", Kind.SIDE_EFFECT, False),
    ("GET", "/:/rate?key=12&rating=5", Kind.SIDE_EFFECT, False),
    ("GET", "/library/sections/1/refresh", Kind.SIDE_EFFECT, False),
    ("GET", "/library/sections/all/refresh", Kind.SIDE_EFFECT, False),
    ("PUT", "/library/metadata/12/refresh", Kind.SIDE_EFFECT, False),
    ("GET", "/butler/BackupDatabase", Kind.SIDE_EFFECT, False),
    ("GET", "/updater/apply", Kind.SIDE_EFFECT, False),
    ("GET", "/library/clean/bundles", Kind.SIDE_EFFECT, False),
    ("GET", "/library/metadata/12/%2e%2e/13", Kind.UNKNOWN, False),
    ("GET", "/library/metadata/12/../13", Kind.UNKNOWN, False),
    ("GET", "/library//metadata/12", Kind.UNKNOWN, False),
    ("GET", "/library%2Fmetadata%2F12", Kind.UNKNOWN, False),
    ("GET", "/library/metadata/12/unknown", Kind.UNKNOWN, False),
    ("GET", "/accounts", Kind.UNKNOWN, False),
    ("GET", "/system/agents", Kind.UNKNOWN, False),
    ("PROPFIND", "/library/metadata/12", Kind.METADATA, False),
    ("get", "/library/metadata/12", Kind.METADATA, True),
]


@pytest.mark.parametrize("method, path, kind, is_read", CASES, ids=[f"{m} {p}" for m, p, *_ in CASES])
def test_classify(method, path, kind, is_read):
    route = classify(method, path)
    assert (route.kind, route.is_read) == (kind, is_read)


def test_method_override_header_makes_any_get_a_non_read():
    for header in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"):
        assert not classify("GET", "/library/metadata/12", {header: "DELETE"}).is_read


def test_keys_and_params_are_kept_in_order():
    route = classify("GET", "/library/sections/1/all?push=1&resolution=4k&or=1&resolution=1080&pop=1&type=1")
    assert route.section_id == "1" and route.libtype == "movie"
    assert [k for k, _ in route.params] == ["push", "resolution", "or", "resolution", "pop", "type"]
    assert classify("GET", "/library/metadata/3,4").rating_keys == ("3", "4")
    assert classify("POST", "/library/metadata/7/posters").upload_kind == "poster"
    assert classify("PUT", "/library/sections/1/all?id=7,8&label%5B0%5D.tag.tag=Overlay").rating_keys == ("7", "8")


def test_transcode_url_points_at_an_image_route():
    assert image_path_of("http://127.0.0.1:1/library/metadata/5/thumb/9?X-Plex-Token=t").rating_key == "5"
    assert image_path_of("/library/metadata/5/thumb/9").rating_key == "5"
    assert image_path_of("/library/metadata/5/children") is None
    assert image_path_of("http://elsewhere/x.jpg") is None


@pytest.mark.parametrize("path, headers, expected", [
    ("/library/sections/1/all", {}, (0, None)),
    ("/library/sections/1/all", {"X-Plex-Container-Start": "100", "X-Plex-Container-Size": "50"}, (100, 50)),
    ("/library/sections/1/all?X-Plex-Container-Start=0&X-Plex-Container-Size=0", {}, (0, 0)),
    ("/library/sections/1/all?X-Plex-Container-Start=x", {}, (0, None)),
])
def test_paging_by_headers_or_query(path, headers, expected):
    assert paging(classify("GET", path), headers) == expected


@pytest.mark.parametrize("path, kept", [
    ("/library/metadata/7?includeGuids=1&url=%2Flibrary%2Fmetadata%2F8&_method=DELETE", [("includeGuids", "1")]),
    ("/library/metadata/7/arts?X-HTTP-Method-Override=PUT&checkFiles=1", [("checkFiles", "1")]),
    ("/photo/:/transcode?url=%2Fx&width=5&height=6&title.value=y", [("url", "/x"), ("width", "5"), ("height", "6")]),
    ("/library/sections/1/all?type=1&resolution=4k&X-HTTP-Method-Override=DELETE",
     [("type", "1"), ("resolution", "4k")]),
    ("/:/prefs?FriendlyName=evil", []),
])
def test_only_known_parameters_travel_with_a_forwarded_read(path, kept):
    from kometa_preview.plex.routes import forwardable_params
    assert forwardable_params(classify("GET", path)) == kept
