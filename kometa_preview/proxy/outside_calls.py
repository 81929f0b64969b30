"""OutsideCalls: Kometa's calls to the rest of the internet (GitHub, TMDb), through a second mode of
the same mitmdump (`regular@127.0.0.1:PORT`) that Kometa reaches with HTTPS_PROXY.

By default reads pass through and everything else is refused, because a preview must not send
anything anywhere (no webhooks, no list syncs) and must never reach Plex by a side door. With
`preview_offline`, Kometa's three start-up calls are answered here and every other call is refused
with a recorded 404, so a preview runs with no internet at all.
"""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from mitmproxy import ctx, http
from mitmproxy.proxy.mode_specs import RegularMode

from .flows import OUTSIDE_KEY, Proxy, answer, fail_closed, tag
from .journal import log, redact

KOMETA_VERSION_PATH = "/Kometa-Team/Kometa/"
ANIME_IDS_PATH = "/Kometa-Team/Anime-IDs/"
#: Enough of TMDb's /3/configuration for Kometa's client (kometa-traffic.md).
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


def offline_answer(host: str, path: str) -> tuple[str, bytes, str] | None:
    """The canned answer to one of Kometa's start-up calls, or None."""
    if host == "raw.githubusercontent.com" and path.startswith(KOMETA_VERSION_PATH) and path.endswith("/VERSION"):
        return "OFFLINE_VERSION", b"2.4.4\n", "text/plain; charset=utf-8"
    if host == "raw.githubusercontent.com" and path.startswith(ANIME_IDS_PATH) and path.endswith(".json"):
        return "OFFLINE_ANIME_IDS", b"{}", "application/json"
    if host == "api.themoviedb.org" and path == "/3/configuration":
        return "OFFLINE_TMDB_CONFIGURATION", json.dumps(TMDB_CONFIGURATION).encode(), "application/json"
    return None


class OutsideCalls:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def load(self, loader) -> None:
        loader.add_option("preview_outside", bool, False,
                          "Treat requests on the regular (forward) proxy mode as Kometa's outside calls.")
        loader.add_option("preview_offline", bool, False,
                          "Answer Kometa's start-up calls (version, TMDb configuration, anime ids) locally "
                          "and refuse every other outside call.")

    @fail_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not ctx.options.preview_outside:
            return
        if not isinstance(flow.client_conn.proxy_mode, RegularMode):
            return
        flow.metadata[OUTSIDE_KEY] = True
        request = flow.request
        host, path = request.pretty_host.lower(), urlsplit(request.path).path
        state = self.proxy.state
        plex = urlsplit(state.config.plex.url) if state else None
        where = f"{request.method} {request.scheme}://{host}{redact(path)}"
        if plex is not None and host == (plex.hostname or "").lower():
            self._refuse(flow, 403, "OUTSIDE_REFUSED_PLEX", where)
        elif request.method not in ("GET", "HEAD"):
            self._refuse(flow, 403, "OUTSIDE_REFUSED_WRITE", where)
        elif ctx.options.preview_offline:
            canned = offline_answer(host, path)
            if canned is None:
                self._refuse(flow, 404, "OUTSIDE_REFUSED_OFFLINE", where)
            else:
                verdict, body, content_type = canned
                answer(flow, verdict, body, content_type=content_type)
                self._record(verdict, where)
        else:
            tag(flow, "OUTSIDE_PASS")
            self._record("OUTSIDE_PASS", where)

    def _refuse(self, flow: http.HTTPFlow, status: int, verdict: str, where: str) -> None:
        answer(flow, verdict, f"kometa-preview: {verdict}".encode(), status=status, content_type="text/plain")
        self._record(verdict, where)
        log.warning("%s %s", verdict, where)

    def _record(self, verdict: str, where: str) -> None:
        if self.proxy.state is not None:
            self.proxy.state.counters[verdict] += 1
            self.proxy.state.journal.write(verdict, request=where)
