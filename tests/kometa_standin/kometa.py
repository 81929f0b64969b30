#!/usr/bin/env python3
"""A Kometa stand-in for the test suite: laid out like a Kometa checkout (kometa.py, VERSION, requirements.txt,
defaults/overlays/), making the requests real Kometa 2.4 makes in an overlays-only run (docs/KOMETA-TRAFFIC.md)
with the real plexapi client, logging the way Kometa logs (its screen lines, and `<config dir>/logs/meta.log`
with levels), and drawing badges that look like Kometa's with Pillow (standin_draw.py).

What it understands of `overlay_files`:
- `default: resolution`, `default: audio_codec`, `default: video_format`: Kometa's definitions of those files
  (standin_defaults.py) found the way Kometa finds them (standin_gather.py): Plex listings on the resolution
  choices and `hdr`, which Plex (here: the proxy) evaluates; filters on each reloaded item (Dolby Vision, the
  audio tracks' titles, the file paths, the edition), asked of the episodes at show and season level; then
  Kometa's choice per item (suppressions, the highest weight of each group). Overlays are named as Kometa names
  them: `Overlay File (<n>) <name>`, n counting the library's files that loaded.
- the level of each file, as Kometa's `builder_level`: a file's own `template_variables`, else the library's,
  else the library's type (a TV library's overlays go on shows); `season` and `episode` levels in TV libraries.
- `default: <name>`: a file of defaults/overlays/ the stand-in knows but does not evaluate applies to nothing (an
  item no overlay applies to); an unknown name is Kometa's `File Error: Default does not exist`.
  `default: ribbon` reads its validation file from GitHub first, as Kometa does, and fails as Kometa does
  (`URL Error: No file found at …`) when that call is refused.
- `file: <path>` (relative to the working directory, as Kometa resolves it): a Kometa overlay file whose
  overlays are `overlay: {name: text(…), horizontal_offset, vertical_offset, back_color}` with `plex_all: true`;
  Kometa's `File Error: File does not exist` and its offsets-must-be-used-together `Overlay Error` included.
Posters Kometa cannot read fail the item the way Kometa's generic exception branch does.

Test hooks (environment): STANDIN_CRASH=1 exits 3 after listing; STANDIN_HANG=seconds sleeps after start-up;
STANDIN_SKIP_UPLOAD=<ratingKey,…> uploads nothing for those items; STANDIN_NO_OUTSIDE=1 skips the GitHub/TMDb
calls (the benchmark's baseline runs it straight against a Plex, no proxy); STANDIN_OUTSIDE_BASE=https://host puts
the start-up calls on another host (one that cannot be reached, to see "no internet"); STANDIN_REQUIRE=<module> is one more
requirement to import (to see Kometa's `Requirements Error`); STANDIN_CRITICAL=<text> logs a critical error and
exits 0, as Kometa 2.0 does after one; STANDIN_ITEM_DELAY=seconds waits before each item (to interrupt a run midway).
"""
from __future__ import annotations

import argparse
import importlib
import io
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # its own modules, however it is started (runpy from a wrapper, Kometa's runner)
try:
    import requests
    import yaml
    from PIL import Image, ImageDraw
    from plexapi.server import PlexServer
    from standin_defaults import Definition, choose, definitions
    from standin_draw import OVERLAY_EXIF, compose, encode
    from standin_gather import RELOAD, Gatherer
    if os.environ.get("STANDIN_REQUIRE"):
        importlib.import_module(os.environ["STANDIN_REQUIRE"])
except ImportError as ie:  # Kometa's own words and exit code (kometa.py)
    print(f"Requirements Error: Requirements are not installed.\nPlease follow the documentation for instructions "
          f"on installing requirements. ({ie})")
    sys.exit(0)

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
#: Kometa's builder levels of a TV library (template variable `builder_level`).
TV_LEVELS = ("show", "season", "episode")
RIBBON_VALIDATION = "https://raw.githubusercontent.com/Kometa-Team/IMDb-Awards/master/event_validation.yml"
WIDTH = 100


class KometaLog:
    """Kometa's two outputs: `| message |` on the screen, and meta.log lines with time, place and level."""

    def __init__(self, config_dir: Path) -> None:
        (config_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.file = (config_dir / "logs" / "meta.log").open("w", encoding="utf-8")

    def _emit(self, level: str, text: str, border: bool = True) -> None:
        when = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        for n, line in enumerate(str(text).split("\n")):
            body = f"| {line:<{WIDTH - 2}} |" if border else line
            prefix = f"[{when}] {'[kometa.py:0]':<27} {f'[{level}]':<10} " if n == 0 else " " * 65
            self.file.write(prefix + body + "\n")
            print(body, flush=True)
        self.file.flush()

    def info(self, text: str = "") -> None:
        self._emit("INFO", text)

    def warning(self, text: str) -> None:
        self._emit("WARNING", text)

    def debug(self, text: str) -> None:
        self._emit("DEBUG", text)

    def trace(self, text: str) -> None:
        self._emit("TRACE", text)

    def error(self, text: str) -> None:
        self._emit("ERROR", text)

    def critical(self, text: str) -> None:
        self._emit("CRITICAL", text)

    def separator(self, text: str | None = None, space: bool = True, border: bool = True) -> None:
        rule = f"|{'=' * WIDTH}|"
        if border:
            self._emit("INFO", rule, border=False)
        for line in (text or "").split("\n") if text else []:
            fill = " " if space else "="
            self._emit("INFO", f"|{fill}{f' {line} '.center(WIDTH - 2, fill)}{fill}|", border=False)
        if border and text:
            self._emit("INFO", rule, border=False)

    def ghost(self, text: str) -> None:
        print(f"| {text}", end="\r", flush=True)


def outside_calls(config: dict, log: KometaLog) -> None:
    """Kometa's start-up calls: the newest version (a failure is only a warning), TMDb's configuration (a failure is
    Kometa's critical `TMDb Error: Failed to Connect`, and it exits 0), the anime ids."""
    session = requests.Session()
    github = os.environ.get("STANDIN_OUTSIDE_BASE", "https://raw.githubusercontent.com")
    tmdb_base = os.environ.get("STANDIN_OUTSIDE_BASE", "https://api.themoviedb.org")
    try:
        version = session.get(f"{github}/Kometa-Team/Kometa/master/VERSION", timeout=30)
        version.raise_for_status()
        log.info(f"    Newest Version: {version.text.strip()}")
    except requests.RequestException as exc:
        log.warning(f"Version Warning: the newest version could not be read ({type(exc).__name__})")
    url = f"{tmdb_base}/3/configuration"
    try:
        tmdb = session.get(url, params={"api_key": config["tmdb"]["apikey"],
                                        "append_to_response": "countries,jobs,languages,primary_translations,timezones"},
                           timeout=30)
        if tmdb.status_code != 200 or "images" not in tmdb.json():
            raise ValueError(f"status {tmdb.status_code}")
    except (requests.RequestException, ValueError) as exc:
        log.critical(f"TMDb Error: Failed to Connect to {url}: {exc}")
        sys.exit(0)
    session.get(f"{github}/Kometa-Team/Anime-IDs/master/anime_ids.json", timeout=30)


def display_title(item) -> str:
    """Kometa's `get_item_display_title`."""
    if item.type == "season":
        return f"{item.parentTitle} Season {item.index}"
    if item.type == "episode":
        return f"{item.grandparentTitle} {item.seasonEpisode.upper()}"
    return item.title


class TextOverlay:
    """A `text(…)` overlay of the user's own file. Its level is its own `builder_level` attribute (Kometa reads
    `overlay_level` and `collection_level` as that too); template variables do not reach a definition that uses no
    template, so a file's `template_variables: {builder_level: …}` leaves it at the library's level."""

    def __init__(self, name: str, spec: dict, section_type: str = "show") -> None:
        overlay = spec.get("overlay") or {}
        level = next((spec[key] for key in ("builder_level", "collection_level", "overlay_level") if key in spec), None)
        self.level = "movie" if section_type == "movie" else str(level or "show").lower()
        if self.level not in ("movie", *TV_LEVELS):
            raise ValueError(f"Overlay Error: builder_level '{level}' is invalid. Options: season, episode")
        has_h, has_v = "horizontal_offset" in overlay, "vertical_offset" in overlay
        if has_h != has_v:
            raise ValueError("Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' must be "
                             "used together")
        if overlay.get("back_color") and not has_h:
            raise ValueError("Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' are required "
                             "when using 'backdrop'")
        match = re.fullmatch(r"text\((.*)\)", str(overlay.get("name", "")))
        if match is None:
            raise ValueError(f"Overlay Error: stand-in overlays are text(…), not {overlay.get('name')!r}")
        self.name, self.text, self.attributes = name, match[1], dict(overlay)
        self.x, self.y = int(overlay.get("horizontal_offset", 30)), int(overlay.get("vertical_offset", 30))
        colour = str(overlay.get("back_color", "#000000")).lstrip("#")[:6]
        self.colour = tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))

    def draw(self, pen: ImageDraw.ImageDraw) -> None:
        """Its back at its offsets, 200 px lower than Kometa would, clear of the resolution badge's corner."""
        pen.rectangle((self.x, self.y + 200, self.x + 300, self.y + 300), fill=self.colour)
        pen.text((self.x + 20, self.y + 230), self.text, fill=(255, 255, 255))


@dataclass
class OverlayFile:
    """One entry of a library's `overlay_files` that loaded: its number (Kometa's `Overlay File (n)`), the level of
    its default overlays, and what it holds."""
    number: int
    level: str
    definitions: list[Definition] = field(default_factory=list)
    texts: list[TextOverlay] = field(default_factory=list)
    ribbon: bool = False

    @property
    def prefix(self) -> str:
        return f"Overlay File ({self.number}) "


def default_level(entry: dict, library: dict, section_type: str) -> str:
    """The level of a default file's overlays: its `standard` template sets `builder_level: <<builder_level>>`, so
    the file's template variable, else the library's, else the library's type. A movie library has one level; a
    TV library's overlays go on shows unless told otherwise."""
    if section_type == "movie":
        return "movie"
    variables = {**(library.get("template_variables") or {}), **(entry.get("template_variables") or {})}
    level = str(variables.get("builder_level") or "show")
    return level if level in TV_LEVELS else "show"


def _text_overlays(path: str, section_type: str, log: KometaLog) -> list[TextOverlay]:
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    texts = []
    for name, spec in (document.get("overlays") or {}).items():
        try:
            texts.append(TextOverlay(str(name), spec or {}, section_type))
        except ValueError as exc:
            log.error(str(exc))
    return texts


def load_overlay_files(library: dict, section_type: str, log: KometaLog) -> list[OverlayFile]:
    """The library's overlay files that load, logging what Kometa logs for those that do not (which Kometa does not
    number: `Overlay File (n)` counts the files that loaded)."""
    files: list[OverlayFile] = []
    for entry in library.get("overlay_files") or []:
        if not isinstance(entry, dict):
            continue
        loaded = OverlayFile(len(files), default_level(entry, library, section_type))
        default = entry.get("default") or entry.get("pmm")
        if default or entry.get("file"):  # meta.py's DataFile
            log.separator(f"Loading Overlay File {loaded.number} "
                          + (f"Default: {default}" if default else f"File: {os.path.abspath(entry['file'])}"))
        if default:
            if not (HERE / "defaults" / "overlays" / f"{default}.yml").is_file():
                log.error(f"File Error: Default does not exist {default}.yml")
                log.info("Overlay File Failed To Load")
                continue
            loaded.definitions = [d for d in definitions(default) if section_type == "movie" or not d.movies_only]
            loaded.ribbon = default == "ribbon"
        elif entry.get("file"):
            path = os.path.abspath(entry["file"])
            if not os.path.exists(path):
                log.error(f"File Error: File does not exist {path}")
                log.info("Overlay File Failed To Load")
                continue
            loaded.texts = _text_overlays(path, section_type, log)
        files.append(loaded)
    return files


def draw(poster: bytes, libtype: str, badges: list[str], texts: list[TextOverlay], filetype: str) -> bytes:
    """The uploaded poster: the default files' badges (standin_draw.py), then the text overlays."""
    image = compose(poster, libtype, badges)
    pen = ImageDraw.Draw(image)
    for text in texts:
        text.draw(pen)
    return encode(image, filetype)


@dataclass
class Chosen:
    """An item Kometa will overlay, and the overlays it chose for it (their Kometa names, and what to draw)."""
    item: object
    names: list[str] = field(default_factory=list)
    badges: list[str] = field(default_factory=list)
    texts: list[TextOverlay] = field(default_factory=list)


class Compiler:
    """Kometa's `compile_overlays` over a library's files: every overlay gathered in file order, then each item's
    overlays chosen among those that matched it (standin_defaults.choose)."""

    def __init__(self, plex: PlexServer, section, log: KometaLog, items: list, trace: bool = False) -> None:
        self.plex, self.section, self.log, self.trace = plex, section, log, trace
        self.reloaded: dict[int, object] = {}
        self.gatherers: dict[str, Gatherer] = {}
        self.first_items = items
        self.matched: dict[int, list[str]] = {}
        self.objects: dict[int, object] = {}
        self.suppress: dict[str, tuple[str, ...]] = {}
        self.groups: dict[str, tuple[str, int]] = {}
        self.drawn: dict[str, str | TextOverlay] = {}

    def gatherer(self, level: str) -> Gatherer:
        if level not in self.gatherers:
            known = self.first_items if level == self.section.type else None
            self.gatherers[level] = Gatherer(self.plex, self.section, level, self.log, self.reloaded, known)
        return self.gatherers[level]

    def _add(self, mapping: str, items: list, drawn: str | TextOverlay) -> None:
        self.drawn[mapping] = drawn
        for item in items:
            self.objects.setdefault(item.ratingKey, item)
            self.matched.setdefault(item.ratingKey, []).append(mapping)

    def validating(self, name: str, level: str, suppress: tuple[str, ...], attributes: dict) -> None:
        """What Kometa logs while it builds a definition (builder.py, overlay.py): its heading, its level, its
        suppressions, and its attributes after templates."""
        self.log.separator(f"{name} Overlay in {self.section.title}")
        for method, value in (("builder_level", level if self.section.type != "movie" else None),
                              ("suppress_overlays", list(suppress) or None), ("overlay", attributes)):
            if value is not None:
                self.log.debug(f"Validating Method: {method}")
                self.log.debug(f"Value: {value}")

    def found(self, items: list) -> None:
        """`--trace`'s `Titles Found`, after Kometa's `N Items found for …`."""
        if items and self.trace:
            self.log.trace(f"Titles Found: {[display_title(item) for item in items]}")

    def gather(self, files: list[OverlayFile]) -> None:
        for loaded in files:
            gatherer = self.gatherer(loaded.level)
            for definition in loaded.definitions:
                mapping = loaded.prefix + definition.name
                self.suppress[mapping] = tuple(loaded.prefix + name for name in definition.suppress)
                self.groups[mapping] = (definition.group, definition.weight)
                self.validating(definition.name, loaded.level, definition.suppress,
                                {"name": definition.name, "group": definition.group, "weight": definition.weight})
                items = gatherer.gather(mapping, definition) or []
                self.found(items)
                self._add(mapping, items, definition.name)
            for text in loaded.texts:                                   # plex_all: every item of its level
                self.validating(text.name, text.level, (), text.attributes)
                self.log.separator(f"Gathering Items for {text.name} Overlay", space=False, border=False)
                items = self.gatherer(text.level).everything()
                self.log.info(f"{len(items)} Items found for {loaded.prefix + text.name}")
                self.found(items)
                self._add(loaded.prefix + text.name, items, text)

    def chosen(self) -> dict[int, Chosen]:
        result = {}
        for key, matched in self.matched.items():
            entry = result[key] = Chosen(self.objects[key])
            for mapping in choose(matched, self.suppress, self.groups):
                entry.names.append(mapping)
                drawn = self.drawn[mapping]
                (entry.badges if isinstance(drawn, str) else entry.texts).append(drawn)
        return result


def sort_title(item, show_sorts: dict[int, str]) -> str:
    """Kometa's order of the items it overlays (`get_item_display_title(sort=True)`): by the show's sort title."""
    if item.type == "season":
        return f"{show_sorts.get(item.parentRatingKey, item.parentTitle)} Season {item.index}"
    if item.type == "episode":
        return f"{show_sorts.get(item.grandparentRatingKey, item.grandparentTitle)} {item.seasonEpisode.upper()}"
    return item.titleSort or item.title


def labelled(section) -> set[int]:
    """The items already labelled Overlay (Kometa restores their posters first), read at every level as Kometa
    reads them."""
    if section.type == "movie":
        return {item.ratingKey for item in section.search(label="Overlay")}
    return {item.ratingKey for libtype in ("show", "episode", "season")
            for item in section.search(label="Overlay", libtype=libtype)}


def overlay_item(plex: PlexServer, n: int, total: int, entry: Chosen, context: dict, log: KometaLog) -> None:
    """Kometa's per-item step (modules/overlays.py): reload, read the poster, draw, upload, label."""
    item, name, names = entry.item, display_title(entry.item), entry.names
    log.ghost(f"Overlaying: ({n}/{total}) {name}")
    time.sleep(float(os.environ.get("STANDIN_ITEM_DELAY", "0")))
    try:
        item.reload(includeRelatedCount=0, **RELOAD)
        log.info("")
        log.info(f"({n}/{total}) {name}")
        response = requests.get(item.posterUrl, headers={"User-Agent": BROWSER_UA}, timeout=30)
        if response.headers.get("Content-Type") not in ("image/jpeg", "image/png", "image/webp"):
            log.error(f"  Overlay Error: Image Not PNG, JPG, or WEBP\n  Overlays Attempted on {name}: "
                      f"{', '.join(names)}")
            return
        if Image.open(io.BytesIO(response.content)).getexif().get(OVERLAY_EXIF) == "overlay":
            log.error(f"  Overlay Error: This item's poster already has an Overlay. There is no Kometa setting to "
                      f"change this behavior.\n  Overlays Attempted on {name}: {', '.join(names)}")
            return
        if item.ratingKey in context["skip"]:
            return
        with tempfile.NamedTemporaryFile(suffix=f".{context['filetype']}", delete=False) as handle:
            handle.write(draw(response.content, item.type, entry.badges, entry.texts, context["filetype"]))
        try:
            item.uploadPoster(filepath=handle.name)                     # raw-body POST
        finally:
            os.unlink(handle.name)
        if item.ratingKey not in context["already"]:
            item.addLabel("Overlay")                                    # label PUT on the listing path
        log.info(f"  Overlays Applied: {', '.join(names)}")
    except Exception as exc:  # noqa: BLE001 - Kometa's generic branch (overlays.py)
        log.info(str(exc))
        log.info(str(type(exc)))
        log.info("")
        log.error(f"Overlays Attempted on {name}: {', '.join(names)}")


def run_library(plex: PlexServer, title: str, library: dict, settings: dict, log: KometaLog,
                trace: bool = False) -> None:
    log.separator(f"{title} Library Overlays")
    section = plex.library.section(title)
    section.settings()
    log.info(f"Loading All {section.type.title()}s from Library: {title}")
    items = section.search(libtype=section.type, includeGuids=True)      # Kometa's map of the library
    if os.environ.get("STANDIN_CRASH"):
        raise RuntimeError("stand-in crash requested")
    if os.environ.get("STANDIN_HANG"):
        time.sleep(float(os.environ["STANDIN_HANG"]))
    files = load_overlay_files(library, section.type, log)
    if any(loaded.ribbon for loaded in files):
        response = requests.get(RIBBON_VALIDATION, timeout=30)
        if response.status_code != 200:
            log.error(f"URL Error: No file found at {RIBBON_VALIDATION}")
    compiler = Compiler(plex, section, log, items, trace)
    compiler.gather(files)
    chosen = compiler.chosen()
    filetype = settings.get("overlay_artwork_filetype", "jpg").replace("webp_lossy", "webp").replace("webp_lossless", "webp")
    context = {"filetype": filetype, "already": labelled(section),
               "skip": {int(k) for k in os.environ.get("STANDIN_SKIP_UPLOAD", "").split(",") if k}}
    show_sorts = {item.ratingKey: item.titleSort or item.title for item in items if item.type == "show"}
    log.separator(f"Applying Overlays for the {title} Library")
    ordered = sorted(chosen.values(), key=lambda entry: sort_title(entry.item, show_sorts))
    for n, entry in enumerate(ordered, 1):
        overlay_item(plex, n, len(ordered), entry, context, log)
    log.info("")
    log.separator(f"Finished {title} Library Overlays\nOverlays Run Time: 0:00:00")


def main() -> int:
    parser = argparse.ArgumentParser(prog="kometa.py")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", action="store_true")
    parser.add_argument("--overlays-only", action="store_true")
    parser.add_argument("--run-libraries", default="")
    for flag in ("--ignore-schedules", "--read-only-config", "--no-report", "--no-missing", "--trace"):
        parser.add_argument(flag, action="store_true")
    args = parser.parse_args()
    for name in ("KOMETA_RUN", "KOMETA_CONFIG", "PMM_CONFIG"):
        if name in os.environ:
            print(f"| {name} should have been removed from the environment")
            return 4
    config_path = Path(args.config).resolve()
    log = KometaLog(config_path.parent)
    log.separator()
    log.info(f"    Version: {(HERE / 'VERSION').read_text().strip()} (Python {sys.version.split()[0]})")
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if os.environ.get("STANDIN_CRITICAL"):
        log.critical(os.environ["STANDIN_CRITICAL"])
        return 0
    if not os.environ.get("STANDIN_NO_OUTSIDE"):
        outside_calls(config, log)
    plex = PlexServer(config["plex"]["url"], config["plex"]["token"], timeout=config["plex"].get("timeout", 60))
    plex.settings  # noqa: B018 - GET /:/prefs, as Kometa does at start-up
    for title in args.run_libraries.split("|"):
        if title in config["libraries"]:
            run_library(plex, title, config["libraries"][title], config.get("settings") or {}, log, args.trace)
    log.separator("Finished Libraries Run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
