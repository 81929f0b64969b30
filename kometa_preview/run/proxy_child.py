"""The proxy as a child process (mitmdump or mitmweb): its options, its start through the launch handshake, its
ready file. What every child shares (environment, ports, stopping) is common/children.py.

The parent never shares memory with them: it waits for the proxy's ready file (written from the
addons' `running` hook, so it proves the addons loaded and names the real port) and reads the
job folder afterwards.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..common.children import LAUNCH_MODULE, READY, TRUST_NAMES, child_environment, free_port, stop_process, user_proxy
from ..common.config import ProxyConfig
from ..common.job import JobLayout, Ready
from ..common.limits import BODY_SIZE_SLACK, CLIENT_IDLE_SECONDS, MAX_UPLOAD_BYTES, REQUEST_SECONDS

#: The addon script mitmdump loads. Named by path, never imported here: importing it builds the addon chain,
#: and the parent process does not import mitmproxy at all.
PROXY_SCRIPT = Path(__file__).parent.parent / "proxy" / "script.py"
#: Starts of the proxy tried when its outside-calls port was taken between being picked and being bound.
START_ATTEMPTS = 3

class LaunchError(Exception):
    """A child could not be started or did not become ready. One line, safe to show."""


@dataclass
class ProxyProcess:
    process: subprocess.Popen
    layout: JobLayout
    port: int
    client_token: str = field(repr=False)
    log_path: Path
    outside_port: int | None = None
    libraries: tuple[str, ...] = ()
    #: The render's end of the launch socket: while it is open, the proxy knows the render is there.
    lifeline: socket.socket | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM (runs the addons' `done` hooks), then SIGKILL if it does not exit in time."""
        stop_process(self.process, timeout)
        if self.lifeline is not None:
            self.lifeline.close()
        return self.process.returncode


@dataclass(frozen=True)
class ProxyOptions:
    """How a proxy is started (everything but its ProxyConfig and job folder)."""
    mock: bool = True
    #: The reverse proxy's port (0: a free one).
    port: int = 0
    #: A second mode for Kometa's outside calls (render and watch), offline or through the user's own proxy.
    outside: bool = False
    offline: bool = False
    #: mitmweb instead of mitmdump, its UI on this port with this password.
    web_port: int | None = None
    web_password: str | None = field(default=None, repr=False)
    save_flows: Path | None = None
    max_upload: int = MAX_UPLOAD_BYTES
    idle_timeout: int = CLIENT_IDLE_SECONDS
    request_timeout: int = REQUEST_SECONDS
    #: The reverse and outside-calls ports to try first (chosen before, for a Kometa already given them).
    planned_ports: tuple[int, int] | None = None
    #: Seconds to wait for the ready file.
    timeout: float = 60


def proxy_arguments(layout: JobLayout, plex_url: str, options: ProxyOptions, *, port: int, outside_port: int | None,
                    upstream_proxy: str | None) -> list[str]:
    """mitmdump's (or mitmweb's) arguments. They hold the real Plex URL and, behind a user's proxy, its credentials,
    so they are handed over through the launch socket (proxy/launch.py), never put on a command line."""
    command = ["-s", str(PROXY_SCRIPT), "--mode", f"reverse:{plex_url}@127.0.0.1:{port}",
               "--set", f"confdir={layout.confdir}",
               "--set", "preview_config=inherited", "--set", f"preview_job={layout.root}",
               "--set", f"tcp_timeout={options.idle_timeout}",
               "--set", f"preview_request_timeout={options.request_timeout}",
               "--set", f"preview_mock_library={'true' if options.mock else 'false'}",
               "--set", f"preview_max_upload={options.max_upload}",
               "--set", f"body_size_limit={options.max_upload + BODY_SIZE_SLACK}",
               "--set", "connection_strategy=lazy", "--set", "flow_detail=0",
               "--set", "termlog_verbosity=info", "--set", "preview_exit_when_done=true"]
    if options.outside:
        # mitmproxy refuses two modes on the same address, even both on port 0. Behind the user's own proxy,
        # allowed calls leave through it (mitmproxy's upstream mode); offline, nothing leaves at all.
        address, credentials = split_proxy_url(upstream_proxy) if upstream_proxy else (None, None)
        mode = "regular" if address is None else f"upstream:{address}"
        command += ["--mode", f"{mode}@127.0.0.1:{outside_port or free_port()}", "--set", "preview_outside=true",
                    "--set", f"preview_offline={'true' if options.offline else 'false'}"]
        if credentials is not None:
            command += ["--set", f"upstream_auth={credentials}"]
        trusted = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        if trusted:  # the user's CA bundle (a corporate proxy's CA) for the calls that are allowed
            command += ["--set", f"ssl_verify_upstream_trusted_ca={trusted}"]
    if options.web_port is not None:
        command += ["--set", f"web_port={options.web_port}", "--set", "web_host=127.0.0.1",
                    "--set", "web_open_browser=false"]
        if options.web_password is not None:
            from argon2 import PasswordHasher  # mitmproxy's own dependency; mitmweb checks the token against it
            command += ["--set", f"web_password={PasswordHasher().hash(options.web_password)}"]
    if options.save_flows is not None:
        command += ["-w", str(options.save_flows)]
    return command


def split_proxy_url(url: str) -> tuple[str, str | None]:
    """A proxy URL as mitmproxy wants it: `scheme://host:port` for the mode, and `user:password` (or None) for
    `upstream_auth`."""
    split = urlsplit(url if "://" in url else f"http://{url}")
    address = f"{split.scheme}://{split.hostname}:{split.port or (443 if split.scheme == 'https' else 80)}"
    credentials = f"{unquote(split.username)}:{unquote(split.password or '')}" if split.username else None
    return address, credentials


def start_proxy(config: ProxyConfig, layout: JobLayout, options: ProxyOptions = ProxyOptions(), *,
                secrets: list[str] | None = None) -> ProxyProcess:
    """Start the proxy and wait for its ready file. Raises `LaunchError` with the reason. Whether the planned ports
    were the ones bound is in the returned `ProxyProcess`.

    The proxy process (proxy/launch.py) gets `config` (Plex and the targets, nothing else of preview.yml) and its
    arguments through a socketpair, once it has made itself non-dumpable; its environment is `child_environment`
    minus anything holding one of `secrets`. So no file, argv or environment another process could read holds the
    token or the real Plex URL. The socket stays open as its lifeline: if the render dies, the proxy stops.
    """
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.ready.unlink(missing_ok=True)
    layout.logs.mkdir(exist_ok=True)
    upstream = None if options.offline or not options.outside else user_proxy()
    environment = child_environment([config.plex.token, *(secrets or [])], extra_names=TRUST_NAMES)
    for attempt in range(1, START_ATTEMPTS + 1):
        port, outside_port = options.planned_ports if options.planned_ports and attempt == 1 else (options.port, None)
        arguments = proxy_arguments(layout, config.plex.url, options, port=port, outside_port=outside_port,
                                    upstream_proxy=upstream)
        logged = layout.proxy_log.stat().st_size if layout.proxy_log.exists() else 0
        handover = {"tool": "mitmweb" if options.web_port is not None else "mitmdump", "args": arguments,
                    "config": config.to_json()}
        process, lifeline = _launch(handover, layout, environment, options.timeout)
        try:
            return _wait_ready(process, lifeline, layout, options.timeout)
        except LaunchError:
            # The outside-calls port is picked free and bound by mitmdump a moment later (mitmproxy takes no
            # two port-0 modes on one address); under load another process can take it in between. Only that
            # is retried, with a new port; the first attempt's log stays in proxy.log.
            if attempt == START_ATTEMPTS or not (options.outside and _lost_port_race(layout.proxy_log, logged)):
                raise
    raise AssertionError("unreachable")


def _launch(handover: dict, layout: JobLayout, environment: dict[str, str],
            timeout: float) -> tuple[subprocess.Popen, socket.socket]:
    """Start proxy/launch.py and hand it over what it needs, once it says it is non-dumpable."""
    ours, theirs = socket.socketpair()
    try:
        with layout.proxy_log.open("ab") as log_file:
            process = subprocess.Popen([sys.executable, "-P", "-m", LAUNCH_MODULE, str(theirs.fileno())],
                                       stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, env=environment, pass_fds=[theirs.fileno()])
    finally:
        theirs.close()
    try:
        ours.settimeout(timeout)
        greeting = ours.recv(len(READY))
        if greeting != READY:
            process.wait(timeout=10)
            raise LaunchError(f"the proxy exited with code {process.returncode} before it was ready: "
                              f"{_last_error(layout.proxy_log)}")
        ours.sendall(json.dumps(handover).encode() + b"\n")
        ours.settimeout(None)
    except BaseException:
        ours.close()
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return process, ours


def _lost_port_race(log_path: Path, since: int) -> bool:
    with log_path.open("rb") as handle:
        handle.seek(since)
        text = handle.read().decode("utf-8", "replace")
    return "failed to listen" in text and "address already in use" in text.lower()


def _wait_ready(process: subprocess.Popen, lifeline: socket.socket, layout: JobLayout,
                timeout: float) -> ProxyProcess:
    deadline = time.monotonic() + timeout
    log_path = layout.proxy_log
    try:
        while time.monotonic() < deadline:
            if layout.ready.exists():
                ready = Ready.read(layout)
                if not ready.ok:
                    process.wait(timeout=10)
                    raise LaunchError(ready.error or "the proxy did not start")
                return ProxyProcess(process, layout, ready.port, ready.client_token, log_path,
                                    ready.outside_port, tuple(ready.libraries), lifeline)
            if process.poll() is not None:
                raise LaunchError(f"the proxy exited with code {process.returncode} before it was ready: "
                                  f"{_last_error(log_path)}")
            time.sleep(0.01)
        raise LaunchError(f"the proxy was not ready after {timeout:g}s (see {log_path})")
    except BaseException:
        # Ctrl-C or a failure while waiting: the caller has no handle yet, so the child is ours to stop.
        if process.poll() is None:
            process.kill()
            process.wait()
        lifeline.close()
        raise


def _last_error(log_path: Path) -> str:
    """The most telling line of a failed mitmdump start: the last one that names an error (mitmdump's own closing
    "Error logged during startup, exiting..." says nothing of the cause)."""
    lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip() and "Error logged during startup" not in line]
    for line in reversed(lines):
        if "error" in line.lower() or "errno" in line.lower():
            return line
    return lines[-1] if lines else "no output"
