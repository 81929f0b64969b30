"""Mock mode answers listings itself; filter mode lets the sample server (the oracle) evaluate them.
For every listing shaped like Kometa's, both must name the same targets — and mock mode must cost
Plex the same at any library size."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

import pytest
import requests
from conftest import movie_targets
from plexapi.server import PlexServer

pytestmark = pytest.mark.e2e

MOVIE_KEYS = list(range(1001, 1041, 3))  # 14 movies with a spread of resolutions, HDR, codecs, editions
SHOW_TARGETS = [{"id": "show1", "type": "show", "ratingKey": "500001"},
                {"id": "s1", "type": "season", "ratingKey": "500003"},
                {"id": "e1", "type": "episode", "ratingKey": "500004"},
                {"id": "e2", "type": "episode", "ratingKey": "500009"}]


def corpus(server) -> list[str]:
    movies = [server.library.items[k] for k in MOVIE_KEYS]
    exact, partial = movies[0].title, movies[1].title.split()[0]
    show = server.library.items[500001]
    return [
        "/library/sections/1/all?type=1&sort=titleSort&push=1&resolution=4k&pop=1&and=1&hdr=1",
        "/library/sections/1/all?type=1&sort=titleSort&push=1&resolution=480&or=1&resolution=sd&pop=1&and=1&hdr=0",
        "/library/sections/1/all?type=1&sort=titleSort&push=1&resolution=1080&or=1&resolution=720&pop=1&and=1&dovi=1",
        "/library/sections/1/all?type=1&resolution=720",
        "/library/sections/1/all?type=1&resolution!=4k,1080",
        "/library/sections/1/all?type=1&hdr=1",
        "/library/sections/1/all?type=1&hdr!=1",
        "/library/sections/1/all?includeGuids=1&label=Overlay",
        "/library/sections/1/all?includeGuids=1&label=Kometa",
        "/library/sections/1/all?includeGuids=1&label!=Kometa&type=1",
        f"/library/sections/1/all?includeGuids=1&title={quote(exact)}&type=18",
        f"/library/sections/1/all?type=1&title%3D={quote(exact)}",
        f"/library/sections/1/all?type=1&title={quote(partial.lower())}",
        f"/library/sections/1/all?type=1&title==={quote(exact)}",
        "/library/sections/1/all?type=1&title%3C=the%20",
        "/library/sections/1/all?type=1&year%3E%3E=1995&year%3C%3C=2015",
        "/library/sections/1/all?type=1&decade=1990",
        "/library/sections/1/all?type=1&genre=13",
        "/library/sections/1/all?type=1&genre!=13,11",
        "/library/sections/1/all?type=1&genre=Comedy",
        "/library/sections/1/all?type=1&contentRating=PG-13,R",
        "/library/sections/1/all?type=1&audioCodec=truehd&or=1&audioCodec=dca",
        "/library/sections/1/all?type=1&editionTitle=cut",
        "/library/sections/1/all?type=1&editionTitle!=cut",
        "/library/sections/1/all?type=1&push=1&genre=11&or=1&genre=12&pop=1&and=1&push=1&year%3E%3E=1990&pop=1",
        "/library/sections/1/all?type=1&unwatched=1",
        "/library/sections/1/all?type=1&studio=harbor",             # not evaluated locally: falls back to Plex
        "/library/sections/1/all?type=1&addedAt%3E%3E=-36500d",     # likewise
        "/library/sections/2/all?type=2",
        "/library/sections/2/all?type=3&season.label=Overlay",
        "/library/sections/2/all?type=4&episode.label=Overlay",
        f"/library/sections/2/all?type=4&show.title={quote(show.title)}",
        "/library/sections/2/all?type=4&resolution=1080&or=1&resolution=4k",
        "/library/sections/2/all?type=4&hdr=1",
        "/library/sections/2/all?type=2&genre=13",
    ]


def listed(proxy, path: str) -> list[int]:
    response = requests.get(proxy.url + path, headers={"X-Plex-Token": proxy.client_token}, timeout=60)
    assert response.status_code == 200, (path, response.status_code)
    return [int(child.get("ratingKey")) for child in ET.fromstring(response.content) if child.get("ratingKey")]


def test_mock_mode_and_filter_mode_name_the_same_targets(sample_plex_factory, proxy_factory):
    server = sample_plex_factory(movies=300, shows=2)
    for key in MOVIE_KEYS[::4]:
        server.library.items[key].labels.append("Kometa")
    server.library.items[MOVIE_KEYS[1]].labels.append("Overlay")  # stripped by the proxy in both modes
    server.library.label_id("Kometa")
    targets = movie_targets(MOVIE_KEYS) + SHOW_TARGETS
    mock = proxy_factory(server, targets, name="mock")
    filtered = proxy_factory(server, targets, mock=False, name="filter")
    nonempty = 0
    for path in corpus(server):
        got, want = listed(mock, path), listed(filtered, path)
        assert sorted(got) == sorted(want), path
        nonempty += bool(want)
    assert nonempty >= 20, "the corpus should select something most of the time"


def kometa_like_session(proxy) -> None:
    plex = PlexServer(proxy.url, proxy.client_token)
    plex.settings  # noqa: B018 - Kometa reads server prefs at start-up
    section = plex.library.section("Movies")
    section.settings()
    items = section.all()
    section.search(filters={"or": [{"resolution": "4k"}, {"resolution": "1080"}]})
    section.search(label="Overlay")
    for item in items:
        item.reload()
        requests.get(item.posterUrl, timeout=10)


def upstream_cost(server) -> tuple[int, int]:
    entries = server.log.snapshot()
    return len(entries), sum(entry.bytes_out for entry in entries)


def test_mock_mode_costs_plex_the_same_at_any_library_size(sample_plex_factory, proxy_factory):
    costs = []
    for size in (50, 5000):
        server = sample_plex_factory(movies=size, shows=1)
        server.log.clear()
        proxy = proxy_factory(server, movie_targets([1001, 1002, 1003, 1004, 1005]), name=f"size{size}")
        kometa_like_session(proxy)
        proxy.stop()
        costs.append(upstream_cost(server))
    (requests_small, bytes_small), (requests_large, bytes_large) = costs
    assert requests_small == requests_large < 40
    # The one answer that knows the library size is the <Meta> lookup: its totalSize="50" becomes "5000".
    assert bytes_large - bytes_small == len("5000") - len("50")
