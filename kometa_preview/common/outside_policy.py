"""Which outside calls a preview's Kometa may make: an allowlist of services, judged on where a connection
really goes (the CONNECT authority or the absolute URL's host, then the addresses it resolves to), never on
a Host header.

Kometa's overlays read from a handful of public services (TMDb, GitHub, MDBList, OMDb, Trakt, MyAnimeList,
AniDB, IMDb, Letterboxd — the hosts below were read in Kometa 2.0–2.4's `modules/*.py`). Everything else is
refused: webhooks and notifiers, Trakt writes (an OAuth refresh would rotate the user's real token), other
local servers (Tautulli, Radarr), and above all Plex itself by any spelling of its address. No mitmproxy
import: the addon asks, this module answers.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from .limits import MAX_GRAPHQL_BYTES

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
READS = frozenset({"GET", "HEAD"})


class Refusal(StrEnum):
    """Why an outside call was refused; each is a journal event and a summary counter."""
    PLEX = "OUTSIDE_REFUSED_PLEX"            # Plex's host or one of its addresses
    ADDRESS = "OUTSIDE_REFUSED_ADDRESS"      # an IP literal, or a name resolving to loopback/link-local/…
    HOST = "OUTSIDE_REFUSED_HOST"            # not a service Kometa's overlays use, nor in outside.allow
    WRITE = "OUTSIDE_REFUSED_WRITE"          # a method the service is not allowed (POST to a webhook…)
    PROTOCOL = "OUTSIDE_REFUSED_PROTOCOL"    # not HTTP after CONNECT (raw TCP), or an Upgrade
    OFFLINE = "OUTSIDE_REFUSED_OFFLINE"      # --offline: only the start-up calls are answered
    #: An allowed service that cannot be reached from here (its name does not resolve, or the connection
    #: fails): no internet, not an attempt at a side door.
    UNREACHABLE = "OUTSIDE_UNREACHABLE"


@dataclass(frozen=True)
class Service:
    name: str
    hosts: frozenset[str]
    methods: frozenset[str] = READS
    #: POSTs allowed only when the body is a GraphQL read query (IMDb's list and chart lookups).
    graphql_reads: bool = False


SERVICES: tuple[Service, ...] = (
    Service("tmdb", frozenset({"api.themoviedb.org", "image.tmdb.org", "www.themoviedb.org"})),
    Service("github", frozenset({"raw.githubusercontent.com", "api.github.com", "github.com",
                                 "objects.githubusercontent.com"})),
    Service("mdblist", frozenset({"mdblist.com", "api.mdblist.com"})),
    Service("omdb", frozenset({"www.omdbapi.com", "omdbapi.com"})),
    Service("trakt", frozenset({"api.trakt.tv", "trakt.tv"})),
    Service("myanimelist", frozenset({"api.myanimelist.net", "myanimelist.net", "api.jikan.moe"})),
    Service("anidb", frozenset({"api.anidb.net", "anidb.net", "utilities.kometa.wiki"})),
    Service("imdb", frozenset({"www.imdb.com", "m.imdb.com", "datasets.imdbws.com", "m.media-amazon.com"})),
    Service("imdb-graphql", frozenset({"api.graphql.imdb.com"}), READS | {"POST"}, graphql_reads=True),
    Service("letterboxd", frozenset({"letterboxd.com", "boxd.it", "a.ltrbxd.com"})),
)


@dataclass(frozen=True)
class Verdict:
    """The answer for one call: allowed (with the service that allows it) or refused (with why)."""
    refusal: Refusal | None
    service: str | None = None
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.refusal is None


#: Names no outside service has (RFC 6761, 6762, 8375 and common LAN suffixes): refused at the CONNECT, like Plex.
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def normalize_host(host: str) -> str:
    """Lower case, no brackets, no trailing dot, no IPv6 zone: the spelling every check compares."""
    return host.strip().strip("[]").split("%", 1)[0].rstrip(".").lower()


def as_address(host: str) -> Address | None:
    """The address a host spells, in any spelling a resolver accepts (`127.1`, `2130706433`, `0x7f.0.0.1`,
    `::ffff:127.0.0.1`), or None for a name. IPv4-mapped IPv6 is reduced to its IPv4 address."""
    text = normalize_host(host)
    try:
        address: Address = ipaddress.ip_address(text)
    except ValueError:
        if not text or not all(c.isalnum() or c in ".x" for c in text):
            return None
        try:  # inet_aton is the classic resolver's parser: short, decimal, octal and hex forms
            address = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def forbidden_address(address: Address, plex: frozenset[Address], private_ok: bool = False) -> str | None:
    """Why no outside call may connect to `address`, or None. Private ranges are refused too unless the user
    named the host in `outside.allow` (a LAN image server); Plex's own addresses never."""
    if address in plex:
        return "is Plex's address"
    if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
        return "is a loopback, link-local, unspecified or multicast address"
    if isinstance(address, ipaddress.IPv6Address) and (address.sixtofour or address.teredo):
        return "is a tunnelled IPv4 address"
    if address.is_reserved:
        return "is a reserved address"
    if address.is_private and not private_ok:
        return "is a private address (name its host in outside.allow to reach it)"
    return None


def is_graphql_read(body: bytes) -> bool:
    """A JSON GraphQL document whose every operation is a query (no mutation or subscription)."""
    if len(body) > MAX_GRAPHQL_BYTES:
        return False
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    documents = document if isinstance(document, list) else [document]
    for item in documents:
        if not isinstance(item, dict) or not isinstance(item.get("query"), str):
            return False
        words = item["query"].replace("{", " { ").split()
        if any(word in ("mutation", "subscription") for word in words):
            return False
    return bool(documents)


Resolver = Callable[[str, int], Iterable[str]]


def system_resolver(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class OutsidePolicy:
    """The allowlist for one preview: the services above, the user's `outside.allow` hosts (reads only), and
    Plex's host and addresses refused in every spelling."""

    def __init__(self, plex_host: str, plex_addresses: Iterable[str] = (), extra_hosts: Iterable[str] = ()) -> None:
        self.plex_host = normalize_host(plex_host)
        plex = {as_address(a) for a in (self.plex_host, *plex_addresses)}
        self.plex_addresses: frozenset[Address] = frozenset(a for a in plex if a is not None)
        self.user_hosts = frozenset(normalize_host(h) for h in extra_hosts)
        self._services = {host: service for service in SERVICES for host in service.hosts}
        user = Service("outside.allow", self.user_hosts)
        self._services.update({host: user for host in self.user_hosts if host not in self._services})

    @classmethod
    def for_plex(cls, plex_host: str, extra_hosts: Iterable[str] = (), resolve: Resolver = system_resolver
                 ) -> OutsidePolicy:
        """Resolve Plex's host once, so a name that points at Plex is refused by address as well."""
        try:
            addresses = list(resolve(plex_host, 0)) if as_address(plex_host) is None else []
        except OSError:
            addresses = []
        return cls(plex_host, addresses, extra_hosts)

    def destination(self, host: str) -> Verdict:
        """May a connection be asked for towards `host` (a CONNECT authority or an absolute URL's host)?"""
        name = normalize_host(host)
        address = as_address(name)
        if name == self.plex_host or (address is not None and address in self.plex_addresses):
            return Verdict(Refusal.PLEX, reason=f"{name} is Plex")
        if address is not None:
            return Verdict(Refusal.ADDRESS, reason=f"{name} is an address, not an allowed service host")
        service = self._services.get(name)
        if service is None:
            return Verdict(Refusal.HOST, reason=f"{name} is not a service Kometa's overlays read "
                                                "(add it to outside.allow in preview.yml if it is yours)")
        return Verdict(None, service.name)

    def refused_in_tunnel(self, host: str, verdict: Verdict) -> bool:
        """Is this CONNECT's refusal given inside the tunnel, per request, rather than to the CONNECT itself? So for a
        name that could be a real service (a custom overlay's image host missing from outside.allow): Kometa then
        gets an HTTP 403 and gives up at once, where a refused CONNECT is an exception its requests retry six times,
        ten seconds apart (`@retry(stop_after_attempt(6), wait_fixed(10))` on Kometa's `Requests.get`: 52 s for one
        image, measured). Plex, addresses and local names are still refused at the CONNECT; nothing inside the
        tunnel connects anywhere (`request` refuses the same name again)."""
        name = normalize_host(host)
        return verdict.refusal is Refusal.HOST and "." in name and name != "localhost" \
            and not name.endswith(LOCAL_SUFFIXES)

    def request(self, method: str, host: str, body: bytes | None = None) -> Verdict:
        """May this request go out? `body` is needed only for a POST a service allows as a GraphQL read."""
        verdict = self.destination(host)
        if not verdict.allowed:
            return verdict
        service = self._services[normalize_host(host)]
        if method not in service.methods:
            return Verdict(Refusal.WRITE, service.name, f"{method} is not a read ({service.name} is read-only)")
        if method not in READS and service.graphql_reads and (body is None or not is_graphql_read(body)):
            return Verdict(Refusal.WRITE, service.name, "only GraphQL read queries may be posted")
        return verdict

    def needs_body(self, method: str, host: str) -> bool:
        """Is the request's body needed to judge it (a POST to a GraphQL read service)?"""
        service = self._services.get(normalize_host(host))
        return service is not None and service.graphql_reads and method not in READS

    def connectable(self, host: str, addresses: Iterable[str]) -> tuple[str | None, Verdict]:
        """The first address of `addresses` the connection may use with an allowing verdict, or None with the
        refusal. Every address must be acceptable: a name that resolves to Plex or loopback among public
        addresses is refused whole."""
        private_ok = normalize_host(host) in self.user_hosts
        chosen = None
        for text in addresses:
            address = as_address(text)
            if address is None:
                return None, Verdict(Refusal.ADDRESS, reason=f"{text} is not an address")
            why = forbidden_address(address, self.plex_addresses, private_ok)
            if why is not None:
                refusal = Refusal.PLEX if address in self.plex_addresses else Refusal.ADDRESS
                return None, Verdict(refusal, reason=f"{host} resolves to {address}, which {why}")
            chosen = chosen or str(address)
        if chosen is None:
            return None, Verdict(Refusal.ADDRESS, reason=f"{host} resolves to no address")
        return chosen, Verdict(None)
