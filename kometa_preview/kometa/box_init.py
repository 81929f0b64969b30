"""Kometa's box, built from inside: run by this tool's own interpreter (standard library only, never imported):

    python -I -S box_init.py <control fd>

The render sends the box's spec (one JSON message) on the control socket, an end of a socketpair that is also the
lifeline: when the render is gone, so is the box. This process enters new user, network, mount, PID, IPC and UTS
namespaces and forks the box's init (PID 1 of the new PID namespace), which

1. mounts a new /proc (only the box's own processes are visible), makes every mount read-only, no-setuid and
   no-dev, gives the box a /dev of five harmless devices (`minimal_dev`), covers the folders of the files that hold
   secrets (preview.yml, the user's Kometa config) with a view that shows their folders and only the overlay files
   Kometa reads there (`cover`: no path-bound hiding a save by rename would undo), veils the watch's edits/, then
   binds back writable only what Kometa must write (its config folder, its start-up folder), and mounts a private
   tmpfs on a folder for the secret-holding run config;
2. brings up loopback — the network namespace has nothing else: no route to Plex, the LAN, or the host's own
   loopback services — and listens on one loopback port per proxy port, handing the listening sockets to the
   render, which carries each connection to the proxy outside (box.Relay): the box's only exits;
3. enters a nested user and mount namespace, so every mount above is locked (a Kometa running as root inside can
   neither unmount the new /proc to reveal the host's, nor make a read-only mount writable again), and makes itself
   not dumpable (Kometa can neither trace it nor open the covered folders it holds open);
4. starts the program (kometa_start.py in Kometa's interpreter) with no_new_privs and a seccomp filter that allows
   only IPv4, IPv6 and netlink sockets (no Unix sockets to D-Bus, Docker or other local services, no vsock, no
   raw packets) and no io_uring (whose operations seccomp cannot see);
5. reads the cue the render writes on stdin: the overlay files it names are copied into the covered folders'
   views as they are now (`refresh`), the run config is written into the private tmpfs and bound over its
   placeholder in Kometa's config folder, so the file holding service keys never reaches the disk, and the rest
   of the cue goes to the program's stdin;
6. reaps every process of the box, and ends when the program ends — the kernel then kills everything else in the
   PID namespace, whatever Kometa started.

Every failure before the program starts is sent back as `{"ok": false, "error": …}`, so the render can say what
the box could not do (and, with `--isolation auto`, run Kometa without it).
"""
import ctypes
import errno
import fcntl
import json
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, AT_RECURSIVE, AT_FDCWD = 0x1, 0x2, 0x4, 0x8000, -100
SYS_MOUNT_SETATTR, SYS_IO_URING_SETUP = 442, 425  # the same number on every architecture (asm-generic)
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 1, 4, 38, 22, 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
#: Per architecture: seccomp's AUDIT_ARCH value, and the numbers of socket(2) and socketpair(2).
ARCHES = {"x86_64": (0xC000003E, 41, 53), "aarch64": (0xC00000B7, 198, 199)}
X32_SYSCALL_BIT = 0x40000000
ALLOWED_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK)
SECRET_MOUNT_BYTES = 4 << 20
#: The device nodes the box has (its /dev is a tmpfs holding only these, /dev/shm and the fd links): no disk, no
#: kernel log, no console, no kvm, whatever the host's /dev holds.
DEVICES = ("null", "zero", "full", "random", "urandom")
#: The most a covered folder's view may hold (its images, fonts and overlay files, copied in; a tmpfs takes only the
#: memory written). A file that does not fit is left out of the view; the box is still built.
VIEW_BYTES = 512 << 20
#: The most one file copied into a covered folder's view may be (the preview's upload limit).
SHOWN_FILE_BYTES = 64 << 20
#: Kometa's own files it reads beside kometa.py (its version, the nightly part, its requirements).
KOMETA_FILES = ("VERSION", "PART")
#: Files an overlay may name beside preview.yml (its images and fonts): shown in a covered folder's view, as they are
#: at the cue. They hold pictures and glyphs, never the token.
ASSET_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ttf", ".otf", ".ttc")

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class BoxError(Exception):
    """What the box could not do, in one line."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise BoxError(f"{what}: {os.strerror(code)}")


def _bytes(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype, flags, data=None) -> None:
    _check(libc.mount(_bytes(source), _bytes(target), _bytes(fstype), ctypes.c_ulong(flags), _bytes(data)),
           f"mount {target}")


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def set_attributes(path: str, set_=0, clear=0, recursive=False) -> None:
    attr = MountAttr(set_, clear, 0, 0)
    _check(libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), _bytes(path),
                        ctypes.c_uint(AT_RECURSIVE if recursive else 0), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {path}")


def enter_user_namespace(flags: int) -> None:
    """unshare(2) with a new user namespace whose only user and group are the caller's own (root stays root inside,
    with capabilities over the box's namespaces only). The ids are read first: once unshared, they read as the
    overflow id until the map is written."""
    uid, gid = os.geteuid(), os.getegid()
    os.unshare(CLONE_NEWUSER | flags)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as handle:
            handle.write(text)


def prepare_mounts(spec: dict) -> dict[str, int]:
    """The box's file system. Returns the covered folders' real directories (open, for `refresh`)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here propagates to the host
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)  # a covered folder's entries are held open until bound
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits[1], limits[1]))
    covered = {folder["path"]: _listing(folder) for folder in spec.get("covered", ())}
    set_attributes("/", set_=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, recursive=True)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    minimal_dev()
    real = {}
    for folder in spec.get("covered", ()):
        real[folder["path"]] = cover(folder, covered[folder["path"]])
    for path in spec["writable"]:
        mount(path, path, None, MS_BIND | MS_REC)
        set_attributes(path, clear=MOUNT_ATTR_RDONLY, recursive=True)
    if spec.get("secret_folder"):
        mount("tmpfs", spec["secret_folder"], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              f"mode=0700,size={SECRET_MOUNT_BYTES}")
    for path in spec.get("hidden", ()):  # a secret file no folder could be covered for (one directly in /)
        if os.path.isfile(path):
            mount("/dev/null", path, None, MS_BIND)
    for path in spec.get("veiled", ()):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=4k")
            set_attributes(path, set_=MOUNT_ATTR_RDONLY)
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)  # the program gets the limit the render had
    return real


def minimal_dev() -> None:
    """A /dev of `DEVICES` only: the host's nodes (a disk, /dev/kmsg, /dev/kvm…) are device files a read-only mount
    does not stop, so every mount is no-dev and these few are bound back, each allowed devices again."""
    held = {name: os.open(f"/dev/{name}", os.O_PATH) for name in DEVICES if os.path.exists(f"/dev/{name}")}
    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name, descriptor in held.items():
        os.close(os.open(f"/dev/{name}", os.O_WRONLY | os.O_CREAT, 0o666))
        mount(f"/proc/self/fd/{descriptor}", f"/dev/{name}", None, MS_BIND)
        set_attributes(f"/dev/{name}", clear=MOUNT_ATTR_NODEV)
        os.close(descriptor)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/shm")
    set_attributes("/dev", set_=MOUNT_ATTR_RDONLY)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")  # POSIX semaphores (multiprocessing)


def _listing(folder: dict) -> list[tuple[str, str, object]]:
    """What of a folder to cover is shown again, read before it is covered: (name, kind, a descriptor or a link).
    A dot folder (`.git`, `.config`…) is not shown, but a path Kometa needs inside one is (`needed`: its
    interpreter under `~/.pyenv`, its packages under `~/.local`)."""
    secret = tuple(folder["secret_names"])
    entries = []
    for entry in os.scandir(folder["path"]):
        if entry.is_symlink():
            entries.append((entry.name, "link", os.readlink(entry.path)))
        elif entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            entries.append((entry.name, "dir", os.open(entry.path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW)))
        elif entry.is_file(follow_symlinks=False) and _shown(entry.name, secret, folder["kometa_folder"]):
            entries.append((entry.name, "file", os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)))
    for path in folder.get("needed", ()):
        if os.path.isdir(path):
            entries.append((os.path.relpath(path, folder["path"]), "dir",
                            os.open(path, os.O_PATH | os.O_DIRECTORY)))
    return entries


def _secret_named(name: str, secret: tuple[str, ...]) -> bool:
    """A dot file, a secret file or a copy named after one (`preview.yml~`, `preview.yml.bak`): never in a view."""
    return name.startswith(".") or name.startswith(secret)


def _shown(name: str, secret: tuple[str, ...], kometa_folder: bool) -> bool:
    """Whether a file of a covered folder is in its view: never a secret-named file or an editor's auto-save (`#…#`);
    an image or a font; in Kometa's own folder, its Python files and the few files it reads (`KOMETA_FILES`,
    requirements*.txt) — not a config copied under another name."""
    if _secret_named(name, secret) or "#" in name:
        return False
    if name.lower().endswith(ASSET_SUFFIXES):
        return True
    return kometa_folder and (name.endswith(".py") or name in KOMETA_FILES or
                              (name.startswith("requirements") and name.endswith(".txt")))


def _copy(source: int, target: str) -> None:
    """A plain file of at most `SHOWN_FILE_BYTES`, copied into a view (its mode kept); anything else, or what no
    longer fits in the view, is left out (Kometa then says the file is missing; the box is still built)."""
    status = os.fstat(source)
    if not stat.S_ISREG(status.st_mode) or status.st_size > SHOWN_FILE_BYTES:
        return
    if os.path.islink(target):  # the view is Kometa's to write: never write through a link it left there
        os.unlink(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        with os.fdopen(os.open(target, flags, stat.S_IMODE(status.st_mode) & 0o755 | 0o600), "wb") as handle:
            handle.write(os.pread(source, SHOWN_FILE_BYTES, 0))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        os.unlink(target)


def cover(folder: dict, entries: list[tuple[str, str, object]]) -> int:
    """Cover a folder holding a secret file with a tmpfs that shows its folders and links again (bound, read-only,
    live), and of its files only those Kometa reads there: the overlay files (copied in at each cue, `refresh`),
    and every other file when it is Kometa's own folder (copied in now). The view is a tmpfs Kometa may write:
    what it writes there stays in memory and goes with the box. A secret file is not hidden by its path, which a save by
    rename would undo: it is simply not in the view, and neither is an editor's backup or swap file of it.
    Returns the real folder, open (for `refresh`)."""
    path = folder["path"]
    real = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    mode = os.stat(real).st_mode & 0o7777
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode:o},size={VIEW_BYTES}")
    for name, kind, handle in entries:
        target = os.path.join(path, name)
        if kind == "link":
            os.symlink(handle, target)
            continue
        if kind == "file":  # copied, not bound: a file bound here could not be refreshed at the cue
            _copy(handle, target)
            os.close(handle)
            continue
        os.makedirs(target, exist_ok=True)
        mount(f"/proc/self/fd/{handle}", target, None, MS_BIND | MS_REC)
        set_attributes(target, set_=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, recursive=True)
        os.close(handle)
    return real


def refresh(spec: dict, real: dict[str, int], shown: list[str]) -> None:
    """At the cue: copy the overlay files Kometa reads from a covered folder, and its images and fonts, into its
    view as they are now (a watch iteration's Kometa is started before the user's edit). Only plain files, never a
    secret one."""
    covered = [folder for folder in spec.get("covered", ()) if folder["path"] in real]
    secrets = {folder["path"]: tuple(folder["secret_names"]) for folder in covered}
    wanted = [os.path.split(path) for path in shown]
    wanted += [(folder, entry.name) for folder, secret in secrets.items() for entry in os.scandir(real[folder])
               if entry.is_file(follow_symlinks=False) and _shown(entry.name, secret, False)]
    for folder, name in wanted:
        if folder not in secrets or _secret_named(name, secrets[folder]):
            continue
        path = os.path.join(folder, name)
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=real[folder])
        except OSError:
            continue
        try:
            _copy(descriptor, path)
        finally:
            os.close(descriptor)


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH22s", b"lo", 0, b"")
        flags = struct.unpack("16sH22s", fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH22s", b"lo", flags | IFF_UP, b""))


def listen(count: int) -> tuple[list[int], list[socket.socket], list[int]]:
    """`count` loopback ports, each on 127.0.0.1 and, where the box has IPv6, on ::1 too (`localhost` may resolve
    to either). Returns the ports, the listening sockets, and which port each socket serves."""
    ports, sockets, which = [], [], []
    for index in range(count):
        server = socket.create_server(("127.0.0.1", 0), backlog=128)
        port = server.getsockname()[1]
        ports.append(port)
        sockets.append(server)
        which.append(index)
        try:
            sockets.append(socket.create_server(("::1", port), family=socket.AF_INET6, backlog=128))
            which.append(index)
        except OSError:
            pass  # no IPv6 here: 127.0.0.1 alone
    return ports, sockets, which


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def socket_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """The seccomp program, as (code, jt, jf, k): socket(2) only for ALLOWED_FAMILIES (else EAFNOSUPPORT),
    socketpair(2) only of stream sockets, io_uring_setup refused, every other call allowed; another architecture's
    calls (x32, i386) get ENOSYS."""
    arch, sys_socket, sys_socketpair = ARCHES[machine]
    allow, errno_ = 0x7FFF0000, 0x00050000
    source = [
        ("ld", 4), ("jeq", arch, None, "enosys"),
        ("ld", 0), ("jge", X32_SYSCALL_BIT, "enosys", None),
        ("jeq", SYS_IO_URING_SETUP, "eperm", None),
        ("jeq", sys_socket, "socket", None),
        ("jeq", sys_socketpair, "socketpair", None),
        ("ret", allow),
        "socket", ("ld", 16),                                   # the family: argument 0's low word
        *[("jeq", family, "allow", None) for family in ALLOWED_FAMILIES],
        ("ret", errno_ | 97),                                   # EAFNOSUPPORT
        "socketpair", ("ld", 24), ("and", 0xF),                  # the type, its flags masked off
        ("jeq", socket.SOCK_STREAM, "allow", "eperm"),
        "allow", ("ret", allow),
        "eperm", ("ret", errno_ | 1),
        "enosys", ("ret", errno_ | 38),
    ]
    return assemble(source)


def assemble(source: list) -> list[tuple[int, int, int, int]]:
    """Classic BPF from (op, k[, jump-if-true, jump-if-false]) with label names (None: the next instruction)."""
    codes = {"ld": 0x20, "jeq": 0x15, "jge": 0x35, "ret": 0x06, "and": 0x54}
    labels, position = {}, 0
    for entry in source:
        if isinstance(entry, str):
            labels[entry] = position
        else:
            position += 1
    program = []
    for entry in source:
        if isinstance(entry, str):
            continue
        op, k, *jumps = entry
        here = len(program) + 1
        jt, jf = ((labels[j] - here if j is not None else 0) for j in (jumps or (None, None)))
        program.append((codes[op], jt, jf, k))
    return program


def restrict() -> None:
    """no_new_privs (setuid binaries and file capabilities give nothing), then the socket filter."""
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    machine = os.uname().machine
    if machine not in ARCHES:
        raise BoxError(f"no seccomp socket filter for {machine}")
    program = socket_filter(machine)
    filters = (SockFilter * len(program))(*[SockFilter(*entry) for entry in program])
    fprog = SockFprog(len(program), filters)
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp")


def _send(control: socket.socket, message: dict, fds: list[int] = ()) -> None:
    socket.send_fds(control, [json.dumps(message).encode()], list(fds))


def start_program(program: dict) -> tuple[int, int]:
    """Fork and exec the program (restricted) with a fresh pipe as its stdin. Returns its pid and the pipe's write
    end."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(read_end, 0)
            os.close(read_end)
            os.close(write_end)
            os.setsid()
            restrict()
            os.chdir(program["cwd"])
            os.execve(program["argv"][0], program["argv"], program["env"])
        except BaseException as exc:  # noqa: BLE001 - the child reports and leaves, never returns into init
            os.write(2, f"kometa-preview box: cannot start {program['argv'][0]}: {exc}\n".encode())
        finally:
            os._exit(127)
    os.close(read_end)
    return pid, write_end


def _read_line(fd: int, pending: bytearray) -> bytes | None:
    """One line from `fd` (unbuffered: nothing is read past it); None at end of file."""
    while b"\n" not in pending:
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        pending += chunk
    line, _, rest = bytes(pending).partition(b"\n")
    pending[:] = rest
    return line


def cue(line: bytes, spec: dict, real: dict[str, int], program_stdin: int) -> None:
    """The render's cue: copy the overlay files it names into the covered folders' views (`refresh`), write the run
    config into the private tmpfs and bind it over its placeholder, then pass the rest of the cue to the program."""
    order = json.loads(line)
    refresh(spec, real, [path for path in order.pop("shown", []) if isinstance(path, str)])
    config = order.pop("config", None)
    if config is not None:
        private = os.path.join(spec["secret_folder"], os.path.basename(config["path"]))
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(config["text"])
        mount(private, config["path"], None, MS_BIND)
    os.write(program_stdin, json.dumps(order).encode() + b"\n")


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def supervise(spec: dict, real: dict[str, int], pid: int, program_stdin: int) -> int:
    """PID 1's work: pass the cue on, forward a stop, reap every process, end with the program."""
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    signal.signal(signal.SIGINT, lambda *_: os.kill(pid, signal.SIGTERM))
    program = os.pidfd_open(pid)
    pending = bytearray()
    watched = [0, program]
    while True:
        readable = select.select(watched, [], [], 1.0)[0]  # the timeout reaps orphans that are not the program
        if 0 in readable:
            line = _read_line(0, pending)
            if line is None:
                watched.remove(0)
            else:
                try:
                    cue(line, spec, real, program_stdin)
                except (OSError, BoxError, ValueError, KeyError, TypeError) as exc:
                    os.write(2, f"kometa-preview box: the cue failed: {exc}\n".encode())
                    os.kill(pid, signal.SIGKILL)
        while True:
            try:
                reaped, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return 1
            if reaped == 0:
                break
            if reaped == pid:
                return exit_code(status)


def init(spec: dict, control: socket.socket) -> int:
    """PID 1 of the box."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # its parent gone (the render gone): the box goes
    try:
        real = prepare_mounts(spec)
        loopback_up()
        ports, listeners, which = listen(spec.get("listen", 0))
        enter_user_namespace(CLONE_NEWNS)  # a nested one: every mount above is locked
        # Not dumpable: Kometa (root in its box) can neither ptrace this process nor open /proc/1/fd, which holds
        # the covered folders' real directories. Only now: a process that is not dumpable cannot write its uid_map.
        _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    except (BoxError, OSError) as exc:
        _send(control, {"ok": False, "error": str(exc)})
        return 1
    pid, program_stdin = start_program(spec["program"])
    _send(control, {"ok": True, "ports": ports, "which": which, "pid": pid}, [s.fileno() for s in listeners])
    for server in listeners:
        server.close()
    control.close()
    return supervise(spec, real, pid, program_stdin)


def _receive_spec(control: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = control.recv(65536)
        if not chunk:
            raise BoxError("the render closed the control socket before sending the spec")
        data += chunk
    return json.loads(data)


def main() -> int:
    control = socket.socket(fileno=int(sys.argv[1]))
    control.set_inheritable(False)  # the program never holds the render's end of anything
    try:
        spec = _receive_spec(control)
        enter_user_namespace(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS)
    except (BoxError, OSError, ValueError) as exc:
        _send(control, {"ok": False, "error": f"unshare: {exc.strerror if isinstance(exc, OSError) else exc}"})
        return 1
    pid = os.fork()
    if pid == 0:
        os._exit(init(spec, control))
    os.close(0)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = os.pidfd_open(pid)
    while True:  # the lifeline: the render's end closes when it is gone
        readable = select.select([control, child], [], [])[0]
        if child in readable:
            break
        if not control.recv(4096):
            os.kill(pid, signal.SIGKILL)
            break
    return exit_code(os.waitpid(pid, 0)[1])


if __name__ == "__main__":
    sys.exit(main())
