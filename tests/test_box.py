"""Kometa in a box (issue 20): a hostile program in Kometa's place, knowing Plex's real address, tries to learn the
Plex token and to write to Plex around the proxy — from itself, from a child process, by UDP, over a Unix socket,
through `localhost` URLs — and to leave a file behind. In the box it learns nothing and reaches nothing; without
the box (`--isolation none`, or a kernel that refuses it) no file or command line holds the token still."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import HOSTILE, RESOLUTION_OVERLAYS, TOKEN, movie_targets, standin_for, write_preview_yml

from kometa_preview.kometa import box
from kometa_preview.kometa.box_init import ALLOWED_FAMILIES, ARCHES, assemble, socket_filter

pytestmark = pytest.mark.e2e
ROOT = os.geteuid() == 0


class Listeners:
    """Where a token that got out would arrive: a UDP port and a Unix socket, both recording what they receive."""

    def __init__(self, folder: Path) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp.settimeout(0.2)
        self.unix_path = folder / "leak.sock"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(self.unix_path))
        self.unix.listen()
        self.unix.settimeout(0.2)
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            for receive in (lambda: self.udp.recv(65536), lambda: self.unix.accept()[0].recv(65536)):
                try:
                    self.received.append(receive())
                except OSError:
                    pass

    def close(self) -> list[bytes]:
        self._stop.set()
        self._thread.join()
        self.udp.close()
        self.unix.close()
        return self.received


def hostile_render(tmp_path: Path, server, *args: str, token_in_file: bool) -> tuple:
    """A render with the hostile stand-in in Kometa's place (it then runs the ordinary stand-in)."""
    config = write_preview_yml(tmp_path, server.url, movie_targets([1001, 1003]), libraries=RESOLUTION_OVERLAYS)
    if not token_in_file:  # as the README recommends: the token comes from the environment
        config.write_text(config.read_text(encoding="utf-8").replace(TOKEN, "${PLEX_TOKEN}"), encoding="utf-8")
    listeners = Listeners(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    outside_file = tmp_path / "elsewhere" / "left-behind.txt"  # a folder beside preview.yml: shown, read-only
    copies = []
    if token_in_file:  # copies of a preview.yml holding the token: an earlier watch's editor kept one, git another
        copies = [tmp_path / "out" / "watch-20261201_000000" / "edits" / "0001-preview.yml",
                  tmp_path / ".git" / "objects" / "blob"]
        for copy in copies:
            copy.parent.mkdir(parents=True)
            copy.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    kometa = standin_for(tmp_path, {"HOSTILE_PLEX_URL": server.url, "HOSTILE_THEN_KOMETA": "1", "HOSTILE_BULK": "0",
                                    "HOSTILE_FILES": ":".join(map(str, (config, *copies))),
                                    "HOSTILE_OUTSIDE_FILE": str(outside_file),
                                    "HOSTILE_UDP_PORT": str(listeners.udp.getsockname()[1]),
                                    "HOSTILE_UNIX_SOCKET": str(listeners.unix_path)}, script=HOSTILE)
    job = tmp_path / "job"
    server.log.clear()
    try:
        result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa",
                                 str(kometa), "--job", str(job), "--offline", *args], capture_output=True, text=True,
                                timeout=600, env={**os.environ, "PLEX_TOKEN": TOKEN})
    finally:
        received = listeners.close()
    report_path = job / "kometa" / "hostile.json"
    assert report_path.exists(), result.stderr[-3000:]
    return result, json.loads(report_path.read_text(encoding="utf-8")), job, received, outside_file


def hostile_requests_at_plex(server) -> list:
    return [entry for entry in server.log.snapshot() if "hostile" in entry.query or entry.method != "GET"]


def test_a_hostile_kometa_cannot_leave_its_box(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=10, shows=1)
    result, report, job, received, outside_file = hostile_render(tmp_path, server, token_in_file=True)
    summary = json.loads((job / "output" / "summary.json").read_text(encoding="utf-8"))

    assert summary["isolation"]["mode"] == "box", summary["isolation"]
    assert not [item["where"] for item in report["harvest"] if TOKEN in item["text"]], "the token was within reach"
    assert report["pids"] and max(report["pids"]) < 50, report["pids"]  # the box's own processes only
    assert hostile_requests_at_plex(server) == []
    assert received == [], received
    assert not outside_file.exists()
    by_what = {}
    for attempt in report["attempts"]:
        by_what.setdefault(attempt["what"], []).append(attempt)
    for what, attempts in by_what.items():
        if what.startswith("PUT to"):
            assert all(a["status"] is None for a in attempts), attempts  # never connected
        if what == "PUT from a child process":
            assert all(a["answer"].startswith(("ConnectionRefusedError", "OSError", "TimeoutError"))
                       for a in attempts), attempts
    assert by_what["Unix socket"][0]["error"] == "OSError"  # EAFNOSUPPORT: no Unix sockets in the box
    assert by_what["a file outside the job"][0]["error"] == "OSError"  # read-only
    # A datagram to loopback stays in the box's own loopback (`received` above is empty); the LAN has no route.
    assert all(a["error"] == "OSError" for a in by_what["UDP datagram to the LAN"])
    fetched = {what: a[0]["status"] for what, a in by_what.items() if what.startswith("GET http")}
    port = server.url.rsplit(":", 1)[1]
    # An overlay `url:` towards loopback goes through the outside-calls door, is judged there and recorded.
    assert fetched[f"GET http://localhost:{port}/identity?hostile=1 (requests, proxies from the environment)"] == 403
    assert fetched[f"GET http://127.0.0.1:{port}/identity?hostile=1 (requests, proxies from the environment)"] == 403
    assert summary["side_doors"]["by_kind"].get("OUTSIDE_REFUSED_ADDRESS", 0) >= 2
    assert result.returncode == 0, result.stderr[-3000:]  # and the real work still got done
    assert all(entry["status"] == "exported" for entry in summary["targets"].values())
    evidence("Kometa's box", "a hostile Kometa reading every job file while the proxy started, every /proc environ "
             "and cmdline, and preview.yml (which held the token); then writing to Plex directly, from a child, by "
             "UDP and over a Unix socket with what it found, fetching loopback URLs, and leaving a file",
             len(report["attempts"]),
             f"no token within reach ({len(report['harvest'])} texts read); Plex received none of its requests; "
             "nothing arrived by UDP or Unix socket; no file left; loopback URLs refused at the outside door")


def test_without_the_box_no_file_or_command_line_holds_the_token(sample_plex_factory, tmp_path, evidence):
    """`--isolation none`: Kometa runs beside the render, as the same user. The token still reaches no file, argv or
    environment of Kometa's, and the proxy's doors still hold."""
    server = sample_plex_factory(movies=10, shows=1)
    result, report, job, received, _ = hostile_render(tmp_path, server, "--isolation", "none", token_in_file=False)
    summary = json.loads((job / "output" / "summary.json").read_text(encoding="utf-8"))

    assert summary["isolation"] == {"requested": "none", "mode": "none", "problem": None}
    files = [item for item in report["harvest"] if not item["where"].startswith("/proc/")]
    assert not [item["where"] for item in files if TOKEN in item["text"]]
    assert not [line for line in report["cmdlines"] if TOKEN in line or server.url in line]
    assert not [k for k, v in report["environment"].items() if TOKEN in v]
    within_reach = [item["where"] for item in report["harvest"] if TOKEN in item["text"]]
    accepted = [e for e in hostile_requests_at_plex(server) if e.status < 400]
    if ROOT:
        # As root and without the box, /proc/<render>/environ is Kometa's to read (README: what no longer holds),
        # and a write to Plex with that token goes through: the box is what holds against it. Only /proc gave it.
        assert all(where.startswith("/proc/") and where.endswith("/environ") for where in within_reach)
    else:  # the render and the proxy are non-dumpable: nothing of theirs is another user's to read
        assert within_reach == [] and accepted == []
    assert result.returncode == 0, result.stderr[-3000:]
    evidence("Kometa's box", "without the box: the same hostile Kometa, reading every job file during start-up and "
             "every command line", len(files),
             "no file, command line or environment of Kometa's held the token" +
             (f"; as root it read the render's /proc environ and {len(accepted)} of its writes reached Plex — "
              "what only the box prevents" if ROOT and accepted else "; Plex accepted none of its writes"))


def test_the_box_s_socket_filter_is_the_program_it_says():
    """The seccomp program, run on a tiny classic-BPF interpreter: the families allowed, socketpair only for streams,
    io_uring refused, other architectures refused, everything else allowed."""
    machine = os.uname().machine
    if machine not in ARCHES:
        pytest.skip(f"no socket filter for {machine}")
    arch, sys_socket, sys_socketpair = ARCHES[machine]
    program = socket_filter(machine)

    def run(nr: int, args: tuple[int, ...] = (0, 0), on_arch: int = arch) -> int:
        data = {0: nr, 4: on_arch, 16: args[0], 24: args[1]}
        accumulator, pc = 0, 0
        while True:
            code, jt, jf, k = program[pc]
            pc += 1
            if code == 0x20:
                accumulator = data[k]
            elif code == 0x54:
                accumulator &= k
            elif code in (0x15, 0x35):
                taken = accumulator == k if code == 0x15 else accumulator >= k
                pc += jt if taken else jf
            elif code == 0x06:
                return k

    allow, errno_ = 0x7FFF0000, 0x00050000
    for family in ALLOWED_FAMILIES:
        assert run(sys_socket, (family, socket.SOCK_STREAM)) == allow
    for family in (socket.AF_UNIX, socket.AF_PACKET, 40):  # 40: AF_VSOCK
        assert run(sys_socket, (family, socket.SOCK_STREAM)) == errno_ | 97
    assert run(sys_socketpair, (socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)) == allow
    assert run(sys_socketpair, (socket.AF_UNIX, socket.SOCK_DGRAM)) == errno_ | 1
    assert run(425) == errno_ | 1                                  # io_uring_setup
    assert run(0x40000000 | sys_socket, (socket.AF_UNIX, 1)) == errno_ | 38   # x32
    assert run(sys_socket, (socket.AF_UNIX, 1), on_arch=0x40000003) == errno_ | 38  # i386
    assert run(0) == allow and run(59) == allow
    assert assemble([("ld", 0), ("jeq", 1, "x", None), ("ret", 2), "x", ("ret", 3)]) == \
        [(0x20, 0, 0, 0), (0x15, 1, 0, 1), (0x06, 0, 0, 2), (0x06, 0, 0, 3)]


MASKED_PROC = "mount --bind /dev/null /proc/kcore 2>/dev/null || mount --bind /dev/null /proc/cpuinfo; exec \"$@\""


@pytest.mark.skipif(not ROOT, reason="simulating a kernel that refuses the box takes root (a mount namespace)")
@pytest.mark.parametrize("isolation", ["auto", "box"])
def test_where_the_box_cannot_be_built(sample_plex, tmp_path, isolation, evidence):
    """A /proc with masked paths (Docker's default) refuses a new /proc to an unprivileged user namespace, so no box:
    `auto` warns in one line and runs Kometa beside the render (recorded in summary.json); `box` refuses to start."""
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]), libraries=RESOLUTION_OVERLAYS)
    result = subprocess.run(["unshare", "--mount", "sh", "-c", MASKED_PROC, "sh", sys.executable, "-m",
                             "kometa_preview", "render", str(config), "--kometa", str(standin_for(tmp_path)),
                             "--offline", "--job", str(tmp_path / "job"), "--isolation", isolation],
                            capture_output=True, text=True, timeout=300)
    if isolation == "box":
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert "--isolation box: Kometa's box cannot be built here (mount /proc:" in lines[-1], lines
        assert not (tmp_path / "job" / "output").exists()
    else:
        assert result.returncode == 0, result.stderr
        warnings = [line for line in result.stderr.splitlines() if "no box for Kometa" in line]
        assert len(warnings) == 1 and "mount /proc" in warnings[0] and "is not isolated" in warnings[0], warnings
        summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text(encoding="utf-8"))
        assert summary["isolation"]["mode"] == "none" and "mount /proc" in summary["isolation"]["problem"]
    evidence("Kometa's box", f"--isolation {isolation} where /proc has masked paths (as in Docker)", 1,
             "one line: auto warns and runs unboxed (summary.json says so), box exits 2 before Kometa starts")


def descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, set()).add(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("isolation", ["auto", "none"])
def test_a_killed_render_leaves_no_child_and_no_secret(sample_plex, tmp_path, isolation, evidence):
    """`kill -9` of the render while the proxy starts and Kometa waits: mitmdump, the box and Kometa all end (their
    lifelines close), and no file of the job holds the Plex token."""
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]), libraries=RESOLUTION_OVERLAYS)
    kometa = standin_for(tmp_path, {"STANDIN_HANG": "60"})
    render = subprocess.Popen([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                               "--offline", "--job", str(tmp_path / "job"), "--isolation", isolation],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    children: set[int] = set()
    while time.monotonic() < deadline and not (tmp_path / "job" / "kometa-start" / "started.json").exists():
        children |= descendants(render.pid)
        time.sleep(0.02)
    children |= descendants(render.pid)
    assert len(children) >= 2, children  # the proxy and Kometa (and, boxed, the box's processes)
    os.kill(render.pid, signal.SIGKILL)
    render.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and [pid for pid in children if alive(pid)]:
        time.sleep(0.1)
    assert [pid for pid in children if alive(pid)] == []
    held = [p for p in (tmp_path / "job").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert held == []
    evidence("Kometa's box", f"kill -9 of the render while Kometa runs (isolation {isolation})", len(children),
             "every child ended within 15 s (lifelines); no file of the job holds the token")


def test_kometa_s_modules_are_compiled_once_outside_the_box(tmp_path):
    """In the box Kometa's folder is read-only: a Kometa that never ran would compile its modules on every render.
    They are compiled once before (Python's compiler only: no code of Kometa's runs)."""
    from kometa_preview.kometa.runner import KometaCommand
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "builder.py").write_text("raise SystemExit('Kometa code must not run here')\n")
    (tmp_path / "kometa.py").write_text("")
    kometa = KometaCommand(sys.executable, tmp_path / "kometa.py")
    kometa.compile_once()
    compiled = list((tmp_path / "modules" / "__pycache__").glob("builder.*.pyc"))
    assert len(compiled) == 1
    stamp = compiled[0].stat().st_mtime_ns
    kometa.compile_once()  # compiled already: nothing is run again
    assert compiled[0].stat().st_mtime_ns == stamp


PEEK = r"""
import json, os, sys
print("ready", flush=True)
cue = json.loads(sys.stdin.readline())
folder = cue["folder"]
seen = {"dev": sorted(os.listdir("/dev")), "folder": sorted(os.listdir(folder)), "read": {}, "opened": {}}
for path in cue["read"]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            seen["read"][path] = handle.read()
    except OSError as exc:
        seen["read"][path] = type(exc).__name__
for path, mode in (("/dev/null", "w"), ("/dev/urandom", "rb"), ("/dev/kmsg", "w"), ("/dev/console", "w")):
    try:
        with open(path, mode) as handle:
            handle.write("x") if mode == "w" else handle.read(4)
        seen["opened"][path] = "ok"
    except OSError as exc:
        seen["opened"][path] = type(exc).__name__
print(json.dumps(seen), flush=True)
"""


def test_the_box_shows_no_device_no_secret_file_and_no_copy_of_one(tmp_path):
    """Kometa's view of the folder holding preview.yml: a save of preview.yml by rename while Kometa runs, an
    editor's backup and swap file of it, other files (a copy under another name), dot folders (.git) and the
    watch's copies in edits/ all stay out of sight, except what Kometa needs inside a dot folder (its own); the overlay file
    and the image beside it are there as they are at the cue (saved after Kometa started); its folders are there; /dev holds only
    null, zero, full, random, urandom (a read-only mount does not stop a write to a device node)."""
    secret = "secret-token-in-preview-yml"
    config = tmp_path / "preview.yml"
    config.write_text(f"plex: {{token: {secret}}}\n")
    overlays = tmp_path / "overlays.yml"
    overlays.write_text("overlays: {}  # before\n")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "logo.txt").write_text("an asset")
    (tmp_path / "badge.png").write_text("the image before")
    edits = tmp_path / "out" / "watch" / "edits"
    edits.mkdir(parents=True)
    (edits / "0001-preview.yml").write_text(f"plex: {{token: {secret}}}\n")
    scratch = tmp_path / "out" / "scratch"
    scratch.mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "blob").write_text(secret)                    # preview.yml kept in git
    for name in ("old-preview-copy.yml", "#preview.yml#"):
        (tmp_path / name).write_text(secret)
    kometa = tmp_path / ".tools" / "kometa"                            # Kometa's folder, inside a dot folder
    kometa.mkdir(parents=True)
    (kometa / "VERSION").write_text("2.4.4")
    spec = box.BoxSpec([sys.executable, "-I", "-c", PEEK], kometa, {"PATH": os.environ["PATH"]},
                       writable=(scratch,), hidden=(config,), veiled=(edits,))
    boxed = box.start(spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert boxed.process.stdout.readline().strip() == b"ready"
        # While Kometa runs, the user saves preview.yml (by rename, as editors do) and the overlay file; an editor
        # leaves a backup and a swap file.
        replacement = tmp_path / ".preview.yml.tmp"
        replacement.write_text(f"plex: {{token: {secret}}}  # saved\n")
        os.replace(replacement, config)
        for name in ("preview.yml~", ".preview.yml.swp", "preview.yml.bak"):
            (tmp_path / name).write_text(secret)
        overlays.write_text("overlays: {}  # after\n")
        (tmp_path / "badge.png").write_text("the image after")
        paths = [config, tmp_path / "preview.yml~", tmp_path / ".preview.yml.swp", tmp_path / "preview.yml.bak",
                 edits / "0001-preview.yml", overlays, tmp_path / "assets" / "logo.txt", tmp_path / "badge.png",
                 tmp_path / ".git" / "blob", tmp_path / "old-preview-copy.yml", tmp_path / "#preview.yml#",
                 kometa / "VERSION"]
        cue = {"folder": str(tmp_path), "read": [str(p) for p in paths], "shown": [str(overlays)]}
        boxed.process.stdin.write(json.dumps(cue).encode() + b"\n")
        boxed.process.stdin.flush()
        seen = json.loads(boxed.process.stdout.readline())
    finally:
        boxed.process.kill()
        boxed.close()
    assert not [path for path, text in seen["read"].items() if secret in text], seen["read"]
    assert seen["read"][str(overlays)] == "overlays: {}  # after\n"         # as it is at the cue
    assert seen["read"][str(tmp_path / "assets" / "logo.txt")] == "an asset"  # folders beside it stay
    assert seen["read"][str(tmp_path / "badge.png")] == "the image after"     # and images an overlay may name
    assert seen["read"][str(kometa / "VERSION")] == "2.4.4"         # what Kometa needs, inside a dot folder
    assert seen["folder"] == [".tools", "assets", "badge.png", "out", "overlays.yml"], seen["folder"]
    assert seen["dev"] == ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "urandom", "zero"]
    # /dev/kmsg and /dev/console are not there, and /dev is read-only: opening them for writing cannot create them.
    assert seen["opened"] == {"/dev/null": "ok", "/dev/urandom": "ok", "/dev/kmsg": "OSError",
                              "/dev/console": "OSError"}, seen["opened"]
