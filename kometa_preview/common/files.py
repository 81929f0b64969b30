"""Writing files so that a crash or a full disk never leaves half of one: the only file writers of the project;
and `Tail`, the one reader of files another process is still appending to (the journal, Kometa's meta.log).

Every writer goes through a temporary file in the same folder and `os.replace`/`os.link`, so a reader sees
either nothing (or the old file) or the complete new one. `private=True` files are 0600 from their first
byte: the ready file (job token), the proxy's config (Plex token), mitmproxy's config, kometa_run.yml.
No mitmproxy import, so both processes use the same helpers.
"""
from __future__ import annotations

import json
import os
import shutil
import stat as stat_module
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def _temporary(folder: Path, suffix: str, private: bool) -> tuple[int, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=suffix)
    os.fchmod(handle, 0o600 if private else 0o644 & ~_umask())
    return handle, Path(name)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_atomic(path: Path, data: bytes | str, *, private: bool = False, durable: bool = False) -> Path:
    """Replace `path` with `data` in one step. `durable` fsyncs before the rename (captures: what Kometa
    uploaded must survive a power cut once the proxy has said 200)."""
    handle, temporary = _temporary(path.parent, path.suffix, private)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_private(path: Path, text: str) -> Path:
    """Write `path` with mode 0600, atomically."""
    return write_atomic(path, text, private=True)


def write_json(path: Path, document: Any, *, private: bool = False) -> Path:
    return write_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n", private=private)


def copy_atomic(source: Path, destination: Path) -> Path:
    """Copy so that `destination` is either the old file or the complete new one."""
    handle, temporary = _temporary(destination.parent, destination.suffix, False)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return destination


def save_new(folder: Path, names: Callable[[int], str], data: bytes) -> Path:
    """Write `data` under the first free name `names` offers, never overwriting an earlier file (two uploads of
    one poster in the same microsecond both stay). Durable, like `write_atomic(durable=True)`."""
    handle, temporary = _temporary(folder, ".tmp", False)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        for attempt in range(1000):
            final = folder / names(attempt)
            try:
                os.link(temporary, final)
            except FileExistsError:
                continue
            return final
        raise FileExistsError(folder / names(0))
    finally:
        temporary.unlink(missing_ok=True)


def open_plain(path: Path) -> BinaryIO:
    """`path` opened for reading only if it is a plain file itself: a symbolic link (one Kometa left in its config
    folder, aimed at preview.yml) or a FIFO (a reader that would wait for ever) is refused with an OSError."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat_module.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OSError(f"{path} is not a plain file")
    return os.fdopen(descriptor, "rb")


class Tail:
    """The complete lines appended to a file since the last call, for a file another process is writing. A line
    without its newline yet is held back (`pending`), never half-read. A file that was replaced or truncated
    (rolled over) is read again from its start, and `restarted` says so."""

    def __init__(self, path: Path, *, from_end: bool = False) -> None:
        """`from_end`: only what is appended from now on."""
        self.path = path
        self.pending = b""
        self.restarted = False
        self._offset = 0
        self._inode: int | None = None
        if from_end:
            try:
                stat = path.stat()
            except OSError:
                return
            self._offset, self._inode = stat.st_size, stat.st_ino

    @property
    def found(self) -> bool:
        """Whether the file has been seen at all."""
        return self._inode is not None

    def lines(self) -> list[bytes]:
        self.restarted = False
        try:
            stat = self.path.lstat()  # a link is not followed: the writer may be Kometa, the reader is not
            if self._inode is not None and (stat.st_ino != self._inode or stat.st_size < self._offset):
                self._offset, self.pending, self.restarted = 0, b"", True
            self._inode = stat.st_ino
            if stat.st_size == self._offset:
                return []
            with open_plain(self.path) as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return []
        self._offset += len(data)
        *complete, self.pending = (self.pending + data).split(b"\n")
        return complete

