"""Child processes, the vocabulary every layer shares: the environment a child gets (an allowlist), loopback
ports, the launch handshake with the proxy process, and the one way a child is stopped.

No mitmproxy import: the render uses it, and so does the proxy process (the handshake).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess

#: The proxy process's entry point (proxy/launch.py), run as a module of this package.
LAUNCH_MODULE = "kometa_preview.proxy.launch"
#: launch.py's greeting once it is non-dumpable: the handover is sent only then.
READY = b"ready\n"
# --- child environments: an allowlist ------------------------------------------------------------------

#: What a child process needs from the parent's environment to run Python at all; nothing else is passed.
ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
                       "TERM", "VIRTUAL_ENV"})
ENV_PREFIXES = ("LC_", "PYTHON")
#: Trust settings the proxy's own Plex client honours (a Plex behind a private CA).
TRUST_NAMES = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR"})
#: The user's own outgoing proxy, in the order requests reads them for https URLs.
PROXY_NAMES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def child_environment(secrets: list[str], base: dict[str, str] | None = None,
                      extra_names: frozenset[str] = frozenset()) -> dict[str, str]:
    """The parent's environment reduced to `ENV_NAMES`/`ENV_PREFIXES` (and `extra_names`), minus any variable
    whose value holds one of `secrets` (the Plex token, service keys) — whatever its name."""
    source = os.environ if base is None else base
    needles = [secret for secret in secrets if secret and len(secret) >= 4]
    env = {}
    for name, value in source.items():
        if not (name in ENV_NAMES or name in extra_names or name.upper().startswith(ENV_PREFIXES)):
            continue
        if any(needle in value for needle in needles):
            continue
        env[name] = value
    env["PYTHONUNBUFFERED"] = "1"
    return env


def user_proxy(base: dict[str, str] | None = None) -> str | None:
    """The user's own outgoing proxy (HTTPS_PROXY, then HTTP_PROXY), unless NO_PROXY=* turns it off."""
    source = os.environ if base is None else base
    if (source.get("NO_PROXY") or source.get("no_proxy") or "").strip() == "*":
        return None
    for name in PROXY_NAMES:
        if source.get(name):
            return source[name]
    return None


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


def stop_process(process: subprocess.Popen, grace: float = 10, *, group: bool = False) -> None:
    """SIGTERM the child (with `group`, its whole process group: Kometa's own children too), SIGKILL what is
    left after `grace` seconds. The one way every child of the tool is stopped."""
    if process.poll() is not None:
        return

    def send(sig: int) -> None:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    try:
        send(signal.SIGTERM)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
