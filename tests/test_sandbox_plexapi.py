"""The sample Plex Media Server, driven by the real plexapi client the way Kometa drives Plex.

Expected search results are computed here from the generated library with plain comprehensions,
not with the server's own evaluator, so a wrong evaluator fails these tests.
"""
from __future__ import annotations

import io

import pytest
from conftest import TOKEN
from PIL import Image
from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer


def movies_of(server):
    return [i for i in server.library.items.values() if i.type == "movie"]


def keys(items) -> set[int]:
    return {int(i.ratingKey) if hasattr(i, "ratingKey") else i.rating_key for i in items}


def test_sections_are_movies_and_tv_with_sync_allowed(plex):
    sections = plex.library.sections()
    assert [(s.key, s.title, s.type) for s in sections] == [(1, "Movies", "movie"), (2, "TV Shows", "show")]
    assert all(s.allowSync for s in sections)
    assert plex.library.section("Movies").settings()  # Kometa reads ratingsSource from here


def test_all_crosses_page_boundaries_with_headers(sample_plex_factory):
    server = sample_plex_factory(movies=250)
    plex = PlexServer(server.url, TOKEN)
    server.log.clear()
    movies = plex.library.section("Movies").all()
    assert len(movies) == 250 and keys(movies) == keys(movies_of(server))
    pages = [e for e in server.log.entries if e.path == "/library/sections/1/all"]
    assert len(pages) == 3  # 100 + 100 + 50: totalSize is right on every page


def test_total_view_size_pages_by_query_parameters(sample_plex_factory):
    server = sample_plex_factory(movies=123)
    assert PlexServer(server.url, TOKEN).library.section("Movies").totalViewSize() == 123


@pytest.mark.parametrize("filters, expect", [
    ({"resolution": "4k"}, lambda m: any(x.resolution == "4k" for x in m.media)),
    ({"or": [{"resolution": "480"}, {"resolution": "sd"}]},
     lambda m: any(x.resolution in ("480", "sd") for x in m.media)),
    ({"and": [{"or": [{"resolution": "4k"}, {"resolution": "1080"}]}, {"hdr": True}]},
     lambda m: any(x.resolution in ("4k", "1080") for x in m.media) and any(x.hdr for x in m.media)),
    ({"year>>": 2000, "year<<": 2010}, lambda m: 2000 < m.year < 2010),
    ({"contentRating!": "R"}, lambda m: m.content_rating != "R"),
    ({"genre": ["Comedy", "Horror"]}, lambda m: bool({"Comedy", "Horror"} & set(m.genres))),
    ({"audioCodec": "truehd"}, lambda m: any(x.audio_codec == "truehd" for x in m.media)),
    ({"editionTitle": "cut"}, lambda m: "cut" in m.edition.lower()),
    ({"title<": "the "}, lambda m: m.title.lower().startswith("the ")),
    ({"dovi": True}, lambda m: any(x.dovi for x in m.media)),
])
def test_advanced_filters_match_the_generated_data(sample_plex_factory, filters, expect):
    server = sample_plex_factory(movies=300)
    section = PlexServer(server.url, TOKEN).library.section("Movies")
    found = section.search(filters=filters)
    expected = {m.rating_key for m in movies_of(server) if expect(m)}
    assert expected, "the generated library should exercise this filter"
    assert keys(found) == expected


def test_raw_kometa_listing_with_push_pop_groups(sample_plex_factory):
    server = sample_plex_factory(movies=200)
    import requests
    raw = "type=1&sort=titleSort&push=1&resolution=480&or=1&resolution=sd&pop=1&and=1&hdr=0"
    response = requests.get(f"{server.url}/library/sections/1/all?{raw}", headers={"X-Plex-Token": TOKEN})
    import xml.etree.ElementTree as ET
    got = [int(v.get("ratingKey")) for v in ET.fromstring(response.content)]
    expected = sorted((m for m in movies_of(server)
                       if any(x.resolution in ("480", "sd") for x in m.media) and not any(x.hdr for x in m.media)),
                      key=lambda m: (m.title_sort, m.rating_key))
    assert got == [m.rating_key for m in expected]


def test_exact_title_and_collection_type(plex, sample_plex):
    section = plex.library.section("Movies")
    first = movies_of(sample_plex)[0]
    assert [m.title for m in section.search(**{"title=": first.title})] == [first.title]
    assert section.search(title=first.title, libtype="collection") == []


def test_unsupported_filter_field_answers_400(sample_plex):
    import requests
    response = requests.get(f"{sample_plex.url}/library/sections/1/all?audienceRating>>=5",
                            headers={"X-Plex-Token": TOKEN})
    assert response.status_code == 400


def test_items_seasons_episodes_and_parents(plex, sample_plex):
    show = plex.library.section("TV Shows").all()[0]
    seasons = show.seasons()
    assert [s.index for s in seasons] == [1, 2]
    episode = seasons[1].episodes()[0]
    assert episode.show().ratingKey == show.ratingKey and episode.season().ratingKey == seasons[1].ratingKey
    assert len(show.episodes()) == 6
    movie = plex.fetchItem(1001)
    movie.reload()
    assert movie.librarySectionID == 1 and movie.guids and movie.media[0].videoResolution


def test_missing_item_is_not_found(plex):
    with pytest.raises(NotFound):
        plex.fetchItem(999999)


def test_posters_are_real_images_with_exact_content_types(plex, sample_plex):
    import requests
    types = set()
    for rating_key in (1001, 1002, 1003):
        item = plex.fetchItem(rating_key)
        assert item.posters()
        response = requests.get(item.posterUrl)
        types.add(response.headers["Content-Type"])
        Image.open(io.BytesIO(response.content)).verify()
    assert types == {"image/jpeg", "image/png"}
    first, second = (requests.get(plex.fetchItem(k).posterUrl).content for k in (1001, 1002))
    assert first != second


def test_upload_poster_is_served_afterwards_and_logged_as_a_write(plex, sample_plex, tmp_path):
    new = tmp_path / "new.png"
    Image.new("RGB", (50, 75), (1, 2, 3)).save(new)
    item = plex.fetchItem(1004)
    sample_plex.log.clear()
    item.uploadPoster(filepath=str(new))
    import requests
    assert requests.get(plex.fetchItem(1004).posterUrl).content == new.read_bytes()
    writes = sample_plex.log.changes()
    assert [(w.method, w.path) for w in writes] == [("POST", "/library/metadata/1004/posters")]


def test_add_label_changes_labels_and_is_logged(plex, sample_plex):
    item = plex.fetchItem(1005)
    item.addLabel("Overlay")
    assert [label.tag for label in plex.fetchItem(1005).labels] == ["Overlay"]
    assert keys(plex.library.section("Movies").search(label="Overlay")) == {1005}
    assert any(w.method == "PUT" and w.path == "/library/sections/1/all" for w in sample_plex.log.changes())
    item.removeLabel("Overlay")
    assert plex.fetchItem(1005).labels == []


def test_scrobble_is_flagged_as_side_effecting_get(plex, sample_plex):
    plex.fetchItem(1006).markPlayed()
    flagged = sample_plex.log.changes()
    assert [(e.method, e.path, e.side_effect) for e in flagged] == [("GET", "/:/scrobble", True)]


def test_wrong_token_is_unauthorized(sample_plex):
    with pytest.raises(Unauthorized):
        PlexServer(sample_plex.url, "wrong-token")


def test_hub_search_and_library_search(plex, sample_plex):
    first = movies_of(sample_plex)[0]
    assert first.rating_key in keys(plex.search(first.title))
    assert first.rating_key in keys(plex.library.search(title=first.title, libtype="movie"))


def test_bad_request_on_unknown_type(sample_plex):
    import requests
    response = requests.get(f"{sample_plex.url}/library/sections/1/all?type=99", headers={"X-Plex-Token": TOKEN})
    assert response.status_code == 400
    with pytest.raises(BadRequest):
        PlexServer(sample_plex.url, TOKEN).query("/library/sections/1/all?type=99")
