"""The preview proxy as Kometa meets it: a real mitmdump child in front of the sample Plex server,
driven by the real plexapi client. What reached the sample server is read from its request log."""
from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import requests
from conftest import TOKEN, movie_targets, write_preview_yml
from PIL import Image
from plexapi.exceptions import NotFound, Unauthorized
from plexapi.server import PlexServer

from kometa_preview.common.config import load
from kometa_preview.common.events import read as read_journal
from kometa_preview.common.job import JobLayout
from kometa_preview.run.proxy_child import start_proxy
from kometa_preview.sandbox import SampleServer, generate

pytestmark = pytest.mark.e2e


def keys(items) -> set[int]:
    return {int(item.ratingKey) for item in items}


def raw_get(proxy, path: str, **headers) -> requests.Response:
    return requests.get(proxy.url + path, headers={"X-Plex-Token": proxy.client_token, **headers}, timeout=30)


def listed(response: requests.Response) -> list[int]:
    return [int(child.get("ratingKey")) for child in ET.fromstring(response.content) if child.get("ratingKey")]


TARGETS = movie_targets([1003, 1010, 1027]) + [{"id": "show", "type": "show", "ratingKey": "500001"},
                                               {"id": "episode", "type": "episode", "ratingKey": "500008"}]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One sample server and one proxy for this module's read-only tests: none of them changes what another reads
    (each clears the server's request log before looking at it)."""
    server = SampleServer(generate(movies=60, shows=2), TOKEN).start()
    folder = tmp_path_factory.mktemp("shared")
    proxy = start_proxy(load(write_preview_yml(folder, server.url, TARGETS)).for_proxy(), JobLayout(folder / "job"))
    yield server, proxy, PlexServer(proxy.url, proxy.client_token)
    proxy.stop()
    server.stop()


@pytest.fixture
def setup(sample_plex_factory, proxy_factory):
    """A proxy of its own, for tests that write (their captures and journal lines are theirs alone)."""
    server = sample_plex_factory(movies=60, shows=2)
    proxy = proxy_factory(server, TARGETS)
    return server, proxy, PlexServer(proxy.url, proxy.client_token)


def test_sections_mirror_the_real_ones(shared):
    server, proxy, plex = shared
    real = {s.key: s for s in PlexServer(server.url, TOKEN).library.sections()}
    for section in plex.library.sections():
        assert (section.title, section.type, section.uuid) == (real[section.key].title, real[section.key].type,
                                                               real[section.key].uuid)
        assert section.allowSync


def test_listings_hold_only_targets(shared):
    server, proxy, plex = shared
    assert keys(plex.library.section("Movies").all()) == {1003, 1010, 1027}
    tv = plex.library.section("TV Shows")
    assert keys(tv.all()) == {500001}
    assert keys(tv.search(libtype="episode")) == {500008}
    assert keys(tv.search(libtype="season")) == set()
    assert keys(plex.library.search(libtype="movie")) == {1003, 1010, 1027}


def test_collection_lookup_by_title_finds_nothing(shared):
    server, proxy, plex = shared
    response = raw_get(proxy, "/library/sections/1/all?includeGuids=1&title=4K&type=18")
    assert response.status_code == 200 and listed(response) == []


def test_metadata_of_other_keys_is_empty_and_never_reaches_plex(shared):
    server, proxy, plex = shared
    server.log.clear()
    with pytest.raises(NotFound):
        plex.fetchItem(1004)
    assert listed(raw_get(proxy, "/library/metadata/1003,1004")) == [1003]
    assert not any("1004" in entry.path for entry in server.log.snapshot())


def test_episode_parents_are_learned_and_forwarded(shared):
    server, proxy, plex = shared
    episode = plex.fetchItem(500008)
    assert episode.show().ratingKey == 500001 and episode.season().ratingKey == episode.parentRatingKey
    records = read_journal(proxy.layout.journal)
    learned = {r["rating_key"] for r in records if r["event"] == "LEARNED_PARENT"}
    assert str(episode.parentRatingKey) in learned


@pytest.mark.parametrize("count", [1, 100, 250])
def test_paging_is_right_at_any_number_of_targets(sample_plex_factory, proxy_factory, count):
    server = sample_plex_factory(movies=260, shows=0)
    proxy = proxy_factory(server, movie_targets(range(1001, 1001 + count)))
    movies = PlexServer(proxy.url, proxy.client_token).library.section("Movies").all()
    assert len(movies) == count and keys(movies) == set(range(1001, 1001 + count))
    page = raw_get(proxy, "/library/sections/1/all?type=1", **{"X-Plex-Container-Start": "100",
                                                               "X-Plex-Container-Size": "100"})
    root = ET.fromstring(page.content)
    assert root.get("offset") == "100" and root.get("totalSize") == str(count)
    assert len(listed(page)) == max(0, min(100, count - 100))
    by_query = raw_get(proxy, "/library/sections/1/all?X-Plex-Container-Start=0&X-Plex-Container-Size=0")
    assert ET.fromstring(by_query.content).get("totalSize") == str(count)


def _png(color) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (60, 90), color).save(buffer, format="PNG")
    return buffer.getvalue()


SIDE_EFFECT_GETS = ["/:/scrobble?key=1003&identifier=com.plexapp.plugins.library",
                    "/:/unscrobble?key=1003&identifier=com.plexapp.plugins.library",
                    "/:/timeline?ratingKey=1003&state=playing&time=1000",
                    "/:/rate?key=1003&rating=10", "/library/sections/1/refresh", "/library/sections/1/refresh?force=1",
                    "/butler/BackupDatabase", "/updater/apply", "/library/optimize", "/library/clean/bundles",
                    "/library/sections/1/emptyTrash", "/playQueues?type=video&uri=x"]


def test_writes_and_side_effects_never_reach_plex(setup, tmp_path, evidence):
    server, proxy, plex = setup
    movie = plex.fetchItem(1003)
    server.log.clear()
    raw_poster = tmp_path / "raw.png"
    raw_poster.write_bytes(_png((200, 10, 10)))
    movie.uploadPoster(filepath=str(raw_poster))            # Kometa's upload: raw body, no Content-Type
    multipart = _png((10, 200, 10))
    response = requests.post(f"{proxy.url}/library/metadata/1010/arts", headers={"X-Plex-Token": proxy.client_token},
                             files={"file": ("art.png", multipart, "image/png")})
    assert response.status_code == 200
    movie.addLabel("Overlay")                              # PUT on a listing path
    movie.lockPoster()
    movie.editTitle("Changed")
    movie.uploadPoster(url="https://example.invalid/p.jpg")
    for path in SIDE_EFFECT_GETS:
        assert raw_get(proxy, path).status_code == 200, path
    for method in ("DELETE", "PATCH", "PROPFIND", "MKCOL", "put"):
        assert requests.request(method, f"{proxy.url}/library/metadata/1003",
                                headers={"X-Plex-Token": proxy.client_token}).status_code == 200
    override = raw_get(proxy, "/library/metadata/1003", **{"X-HTTP-Method-Override": "DELETE"})
    assert override.status_code == 200 and listed(override) == []
    assert server.log.changes() == []
    captured = sorted((proxy.layout.by_ratingkey).iterdir())
    assert [p.name.split("_")[:2] for p in captured] == [["1003", "poster"], ["1010", "art"]]
    assert captured[0].read_bytes() == raw_poster.read_bytes() and captured[1].read_bytes() == multipart
    events = [r["event"] for r in read_journal(proxy.layout.journal)]
    assert events.count("CAPTURED_UPLOAD") == 2 and events.count("BLOCKED_SIDE_EFFECT") == len(SIDE_EFFECT_GETS)
    evidence("Nothing reaches Plex", "plexapi uploadPoster (raw body), a multipart upload, addLabel, lockPoster, editTitle, uploadPoster(url=), DELETE/PATCH/PROPFIND/MKCOL/lowercase put, a method-override GET, and 12 side-effecting GETs (scrobble, timeline, refresh, butler, updater…)", len(SIDE_EFFECT_GETS) + 12, "all answered 200 by the proxy; 0 writes and 0 side-effecting GETs at the sample server; captures byte-identical")


def test_clients_without_the_job_token_are_refused(shared, evidence):
    server, proxy, plex = shared
    with pytest.raises(Unauthorized):
        PlexServer(proxy.url, "not-the-job-token")
    with pytest.raises(Unauthorized):  # not even Plex's own token opens the proxy
        PlexServer(proxy.url, TOKEN)
    assert requests.put(f"{proxy.url}/library/sections/1/all?id=1003&title.value=x").status_code == 401
    assert server.log.changes() == []
    evidence("Secrets", "clients with no token, a wrong token, and Plex's own token", 3, "401 from the proxy every time; nothing forwarded")


def test_no_token_in_journal_logs_or_saved_flows(sample_plex_factory, proxy_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=1)
    flows = tmp_path / "flows.mitm"
    proxy = proxy_factory(server, movie_targets([1002]), save_flows=flows)
    plex = PlexServer(proxy.url, proxy.client_token)
    item = plex.fetchItem(1002)
    requests.get(item.posterUrl, timeout=10)
    assert requests.get(plex.transcodeImage(item.thumbUrl, 100, 150), timeout=10).status_code == 200
    item.addLabel("Overlay")
    plex.library.section("Movies").search(resolution="4k")
    proxy.stop()
    scanned = [flows, *(p for p in proxy.layout.root.rglob("*") if p.is_file() and p.name != "proxy_ready.json")]
    assert flows.stat().st_size > 1000 and len(scanned) > 3
    assert b"transcode" in flows.read_bytes()  # the flow that nests a token in url= was saved
    for path in scanned:
        content = path.read_bytes()
        assert TOKEN.encode() not in content, path
        assert proxy.client_token.encode() not in content, path
    evidence("Secrets", "Plex token and job token searched in a saved mitmproxy flow file (-w) and every job file after reads, a transcode (token nested in url=), a label edit and a search", len(scanned), "found nowhere")


def test_poster_download_of_a_target_is_kept_as_before_image(shared):
    server, proxy, plex = shared
    item = plex.fetchItem(1027)
    response = requests.get(item.posterUrl, timeout=10)
    assert response.headers["Content-Type"] in ("image/jpeg", "image/png")
    real = requests.get(PlexServer(server.url, TOKEN).fetchItem(1027).posterUrl, timeout=10).content
    assert response.content == real
    before = list((proxy.layout.output / "before").iterdir())
    assert [p.stem for p in before] == ["1027"] and before[0].read_bytes() == real


def test_filter_mode_strips_everything_but_targets(sample_plex_factory, proxy_factory):
    server = sample_plex_factory(movies=250, shows=1)
    proxy = proxy_factory(server, movie_targets([1005, 1200]), mock=False)
    plex = PlexServer(proxy.url, proxy.client_token)
    assert keys(plex.library.section("Movies").all()) == {1005, 1200}
    records = [r for r in read_journal(proxy.layout.journal) if r["event"] == "FILTER_LIST"]
    assert records and records[0]["items_before"] == 250 and records[0]["items_after"] == 2


def test_unparseable_upload_is_kept_for_debugging_and_url_uploads_are_recorded(setup):
    server, proxy, plex = setup
    junk = b"\xff\xd8\xff\xe0 truncated jpeg" + b"x" * 100
    response = requests.post(f"{proxy.url}/library/metadata/1003/posters", data=junk,
                             headers={"X-Plex-Token": proxy.client_token})
    assert response.status_code == 200
    plex.fetchItem(1010).uploadPoster(url="https://image.example/poster.jpg")
    kept = list((proxy.layout.output / "captured_requests").iterdir())
    assert [p.name.split("_")[:2] for p in kept] == [["1003", "poster"]] and kept[0].read_bytes() == junk
    assert not (proxy.layout.by_ratingkey).exists()
    records = read_journal(proxy.layout.journal)
    assert any(r["event"] == "CAPTURE_PARSE_ERROR" and r["rating_key"] == "1003" for r in records)
    assert any(r["event"] == "BLOCKED_WRITE" and r.get("url") == "https://image.example/poster.jpg" for r in records)
    assert server.log.changes() == []


@pytest.mark.parametrize("body", [b"<html>Plex is busy</html>", b'<MediaContainer size="2"><Video ratingKey="1001"'])
def test_filter_mode_passes_a_non_xml_listing_through_with_a_warning(sample_plex_factory, proxy_factory, monkeypatch,
                                                                    body):
    from kometa_preview.sandbox import server as sandbox_server
    server = sample_plex_factory(movies=30, shows=0)
    proxy = proxy_factory(server, movie_targets([1001]), mock=False)
    monkeypatch.setattr(sandbox_server._Handler, "_listing", lambda self, *args, **kwargs: (200, body, "text/html"))
    response = raw_get(proxy, "/library/sections/1/all?type=1")
    assert response.status_code == 200 and response.content == body
    records = read_journal(proxy.layout.journal)
    assert any(r["event"] == "FILTER_PARSE_ERROR" for r in records)
    assert "FILTER_PARSE_ERROR endpoint=/library/sections/1/all" in proxy.log_path.read_text()
