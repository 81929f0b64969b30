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
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from ..common.limits import BOX_START_SECONDS

log = logging.getLogger("kometa_preview.kometa.box")

#: Run by this tool's interpreter, by path (standard library only; `-I -S`: no site, no user paths, no environment).
BOX_INIT = Path(__file__).parent / "box_init.py"
RELAY = Path(__file__).parent / "relay.py"
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
    #: Files the program must not read (preview.yml, the user's Kometa config: they hold the Plex token). Their
    #: folders are covered (`covered`), so a save by rename, a backup or an editor's swap file never shows them.
    hidden: tuple[Path, ...] = ()
    #: Folders the program must not see into at all (the watch's edits/: copies of preview.yml).
    veiled: tuple[Path, ...] = ()
    #: An empty folder for a private tmpfs holding the run config (box_init.cue).
    secret_folder: Path | None = None
    #: Loopback ports to open in the box (the Relay carries them out).
    listen: int = 0

    def covered(self) -> tuple[list[dict], list[str]]:
        """The folders box_init covers (shallowest first), each with the names of its secret files and whether its
        other files stay (Kometa's own folder); and the secret files no folder can be covered for (directly in /),
        hidden by their path instead."""
        folders: dict[Path, list[str]] = {}
        by_path = []
        for path in (Path(os.path.realpath(p)) for p in self.hidden):
            if path.parent == Path(path.anchor):
                by_path.append(str(path))
            else:
                folders.setdefault(path.parent, []).append(path.name)
        cwd = Path(os.path.realpath(self.cwd))
        needed = self.needed()
        return ([{"path": str(folder), "secret_names": sorted(names), "kometa_folder": folder == cwd,
                  "needed": [str(p) for p in needed if p != folder and folder in p.parents
                             and p.relative_to(folder).parts[0].startswith(".")]}
                 for folder, names in sorted(folders.items(), key=lambda item: len(item[0].parts))], by_path)

    def needed(self) -> set[Path]:
        """What the program needs to see wherever it lies, even inside a dot folder a covered folder hides: its
        interpreter's environment and installation (`~/.pyenv/…`), the folders of the files it is given, its working
        folder, what it writes, and the user's own packages (`~/.local`)."""
        found = {Path(os.path.realpath(self.cwd)), Path(os.path.realpath(Path.home() / ".local"))}
        found |= {Path(os.path.realpath(p)) for p in self.writable}
        interpreter = Path(self.argv[0])
        found |= {Path(os.path.realpath(interpreter.parent.parent)), Path(os.path.realpath(interpreter)).parent.parent}
        found |= {Path(os.path.realpath(arg)).parent for arg in self.argv[1:] if os.path.isfile(arg)}
        return found

    def message(self) -> bytes:
        covered, by_path = self.covered()
        return json.dumps({"program": {"argv": self.argv, "cwd": str(self.cwd), "env": self.env},
                           "writable": [str(p) for p in self.writable], "hidden": by_path, "covered": covered,
                           "veiled": [str(p) for p in self.veiled],
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
    """The render's handle on the relay (kometa/relay.py), the process that carries each connection Kometa opens to
    a box port to the proxy's port outside, and holds them until `open` (the proxy is ready): Kometa started early
    never finds its proxy closed, and how long its first connection waited is `waited` (not Kometa's own time). The
    targets can change before `open` (the proxy bound other ports than planned): Kometa's config names box ports,
    which never change."""

    def __init__(self, listeners: list[tuple[socket.socket, int]], count: int) -> None:
        ours, theirs = socket.socketpair()
        fds = [theirs.fileno(), *(listener.fileno() for listener, _ in listeners)]
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-S", str(RELAY), str(theirs.fileno()),
                 *(f"{listener.fileno()}:{index}" for listener, index in listeners)],
                pass_fds=fds, start_new_session=True, env={}, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            theirs.close()
            for listener, _ in listeners:
                listener.close()  # the relay holds them now
        self.control = ours
        self.count = count
        self.waited = 0.0
        self.connections = 0
        self._pending = b""

    def _say(self, line: str) -> None:
        try:
            self.control.sendall(line.encode() + b"\n")
        except OSError:
            pass  # the relay is gone: so is every connection through it

    def point(self, ports: list[int | None]) -> None:
        """The proxy's ports (outside the box), in the box's port order."""
        self._say("point " + " ".join("-" if port is None else str(port) for port in ports))

    def open(self) -> None:
        self._say("open")

    def read_reports(self, timeout: float = 0.0) -> None:
        """What the relay said so far (`waited`, `carried`); with `timeout`, until it closes its end or that long."""
        if self.control.fileno() == -1:
            return  # closed: what it said was read then
        self.control.settimeout(timeout)
        try:
            while chunk := self.control.recv(4096):
                self._pending += chunk
        except (BlockingIOError, TimeoutError, OSError):
            pass
        while b"\n" in self._pending:
            line, self._pending = self._pending.split(b"\n", 1)
            word, _, value = line.decode().partition(" ")
            if word == "waited":
                self.waited = float(value)
            elif word == "carried":
                self.connections = int(value)

    def close(self) -> None:
        self.read_reports()
        self._say("close")
        self.read_reports(timeout=0.5)
        self.control.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
