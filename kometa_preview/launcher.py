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
    outside_port: int | None = None
    libraries: tuple[str, ...] = ()

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
                  outside: bool = False, offline: bool = False, extra: list[str] | None = None) -> list[str]:
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
    if outside:
        # mitmproxy refuses two modes on the same address, even both on port 0.
        command += ["--mode", f"regular@127.0.0.1:{free_port()}", "--set", "preview_outside=true",
                    "--set", f"preview_offline={'true' if offline else 'false'}"]
    if web_port is not None:
        command += ["--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1",
                    "--set", "web_open_browser=false"]
    if save_flows is not None:
        command += ["-w", str(save_flows)]
    return command + (extra or [])


def start_proxy(config_path: Path, job: Path, plex_url: str, *, mock: bool = True, port: int = 0,
                web_port: int | None = None, save_flows: Path | None = None, timeout: float = 60,
                outside: bool = False, offline: bool = False, max_upload: int = 64 << 20,
                extra: list[str] | None = None) -> ProxyProcess:
    """Start the proxy and wait for its ready file. Raises `LaunchError` with the reason."""
    job.mkdir(parents=True, exist_ok=True)
    (job / READY_FILE).unlink(missing_ok=True)
    logs = job / "logs"
    logs.mkdir(exist_ok=True)
    log_path = logs / "proxy.log"
    command = proxy_command(config_path, job, plex_url, mock=mock, port=port, web_port=web_port,
                            save_flows=save_flows, max_upload=max_upload, outside=outside, offline=offline,
                            extra=extra)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    ready_path = job / READY_FILE
    try:
        while time.monotonic() < deadline:
            if ready_path.exists():
                ready = json.loads(ready_path.read_text(encoding="utf-8"))
                if not ready.get("ok"):
                    process.wait(timeout=10)
                    raise LaunchError(ready.get("error", "the proxy did not start"))
                outside_addresses = ready.get("modes", {}).get("regular") or [[None, None]]
                return ProxyProcess(process, job, ready["listen"][0][1], ready["client_token"], log_path, web_port,
                                    outside_addresses[0][1], tuple(ready.get("libraries", ())))
            if process.poll() is not None:
                raise LaunchError(f"the proxy exited with code {process.returncode} before it was ready: "
                                  f"{_last_error(log_path)}")
            time.sleep(0.05)
        raise LaunchError(f"the proxy was not ready after {timeout:g}s (see {log_path})")
    except BaseException:
        # Ctrl-C or a failure while waiting: the caller has no handle yet, so the child is ours to stop.
        if process.poll() is None:
            process.kill()
            process.wait()
        raise


def _last_error(log_path: Path) -> str:
    """The most telling line of a failed mitmdump start."""
    lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
             if line.strip()]
    for line in reversed(lines):
        if "Error" in line and "Error logged during startup" not in line:
            return line
    return lines[-1] if lines else "no output"


# --- Kometa ---------------------------------------------------------------------------------------

DEFAULT_KOMETA = Path("/kometa.py")
#: Kometa reads every flag from KOMETA_<FLAG> (and the older PMM_<FLAG>), and those win over flags.
OVERRIDING_PREFIXES = ("KOMETA_", "PMM_")


@dataclass(frozen=True)
class KometaCommand:
    python: str
    script: Path

    def argv(self, run_config: Path, libraries: list[str]) -> list[str]:
        return [self.python, str(self.script), "--config", str(run_config), "--run", "--overlays-only",
                "--run-libraries", "|".join(libraries), "--ignore-schedules", "--read-only-config",
                "--no-report", "--no-missing"]


def find_kometa(given: Path | None, configured: Path | None, python: str | None) -> KometaCommand:
    """`--kometa`/`KOMETA_PATH`, then `kometa.path`, then the official image's `/kometa.py`.
    A folder means the checkout holding kometa.py. Raises `LaunchError` naming what was tried."""
    tried = []
    for source, candidate in (("--kometa/KOMETA_PATH", given), ("kometa.path", configured),
                              ("the default", DEFAULT_KOMETA)):
        if candidate is None:
            continue
        script = candidate / "kometa.py" if candidate.is_dir() else candidate
        if script.is_file():
            return KometaCommand(python or sys.executable, script.resolve())
        tried.append(f"{source} {script}")
        if source != "the default":
            break  # an explicit path that is wrong is an error, not a reason to run another Kometa
    raise LaunchError(f"Kometa not found (tried {', '.join(tried)}); point --kometa or KOMETA_PATH at kometa.py")


def kometa_environment(proxy: ProxyProcess, base: dict[str, str] | None = None) -> dict[str, str]:
    """Kometa's environment: no KOMETA_*/PMM_* overrides; outside calls through the proxy's
    forward mode, trusting its per-job CA; the reverse proxy itself reached directly."""
    env = {k: v for k, v in (base if base is not None else os.environ).items()
           if not k.upper().startswith(OVERRIDING_PREFIXES)}
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        env.pop(name, None)
        env.pop(name.lower(), None)
    if proxy.outside_port:
        outside = f"http://127.0.0.1:{proxy.outside_port}"
        ca = str(proxy.job / "mitmproxy" / "mitmproxy-ca-cert.pem")
        env.update(HTTP_PROXY=outside, HTTPS_PROXY=outside, http_proxy=outside, https_proxy=outside,
                   NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
                   REQUESTS_CA_BUNDLE=ca, SSL_CERT_FILE=ca)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class KometaTimeout(Exception):
    pass


def run_kometa(argv: list[str], env: dict[str, str], cwd: Path, log_path: Path, timeout: float,
               on_line=None, on_tick=None) -> int:
    """Run Kometa to the end, its output to `log_path` (and each line to `on_line`).

    Raises `KometaTimeout` after `timeout` seconds and re-raises KeyboardInterrupt, in both cases
    after stopping Kometa and everything it started.
    """
    import threading

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)

        def pump() -> None:
            for raw in process.stdout:
                log_file.write(raw)
                log_file.flush()
                if on_line is not None:
                    on_line(raw.decode("utf-8", "replace").rstrip("\n"))

        reader = threading.Thread(target=pump, name="kometa-output", daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    stop_group(process)
                    raise KometaTimeout(f"Kometa was stopped after {timeout:g}s (kometa.timeout)")
                if on_tick is not None:
                    on_tick()
                time.sleep(0.2)
        except BaseException:
            stop_group(process)
            raise
        finally:
            reader.join(timeout=5)
    return process.returncode


def stop_group(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the child's whole process group, SIGKILL what is left after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
