"""The watch page's editor: a badge moved on the page is written into the YAML that defines it, and undone.

This is the tool's first write, to the user's own files (never to Plex). What makes it safe is in three places:
the live page lets only a request carrying its token, from its own origin, reach `Editor.move`/`Editor.undo`
(results/live_page.py); here a move may only name a target on the page and an overlay Kometa applied to it, and
may only write a file the watch already reads (`watched_files`: preview.yml, kometa.config, the overlay files);
and kometa/placement.py writes offsets and alignments only, checking the edited document against the old one.
The write is atomic (a temporary file and a rename, the file's mode kept) and the bytes it replaced are kept in
`<watch>/edits/`; undo puts them back, unless the file changed since.

The next iteration needs nothing from here: the watch loop sees the file change like any save.
"""
from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..common import files
from ..common.config import PreviewConfig
from ..common.job import EDITS
from ..kometa import overlay_names, placement, run_config

#: A move's JSON body: exactly these fields.
FIELDS = frozenset({"target", "overlay", "dx", "dy"})
#: No move is longer than a canvas side.
MAX_SHIFT = 4000
#: Kometa's canvases (modules/overlay.py): episodes are drawn landscape, everything else portrait.
LANDSCAPE, PORTRAIT = (1920, 1080), (1000, 1500)


class Refused(Exception):
    """A move or undo not made, with the HTTP status the page answers and one line for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Move:
    target: str
    overlay: str
    dx: int
    dy: int

    @classmethod
    def parse(cls, body: Any) -> Move:
        """The page's `{target, overlay, dx, dy}`. Another field is refused (403): a move writes offsets only."""
        if not isinstance(body, dict):
            raise Refused(400, "a move is a JSON object {target, overlay, dx, dy}")
        if set(body) - FIELDS:
            raise Refused(403, f"a move writes offsets only, not {', '.join(sorted(set(body) - FIELDS))}")
        target, overlay, dx, dy = (body.get(name) for name in ("target", "overlay", "dx", "dy"))
        if not isinstance(target, str) or not isinstance(overlay, str):
            raise Refused(400, "a move names its target and overlay")
        if not all(isinstance(d, int) and not isinstance(d, bool) and abs(d) <= MAX_SHIFT for d in (dx, dy)):
            raise Refused(400, f"dx and dy are whole canvas pixels, at most {MAX_SHIFT}")
        return cls(target, overlay, dx, dy)


@dataclass(frozen=True)
class Scene:
    """What a move is judged against, as the watch has it now."""
    config: PreviewConfig
    kometa_folder: Path
    #: The files the watch reads (`watched_files`): the only ones a move may write.
    watched: frozenset[Path]
    #: The page's targets (summary.json's entries) and the library each is in.
    targets: dict[str, dict[str, Any]]
    libraries: dict[str, str]
    #: The iteration on the page now: a move shows in the first one after it.
    iteration: int


@dataclass(frozen=True)
class Written:
    path: Path
    before: bytes
    after: bytes
    backup: Path


class Editor:
    """Moves and undoes, one at a time. `scene()` is the watch as it stands; `root` the watch folder."""

    def __init__(self, root: Path, scene: Callable[[], Scene]) -> None:
        self.root = root
        self.scene = scene
        self.lock = threading.Lock()
        self.done: list[Written] = []

    def move(self, body: Any) -> dict[str, Any]:
        """Write one move; the answer says which file and keys changed. Raises Refused."""
        move = Move.parse(body)
        with self.lock:
            scene = self.scene()
            path, edit = plan(move, scene)
            before = path.read_bytes()
            if before.decode("utf-8") != edit.source:
                raise Refused(409, f"{path.name} changed while the move was planned: try again")
            if not edit.edit.changes:
                return {"file": str(path), "changes": [], "notes": list(edit.edit.notes), "applies_from": None}
            written = self._write(path, before, edit.edit.text.encode("utf-8"))
            self.done.append(written)
        return {"file": str(path), "changes": [vars(change) for change in edit.edit.changes],
                "notes": list(edit.edit.notes), "backup": str(written.backup), "applies_from": scene.iteration + 1,
                "undo": True}

    def undo(self) -> dict[str, Any]:
        """Put back the bytes the last move replaced, unless the file changed since (then it says where they are)."""
        with self.lock:
            if not self.done:
                raise Refused(409, "nothing to undo")
            last = self.done[-1]
            try:
                now = last.path.read_bytes()
            except OSError as exc:
                raise Refused(409, f"{last.path.name} cannot be read ({exc.strerror})") from None
            if now != last.after:
                raise Refused(409, f"{last.path.name} changed since the move: its earlier version is {last.backup}")
            self.done.pop()
            self._write(last.path, now, last.before)
            iteration = self.scene().iteration
        return {"file": str(last.path), "restored": str(last.backup), "applies_from": iteration + 1,
                "undo": bool(self.done)}

    def _write(self, path: Path, before: bytes, after: bytes) -> Written:
        """Keep `before` in <watch>/edits/ (0600: preview.yml may hold the token), then replace the file in one
        step with its mode kept."""
        folder = self.root / EDITS
        number = len(list(folder.glob("*"))) + 1 if folder.is_dir() else 1
        backup = files.write_atomic(folder / f"{number:04d}-{path.name}", before, private=True, durable=True)
        mode = stat.S_IMODE(path.stat().st_mode)
        files.write_atomic(path, after, private=True, durable=True)
        os.chmod(path, mode)
        return Written(path, before, after, backup)


@dataclass(frozen=True)
class Planned:
    source: str
    edit: placement.Edit


def plan(move: Move, scene: Scene) -> tuple[Path, Planned]:
    """Which file a move writes, and the edit. Raises Refused: 404 for a target or overlay not on the page, 403
    for a file the watch does not read, 422 for an overlay whose place this editor cannot write."""
    entry = scene.targets.get(move.target)
    if entry is None:
        raise Refused(404, f"no target {move.target!r} on the page")
    if move.overlay not in (entry.get("overlays") or []):
        raise Refused(404, f"Kometa applied no overlay {move.overlay!r} to {move.target}")
    library = scene.libraries.get(move.target)
    user = _user_config(scene.config)
    sources = run_config.overlay_sources(scene.config, user, library, scene.kometa_folder) if library else []
    source = overlay_names.source(move.overlay, sources) or _defining(move.overlay, sources, scene.kometa_folder)
    if source is None:
        raise Refused(422, f"cannot tell which overlay_files entry {move.overlay!r} comes from")
    canvas = LANDSCAPE if entry.get("type") == "episode" else PORTRAIT
    name = overlay_names.parse(move.overlay).display
    if source.kind == "file":
        path = Path(source.value).resolve()
        text = _text(path, scene)
        return path, Planned(text, _placed(lambda: placement.move_own(text, name, (move.dx, move.dy), canvas)))
    if source.kind != "default":
        raise Refused(422, f"{overlay_names.file_label(source)}: only `default:` and `file:` entries can be moved here")
    path, where, library_variables = _entry(scene.config, user, library, source)
    text = _text(path, scene)
    defaults = scene.kometa_folder / "defaults" / "overlays" / f"{source.value}.yml"
    try:
        default_text = defaults.read_text(encoding="utf-8")
    except OSError:
        raise Refused(422, f"Kometa's default {source.value} is not at {defaults}") from None
    return path, Planned(text, _placed(lambda: placement.move_default(
        text, where, default_text, name, (move.dx, move.dy), canvas, library_variables)))


def _defining(overlay: str, sources: list[run_config.OverlaySource],
              kometa_folder: Path) -> run_config.OverlaySource | None:
    """For a name without Kometa's file number: the one `file:` or `default:` entry whose file defines it."""
    found = []
    for source in sources:
        path = Path(source.value) if source.kind == "file" else \
            kometa_folder / "defaults" / "overlays" / f"{source.value}.yml" if source.kind == "default" else None
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) if path is not None else None
        except (OSError, yaml.YAMLError):
            continue
        overlays = document.get("overlays") if isinstance(document, dict) else None
        if isinstance(overlays, dict) and overlay in overlays:
            found.append(source)
    return found[0] if len(found) == 1 else None


def _placed(make: Callable[[], placement.Edit]) -> placement.Edit:
    try:
        return make()
    except placement.PlacementError as exc:
        raise Refused(403 if isinstance(exc, placement.NotWritable) else 422, str(exc)) from None


def _text(path: Path, scene: Scene) -> str:
    """The file a move writes: one the watch reads, or refused (403)."""
    if path.resolve() not in scene.watched:
        raise Refused(403, f"{path} is not a file this preview reads")
    try:
        return path.read_bytes().decode("utf-8")  # its line breaks as they are: only the offsets change
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(422, f"{path.name} cannot be read ({exc})") from None


def _user_config(config: PreviewConfig) -> dict[str, Any]:
    if not config.kometa.config:
        return {}
    try:
        return run_config.read_user_config(config.kometa.config)
    except run_config.KometaConfigError:
        return {}


def _entry(config: PreviewConfig, user: dict[str, Any], library: str,
           source: run_config.OverlaySource) -> tuple[Path, placement.Path, dict[str, Any]]:
    """The file holding a `default:` entry (preview.yml, else kometa.config: `run_config.overlays_for`'s order),
    the entry's place in it, and the library's own `template_variables` (the entry's win over them)."""
    index = int(source.where.split("overlay_files[", 1)[1].split("]", 1)[0])
    for path in (config.source, config.kometa.config):
        if path is None:
            continue
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        for key, definition in ((document.get("libraries") or {}) if isinstance(document, dict) else {}).items():
            if not isinstance(definition, dict) or (definition.get("library_name", key) != library):
                continue
            for name in ("overlay_files", "overlay_path"):
                if isinstance(definition.get(name), list) and len(definition[name]) > index:
                    variables = definition.get("template_variables")
                    return path, ("libraries", key, name, index), variables if isinstance(variables, dict) else {}
    raise Refused(422, f"the overlay_files entry of {library} is in no file this preview reads")
