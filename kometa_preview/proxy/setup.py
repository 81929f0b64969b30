"""Setup: every `preview_*` option, the state built from them once, and the ready file.

Options are validated in `configure` and turned into `OptionsError` (a bad value must stop mitmdump, never
silently unload the script: mitmproxy issue #8013). `configure` is idempotent: mitmproxy calls it more than
once at start-up (deferred `--set` options, then every option), and the state is built on the first call
that has a `preview_config`; a later call with the same values changes nothing, and a change of a
`preview_*` option once the state exists is refused with `OptionsError` (mitmweb's options editor shows
it) — so the job token, the journal, the upstream connection and the prefetched targets never change under
a running preview. The ready file is written from `running`, so its presence proves the addons loaded.
The addons never read the environment: the launcher (or `addons/preview.py`) passes everything as options.
"""
from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path

from mitmproxy import ctx, http
from mitmproxy.exceptions import OptionsError
from mitmproxy.proxy.mode_specs import ProxyMode

from ..common.config import ConfigError, ProxyConfig, load_for_proxy
from ..common.events import Event, Flow, ProxyDone, ProxyStart
from ..common.job import JobLayout, Ready
from ..common.limits import MAX_UPLOAD_BYTES, REQUEST_SECONDS
from ..plex.client import Upstream
from .flows import META_KEY, UPSTREAM_KEY, Proxy
from .journal import Journal, log, redact
from .state import PreviewState, StartupError, prefetch

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
#: Options that decide the state; fixed once it is built.
STATE_OPTIONS = ("preview_config", "preview_job", "preview_mock_library", "preview_client_token",
                 "preview_max_upload")
#: Options that would let whoever can change options run code or open another door; fixed once running.
FIXED_WHILE_RUNNING = {"scripts", "mode", "listen_host", "confdir", "ignore_hosts", "allow_hosts", "tcp_hosts",
                       "udp_hosts", "stream_large_bodies", "connection_strategy", "preview_outside",
                       "preview_offline"}


#: `preview_config` naming the ProxyConfig the render handed over through the launch socket (launch.py): the Plex
#: token is never in a file or on a command line.
INHERITED = "inherited"
_handed_over: list[ProxyConfig] = []


def hand_over(config: ProxyConfig) -> None:
    """The render's ProxyConfig, received by launch.py before mitmproxy starts."""
    _handed_over[:] = [config]


def peak_rss_mib(usage: resource.struct_rusage) -> float:
    """This process's peak resident memory. Linux's `VmHWM` first: `ru_maxrss` survives fork+exec, so a
    proxy started by a large parent would report the parent's peak as its own."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return round(usage.ru_maxrss / 1024, 1)


class Setup:
    def __init__(self, proxy: Proxy, *, mock_library_default: bool = True) -> None:
        self.proxy = proxy
        self.mock_library_default = mock_library_default
        self.running_now = False
        self._built_from: tuple | None = None

    def load(self, loader) -> None:
        loader.add_option("preview_config", str, "",
                          f"preview.yml: the targets, and the Plex URL and token ('{INHERITED}': what the render "
                          "handed over to kometa_preview.proxy.launch).")
        loader.add_option("preview_job", str, "",
                          "Job folder for the journal, captures and ready file "
                          "(default: <preview.output>/live-<time>).")
        loader.add_option("preview_mock_library", bool, self.mock_library_default,
                          "Answer listings locally with only the targets; off = forward listings to Plex and "
                          "filter them (PREVIEW_MOCK_LIBRARY=0 for render and addons/preview.py).")
        loader.add_option("preview_client_token", str, "",
                          "Token clients must present (default: a random one, written to the ready file).")
        loader.add_option("preview_max_upload", int, MAX_UPLOAD_BYTES,
                          "Largest request body accepted, decoded, in bytes (413 above).")
        loader.add_option("preview_request_timeout", int, REQUEST_SECONDS,
                          "Seconds a client may take to send a whole request before its connection is closed.")
        loader.add_option("preview_outside", bool, False,
                          "Treat requests on the regular (forward) or upstream proxy mode as Kometa's outside calls.")
        loader.add_option("preview_offline", bool, False,
                          "Answer Kometa's start-up calls (version, TMDb configuration, anime ids) locally "
                          "and refuse every other outside call.")

    def configure(self, updated: set[str]) -> None:
        if self.running_now and updated & FIXED_WHILE_RUNNING:
            raise OptionsError(f"preview: {', '.join(sorted(updated & FIXED_WHILE_RUNNING))} cannot be changed "
                               "while the preview runs")
        if "connection_strategy" in updated and ctx.options.connection_strategy != "lazy":
            # eager opens an upstream connection per client, and the preview never connects upstream itself.
            ctx.options.connection_strategy = "lazy"
        if "mode" in updated or "listen_host" in updated:
            for spec in ctx.options.mode:
                host = ProxyMode.parse(spec).listen_host(ctx.options.listen_host)
                if host not in LOOPBACK:
                    raise OptionsError(f"preview: mode {spec!r} listens on {host or 'every address'}; "
                                       "bind it to 127.0.0.1 (…@127.0.0.1:PORT)")
        if ctx.options.preview_max_upload < 1:
            raise OptionsError("preview_max_upload must be a positive number of bytes")
        if ctx.options.preview_request_timeout < 1:
            raise OptionsError("preview_request_timeout must be a positive number of seconds")
        wanted = tuple(getattr(ctx.options, name) for name in STATE_OPTIONS)
        if self._built_from is not None:
            if wanted != self._built_from:
                changed = [n for n, old, new in zip(STATE_OPTIONS, self._built_from, wanted) if old != new]
                raise OptionsError(f"preview: {', '.join(changed)} cannot be changed once the preview has started; "
                                   "start a new one")
            return
        if not ctx.options.preview_config:
            log.warning("NOT_CONFIGURED preview_config is not set: every request is answered 503")
            return
        self._build()
        self._built_from = wanted

    def _build(self) -> None:
        try:
            config = _handed_over[0] if ctx.options.preview_config == INHERITED and _handed_over else \
                load_for_proxy(ctx.options.preview_config)
        except ConfigError as exc:
            raise OptionsError(str(exc)) from None
        job = Path(ctx.options.preview_job) if ctx.options.preview_job else \
            (config.output or Path.cwd()) / time.strftime("live-%Y%m%d_%H%M%S")
        layout = JobLayout(job)
        state = PreviewState(config=config, job=job, mock=ctx.options.preview_mock_library,
                             upstream=Upstream(config.plex.url, config.plex.token, config.plex.timeout,
                                               config.plex.verify_ssl),
                             journal=Journal(layout.journal), max_upload=ctx.options.preview_max_upload)
        if config.client_token:
            state.client_token = config.client_token
        if ctx.options.preview_client_token:
            state.client_token = ctx.options.preview_client_token
        self.proxy.state = state
        self.proxy.record(ProxyStart(mock_library=state.mock, targets=[t.id for t in config.targets],
                                     allowed_rating_keys=config.rating_keys, plex=redact(config.plex.url)),
                          level=logging.DEBUG)
        try:
            prefetch(state, self.proxy)
        except StartupError as exc:
            self.proxy.state = None
            state.journal.note(Event.STARTUP_ERROR, error=str(exc))
            Ready(ok=False, error=str(exc)).write(layout)
            state.journal.close()
            state.upstream.close()
            raise OptionsError(f"preview: {exc}") from None
        self._announce(state)

    def _announce(self, state: PreviewState) -> None:
        keys = [k for k in state.targets if k not in state.missing]
        if state.mock:
            log.info("MOCK_LIBRARY_MODE ENABLED: Only %d items visible", len(keys))
            log.info("Listing endpoints will NOT be forwarded to Plex")
            log.info("Metadata requests forwarded only for allowed ratingKeys")
        else:
            log.info("FILTER_MODE ENABLED: Only %d items allowed", len(keys))
        log.info("Allowed ratingKeys: %s", keys)

    def running(self) -> None:
        self.running_now = True
        state = self.proxy.state
        if state is None:
            return
        servers = list(ctx.master.addons.get("proxyserver").servers)
        modes = {server.mode.type_name: [list(a[:2]) for a in server.listen_addrs] for server in servers}
        Ready(ok=True, pid=os.getpid(), modes=modes,
              libraries=[state.sections[key].title for key in state.target_sections()],
              missing=sorted(state.missing), client_token=state.client_token, mock_library=state.mock
              ).write(state.layout)
        self.proxy.note(Event.PROXY_READY, f"listening on {modes.get('reverse', [])}, job folder {state.job}",
                        modes=modes)

    def done(self) -> None:
        state = self.proxy.state
        if state is None:
            return
        counters = dict(state.counters)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        state.journal.write(ProxyDone(counters=counters, learned_parent_keys=sorted(state.learned_parents),
                                      upstream_requests=state.upstream.requests, upstream_bytes=state.upstream.bytes,
                                      cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
                                      peak_rss_mib=peak_rss_mib(usage)))
        log.info("Mock list requests: %d", counters.get(Event.MOCK_LIST, 0))
        log.info("Forwarded requests: %d", counters.get("answered_with_plex", 0))
        log.info("Blocked metadata requests: %d", counters.get(Event.BLOCK_METADATA, 0))
        state.journal.close()
        state.upstream.close()


class FlowJournal:
    """One journal line per answered flow: method, redacted path, verdict, status, size, and how many reads of
    Plex answering it took (`upstream`: the one definition of "answered with Plex's help")."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def response(self, flow: http.HTTPFlow) -> None:
        state = self.proxy.state
        if state is None or flow.response is None:
            return
        info = flow.metadata.get(META_KEY, {})
        upstream = flow.metadata.get(UPSTREAM_KEY, 0)
        if upstream:
            state.counters["answered_with_plex"] += 1
        state.journal.write(Flow(method=flow.request.method, path=redact(flow.request.path),
                                 verdict=info.get("verdict"), status=flow.response.status_code,
                                 bytes=len(flow.response.raw_content or b""), upstream=upstream))

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.proxy.state
        if state is not None:
            state.journal.note(Event.FLOW_ERROR, method=flow.request.method, path=redact(flow.request.path),
                               error=flow.error.msg if flow.error else None)
