"""Child processes: the proxy (mitmdump or mitmweb) and, for a render, Kometa.

The parent never shares memory with them: it waits for the proxy's ready file (written from the
addons' `running` hook, so it proves the addons loaded and names the real port) and reads the
job folder afterwards.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .proxy import script as proxy_script
from .proxy.setup import READY_FILE

MITM_ENTRY = "import sys; from mitmproxy.tools.main import {tool}; sys.exit({tool}())"


class LaunchError(Exception):
    """A child could not be started or did not become ready. One line, safe to show."""


@dataclass
class ProxyProcess:
    process: subprocess.Popen
    job: Path
    port: int
    client_token: str
    log_path: Path
    web_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM (runs the addons' `done` hooks), then SIGKILL if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def proxy_command(config_path: Path, job: Path, plex_url: str, *, mock: bool, port: int = 0,
                  web_port: int | None = None, save_flows: Path | None = None, max_upload: int = 64 << 20,
                  extra: list[str] | None = None) -> list[str]:
    tool = "mitmweb" if web_port is not None else "mitmdump"
    command = [sys.executable, "-c", MITM_ENTRY.format(tool=tool), "-s", str(Path(proxy_script.__file__)),
               "--mode", f"reverse:{plex_url}@127.0.0.1:{port}",
               "--set", f"confdir={job / 'mitmproxy'}",
               "--set", f"preview_config={config_path}", "--set", f"preview_job={job}",
               "--set", f"preview_mock_library={'true' if mock else 'false'}",
               "--set", f"preview_max_upload={max_upload}",
               "--set", f"body_size_limit={max_upload + (64 << 10)}",
               "--set", "connection_strategy=lazy", "--set", "flow_detail=0",
               "--set", "termlog_verbosity=info"]
    if web_port is not None:
        command += ["--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1",
                    "--set", "web_open_browser=false"]
    if save_flows is not None:
        command += ["-w", str(save_flows)]
    return command + (extra or [])


def start_proxy(config_path: Path, job: Path, plex_url: str, *, mock: bool = True, port: int = 0,
                web_port: int | None = None, save_flows: Path | None = None, timeout: float = 60,
                extra: list[str] | None = None) -> ProxyProcess:
    """Start the proxy and wait for its ready file. Raises `LaunchError` with the reason."""
    job.mkdir(parents=True, exist_ok=True)
    (job / READY_FILE).unlink(missing_ok=True)
    logs = job / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "proxy.log"
    command = proxy_command(config_path, job, plex_url, mock=mock, port=port, web_port=web_port,
                            save_flows=save_flows, extra=extra)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    ready_path = job / READY_FILE
    while time.monotonic() < deadline:
        if ready_path.exists():
            ready = json.loads(ready_path.read_text(encoding="utf-8"))
            if not ready.get("ok"):
                process.wait(timeout=10)
                raise LaunchError(ready.get("error", "the proxy did not start"))
            return ProxyProcess(process, job, ready["listen"][0][1], ready["client_token"], log_path, web_port)
        if process.poll() is not None:
            raise LaunchError(f"the proxy exited with code {process.returncode} before it was ready: "
                              f"{_last_error(log_path)}")
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise LaunchError(f"the proxy was not ready after {timeout:g}s (see {log_path})")


def _last_error(log_path: Path) -> str:
    """The most telling line of a failed mitmdump start."""
    lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    for line in reversed(lines):
        if "Error" in line and "Error logged during startup" not in line:
            return line
    return lines[-1] if lines else "no output"
