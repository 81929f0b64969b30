"""Unit tables for the side doors: the outside-calls allowlist, the route grammar's partition, redaction,
decoded body limits, and the environment children get. The live versions are in test_reliability_doors.py."""
from __future__ import annotations

import gzip
import zlib
from urllib.parse import quote

import brotli
import pytest

from kometa_preview.common.outside_policy import OutsidePolicy, Refusal, as_address
from kometa_preview.common.redaction import redact
from kometa_preview.plex.routes import FIXED_DOCUMENTS, ITEM_LISTS, READ_ONLY, Kind, classify, forwardable_params
from kometa_preview.proxy.bodies import BodyError, TooLarge, decoded

POLICY = OutsidePolicy("127.0.0.1", extra_hosts=["posters.example.net"])
PLEX_BY_NAME = OutsidePolicy.for_plex("plex.lan", ["posters.example.net"], resolve=lambda host, port: ["192.168.1.20"])

SPELLINGS_OF_LOOPBACK = ["127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
                         "::ffff:7f00:1", "127.0.0.1.", "[::1]"]


@pytest.mark.parametrize("host", SPELLINGS_OF_LOOPBACK)
def test_every_spelling_of_plex_s_address_is_plex(host):
    address = as_address(host)
    assert address is not None and address.is_loopback
    verdict = POLICY.destination(host)
    assert verdict.refusal in (Refusal.PLEX, Refusal.ADDRESS), host


@pytest.mark.parametrize("host, expected", [
    ("localhost", Refusal.HOST), ("0.0.0.0", Refusal.ADDRESS), ("169.254.169.254", Refusal.ADDRESS),
    ("10.0.0.8", Refusal.ADDRESS), ("plex.lan", Refusal.PLEX), ("PLEX.LAN.", Refusal.PLEX),
    ("192.168.1.20", Refusal.PLEX), ("discord.com", Refusal.HOST), ("hooks.slack.com", Refusal.HOST),
    ("notifiarr.com", Refusal.HOST), ("api.themoviedb.org.evil.com", Refusal.HOST), ("evil-themoviedb.org", Refusal.HOST),
    ("api.themoviedb.org", None), ("API.TheMovieDB.org.", None), ("raw.githubusercontent.com", None),
])
def test_destinations_are_an_allowlist_of_hosts(host, expected):
    assert PLEX_BY_NAME.destination(host).refusal == expected


@pytest.mark.parametrize("host, in_tunnel", [
    ("images.example.org", True), ("discord.com", True), ("Posters.Example.COM.", True),   # could be a real service
    ("localhost", False), ("plex.localhost", False), ("nas.local", False), ("plex.lan", False),  # local names
    ("printer.internal", False), ("router.home.arpa", False), ("nas", False),
    ("127.0.0.1", False), ("[::1]", False), ("10.0.0.8", False),                                 # addresses
    ("api.themoviedb.org", False),                                                              # allowed anyway
])
def test_a_refused_service_name_is_refused_inside_its_tunnel_and_local_names_at_the_connect(host, in_tunnel):
    """Kometa's requests retry a refused CONNECT six times, ten seconds apart; a 403 inside the tunnel it gives up on
    at once. Only names that could be a real outside service get the tunnel (and its requests are refused there)."""
    assert PLEX_BY_NAME.refused_in_tunnel(host, PLEX_BY_NAME.destination(host)) is in_tunnel


@pytest.mark.parametrize("method, host, body, expected", [
    ("GET", "api.themoviedb.org", None, None),
    ("HEAD", "image.tmdb.org", None, None),
    ("POST", "api.themoviedb.org", None, Refusal.WRITE),
    ("DELETE", "api.trakt.tv", None, Refusal.WRITE),
    ("POST", "api.trakt.tv", b"{}", Refusal.WRITE),
    ("POST", "api.graphql.imdb.com", b'{"query": "query { a }"}', None),
    ("POST", "api.graphql.imdb.com", b'[{"query": "{ a }"}, {"query": "mutation { b }"}]', Refusal.WRITE),
    ("POST", "api.graphql.imdb.com", b'{"query": "subscription { a }"}', Refusal.WRITE),
    ("POST", "api.graphql.imdb.com", b'{"query": "{ a }"}' + b" " * (70 << 10), Refusal.WRITE),
    ("GET", "posters.example.net", None, None),
    ("POST", "posters.example.net", b"x", Refusal.WRITE),
])
def test_each_service_has_its_methods(method, host, body, expected):
    assert POLICY.request(method, host, body).refusal == expected


@pytest.mark.parametrize("host, addresses, allowed", [
    ("api.themoviedb.org", ["3.165.1.1"], True),
    ("api.themoviedb.org", ["3.165.1.1", "127.0.0.1"], False),  # one bad address refuses the name whole
    ("api.themoviedb.org", ["::ffff:127.0.0.1"], False),
    ("api.themoviedb.org", ["192.168.1.20"], False),
    ("api.themoviedb.org", ["2002:7f00:1::1"], False),  # 6to4 wrapping 127.0.0.1
    ("posters.example.net", ["192.168.7.7"], True),  # a LAN host the user named may be private…
    ("posters.example.net", ["127.0.0.1"], False),  # …but never loopback
    ("api.themoviedb.org", [], False),
])
def test_connections_are_judged_on_every_resolved_address(host, addresses, allowed):
    chosen, verdict = PLEX_BY_NAME.connectable(host, addresses)
    assert (chosen is not None) == allowed == verdict.allowed, verdict.reason


def test_plex_s_own_lan_address_is_refused_even_for_a_user_named_host():
    chosen, verdict = PLEX_BY_NAME.connectable("posters.example.net", ["192.168.1.20"])
    assert chosen is None and verdict.refusal is Refusal.PLEX


def test_read_only_routes_are_item_lists_or_fixed_documents():
    """Every route kind that may be forwarded is either answered from the targets or a fixed document."""
    assert ITEM_LISTS | FIXED_DOCUMENTS == READ_ONLY
    assert not ITEM_LISTS & FIXED_DOCUMENTS


@pytest.mark.parametrize("sub", ["Refresh", "REFRESH", "emptytrash", "Analyze", "autocomplete", "common",
                                 "firstCharacter", "Genre", "anything", "label.x"])
def test_section_sub_routes_are_a_fixed_list_in_plex_s_case(sub):
    route = classify("GET", f"/library/sections/1/{sub}")
    assert route.kind in (Kind.UNKNOWN, Kind.SIDE_EFFECT) and not route.is_read


@pytest.mark.parametrize("sub, kind", [("unwatched", Kind.LISTING), ("recentlyViewed", Kind.LISTING),
                                       ("allLeaves", Kind.LISTING), ("onDeck", Kind.LISTING),
                                       ("genre", Kind.FILTER_CHOICES), ("resolution", Kind.FILTER_CHOICES),
                                       ("contentRating", Kind.FILTER_CHOICES)])
def test_item_listing_section_routes_are_listings(sub, kind):
    assert classify("GET", f"/library/sections/1/{sub}?type=1").kind is kind


def test_parameters_that_pull_in_other_items_are_never_forwarded():
    route = classify("GET", "/library/metadata/1001?includeRelated=1&includeChildren=1&includeOnDeck=1"
                            "&includePopularLeaves=1&includeExtras=1&includeGuids=1&includeChapters=1&checkFiles=1")
    assert [k for k, _ in forwardable_params(route)] == ["includeGuids", "includeChapters", "checkFiles"]


TOKEN = "Zq9xV7kW2mPq4LtB"


@pytest.mark.parametrize("text", [
    f"/a?X-Plex-Token={TOKEN}", f"/a?X%2DPlex%2DToken={TOKEN}", f"/a?%58-Plex-Token={TOKEN}",
    f"/a?X%252DPlex%252DToken={TOKEN}", f"/a?x-plex-token={TOKEN[:5]}%26{TOKEN[5:]}",
    "/photo/:/transcode?url=" + quote(f"/library/metadata/1/thumb?X-Plex-Token={TOKEN}", safe=""),
    "/photo/:/transcode?url=" + quote(quote(f"/library/metadata/1/thumb?X-Plex-Token={TOKEN}", safe=""), safe=""),
    "/p?url=" + quote("http://a/?url=" + quote(f"http://b/?X-Plex-Token={TOKEN}", safe=""), safe=""),
    f"/3/movie/1?api_key={TOKEN}", f"/x?client_secret={TOKEN}", f"/x?accessToken={TOKEN}",
])
def test_redaction_leaves_no_piece_of_a_credential(text):
    redacted = redact(text)
    assert not any(TOKEN[i:i + 4] in redacted for i in range(len(TOKEN) - 3)), redacted
    assert "<redacted>" in redacted


def test_redaction_keeps_harmless_queries_readable():
    assert redact("/library/sections/1/all?type=1&title=Tokens&sort=titleSort") == \
        "/library/sections/1/all?type=1&title=Tokens&sort=titleSort"


def _bomb(encoding: str, mebibytes: int = 256) -> bytes:
    """`mebibytes` of zeros, compressed a mebibyte at a time (the test never holds the decoded size)."""
    chunk = b"\0" * (1 << 20)
    if encoding == "br":
        compressor = brotli.Compressor(quality=1)
        return b"".join(compressor.process(chunk) for _ in range(mebibytes)) + compressor.finish()
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31 if encoding == "gzip" else 15)
    return b"".join(compressor.compress(chunk) for _ in range(mebibytes)) + compressor.flush()


@pytest.mark.parametrize("encoding", ["br", "gzip", "deflate"])
def test_a_compression_bomb_stops_at_the_limit(encoding):
    body = _bomb(encoding)
    assert len(body) < 1 << 20
    with pytest.raises(TooLarge) as caught:
        decoded(body, encoding, 64 << 20)
    assert caught.value.status == 413


def test_bodies_decode_through_stacked_encodings_and_refuse_unknown_ones():
    data = b"\xff\xd8\xff" + b"poster" * 1000
    assert decoded(brotli.compress(gzip.compress(data)), "gzip, br", 1 << 20) == data
    assert decoded(data, "identity", 1 << 20) == data
    with pytest.raises(BodyError) as unknown:
        decoded(data, "compress", 1 << 20)
    assert unknown.value.status == 415
    with pytest.raises(BodyError) as broken:
        decoded(gzip.compress(data)[:40], "gzip", 1 << 20)
    assert broken.value.status == 400


def test_children_get_an_allowlisted_environment_without_secrets():
    from kometa_preview.common.children import child_environment
    parent = {"PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC",
              "PYTHONPATH": "/x", "PLEX_TOKEN": TOKEN, "MY_NOTES": f"token={TOKEN}", "TMDB_KEY": "k" * 32,
              "HTTPS_PROXY": "http://corp:3128", "https_proxy": "http://corp:3128", "KOMETA_CONFIG": "/elsewhere",
              "PMM_RUN": "x", "AWS_SECRET_ACCESS_KEY": "a", "SSL_CERT_FILE": "/ca.pem",
              "PYTHONSTARTUP": f"/home/{TOKEN}/x.py"}
    env = child_environment([TOKEN], parent)
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "PYTHONUNBUFFERED"}
    assert not any(TOKEN in value for value in env.values())
