"""Names read back are data, never paths to act on: one grammar for every name that becomes a file name, a path or
a link.

What the preview reads back was written by another process, another machine or another program: summary.json's
target ids and `before`/`after` names (a shard rendered elsewhere, an older job, a diff's A and B), shard folder
names (`shards/<round>-<n>`, resume state), and Plex's own ratingKeys, which become target ids in a dry run. Each
passes the rule here before it is joined to a folder, and a folder entry is used only when it is itself, not a
symbolic link (`entry`): so nothing outside the folder is replaced, deleted, read or linked, whatever a name says
(`../../.bashrc`, `/etc/passwd`, `javascript:alert(1)`). No mitmproxy, no Pillow: every process uses it.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from urllib.parse import quote

from .images import BY_EXT

#: A target id, as preview.yml gives it and a dry run takes it from a ratingKey: it becomes a file name.
TARGET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
SIDES = ("before", "after")
#: `<id>_before.<ext>` / `<id>_after.<ext>`, with an extension of the project's image table.
_EXPORTED = re.compile(rf"(?P<id>{TARGET_ID.pattern})_(?P<side>before|after)\.(?P<ext>{'|'.join(BY_EXT)})")
#: A shard's folder in `<job>/shards/`: `<round>-<n>` (shards.py), numbers without leading zeros.
_SHARD = re.compile(r"(?P<round>[1-9][0-9]{0,5})-(?P<n>[1-9][0-9]{0,3})")


class UnsafeName(ValueError):
    """A name read back that is not a name of the grammar, or a folder entry that is not what it must be (a
    symbolic link, a folder where a file belongs). Its text is the one line the user sees."""


def is_target_id(text: object) -> bool:
    """Is `text` a target id (letters, digits, `-` and `_`, at most 64, starting with a letter or digit)?"""
    return isinstance(text, str) and TARGET_ID.fullmatch(text) is not None


def exported_target(name: object, side: str) -> str | None:
    """The target id of an exported image's name `<id>_<side>.<ext>` (`ext` one of jpg, png, webp), else None —
    for an absolute name, a `..`, a scheme, a folder, another side or any other odd name."""
    match = _EXPORTED.fullmatch(name) if isinstance(name, str) else None
    return match["id"] if match is not None and match["side"] == side else None


def shard_folder(name: str) -> tuple[int, int] | None:
    """(round, n) of a shard folder name `<round>-<n>`, else None (`x-y`, `1-2-3`, `01-1`, `../1-1`)."""
    match = _SHARD.fullmatch(name)
    return (int(match["round"]), int(match["n"])) if match is not None else None


def entry(folder: Path, name: str, *, kind: str) -> Path | None:
    """`folder/name` when it is a plain name of this folder that is a regular `kind` ("file" or "dir") and not a
    symbolic link; None when there is nothing by that name. Raises `UnsafeName` for a name that is not one
    entry of the folder, a symbolic link, or an entry of another kind (a FIFO where a file belongs)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise UnsafeName(f"{folder / name}: not a name of this folder")
    path = folder / name
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        raise UnsafeName(f"{path}: is a symbolic link (the preview follows none out of a job folder)")
    if not (stat.S_ISDIR(mode) if kind == "dir" else stat.S_ISREG(mode)):
        raise UnsafeName(f"{path}: is not a {'folder' if kind == 'dir' else 'regular file'}")
    return path


def folder(parent: Path, name: str) -> Path:
    """`parent/name` as a folder the preview may write in: created when missing, refused (`UnsafeName`) when it
    is a symbolic link or not a folder — so what is written there stays inside `parent`."""
    path = entry(parent, name, kind="dir")
    if path is None:
        (parent / name).mkdir(exist_ok=True)
        path = entry(parent, name, kind="dir")  # a link put there meanwhile is refused all the same
    assert path is not None
    return path


def href(relative: str) -> str:
    """A relative link as a page writes it: percent-encoded (a `:` in a folder name never reads as a scheme, a
    `#` or `?` never cuts the path). Refuses (`UnsafeName`) what is not relative."""
    if not relative or relative.startswith(("/", "\\")) or "\\" in relative or "\0" in relative:
        raise UnsafeName(f"{relative!r}: not a relative link")
    return quote(relative, safe="/")
