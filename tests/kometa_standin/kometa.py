#!/usr/bin/env python3
"""A Kometa stand-in for the test suite: laid out like a Kometa checkout (kometa.py, VERSION, requirements.txt,
defaults/overlays/), making the requests real Kometa 2.4 makes in an overlays-only run (docs/KOMETA-TRAFFIC.md)
with the real plexapi client, logging the way Kometa logs (its screen lines, and `<config dir>/logs/meta.log`
with levels), and drawing a visible overlay with Pillow.

What it understands of `overlay_files`:
- `default: resolution`. Which badge an item gets is decided as in Kometa's defaults/overlays/resolution.yml:
  by advanced-filter listings Plex (here: the proxy) evaluates, the highest weight winning. Movies and episodes
  (`builder_level: episode`) are searched by `resolution` and `hdr`, Dolby Vision is read from the item's
  streams. Shows (Kometa's default level for a TV library) are searched by `episode.resolution` and
  `episode.hdr`, and Dolby Vision is Kometa's `episodes` filter: at least 50 % of the show's episodes, read
  through `show.episodes()` and each episode's full metadata. The badge is a coloured box (colour =
  resolution, second box = HDR or Dolby Vision) so a test can check the right badge landed on the right poster.
- `default: <name>`: a file of defaults/overlays/ the stand-in knows but does not draw applies to nothing (an
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
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
try:
    import requests
    import yaml
    from PIL import Image, ImageDraw
    from plexapi.server import PlexServer
    if os.environ.get("STANDIN_REQUIRE"):
        importlib.import_module(os.environ["STANDIN_REQUIRE"])
except ImportError as ie:  # Kometa's own words and exit code (kometa.py)
    print(f"Requirements Error: Requirements are not installed.\nPlease follow the documentation for instructions "
          f"on installing requirements. ({ie})")
    sys.exit(0)

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
#: Kometa's resolution overlay (defaults/overlays/resolution.yml): regex on filter choices, weight.
RESOLUTIONS = [("4K", r"(?i)2160|4k", 130), ("1080P", r"(?i)1080|2k", 100), ("720P", r"(?i)720|hd", 70),
               ("576P", r"(?i)576", 40), ("480P", r"(?i)480|sd", 10)]
ALTS = [("", 0), ("HDR", 10), ("DV", 20)]
#: The resolution-less overlays of resolution.yml that shows and episodes can get (weight).
ALONE = [("DV", 5, "dv"), ("HDR", 1, "hdr")]
COLOURS = {"4K": (220, 20, 60), "1080P": (30, 144, 255), "720P": (50, 205, 50), "576P": (255, 165, 0),
           "480P": (148, 0, 211), "HDR": (255, 215, 0), "DV": (0, 206, 209)}
BADGE_BOX, ALT_BOX = (30, 30, 330, 135), (340, 30, 440, 135)
OVERLAY_EXIF = 0x04BC
LIBTYPE_NUMBER = {"movie": 1, "show": 2, "season": 3, "episode": 4}
#: Kometa's `episodes` filter default (builder.py: default_percent).
EPISODE_PERCENT = 50
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


def has_dolby_vision(item) -> bool:
    return any(getattr(stream, "DOVIPresent", False) for media in item.media for part in media.parts
               for stream in part.videoStreams())


def resolution_definitions(libtype: str, choices: list) -> list[tuple[str, str, int, str | None]]:
    """(name, query, weight, client-side check) per resolution/alt that has matching choices. On a show library
    at show level, the search fields are the episodes' (Kometa's plex.py show translation)."""
    prefix = "episode." if libtype == "show" else ""
    number = LIBTYPE_NUMBER[libtype]
    definitions = []
    for key, pattern, weight in RESOLUTIONS:
        keys = [c.key for c in choices if re.search(pattern, c.title)]
        if not keys:
            continue
        group = "push=1&" + "&or=1&".join(f"{prefix}resolution={quote(k)}" for k in keys) + "&pop=1"
        for alt, bonus in ALTS:
            query = f"type={number}&sort=titleSort&{group}"
            if alt == "HDR":
                query += f"&and=1&{prefix}hdr=1"
            definitions.append((f"{key}{'-' + alt if alt else ''}", query, weight + bonus, "dv" if alt == "DV" else None))
    if libtype != "movie":
        for name, weight, kind in ALONE:
            query = f"type={number}&sort=titleSort" + (f"&{prefix}hdr=1" if kind == "hdr" else "")
            definitions.append((name, query, weight, "dv" if kind == "dv" else None))
    return definitions


def passes_dv(plex: PlexServer, item, reloaded: dict) -> bool:
    """Kometa's `has_dolby_vision` filter; on a show it becomes `episodes: {has_dolby_vision, percentage: 50}`."""
    def full(key: int):
        if key not in reloaded:
            reloaded[key] = plex.fetchItem(key)
        return reloaded[key]

    if item.type != "show":
        return has_dolby_vision(full(item.ratingKey))
    episodes = item.episodes()
    threshold = len(episodes) * ((100 - EPISODE_PERCENT) / 100)
    failures = 0
    for episode in episodes:
        failures += 0 if has_dolby_vision(full(episode.ratingKey)) else 1
        if failures > threshold:
            return False
    return True


class TextOverlay:
    def __init__(self, name: str, spec: dict) -> None:
        overlay = spec.get("overlay") or {}
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
        self.name, self.text = name, match[1]
        self.x, self.y = int(overlay.get("horizontal_offset", 30)), int(overlay.get("vertical_offset", 30))
        colour = str(overlay.get("back_color", "#000000")).lstrip("#")[:6]
        self.colour = tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))

    def draw(self, pen: ImageDraw.ImageDraw) -> None:
        pen.rectangle((self.x, self.y + 200, self.x + 300, self.y + 300), fill=self.colour)
        pen.text((self.x + 20, self.y + 230), self.text, fill=(255, 255, 255))


def load_overlay_files(entries: list, log: KometaLog) -> tuple[bool, list[TextOverlay], bool]:
    """(resolution wanted, text overlays, ribbon wanted), logging what Kometa logs for files it cannot load."""
    resolution, texts, ribbon = False, [], False
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        default = entry.get("default") or entry.get("pmm")
        if default:
            if not (HERE / "defaults" / "overlays" / f"{default}.yml").is_file():
                log.error(f"File Error: Default does not exist {default}.yml")
                log.info("Overlay File Failed To Load")
            resolution |= default == "resolution"
            ribbon |= default == "ribbon"
        elif entry.get("file"):
            path = os.path.abspath(entry["file"])
            if not os.path.exists(path):
                log.error(f"File Error: File does not exist {path}")
                log.info("Overlay File Failed To Load")
                continue
            with open(path, encoding="utf-8") as handle:
                document = yaml.safe_load(handle) or {}
            for name, spec in (document.get("overlays") or {}).items():
                try:
                    texts.append(TextOverlay(str(name), spec or {}))
                except ValueError as exc:
                    log.error(str(exc))
    return resolution, texts, ribbon


def draw(poster: bytes, libtype: str, badge: str | None, texts: list[TextOverlay], filetype: str) -> bytes:
    size = (1920, 1080) if libtype == "episode" else (1000, 1500)   # Kometa's canvases
    image = Image.open(io.BytesIO(poster)).convert("RGB").resize(size)
    pen = ImageDraw.Draw(image)
    if badge:
        resolution, _, alt = badge.partition("-")
        if resolution in COLOURS and resolution not in ("HDR", "DV"):
            pen.rectangle(BADGE_BOX, fill=COLOURS[resolution])
            pen.text((BADGE_BOX[0] + 20, BADGE_BOX[1] + 30), resolution, fill=(255, 255, 255))
        else:
            alt = resolution
        if alt:
            pen.rectangle(ALT_BOX, fill=COLOURS[alt])
    for text in texts:
        text.draw(pen)
    exif = image.getexif()
    exif[OVERLAY_EXIF] = "overlay"
    out = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[filetype]
    image.save(out, format=fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))
    return out.getvalue()


def gather_resolution(plex: PlexServer, section, libtype: str, log: KometaLog) -> dict[int, tuple[int, str]]:
    choice_type = "episode" if libtype == "show" else libtype
    choices = section.listFilterChoices("resolution", libtype=choice_type)
    definitions = resolution_definitions(libtype, choices)
    for name, _, _, _ in definitions:                                     # collection lookups by overlay name
        plex.query(f"/library/sections/{section.key}/all?includeGuids=1&title={quote(name)}&type=18")
    best: dict[int, tuple[int, str]] = {}
    reloaded: dict[int, object] = {}
    for name, query, weight, check in definitions:
        log.separator(f"Gathering Items for {name} Overlay", space=False, border=False)
        found = 0
        for item in section.fetchItems(f"/library/sections/{section.key}/all?{query}"):
            if check == "dv" and not passes_dv(plex, item, reloaded):
                continue
            found += 1
            if weight > best.get(item.ratingKey, (-1, ""))[0]:
                best[item.ratingKey] = (weight, name)
        log.info(f"{found} Items found for {name}") if found else log.warning(f"No Items found for {name}")
    return best


def run_library(plex: PlexServer, title: str, library: dict, settings: dict, log: KometaLog) -> None:
    log.separator(f"{title} Library Overlays")
    section = plex.library.section(title)
    section.settings()
    log.info(f"Loading All {section.type.title()}s from Library: {title}")
    items = section.search(libtype=section.type, includeGuids=True)      # Kometa's map of the library
    libtype = (library.get("template_variables") or {}).get("builder_level") or section.type
    if libtype != section.type:                                          # overlays at season/episode level
        items = section.search(libtype=libtype, includeGuids=True)
    if os.environ.get("STANDIN_CRASH"):
        raise RuntimeError("stand-in crash requested")
    if os.environ.get("STANDIN_HANG"):
        time.sleep(float(os.environ["STANDIN_HANG"]))
    resolution, texts, ribbon = load_overlay_files(library.get("overlay_files", []), log)
    if ribbon:
        response = requests.get(RIBBON_VALIDATION, timeout=30)
        if response.status_code != 200:
            log.error(f"URL Error: No file found at {RIBBON_VALIDATION}")
    best = gather_resolution(plex, section, libtype, log) if resolution else {}
    already = {item.ratingKey for item in section.search(label="Overlay", libtype=libtype)}  # to restore
    filetype = settings.get("overlay_artwork_filetype", "jpg").replace("webp_lossy", "webp").replace("webp_lossless", "webp")
    skip = {int(k) for k in os.environ.get("STANDIN_SKIP_UPLOAD", "").split(",") if k}
    chosen = [item for item in items if item.ratingKey in best or texts]
    log.separator(f"Applying Overlays for the {title} Library")
    for n, item in enumerate(sorted(chosen, key=display_title), 1):
        name = display_title(item)
        names = ([best[item.ratingKey][1]] if item.ratingKey in best else []) + [t.name for t in texts]
        log.ghost(f"Overlaying: ({n}/{len(chosen)}) {name}")
        time.sleep(float(os.environ.get("STANDIN_ITEM_DELAY", "0")))
        try:
            item.reload(checkFiles=False, includeAllConcerts=False, includeBandwidths=False, includeChapters=False,
                        includeChildren=False, includeConcerts=False, includeExternalMedia=False, includeExtras=False,
                        includeFields=False, includeGeolocation=False, includeLoudnessRamps=False,
                        includeMarkers=False, includeOnDeck=False, includePopularLeaves=False, includeRelated=False,
                        includeRelatedCount=0, includeReviews=False, includeStations=False)
            log.info("")
            log.info(f"({n}/{len(chosen)}) {name}")
            response = requests.get(item.posterUrl, headers={"User-Agent": BROWSER_UA}, timeout=30)
            if response.headers.get("Content-Type") not in ("image/jpeg", "image/png", "image/webp"):
                log.error(f"  Overlay Error: Image Not PNG, JPG, or WEBP\n  Overlays Attempted on {name}: "
                          f"{', '.join(names)}")
                continue
            if Image.open(io.BytesIO(response.content)).getexif().get(OVERLAY_EXIF) == "overlay":
                log.error(f"  Overlay Error: This item's poster already has an Overlay. There is no Kometa setting to "
                          f"change this behavior.\n  Overlays Attempted on {name}: {', '.join(names)}")
                continue
            if item.ratingKey in skip:
                continue
            badge = best[item.ratingKey][1] if item.ratingKey in best else None
            with tempfile.NamedTemporaryFile(suffix=f".{filetype}", delete=False) as handle:
                handle.write(draw(response.content, item.type, badge, texts, filetype))
            try:
                item.uploadPoster(filepath=handle.name)                     # raw-body POST
            finally:
                os.unlink(handle.name)
            if item.ratingKey not in already:
                item.addLabel("Overlay")                                    # label PUT on the listing path
            log.info(f"  Overlays Applied: {', '.join(names)}")
        except Exception as exc:  # noqa: BLE001 - Kometa's generic branch (overlays.py)
            log.info(str(exc))
            log.info(str(type(exc)))
            log.info("")
            log.error(f"Overlays Attempted on {name}: {', '.join(names)}")
    log.info("")
    log.separator(f"Finished {title} Library Overlays\nOverlays Run Time: 0:00:00")


def main() -> int:
    parser = argparse.ArgumentParser(prog="kometa.py")
    parser.add_argument("--config", required=True)
    parser.add_argument("--run", action="store_true")
    parser.add_argument("--overlays-only", action="store_true")
    parser.add_argument("--run-libraries", default="")
    for flag in ("--ignore-schedules", "--read-only-config", "--no-report", "--no-missing"):
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
            run_library(plex, title, config["libraries"][title], config.get("settings") or {}, log)
    log.separator("Finished Libraries Run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
