"""The proxy process's entry point: `python -m kometa_preview.proxy.launch <fd>`, where `<fd>` is its end of a
socketpair the render keeps the other end of.

Nothing the proxy must keep from Kometa is on its command line, in its environment or in a file: mitmdump's (or
mitmweb's) arguments — the real Plex URL among them — and the ProxyConfig with the Plex token arrive through the
socket, and only after this process has made itself non-dumpable (so that another process of the same user cannot
read its memory, its /proc environ or its file descriptors; only root can). The socket then stays open as the
lifeline: when the render is gone, the proxy shuts down the way SIGTERM shuts it down.

mitmproxy is told not to read `<confdir>/config.yaml`: the confdir is in the job folder, and options come from the
render alone.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
import threading
import time

from ..common.children import READY
from ..common.config import ProxyConfig
from ..common.limits import HANDOVER_BYTES, LIFELINE_GRACE_SECONDS

PR_SET_DUMPABLE = 4


def non_dumpable() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def receive(control: socket.socket) -> dict:
    """The handover: one JSON line, at most HANDOVER_BYTES."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = control.recv(65536)
        if not chunk or len(data) + len(chunk) > HANDOVER_BYTES:
            raise SystemExit("kometa-preview proxy: no complete handover from the render")
        data += chunk
    return json.loads(data)


def follow_lifeline(control: socket.socket) -> None:
    """Block until the render's end closes (the render stopped us, or it is gone), then shut down as on SIGTERM."""
    try:
        while control.recv(4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(LIFELINE_GRACE_SECONDS)
    os._exit(1)


def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    control.set_inheritable(False)
    non_dumpable()
    control.sendall(READY)
    handover = receive(control)
    from . import setup
    setup.hand_over(ProxyConfig.from_json(handover["config"], "the render's handover"))
    threading.Thread(target=follow_lifeline, args=(control,), name="lifeline", daemon=True).start()
    from mitmproxy import optmanager
    from mitmproxy.tools import main as tools
    optmanager.load_paths = lambda *paths: None  # noqa: ARG005 - options come from the render, never a file
    tool = tools.mitmweb if handover["tool"] == "mitmweb" else tools.mitmdump
    return tool(handover["args"]) or 0


if __name__ == "__main__":
    sys.exit(main())
