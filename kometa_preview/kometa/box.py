"""Kometa in a box: the render's side of it.

Kometa is untrusted code. In the box (box_init.py builds it from inside) it has its own user, network, mount and
PID namespaces: no route anywhere but the loopback ports this module's `Relay` carries to the proxy, no other
process visible, a read-only file system but for its own folders, no Unix sockets, and the files holding secrets
hidden. That is the first line; the proxy's allowlists are the second. `--isolation`:

- `auto` (default): the box where the kernel allows it; elsewhere one warning says what is then not guaranteed.
- `box`: the box or nothing (a render that cannot build it fails before Kometa starts).
- `none`: no box. Kometa runs as this user, beside the render.
"""
from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..common.limits import BOX_START_SECONDS, GATE_SECONDS, RELAY_CHUNK_BYTES, RELAY_CONNECTIONS

log = logging.getLogger("kometa_preview.kometa.box")

#: Run by this tool's interpreter, by path (standard library only; `-I -S`: no site, no user paths, no environment).
BOX_INIT = Path(__file__).parent / "box_init.py"
#: What is not guaranteed without the box (the one warning `auto` prints, and README's safety section).
WITHOUT_BOX = ("Kometa is not isolated: it runs as you, can reach the network and local services directly and see "
               "your other processes; the proxy's doors and the secrets kept out of its reach still hold")


class Isolation(StrEnum):
    AUTO = "auto"
    BOX = "box"
    NONE = "none"


class BoxUnavailable(Exception):
    """The box could not be built here: one line saying what the kernel refused."""


@dataclass(frozen=True)
class BoxSpec:
    """What runs in the box, and what of the file system it may write or must not read."""
    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(repr=False)
    #: Folders the program may write (everything else is read-only).
    writable: tuple[Path, ...] = ()
    #: Files the program must not read (preview.yml, the user's Kometa config: they hold the Plex token).
    hidden: tuple[Path, ...] = ()
    #: An empty folder for a private tmpfs holding the run config (box_init.cue).
    secret_folder: Path | None = None
    #: Loopback ports to open in the box (the Relay carries them out).
    listen: int = 0

    def message(self) -> bytes:
        return json.dumps({"program": {"argv": self.argv, "cwd": str(self.cwd), "env": self.env},
                           "writable": [str(p) for p in self.writable], "hidden": [str(p) for p in self.hidden],
                           "secret_folder": str(self.secret_folder) if self.secret_folder else None,
                           "listen": self.listen}).encode() + b"\n"


_unavailable: list[str] = []


def known_unavailable() -> str | None:
    """Why the box could not be built the last time this process tried (it is not tried again)."""
    return _unavailable[0] if _unavailable else None


@dataclass
class Box:
    process: subprocess.Popen
    #: The ports opened in the box, in the order asked for: what Kometa's config names.
    ports: list[int]
    relay: Relay
    #: The box's end of the control socket stays open as its lifeline.
    control: socket.socket = field(repr=False)

    def close(self) -> None:
        self.relay.close()
        self.control.close()


def start(spec: BoxSpec, **popen) -> Box:
    """Build the box and start `spec.argv` in it (`popen`: its stdin/stdout/stderr). Raises `BoxUnavailable`."""
    if _unavailable:
        raise BoxUnavailable(_unavailable[0])
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen([sys.executable, "-I", "-S", str(BOX_INIT), str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], start_new_session=True, env={}, **popen)
    finally:
        theirs.close()
    try:
        ours.sendall(spec.message())
        ours.settimeout(BOX_START_SECONDS)
        message, fds, _, _ = socket.recv_fds(ours, 65536, 16)
        ours.settimeout(None)
        answer = json.loads(message) if message else {"ok": False, "error": "the box exited before it was ready"}
    except (OSError, ValueError) as exc:
        answer = {"ok": False, "error": f"no answer from the box ({exc})"}
        fds = []
    if not answer.get("ok"):
        ours.close()
        if process.poll() is None:
            process.kill()
        process.wait()
        _unavailable.append(str(answer.get("error")))
        raise BoxUnavailable(str(answer.get("error")))
    listeners = [(socket.socket(fileno=fd), index) for fd, index in zip(fds, answer["which"])]
    return Box(process, answer["ports"], Relay(listeners, len(answer["ports"])), ours)


class Relay:
    """Carries each connection Kometa opens to a box port to the proxy's port outside, byte for byte. Until `open`
    (the proxy is ready), connections wait: Kometa started early never finds its proxy closed, and how long its
    first connection waited is `waited` (not Kometa's own time). The targets can change before `open` (the proxy
    bound other ports than planned): Kometa's config names box ports, which never change."""

    def __init__(self, listeners: list[tuple[socket.socket, int]], count: int) -> None:
        self._targets: list[int | None] = [None] * count
        self._opened = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listeners = [listener for listener, _ in listeners]
        self.waited = 0.0
        self.connections = 0
        for listener, index in listeners:
            threading.Thread(target=self._accept, args=(listener, index), name="box-relay", daemon=True).start()

    def point(self, ports: list[int | None]) -> None:
        """The proxy's ports (outside the box), in the box's port order."""
        self._targets = list(ports)

    def open(self) -> None:
        self._opened.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets = [*self._listeners, *self._live]
            self._live.clear()
        self._opened.set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket, index: int) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed or len(self._live) >= RELAY_CONNECTIONS:
                    client.close()
                    continue
                self._live.add(client)
                self.connections += 1
            threading.Thread(target=self._carry, args=(client, index), name="box-relay", daemon=True).start()

    def _carry(self, client: socket.socket, index: int) -> None:
        arrived = time.monotonic()
        if not self._opened.is_set():
            self._opened.wait(GATE_SECONDS)
            self.waited = max(self.waited, time.monotonic() - arrived)
        target = self._targets[index]
        try:
            upstream = socket.create_connection(("127.0.0.1", target), timeout=10) if target and not self._closed \
                else None
        except OSError:
            upstream = None
        if upstream is None:
            self._forget(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._live.add(upstream)
        back = threading.Thread(target=self._pump, args=(upstream, client), name="box-relay", daemon=True)
        back.start()
        self._pump(client, upstream)
        back.join()
        self._forget(client, upstream)

    @staticmethod
    def _pump(source: socket.socket, destination: socket.socket) -> None:
        try:
            while chunk := source.recv(RELAY_CHUNK_BYTES):
                destination.sendall(chunk)
            destination.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (source, destination):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._live.discard(sock)
        for sock in sockets:
            sock.close()
