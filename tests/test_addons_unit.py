"""Each addon on its own, through mitmproxy's `taddons` test context, with a state prefetched from
the sample Plex server. Tables of requests and the verdict each must get."""
from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest
from conftest import movie_targets, write_preview_yml
from mitmproxy import http
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons, tflow, tutils

from kometa_preview.common.config import load
from kometa_preview.plex.client import Upstream
from kometa_preview.proxy import chain, journal
from kometa_preview.proxy.flows import META_KEY, Proxy
from kometa_preview.proxy.mock_library import MockLibrary
from kometa_preview.proxy.read_only import ReadOnlyRoutes
from kometa_preview.proxy.setup import Setup
from kometa_preview.proxy.state import PreviewState, prefetch
from kometa_preview.proxy.token_guard import TokenGuard
from kometa_preview.proxy.write_block import WriteBlock


@pytest.fixture
def proxy(sample_plex, tmp_path) -> Proxy:
    config = load(write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001, 1002])))
    state = PreviewState(config=config.for_proxy(), job=tmp_path / "job", mock=True,
                         upstream=Upstream(config.plex.url, config.plex.token),
                         journal=journal.Journal(tmp_path / "job" / "journal.jsonl"), client_token="job-token")
    proxy = Proxy(state=state)
    prefetch(state, proxy)
    return proxy


def flow(method: str, path: str, body: bytes = b"", **headers: str) -> http.HTTPFlow:
    request = tutils.treq(method=method.encode(), path=path.encode(), content=body)
    request.headers.clear()
    for name, value in headers.items():
        request.headers[name.replace("_", "-")] = value
    return tflow.tflow(req=request)


def call(addon, hook: str, f: http.HTTPFlow) -> http.HTTPFlow:
    async def run():
        with taddons.context(Setup(Proxy()), addon):
            result = getattr(addon, hook)(f)
            if inspect.isawaitable(result):
                await result
    asyncio.run(run())
    return f


def verdict(f: http.HTTPFlow) -> str | None:
    return f.metadata.get(META_KEY, {}).get("verdict")


WRITES = [
    ("PUT", "/library/sections/1/all?id=1001&label%5B0%5D.tag.tag=Overlay&type=1", "BLOCKED_WRITE"),
    ("POST", "/library/metadata/1001/posters", "BLOCKED_WRITE"),
    ("DELETE", "/library/metadata/1001", "BLOCKED_WRITE"),
    ("PATCH", "/library/metadata/1001", "BLOCKED_WRITE"),
    ("PROPFIND", "/", "BLOCKED_WRITE"),
    ("GET", "/:/scrobble?key=1001", "BLOCKED_SIDE_EFFECT"),
    ("GET", "/library/sections/1/refresh", "BLOCKED_SIDE_EFFECT"),
    ("GET", "/some/new/endpoint", "BLOCKED_UNKNOWN"),
    ("GET", "/library/metadata/1001/../1003", "BLOCKED_UNKNOWN"),
    ("GET", "/library/metadata/1001", None),
    ("HEAD", "/library/sections/1/all", None),
]


@pytest.mark.parametrize("method, path, expected", WRITES)
def test_write_block_verdicts(proxy, method, path, expected):
    f = call(WriteBlock(proxy), "request", flow(method, path))
    assert verdict(f) == expected
    if expected:
        assert f.response.status_code == 200 and f.response.content.startswith(b"<?xml")


def test_write_block_answers_even_when_capture_breaks(proxy, monkeypatch):
    from kometa_preview.proxy import capture

    def broken(*_):
        raise OSError("disk full")
    monkeypatch.setattr(capture, "find_image", broken)
    f = call(WriteBlock(proxy), "request", flow("POST", "/library/metadata/1001/posters", b"\xff\xd8\xffdata"))
    assert (f.response.status_code, verdict(f)) == (200, "BLOCKED_WRITE")


def test_override_header_turns_a_get_into_a_blocked_write(proxy):
    f = call(WriteBlock(proxy), "request", flow("GET", "/library/metadata/1001", X_HTTP_Method_Override="DELETE"))
    assert verdict(f) == "BLOCKED_WRITE"


def test_oversized_body_is_refused_from_its_headers(proxy):
    proxy.state.max_upload = 1000
    f = call(WriteBlock(proxy), "requestheaders", flow("POST", "/library/metadata/1001/posters", Content_Length="5000"))
    assert (f.response.status_code, verdict(f)) == (413, "UPLOAD_TOO_LARGE")


@pytest.mark.parametrize("headers, path, allowed", [
    ({}, "/library/sections", False),
    ({"X_Plex_Token": "nope"}, "/library/sections", False),
    ({"X_Plex_Token": "job-token"}, "/library/sections", True),
    ({}, "/library/sections?X-Plex-Token=job-token", True),
    ({"X_Plex_Token": "job-token"}, "/library/sections?X-Plex-Token=other", False),
])
def test_token_guard(proxy, headers, path, allowed):
    f = call(TokenGuard(proxy), "requestheaders", flow("GET", path, **headers))
    assert (f.response is None) == allowed
    if allowed:
        assert "X-Plex-Token" not in f.request.headers and "X-Plex-Token" not in f.request.query
    else:
        assert f.response.status_code == 401


def test_token_guard_scrubs_a_token_nested_in_url(proxy):
    nested = "/photo/:/transcode?url=http%3A%2F%2F127.0.0.1%3A1%2Flibrary%2Fmetadata%2F1%2Fthumb%2F2%3FX-Plex-Token%3Djob-token&width=5"
    f = call(TokenGuard(proxy), "requestheaders", flow("GET", nested, X_Plex_Token="job-token"))
    assert f.response is None and "job-token" not in f.request.path
    assert f.request.query["url"] == "http://127.0.0.1:1/library/metadata/1/thumb/2"


def test_every_addon_leaves_an_answered_flow_alone(proxy):
    for addon in chain.build()[2:]:
        addon.proxy = proxy
        f = flow("PUT", "/library/metadata/1001")
        f.response = http.Response.make(299, b"already")
        for hook in ("requestheaders", "request"):
            if hasattr(addon, hook):
                call(addon, hook, f)
        assert f.response.status_code == 299, type(addon).__name__


def test_mock_library_fails_closed_when_it_breaks(proxy, monkeypatch):
    from kometa_preview.plex import filters

    def broken(*_):
        raise RuntimeError("bug")
    monkeypatch.setattr(filters, "select", broken)
    f = call(MockLibrary(proxy), "request", flow("GET", "/library/sections/1/all?type=1"))
    assert (f.response.status_code, verdict(f)) == (502, "PROXY_ERROR")


def test_mock_listing_and_type_18(proxy):
    f = call(MockLibrary(proxy), "request", flow("GET", "/library/sections/1/all?type=1"))
    assert verdict(f) == "MOCK_LIST" and f.response.content.count(b"<Video ") == 2
    f = call(MockLibrary(proxy), "request", flow("GET", "/library/sections/1/all?type=18&title=x"))
    assert verdict(f) == "MOCK_LIST" and b"<Video " not in f.response.content


def test_mock_mode_never_guesses_a_sort_it_cannot_evaluate(proxy, sample_plex):
    """`sort=random` is not evaluated locally: Plex is asked, its order kept, and the fallback recorded."""
    for direction, order in (("desc", [b"1002", b"1001"]), ("asc", [b"1001", b"1002"])):
        sample_plex.log.clear()
        f = call(MockLibrary(proxy), "request", flow("GET", f"/library/sections/1/all?type=1&sort=random:{direction}"))
        keys = [part.split(b'"')[0] for part in f.response.content.split(b'<Video ratingKey="')[1:]]
        assert (verdict(f), keys) == ("MOCK_LIST", order)
        assert [e.path for e in sample_plex.log.snapshot()] == ["/library/sections/1/all"]
        assert f.metadata["preview.upstream"] == 1
    fallbacks = [line for line in proxy.state.journal.path.read_text().splitlines() if '"FILTER_FALLBACK"' in line]
    assert len(fallbacks) == 2 and "sort random:desc" in fallbacks[0]


def test_every_verdict_is_marked_for_mitmweb(proxy):
    f = call(WriteBlock(proxy), "request", flow("PUT", "/library/metadata/1001?title.value=x"))
    assert f.marked == ":no_entry:"
    f = call(MockLibrary(proxy), "request", flow("GET", "/library/sections/1/all?type=1"))
    assert f.marked == ":house:"


def test_read_only_routes_answers_what_nobody_claimed(proxy):
    f = call(ReadOnlyRoutes(proxy), "request", flow("GET", "/library/metadata/1001"))
    assert (verdict(f), f.response.status_code) == ("UNCLAIMED", 200)


def test_unconfigured_proxy_answers_503():
    f = call(TokenGuard(Proxy()), "requestheaders", flow("GET", "/library/sections", X_Plex_Token="x"))
    assert f.response.status_code == 503


def test_setup_refuses_bad_options(sample_plex, tmp_path):
    setup = Setup(Proxy())
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))

    async def run():
        with taddons.context(setup) as tctx:
            with pytest.raises(OptionsError, match="bind it to 127.0.0.1"):
                tctx.configure(setup, mode=["reverse:http://127.0.0.1:1@0.0.0.0:0"])
            with pytest.raises(OptionsError, match="missing.yml: file not found"):
                tctx.configure(setup, preview_config=str(tmp_path / "missing.yml"))
            broken = tmp_path / "preview.yml"
            broken.write_text(config.read_text().replace(sample_plex.url, "ftp://x"))
            with pytest.raises(OptionsError, match="plex.url"):
                tctx.configure(setup, preview_config=str(broken), preview_job=str(tmp_path / "job"))
    asyncio.run(run())


def test_setup_refuses_a_plex_that_refuses_the_token(sample_plex, tmp_path):
    setup = Setup(Proxy())
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    config.write_text(config.read_text().replace("sample-plex-token-0123456789", "wrong"))

    async def run():
        with taddons.context(setup) as tctx:
            with pytest.raises(OptionsError, match="refused the token"):
                tctx.configure(setup, preview_config=str(config), preview_job=str(tmp_path / "job"))
    asyncio.run(run())
    assert '"ok": false' in (tmp_path / "job" / "proxy_ready.json").read_text()
    assert Path(tmp_path / "job" / "proxy_journal.jsonl").exists()


OUTSIDE = [
    ("GET", "https://raw.githubusercontent.com/Kometa-Team/Kometa/master/VERSION", False, "OUTSIDE_PASS", None),
    ("GET", "https://raw.githubusercontent.com/Kometa-Team/Kometa/master/VERSION", True, "OFFLINE_VERSION", 200),
    ("GET", "https://api.themoviedb.org/3/configuration?api_key=k", True, "OFFLINE_TMDB_CONFIGURATION", 200),
    ("GET", "https://raw.githubusercontent.com/Kometa-Team/Anime-IDs/master/anime_ids.json", True,
     "OFFLINE_ANIME_IDS", 200),
    ("GET", "https://api.themoviedb.org/3/movie/603?api_key=k", True, "OUTSIDE_REFUSED_OFFLINE", 404),
    ("POST", "https://discord.com/api/webhooks/1/x", False, "OUTSIDE_REFUSED_HOST", 403),
    ("POST", "https://api.trakt.tv/sync/history", True, "OUTSIDE_REFUSED_WRITE", 403),
    ("POST", "https://api.trakt.tv/oauth/token", False, "OUTSIDE_REFUSED_WRITE", 403),
    ("GET", "http://127.0.0.1:1/library/metadata/1001", False, "OUTSIDE_REFUSED_PLEX", 403),
    ("PUT", "http://127.0.0.1:1/library/sections/1/all?title.value=x", False, "OUTSIDE_REFUSED_PLEX", 403),
    ("GET", "http://localhost:1/:/scrobble?key=1001", False, "OUTSIDE_REFUSED_HOST", 403),
    ("GET", "http://127.1:1/library/sections/1/refresh", False, "OUTSIDE_REFUSED_PLEX", 403),
    ("GET", "http://2130706433:1/:/scrobble", False, "OUTSIDE_REFUSED_PLEX", 403),
    ("GET", "http://0.0.0.0:1/:/scrobble", False, "OUTSIDE_REFUSED_ADDRESS", 403),
    ("GET", "http://169.254.169.254/latest/meta-data", False, "OUTSIDE_REFUSED_ADDRESS", 403),
    ("GET", "https://example.com/hook", False, "OUTSIDE_REFUSED_HOST", 403),
]


@pytest.mark.parametrize("method, url, offline, expected, status", OUTSIDE)
def test_outside_calls(proxy, method, url, offline, expected, status):
    from urllib.parse import urlsplit

    from kometa_preview.proxy.outside_calls import OutsideCalls
    addon = OutsideCalls(proxy)
    parts = urlsplit(proxy.state.config.plex.url)
    url = url.replace("127.0.0.1:1", parts.netloc)
    split = urlsplit(url)
    f = tflow.tflow(req=tutils.treq(method=method.encode(), scheme=split.scheme.encode(), host=split.hostname,
                                    port=split.port or (443 if split.scheme == "https" else 80),
                                    path=(split.path + (f"?{split.query}" if split.query else "")).encode()))

    async def run():
        with taddons.context(Setup(Proxy()), addon) as tctx:
            tctx.configure(addon, preview_outside=True, preview_offline=offline)
            addon.requestheaders(f)
    asyncio.run(run())
    assert verdict(f) == expected
    assert (f.response.status_code if f.response else None) == status
    if expected == "OFFLINE_TMDB_CONFIGURATION":
        assert "secure_base_url" in f.response.json()["images"]
    for addon_class in (TokenGuard, WriteBlock, ReadOnlyRoutes):  # Plex addons leave outside calls alone
        if f.response is None:
            break
        before = f.response
        call(addon_class(proxy), "requestheaders" if addon_class is TokenGuard else "request", f)
        assert f.response is before


def test_outside_calls_judge_where_the_connection_goes_not_the_host_header(proxy):
    """An absolute-form request naming Plex's address with a harmless Host header is Plex's, not TMDb's."""
    from urllib.parse import urlsplit

    from kometa_preview.proxy.outside_calls import OutsideCalls
    addon = OutsideCalls(proxy)
    plex = urlsplit(proxy.state.config.plex.url)
    f = tflow.tflow(req=tutils.treq(method=b"GET", scheme=b"http", host=plex.hostname, port=plex.port,
                                    path=b"/:/scrobble?key=1001"))
    f.request.headers["Host"] = "api.themoviedb.org"

    async def run():
        with taddons.context(Setup(Proxy()), addon) as tctx:
            tctx.configure(addon, preview_outside=True)
            addon.requestheaders(f)
    asyncio.run(run())
    assert verdict(f) == "OUTSIDE_REFUSED_PLEX" and f.response.status_code == 403


@pytest.mark.parametrize("body, expected", [
    (b'{"query": "query { title(id: \\"tt0133093\\") { ratingsSummary { aggregateRating } } }"}', "OUTSIDE_PASS"),
    (b'{"query": "mutation { addToWatchlist(id: \\"tt1\\") }"}', "OUTSIDE_REFUSED_WRITE"),
    (b'not json', "OUTSIDE_REFUSED_WRITE"),
])
def test_imdb_graphql_posts_pass_only_as_read_queries(proxy, body, expected):
    from kometa_preview.proxy.outside_calls import OutsideCalls
    addon = OutsideCalls(proxy)
    f = tflow.tflow(req=tutils.treq(method=b"POST", scheme=b"https", host="api.graphql.imdb.com", port=443,
                                    path=b"/", content=body))

    async def run():
        with taddons.context(Setup(Proxy()), addon) as tctx:
            tctx.configure(addon, preview_outside=True)
            addon.requestheaders(f)
            assert f.response is None  # judged with its body, in `request`
            addon.request(f)
    asyncio.run(run())
    assert verdict(f) == expected


@pytest.mark.parametrize("path", ["/:/scrobble?key=1001", "/library/metadata/1001/refresh",
                                  "/library/sections/1/refresh", "/library/metadata/1001/../1002", "/accounts"])
def test_fetch_refuses_to_send_anything_but_a_read_whatever_the_client_asked(proxy, path):
    from kometa_preview.plex.routes import classify
    read = classify("GET", "/library/metadata/1001")
    with pytest.raises(PermissionError):
        asyncio.run(proxy.fetch(tflow.tflow(), read, path))


def test_fetch_sends_only_the_parameters_known_for_the_route(proxy, sample_plex):
    from kometa_preview.plex.routes import classify
    sample_plex.log.clear()
    read = classify("GET", "/library/metadata/1001")
    response = asyncio.run(proxy.fetch(tflow.tflow(), read, "/library/metadata/1001?includeGuids=1&_method=DELETE&url=%2Fx"))
    assert response.status == 200
    assert [(e.path, e.query) for e in sample_plex.log.snapshot()] == [("/library/metadata/1001", "includeGuids=1")]
