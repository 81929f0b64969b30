"""A property-based attack on the proxy: random methods, paths, queries, headers and bodies, sent as raw
bytes to a real mitmdump child in front of the sample Plex server. Whatever arrives, the sample server
must never see a write, a side-effecting GET, or a request about an item outside the preview."""
from __future__ import annotations

import socket
import time

import pytest
from conftest import movie_targets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.e2e

TARGETS = [1001, 1003]
PATHS = ["/", "/identity", "/:/prefs", "/library", "/library/sections", "/library/sections/1",
         "/library/sections/1/all", "/library/sections/1/search", "/library/sections/1/refresh",
         "/library/sections/1/label", "/library/metadata/1001", "/library/metadata/1002",
         "/library/metadata/1001,1002", "/library/metadata/1001/posters", "/library/metadata/1001/poster",
         "/library/metadata/1001/arts", "/library/metadata/1001/refresh", "/library/metadata/1001/children",
         "/library/metadata/1001/thumb/1600000000", "/library/metadata/1002/thumb/1", "/photo/:/transcode",
         "/:/scrobble", "/:/unscrobble", "/:/timeline", "/:/rate", "/butler/BackupDatabase", "/updater/apply",
         "/hubs/search", "/library/all", "/playQueues", "/accounts", "/system/agents"]
# Reads are over-represented so the forwarding path (and its allowlist) is exercised, not only the blocks.
METHODS = ["GET"] * 8 + ["HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "MKCOL", "TRACE",
                         "get", "put", "Delete", "FOO", "CONNECT"]
QUERY_PARTS = ["type=1", "type=18", "includeGuids=1", "id=1002", "id=1001", "label%5B0%5D.tag.tag=Overlay",
               "title.value=x", "url=http%3A%2F%2Fevil%2Fx.jpg", "url=%2Flibrary%2Fmetadata%2F1002%2Fthumb%2F1",
               "X-Plex-Token={token}", "X-Plex-Token=wrong", "X-Plex-Token={token}&X-Plex-Token=x",
               "x-plex-token={token}", "push=1&resolution=4k&or=1&pop=1", "key=1002", "ratingKey=1001",
               "X-HTTP-Method-Override=PUT", "_method=DELETE", "%ff%fe=%00", "a=" + "b" * 3000]


@st.composite
def paths(draw) -> bytes:
    path = draw(st.sampled_from(PATHS))
    mutation = draw(st.sampled_from(["none"] * 6 + ["slash", "dotdot", "double", "dslash", "long", "raw8bit",
                                                    "case", "trailing", "semicolon"]))
    path = {"none": path, "slash": path.replace("/", "%2F", 2), "dotdot": path + "/../../library/metadata/1002",
            "double": path.replace("/", "%252F"), "dslash": path.replace("/", "//", 1), "long": path + "/x" * 2000,
            "raw8bit": path + "/\udcff", "case": path.upper(), "trailing": path + "/",
            "semicolon": path + ";x=1"}[mutation]
    query = draw(st.lists(st.sampled_from(QUERY_PARTS), max_size=4))
    raw = path + ("?" + "&".join(query) if query else "")
    return raw.encode("utf-8", "surrogateescape")


@st.composite
def requests_(draw, token: str) -> bytes:
    method = draw(st.sampled_from(METHODS)).encode()
    target = draw(paths()).replace(b"{token}", token.encode())
    body = draw(st.sampled_from([b"", b"\xff\xd8\xff\xe0junk", b"\x89PNG\r\n\x1a\n", b"<MediaContainer/>",
                                 b"x" * 5000, b"--b\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--b--\r\n"]))
    headers = [b"Host: plex", b"Connection: close"]
    if draw(st.booleans()) or b"X-Plex-Token" not in target:
        headers.append(b"X-Plex-Token: " + (token.encode() if draw(st.integers(0, 9)) else b"bad"))
    framing = draw(st.sampled_from(["length", "chunked", "conflict", "expect", "none"]))
    if draw(st.booleans()):
        headers.append(b"X-HTTP-Method-Override: " + draw(st.sampled_from([b"PUT", b"DELETE", b"GET"])))
    if framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if body else b"0\r\n\r\n"
    elif framing == "conflict":
        headers += [f"Content-Length: {len(body)}".encode(), f"Content-Length: {len(body) + 3}".encode()]
        payload = body
    elif framing == "expect":
        headers += [b"Expect: 100-continue", f"Content-Length: {len(body)}".encode()]
        payload = body
    elif framing == "length":
        headers.append(f"Content-Length: {len(body)}".encode())
        payload = body
    else:
        payload = b""
    if b"multipart" in body[:20] or body.startswith(b"--b"):
        headers.append(b"Content-Type: multipart/form-data; boundary=b")
    return method + b" " + target + b" HTTP/1.1\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + payload


def send(port: int, raw: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(raw)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def test_random_requests_never_change_plex(sample_plex_factory, proxy_factory, evidence):
    server = sample_plex_factory(movies=20, shows=1)
    proxy = proxy_factory(server, movie_targets(TARGETS))
    server.log.clear()
    sent = []
    started = time.monotonic()

    @settings(max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(requests_(proxy.client_token))
    def attack(raw: bytes) -> None:
        answer = send(proxy.port, raw)
        sent.append(raw)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 ")  # the proxy always answers (or drops)
        assert proxy.alive()

    attack()
    # Always, besides the random draw: authorized reads of an allowed item that smuggle a non-target or a
    # method override, so the forwarding path itself is attacked on every run.
    for target in ("/library/metadata/1001?url=%2Flibrary%2Fmetadata%2F1002%2Fthumb%2F1&_method=DELETE",
                   "/library/metadata/1001,1002?X-HTTP-Method-Override=DELETE",
                   "/library/metadata/1001/arts?key=1002&x-http-method-override=PUT",
                   "/photo/:/transcode?url=%2Flibrary%2Fmetadata%2F1001%2Fart%2F1&width=10&height=10&id=1002"):
        raw = (f"GET {target} HTTP/1.1\r\nHost: plex\r\nConnection: close\r\n"
               f"X-Plex-Token: {proxy.client_token}\r\n\r\n").encode()
        assert send(proxy.port, raw).startswith(b"HTTP/1.1 200"), target
        sent.append(raw)
    seen = server.log.snapshot()
    assert len(sent) >= 300 and proxy.alive()
    assert any(e.path.startswith("/library/metadata/") for e in seen)  # the forwarding path was exercised
    assert [e for e in seen if e.write or e.side_effect] == []
    assert {e.method for e in seen} <= {"GET", "HEAD"}
    # Metadata, artwork and images of a non-target are never read, not even through a parameter.
    assert not [e for e in seen if "1002" in e.path or ("/library/metadata/" in e.path and "1002" in e.query)]
    assert not [e for e in seen if "override" in e.query.lower() or "_method" in e.query]
    evidence("Nothing reaches Plex", "random methods (lowercase, unknown, PROPFIND…), paths (encoded and double-encoded "
             "slashes, `..`, `//`, 6 KB, non-UTF-8), queries smuggling tokens/`url=`/`id=`, chunked, `Expect`, "
             "conflicting Content-Length, method-override headers, junk and image bodies — raw bytes into a live "
             "mitmdump", len(sent),
             f"0 writes, 0 side-effecting GETs, 0 reads of a non-target's metadata or images, 0 method-override "
             f"parameters at the sample server "
             f"({len(seen)} reads reached it); proxy alive; {time.monotonic() - started:.0f} s")


# --- the outside-calls port ------------------------------------------------------------------------------
OUTSIDE_HOSTS = ["{plex}", "127.0.0.1", "localhost", "127.1", "2130706433", "0x7f000001", "0.0.0.0", "[::1]",
                 "[::ffff:127.0.0.1]", "127.0.0.1.", "LOCALHOST", "169.254.169.254", "10.0.0.1",
                 "api.themoviedb.org", "raw.githubusercontent.com", "api.trakt.tv", "hooks.slack.com", "example.com",
                 "api.themoviedb.org.127.0.0.1.nip.io", "api.graphql.imdb.com"]
OUTSIDE_PATHS = ["/:/scrobble?key=1001", "/library/sections/1/refresh", "/library/sections/1/all?type=1&id=1001"
                 "&title.value=x", "/library/metadata/1001", "/3/configuration", "/Kometa-Team/Kometa/master/VERSION",
                 "/sync/history", "/services/T/B/X", "/"]


@st.composite
def outside_requests(draw, plex_port: int) -> bytes:
    host = draw(st.sampled_from(OUTSIDE_HOSTS)).replace("{plex}", "127.0.0.1")
    port = draw(st.sampled_from([plex_port, 80, 443, plex_port]))
    method = draw(st.sampled_from(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "get", "OPTIONS"]))
    path = draw(st.sampled_from(OUTSIDE_PATHS))
    form = draw(st.sampled_from(["absolute", "origin", "connect", "space"]))
    host_header = draw(st.sampled_from(["api.themoviedb.org", f"127.0.0.1:{plex_port}", host, "plex"]))
    body = draw(st.sampled_from([b"", b"{}", b'{"query": "mutation { x }"}', b"\xff\xd8\xffjunk"]))
    headers = f"Host: {host_header}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    if draw(st.booleans()):
        headers += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    if form == "connect" or method == "CONNECT":
        tunnel = draw(st.sampled_from([b" PUT /library/sections/1/all?title.value=x HTTP/1.1\r\nHost: x\r\n\r\n",
                                       f"{method} {path} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode(),
                                       b"\x16\x03\x01\x00\x05hello", b"\x00\x01\x02"]))
        return f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() + tunnel
    target = {"absolute": f"http://{host}:{port}{path}", "origin": path, "space": f" http://{host}:{port}{path}"}[form]
    return f"{method} {target} HTTP/1.1\r\n{headers}\r\n".encode() + body


CANNED = (b"2.4.4\n", b"{}", b'["America/New_York"]}]}')


@pytest.mark.parametrize("offline", [False, True], ids=["online", "offline"])
def test_random_requests_on_the_outside_port_never_reach_plex(sample_plex_factory, proxy_factory, evidence, offline):
    """Kometa's outside-calls port, attacked as raw bytes: absolute-form and CONNECT towards Plex in every
    spelling, Host headers that lie, raw bytes in tunnels, upgrades, writes. Plex must see nothing at all."""
    server = sample_plex_factory(movies=5, shows=1)
    proxy = proxy_factory(server, movie_targets([1001]), outside=True, offline=offline, name=f"outside-{offline}")
    plex_port = int(server.url.rsplit(":", 1)[1])
    server.log.clear()
    sent = []

    @settings(max_examples=80, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(outside_requests(plex_port))
    def attack(raw: bytes) -> None:
        answer = send(proxy.outside_port, raw, timeout=0.4)  # a tunnel waiting for more TLS answers nothing
        sent.append(raw)
        # Success is only ever a tunnel to an allowed host, or (offline) one of the canned start-up answers.
        if answer.startswith(b"HTTP/1.1 2"):
            assert b"Connection established" in answer[:100] or (offline and answer.endswith(CANNED)), answer[:200]
        assert proxy.alive()

    attack()
    seen = server.log.snapshot()
    assert seen == [], [(e.method, e.path) for e in seen]
    evidence("Side doors", f"random raw requests on the outside-calls port ({'offline' if offline else 'online'}): "
             "absolute-form, origin-form and CONNECT towards Plex in 12 spellings, lying Host headers, raw bytes and "
             "TLS-looking bytes in tunnels, Upgrade, writes and GraphQL mutations", len(sent),
             "the sample Plex server received 0 requests; the proxy stayed up")
