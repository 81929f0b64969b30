"""Setup: the `preview_*` options, the state built from them, and the ready file.

Options are validated in `configure` and turned into `OptionsError` (a bad value must stop
mitmdump, never silently unload the script: mitmproxy issue #8013). The ready file is written from
`running`, so its presence proves the addons loaded, and it carries the real listen address and the
job token for the launcher.
"""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

from mitmproxy import ctx, http
from mitmproxy.exceptions import OptionsError
from mitmproxy.proxy.mode_specs import ProxyMode

from ..config import ConfigError, load, mock_library_from_environment
from ..files import write_private
from .flows import META_KEY, Proxy
from .journal import Journal, log, redact
from .mock_library import target_sections
from .state import PreviewState, StartupError, prefetch
from .upstream import Upstream

READY_FILE = "proxy_ready.json"
JOURNAL_FILE = "proxy_journal.jsonl"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
OPTIONS = {"preview_config", "preview_job", "preview_mock_library", "preview_client_token", "preview_max_upload",
           "preview_secrets"}
#: Options that would let whoever can change options run code or open another door; fixed once running.
FIXED_WHILE_RUNNING = {"scripts", "mode", "listen_host", "confdir", "ignore_hosts", "allow_hosts", "tcp_hosts",
                       "udp_hosts", "stream_large_bodies", "connection_strategy"}


def read_secrets(path: Path) -> dict[str, str]:
    """The `${VARIABLES}` preview.yml expands, from the launcher's 0600 file (never argv or environment)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionsError(f"preview_secrets {path}: cannot be read ({exc})") from None
    environ = document.get("environ") if isinstance(document, dict) else None
    if not isinstance(environ, dict) or not all(isinstance(v, str) for v in environ.values()):
        raise OptionsError(f"preview_secrets {path}: expected {{\"environ\": {{NAME: value}}}}")
    return environ


def write_ready(job: Path, payload: dict) -> None:
    """Atomically write the ready file (mode 0600: it holds the job token)."""
    write_private(job / READY_FILE, json.dumps(payload))


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
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.running_now = False
        self._secrets: dict[str, str] | None = None

    def load(self, loader) -> None:
        loader.add_option("preview_config", str, "", "Path to preview.yml: the targets, and the Plex URL and token.")
        loader.add_option("preview_secrets", str, "",
                          "A 0600 JSON file {\"environ\": {NAME: value}} with the ${NAME}s preview.yml expands "
                          "(the launcher's way to pass the Plex token without argv or environment).")
        loader.add_option("preview_job", str, "",
                          "Job folder for the journal, captures and ready file "
                          "(default: <preview.output>/live-<time>).")
        loader.add_option("preview_mock_library", bool, mock_library_from_environment(),
                          "Answer listings locally with only the targets (default: on unless PREVIEW_MOCK_LIBRARY=0); "
                          "off = forward listings to Plex and filter them.")
        loader.add_option("preview_client_token", str, "",
                          "Token clients must present (default: a random one, written to the ready file).")
        loader.add_option("preview_max_upload", int, 64 << 20, "Largest request body accepted, in bytes (413 above).")

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
        if not updated & OPTIONS:
            return
        if ctx.options.preview_max_upload < 1:
            raise OptionsError("preview_max_upload must be a positive number of bytes")
        if not ctx.options.preview_config:
            self.proxy.state = None
            log.warning("NOT_CONFIGURED preview_config is not set: every request is answered 503")
            return
        if ctx.options.preview_secrets and self._secrets is None:
            self._secrets = read_secrets(Path(ctx.options.preview_secrets))
        try:
            config = load(ctx.options.preview_config, environ=self._secrets)
        except ConfigError as exc:
            raise OptionsError(str(exc)) from None
        job = Path(ctx.options.preview_job) if ctx.options.preview_job else \
            config.output / time.strftime("live-%Y%m%d_%H%M%S")
        journal = Journal(job / JOURNAL_FILE)
        state = PreviewState(config=config, job=job, mock=ctx.options.preview_mock_library,
                             upstream=Upstream(config.plex.url, config.plex.token, config.plex.timeout,
                                               config.plex.verify_ssl),
                             journal=journal, max_upload=ctx.options.preview_max_upload)
        if ctx.options.preview_client_token:
            state.client_token = ctx.options.preview_client_token
        journal.write("PROXY_START", mock_library=state.mock, targets=[t.id for t in config.targets],
                      allowed_rating_keys=config.rating_keys, plex=redact(config.plex.url))
        try:
            prefetch(state)
        except StartupError as exc:
            journal.write("STARTUP_ERROR", error=str(exc))
            write_ready(job, {"ok": False, "error": str(exc)})
            raise OptionsError(f"preview: {exc}") from None
        self.proxy.state = state
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
        addresses = modes.get("reverse", [])
        write_ready(state.job, {"ok": True, "pid": os.getpid(), "listen": addresses, "modes": modes,
                                "libraries": [state.sections[key].title for key in target_sections(state)],
                                "missing": sorted(state.missing),
                                "client_token": state.client_token, "mock_library": state.mock,
                                "job": str(state.job)})
        state.journal.write("PROXY_READY", modes=modes)
        log.info("PROXY_READY listening on %s, job folder %s", addresses, state.job)

    def done(self) -> None:
        state = self.proxy.state
        if state is None:
            return
        counters = dict(state.counters)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        state.journal.write("PROXY_DONE", counters=counters, learned_parent_keys=sorted(state.learned_parents),
                            upstream_requests=state.upstream.requests, upstream_bytes=state.upstream.bytes,
                            cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
                            peak_rss_mib=peak_rss_mib(usage))
        log.info("Mock list requests: %d", counters.get("MOCK_LIST", 0))
        log.info("Forwarded requests: %d", counters.get("forwarded", 0))
        log.info("Blocked metadata requests: %d", counters.get("BLOCK_METADATA", 0))
        state.journal.close()
        state.upstream.close()


class FlowJournal:
    """One journal line per answered flow: method, redacted path, verdict, status, size."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def response(self, flow: http.HTTPFlow) -> None:
        state = self.proxy.state
        if state is None or flow.response is None:
            return
        info = flow.metadata.get(META_KEY, {})
        state.journal.write("FLOW", method=flow.request.method, path=redact(flow.request.path),
                            verdict=info.get("verdict"), status=flow.response.status_code,
                            bytes=len(flow.response.raw_content or b""))

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.proxy.state
        if state is not None:
            state.journal.write("FLOW_ERROR", method=flow.request.method, path=redact(flow.request.path),
                                error=flow.error.msg if flow.error else None)
