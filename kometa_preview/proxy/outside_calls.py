"""OutsideCalls: the door Kometa's calls to the rest of the internet go through — a second mode of the same
mitmdump (`regular@127.0.0.1:PORT`, or `upstream:` behind the user's own proxy) that Kometa reaches with
HTTPS_PROXY.

Every decision is made by `OutsidePolicy` (kometa_preview/outside_policy.py) on where the connection really
goes, at each point mitmproxy decides it:
- `http_connect`: the CONNECT authority, before mitmproxy answers "200 Connection established";
- `requestheaders`/`request`: the request's host (the absolute URL's, or the tunnel's), its method, and for
  a GraphQL POST its body — never the Host header;
- `next_layer`: bytes that are not HTTP (or TLS carrying HTTP) end the connection: no raw-TCP relay;
- `server_connect`: the name is resolved here and every address checked (Plex, loopback, link-local…), and
  the connection is pinned to the address that was checked, so a second lookup cannot move it. The reverse
  mode never connects anywhere itself (`Upstream` reads Plex outside mitmproxy), so any connection it would
  open is refused too.

With `preview_offline`, Kometa's three start-up calls are answered here and every other allowed call is
refused with a recorded 404, so a preview runs with no internet at all. Credentials a request carried
(`Authorization`, `Cookie`, `api_key=`) are redacted from the flow once it has been sent, before `-w` saves it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from urllib.parse import urlsplit

from mitmproxy import ctx, http
from mitmproxy.addons.next_layer import NextLayer
from mitmproxy.proxy import commands, events, layer, layers
from mitmproxy.proxy.mode_specs import RegularMode, ReverseMode, UpstreamMode
from mitmproxy.proxy.server_hooks import ServerConnectionHookData

from ..common.events import Event, Refused
from ..common.limits import MAX_GRAPHQL_BYTES
from ..common.outside_policy import OutsidePolicy, Refusal, Verdict
from .bodies import BodyError, decoded
from .flows import OUTSIDE_KEY, Proxy, fail_closed
from .journal import SECRET_HEADERS, redact

KOMETA_VERSION_PATH = "/Kometa-Team/Kometa/"
ANIME_IDS_PATH = "/Kometa-Team/Anime-IDs/"
#: Set on a POST whose body decides it (IMDb's GraphQL reads): judged again in `request`, with the body.
NEEDS_BODY_KEY = "preview.outside.needs_body"
#: Enough of TMDb's /3/configuration for Kometa's client (docs/KOMETA-TRAFFIC.md).
TMDB_CONFIGURATION = {
    "images": {"base_url": "http://image.tmdb.org/t/p/", "secure_base_url": "https://image.tmdb.org/t/p/",
               "backdrop_sizes": ["w300", "w780", "w1280", "original"],
               "logo_sizes": ["w45", "w92", "w154", "w185", "w300", "w500", "original"],
               "poster_sizes": ["w92", "w154", "w185", "w342", "w500", "w780", "original"],
               "profile_sizes": ["w45", "w185", "h632", "original"],
               "still_sizes": ["w92", "w185", "w300", "original"]},
    "change_keys": ["adult", "images", "title"],
    "countries": [{"iso_3166_1": "US", "english_name": "United States of America",
                   "native_name": "United States"}],
    "jobs": [{"department": "Directing", "jobs": ["Director"]}],
    "languages": [{"iso_639_1": "en", "english_name": "English", "name": "English"}],
    "primary_translations": ["en-US"],
    "timezones": [{"iso_3166_1": "US", "zones": ["America/New_York"]}],
}
OUTSIDE_MODES = (RegularMode, UpstreamMode)


def offline_answer(host: str, path: str) -> tuple[Event, bytes, str] | None:
    """The canned answer to one of Kometa's start-up calls, or None."""
    if host == "raw.githubusercontent.com" and path.startswith(KOMETA_VERSION_PATH) and path.endswith("/VERSION"):
        return Event.OFFLINE_VERSION, b"2.4.4\n", "text/plain; charset=utf-8"
    if host == "raw.githubusercontent.com" and path.startswith(ANIME_IDS_PATH) and path.endswith(".json"):
        return Event.OFFLINE_ANIME_IDS, b"{}", "application/json"
    if host == "api.themoviedb.org" and path == "/3/configuration":
        return Event.OFFLINE_TMDB_CONFIGURATION, json.dumps(TMDB_CONFIGURATION).encode(), "application/json"
    return None


class _CloseConnection(layer.Layer):
    """What replaces a raw-TCP or UDP relay on the outside door: the client connection is closed, and the
    bytes already received are dropped unread."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)


def _is_outside(mode: object) -> bool:
    return isinstance(mode, OUTSIDE_MODES) and bool(ctx.options.preview_outside)


class OutsideCalls:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self._policy: tuple[object, OutsidePolicy] | None = None

    @property
    def policy(self) -> OutsidePolicy:
        """The allowlist for the current configuration (built once per loaded preview.yml)."""
        state = self.proxy.state
        config = state.config if state is not None else None
        if self._policy is None or self._policy[0] is not config:
            plex_host = (urlsplit(config.plex.url).hostname or "") if config is not None else ""
            allow = config.outside_allow if config is not None else ()
            self._policy = (config, OutsidePolicy.for_plex(plex_host, allow))
        return self._policy[1]

    # --- where a connection is asked for -------------------------------------------------------------

    @fail_closed  # a policy that raises answers the CONNECT with a 502: the tunnel is never opened
    def http_connect(self, flow: http.HTTPFlow) -> None:
        """CONNECT: judged on its authority before mitmproxy says "200 Connection established"."""
        if not _is_outside(flow.client_conn.proxy_mode):
            return
        verdict = self.policy.destination(flow.request.host)
        if not verdict.allowed and not self.policy.refused_in_tunnel(flow.request.host, verdict):
            self._refuse(flow, verdict, f"CONNECT {flow.request.host}:{flow.request.port}")

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not _is_outside(flow.client_conn.proxy_mode):
            return
        flow.metadata[OUTSIDE_KEY] = True
        request = flow.request
        host = request.host  # where mitmproxy will connect: the URL's or the tunnel's host, not Host:
        where = self._where(flow)
        if "upgrade" in request.headers:
            self._refuse(flow, Verdict(Refusal.PROTOCOL, reason="protocol upgrades are not outside reads"), where)
            return
        if self.policy.needs_body(request.method, host):
            flow.metadata[NEEDS_BODY_KEY] = True  # decided in `request`, once the (size-limited) body is read
            return
        self._decide(flow, self.policy.request(request.method, host), where)

    @fail_closed
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.metadata.pop(NEEDS_BODY_KEY, False):
            return
        request = flow.request
        try:
            body = decoded(request.raw_content or b"", request.headers.get("content-encoding", ""),
                           MAX_GRAPHQL_BYTES + 1)
        except BodyError:
            body = b""  # undecodable or too large: not a GraphQL read
        self._decide(flow, self.policy.request(request.method, request.host, body), self._where(flow))

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """No raw-TCP relay on the outside door: after CONNECT, only HTTP (or TLS carrying it) is spoken."""
        context = nextlayer.context
        if not _is_outside(context.client.proxy_mode):
            return
        if nextlayer.layer is None:
            builtin = ctx.master.addons.get("nextlayer")
            if isinstance(builtin, NextLayer):
                builtin.next_layer(nextlayer)
        if isinstance(nextlayer.layer, (layers.TCPLayer, layers.UDPLayer)):
            address = context.server.address
            where = f"{address[0]}:{address[1]}" if address else "?"
            self._record(Verdict(Refusal.PROTOCOL, reason="not HTTP: the connection was closed"), f"TCP {where}",
                         host=address[0] if address else None,
                         says=f"TCP {where}: bytes that are not HTTP end the connection")
            nextlayer.layer = _CloseConnection(context)

    async def server_connect(self, data: ServerConnectionHookData) -> None:
        """The last word: resolve, check every address, and pin the connection to the address checked."""
        mode = data.client.proxy_mode
        server = data.server
        if server.address is None:
            return
        host, port = server.address
        if isinstance(mode, UpstreamMode) and tuple(server.address) == tuple(mode.address):
            return  # the user's own proxy (HTTPS_PROXY): the target was judged by name on the way in
        if isinstance(mode, ReverseMode) or not _is_outside(mode):
            why = "the preview proxy never connects upstream itself; Plex is read by Upstream only"
            server.error = f"kometa-preview: {why}"
            self._record(Verdict(Refusal.PLEX if isinstance(mode, ReverseMode) else Refusal.HOST, reason=why),
                         f"CONNECT {host}:{port}", host=host)
            return
        verdict = self.policy.destination(host)
        if verdict.allowed:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                verdict = Verdict(Refusal.UNREACHABLE, verdict.service,
                                  reason=f"{host} cannot be resolved ({exc.strerror or exc})")
            else:
                chosen, verdict = self.policy.connectable(host, [info[4][0] for info in infos])
                if chosen is not None:
                    server.address = (chosen, port)  # connect to exactly what was checked
                    return
        server.error = f"kometa-preview: {verdict.reason}"
        self._record(verdict, f"CONNECT {host}:{port}", host=host,
                     says=f"connection to {host}:{port}: {verdict.reason}")

    # --- after the call: nothing secret stays in the flow that `-w` saves ----------------------------

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(OUTSIDE_KEY):
            self._scrub(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(OUTSIDE_KEY):
            self._scrub(flow)
            message = flow.error.msg if flow.error else ""
            if message and "kometa-preview:" not in message:  # our own refusals are recorded where they happen
                self._record(Verdict(Refusal.UNREACHABLE, reason=message), self._where(flow), host=flow.request.host,
                             says=f"{self._where(flow)}: {message}")

    @staticmethod
    def _scrub(flow: http.HTTPFlow) -> None:
        """The request has gone; the saved copy keeps no credential (headers or query parameters)."""
        for name in SECRET_HEADERS:
            if name in flow.request.headers:
                flow.request.headers[name] = "<redacted>"
        flow.request.path = redact(flow.request.path)

    # --- decisions -------------------------------------------------------------------------------------

    def _decide(self, flow: http.HTTPFlow, verdict: Verdict, where: str) -> None:
        if not verdict.allowed:
            self._refuse(flow, verdict, where)
            return
        info = {"service": verdict.service, "journal": {"request": where, "host": flow.request.host}}
        if ctx.options.preview_offline:
            canned = offline_answer(flow.request.host.lower(), urlsplit(flow.request.path).path)
            if canned is None:
                self._refuse(flow, Verdict(Refusal.OFFLINE, verdict.service, "offline"), where, status=404)
                return
            event, body, content_type = canned
            self.proxy.decide(flow, event, where, body=body, content_type=content_type, **info)
            return
        self.proxy.decide(flow, Event.OUTSIDE_PASS, where, **info)

    def _refuse(self, flow: http.HTTPFlow, verdict: Verdict, where: str, status: int = 403) -> None:
        assert verdict.refusal is not None
        offline = verdict.refusal is Refusal.OFFLINE
        self.proxy.decide(flow, self._refused(verdict, where, flow.request.host),
                          where if offline else f"{where}: {verdict.reason}",
                          body=f"kometa-preview: {verdict.refusal}: {verdict.reason}\n".encode(), status=status,
                          content_type="text/plain", level=logging.INFO if offline else logging.WARNING,
                          reason=verdict.reason)

    def _record(self, verdict: Verdict, where: str, host: str | None = None, says: str = "") -> None:
        """A refusal at the connection level (no flow to answer)."""
        self.proxy.record(self._refused(verdict, where, host), says or f"{where}: {verdict.reason}",
                          level=logging.WARNING)

    @staticmethod
    def _refused(verdict: Verdict, where: str, host: str | None) -> Refused:
        """The journal line of a refusal (or of an allowed service that could not be reached)."""
        assert verdict.refusal is not None
        return Refused(event=Event(verdict.refusal.value), request=where, host=host, service=verdict.service,
                       reason=verdict.reason)

    @staticmethod
    def _where(flow: http.HTTPFlow) -> str:
        request = flow.request
        return f"{request.method} {request.scheme}://{request.host}:{request.port}{redact(urlsplit(request.path).path)}"
