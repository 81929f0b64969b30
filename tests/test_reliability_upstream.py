"""A hostile Plex: entity bombs, external entities, a 200 MB listing, slow-loris, gzip bombs, non-XML and
HTML answers, 401/500. The proxy must stay within its memory bound, answer something plexapi handles,
and record why."""
from __future__ import annotations

import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree.ElementTree import ParseError

import pytest
import requests
from conftest import TOKEN, movie_targets
from plexapi.exceptions import BadRequest, NotFound, Unauthorized
from plexapi.server import PlexServer

from kometa_preview.common.events import read as read_journal

pytestmark = pytest.mark.e2e

MEMORY_BOUND_MIB = 300
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa">' +
          b"".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">'.encode() for n in range(8)) +
          b']><MediaContainer size="1"><Video ratingKey="1001" title="&i;"/></MediaContainer>')
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            b'<MediaContainer size="1"><Video ratingKey="1001" title="&e;"/></MediaContainer>')


def _gzip_bomb(decoded_mib: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(decoded_mib)) + compressor.flush()


class Hostile:
    """Forwards to the sample server until `scenario` is set; then answers `path_prefix` with it."""

    def __init__(self, sample, path_prefix: str) -> None:
        self.sample, self.path_prefix, self.scenario = sample, path_prefix, None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if outer.scenario and self.path.startswith(outer.path_prefix):
                    return outer.scenario(self)
                answer = requests.get(outer.sample.url + self.path, headers={"X-Plex-Token": TOKEN}, timeout=30)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "text/xml"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def body(status: int, payload: bytes, content_type: str = "text/xml", **headers):
    def answer(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(payload)
    return answer


def huge_listing(megabytes: int):
    def answer(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "text/xml")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        item = b'<Video ratingKey="%d" type="movie" title="%s"><Media videoResolution="1080"/></Video>'

        def chunk(data: bytes) -> None:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        chunk(b'<MediaContainer size="0" totalSize="0">')
        sent, key = 0, 5000
        block = b"x" * 900
        try:
            while sent < megabytes << 20:
                data = b"".join(item % (key + n, block) for n in range(500))
                chunk(data)
                sent += len(data)
                key += 500
            chunk(item % (1001, b"the target") + b"</MediaContainer>")
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
    return answer


def slow_loris(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/xml")
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    try:
        for _ in range(120):
            handler.wfile.write(b"<")
            handler.wfile.flush()
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        pass


BOMB = _gzip_bomb(512)
SCENARIOS = {
    "billion laughs": (body(200, LAUGHS), {"UNSAFE_UPSTREAM", "FILTER_PARSE_ERROR"}),
    "external entity": (body(200, EXTERNAL), {"UNSAFE_UPSTREAM", "FILTER_PARSE_ERROR"}),
    "gzip bomb (512 MiB decoded)": (body(200, BOMB, Content_Encoding="gzip"), {"UPSTREAM_ERROR", "FILTER_PARSE_ERROR"}),
    "non-XML 200 (JSON)": (body(200, b'{"MediaContainer": {}}', "application/json"),
                           {"FORWARD_UNPARSED", "FILTER_PARSE_ERROR"}),
    "HTML error page with 200": (body(200, b"<html><body><h1>Plex is updating</h1></body></html>", "text/html"),
                                 {"FORWARD_UNPARSED", "FILTER_PARSE_ERROR"}),
    "500 with HTML": (body(500, b"<html><body>Internal error</body></html>", "text/html"), {"UPSTREAM_STATUS"}),
    "401 (token revoked mid-run)": (body(401, b"<html>Unauthorized</html>", "text/html"), {"UPSTREAM_STATUS"}),
    "slow-loris (1 byte per 0.5 s)": (slow_loris, {"UPSTREAM_ERROR"}),
}


def plexapi_outcome(call) -> str:
    """What plexapi does with the proxy's answer: a result, or one of the exceptions it raises for the same
    answer straight from Plex (docs/PLEX-PROTOCOL.md) — which Kometa handles."""
    try:
        call()
        return "result"
    except (BadRequest, NotFound, Unauthorized, ParseError) as exc:
        return type(exc).__name__


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("where", ["metadata (mock mode)", "listing (filter mode)"])
def test_hostile_upstream(sample_plex_factory, proxy_factory, evidence, name, where):
    sample = sample_plex_factory(movies=20, shows=0)
    scenario, recorded_as = SCENARIOS[name]
    mock = where.startswith("metadata")
    hostile = Hostile(sample, "/library/metadata/1002" if mock else "/library/sections/1/all")
    try:
        proxy = proxy_factory(hostile, movie_targets([1001, 1002]), mock=mock, plex_timeout=5)  # healthy at prefetch
        hostile.scenario = scenario
        plex = PlexServer(proxy.url, proxy.client_token, timeout=60)
        started = time.monotonic()
        if mock:
            outcome = plexapi_outcome(lambda: plex.fetchItem(1002))
        else:
            outcome = plexapi_outcome(lambda: plex.library.section("Movies").all())
        elapsed = time.monotonic() - started
        assert proxy.alive()
        ok = requests.get(f"{proxy.url}/library/metadata/1001", headers={"X-Plex-Token": proxy.client_token})
        assert ok.status_code == 200 and b'ratingKey="1001"' in ok.content  # still serving
        proxy.stop()
    finally:
        hostile.stop()
    records = read_journal(proxy.layout.journal)
    events = {r["event"] for r in records}
    assert events & recorded_as, events
    done = next(r for r in records if r["event"] == "PROXY_DONE")
    assert done["peak_rss_mib"] < MEMORY_BOUND_MIB
    assert elapsed < 30
    evidence("Hostile upstream", f"{name}, on {where}", 1,
             f"plexapi got: {outcome}; recorded as {', '.join(sorted(events & recorded_as))}; proxy peak RSS "
             f"{done['peak_rss_mib']:.0f} MiB (bound {MEMORY_BOUND_MIB}); answered in {elapsed:.1f} s")


def test_a_200_mb_listing_streams_through_filter_mode_in_bounded_memory(sample_plex_factory, proxy_factory, evidence):
    sample = sample_plex_factory(movies=20, shows=0)
    hostile = Hostile(sample, "/library/sections/1/all")
    try:
        proxy = proxy_factory(hostile, movie_targets([1001]), mock=False)
        hostile.scenario = huge_listing(200)
        started = time.monotonic()
        movies = PlexServer(proxy.url, proxy.client_token, timeout=300).library.section("Movies").all()
        elapsed = time.monotonic() - started
        proxy.stop()
    finally:
        hostile.stop()
    assert [m.ratingKey for m in movies] == [1001]
    records = read_journal(proxy.layout.journal)
    listing = next(r for r in records if r["event"] == "FILTER_LIST")
    done = next(r for r in records if r["event"] == "PROXY_DONE")
    assert listing["items_before"] > 200_000 and listing["items_after"] == 1
    assert done["peak_rss_mib"] < MEMORY_BOUND_MIB
    evidence("Hostile upstream", "a 200 MB listing (chunked, ~220,000 items) in filter mode", 1,
             f"kept the 1 target of {listing['items_before']:,} items; proxy peak RSS {done['peak_rss_mib']:.0f} MiB "
             f"(bound {MEMORY_BOUND_MIB}); {elapsed:.0f} s")
