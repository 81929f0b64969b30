#!/usr/bin/env python3
"""A Kometa stand-in for the test suite: the requests real Kometa 2.4 makes in an overlays-only run
(docs/KOMETA-TRAFFIC.md), made with the real plexapi client, and a visible overlay drawn with Pillow.

It takes Kometa's command line (`--config … --run --overlays-only --run-libraries "A|B" …`) and
supports `overlay_files: [{default: resolution}]`: which badge an item gets is decided, as in
Kometa, by advanced-filter listings that Plex (here: the proxy) evaluates, the highest weight
winning. The badge is a coloured box (colour = resolution, second box = HDR or Dolby Vision) so a
test can check the right badge landed on the right poster.

Test hooks (environment): STANDIN_CRASH=1 exits 3 after listing; STANDIN_HANG=seconds sleeps after
start-up; STANDIN_SKIP_UPLOAD=<ratingKey,…> uploads nothing for those items; STANDIN_NO_OUTSIDE=1
skips the GitHub/TMDb calls (the benchmark's baseline runs it straight against a Plex, no proxy).
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from urllib.parse import quote

import requests
import yaml
from PIL import Image, ImageDraw
from plexapi.server import PlexServer

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
#: Kometa's resolution overlay (defaults/overlays/resolution.yml): regex on filter choices, weight.
RESOLUTIONS = [("4K", r"(?i)2160|4k", 130), ("1080P", r"(?i)1080|2k", 100), ("720P", r"(?i)720|hd", 70),
               ("576P", r"(?i)576", 40), ("480P", r"(?i)480|sd", 10)]
ALTS = [("", 0), ("HDR", 10), ("DV", 20)]
COLOURS = {"4K": (220, 20, 60), "1080P": (30, 144, 255), "720P": (50, 205, 50), "576P": (255, 165, 0),
           "480P": (148, 0, 211), "HDR": (255, 215, 0), "DV": (0, 206, 209)}
BADGE_BOX, ALT_BOX = (30, 30, 330, 135), (340, 30, 440, 135)
OVERLAY_EXIF = 0x04BC


def say(text: str) -> None:
    print(f"| {text}", flush=True)


def outside_calls(config: dict) -> None:
    session = requests.Session()
    version = session.get("https://raw.githubusercontent.com/Kometa-Team/Kometa/master/VERSION", timeout=30)
    version.raise_for_status()
    say(f"Latest version: {version.text.strip()}")
    tmdb = session.get("https://api.themoviedb.org/3/configuration",
                       params={"api_key": config["tmdb"]["apikey"],
                               "append_to_response": "countries,jobs,languages,primary_translations,timezones"},
                       timeout=30)
    if tmdb.status_code != 200 or "images" not in tmdb.json():
        say(f"Config Error: TMDb connection failed ({tmdb.status_code})")
        sys.exit(1)
    session.get("https://raw.githubusercontent.com/Kometa-Team/Anime-IDs/master/anime_ids.json", timeout=30)


def overlay_definitions(libtype: str, choices: list) -> list[tuple[str, str, int, str | None]]:
    """(name, query, weight, client-side check) per resolution/alt that has matching choices."""
    definitions = []
    number = {"movie": 1, "show": 2, "season": 3, "episode": 4}[libtype]
    for key, pattern, weight in RESOLUTIONS:
        keys = [c.key for c in choices if re.search(pattern, c.title)]
        if not keys:
            continue
        group = "push=1&" + "&or=1&".join(f"resolution={quote(k)}" for k in keys) + "&pop=1"
        for alt, bonus in ALTS:
            query = f"type={number}&sort=titleSort&{group}"
            if alt == "HDR":
                query += "&and=1&hdr=1"
            definitions.append((f"{key}{'-' + alt if alt else ''}", query, weight + bonus, "dv" if alt == "DV" else None))
    return definitions


def has_dolby_vision(item) -> bool:
    return any(getattr(stream, "DOVIPresent", False) for media in item.media for part in media.parts
               for stream in part.videoStreams())


def draw(poster: bytes, badge: str, filetype: str) -> bytes:
    image = Image.open(io.BytesIO(poster)).convert("RGB").resize((1000, 1500))
    pen = ImageDraw.Draw(image)
    resolution, _, alt = badge.partition("-")
    pen.rectangle(BADGE_BOX, fill=COLOURS[resolution])
    pen.text((BADGE_BOX[0] + 20, BADGE_BOX[1] + 30), resolution, fill=(255, 255, 255))
    if alt:
        pen.rectangle(ALT_BOX, fill=COLOURS[alt])
    exif = image.getexif()
    exif[OVERLAY_EXIF] = "overlay"
    out = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[filetype]
    image.save(out, format=fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))
    return out.getvalue()


def run_library(plex: PlexServer, title: str, library: dict, settings: dict) -> None:
    section = plex.library.section(title)
    section.settings()
    items = section.search(libtype=section.type, includeGuids=True)      # Kometa's map of the library
    libtype = (library.get("template_variables") or {}).get("builder_level") or section.type
    if libtype != section.type:                                          # overlays at season/episode level
        items = section.search(libtype=libtype, includeGuids=True)
    say(f"Loaded {len(items)} {libtype}s from {title}")
    if os.environ.get("STANDIN_CRASH"):
        raise RuntimeError("stand-in crash requested")
    if os.environ.get("STANDIN_HANG"):
        time.sleep(float(os.environ["STANDIN_HANG"]))
    wanted = [f for f in library.get("overlay_files", []) if isinstance(f, dict)
              and (f.get("default") or f.get("pmm")) == "resolution"]
    if not wanted:
        say(f"No supported overlay for {title}")
        return
    choices = section.listFilterChoices("resolution", libtype=libtype)
    definitions = overlay_definitions(libtype, choices)
    for name, _, _, _ in definitions:                                     # collection lookups by overlay name
        plex.query(f"/library/sections/{section.key}/all?includeGuids=1&title={quote(name)}&type=18")
    best: dict[int, tuple[int, str]] = {}
    reloaded: dict[int, object] = {}
    for name, query, weight, check in definitions:
        for item in section.fetchItems(f"/library/sections/{section.key}/all?{query}"):
            if check == "dv":
                full = reloaded.setdefault(item.ratingKey, plex.fetchItem(item.ratingKey))
                if not has_dolby_vision(full):
                    continue
            if weight > best.get(item.ratingKey, (-1, ""))[0]:
                best[item.ratingKey] = (weight, name)
    already = {item.ratingKey for item in section.search(label="Overlay", libtype=libtype)}  # to restore
    filetype = settings.get("overlay_artwork_filetype", "jpg").replace("webp_lossy", "webp").replace("webp_lossless", "webp")
    skip = {int(k) for k in os.environ.get("STANDIN_SKIP_UPLOAD", "").split(",") if k}
    for item in items:
        if item.ratingKey not in best:
            continue
        item.reload(checkFiles=False, includeAllConcerts=False, includeBandwidths=False, includeChapters=False,
                    includeChildren=False, includeConcerts=False, includeExternalMedia=False, includeExtras=False,
                    includeFields=False, includeGeolocation=False, includeLoudnessRamps=False, includeMarkers=False,
                    includeOnDeck=False, includePopularLeaves=False, includeRelated=False, includeRelatedCount=0,
                    includeReviews=False, includeStations=False)
        response = requests.get(item.posterUrl, headers={"User-Agent": BROWSER_UA}, timeout=30)
        if response.headers.get("Content-Type") not in ("image/jpeg", "image/png", "image/webp"):
            say(f"{item.title}: Image Not PNG, JPG, or WEBP")
            continue
        if Image.open(io.BytesIO(response.content)).getexif().get(OVERLAY_EXIF) == "overlay":
            say(f"{item.title}: This item's poster already has an Overlay")
            continue
        if item.ratingKey in skip:
            continue
        badge = best[item.ratingKey][1]
        with tempfile.NamedTemporaryFile(suffix=f".{filetype}", delete=False) as handle:
            handle.write(draw(response.content, badge, filetype))
        try:
            item.uploadPoster(filepath=handle.name)                     # raw-body POST
        finally:
            os.unlink(handle.name)
        if item.ratingKey not in already:
            item.addLabel("Overlay")                                    # label PUT on the listing path
        say(f"{item.title}: Overlay Applied ({badge})")


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
            say(f"{name} should have been removed from the environment")
            return 4
    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    say("Kometa stand-in starting")
    if not os.environ.get("STANDIN_NO_OUTSIDE"):
        outside_calls(config)
    plex = PlexServer(config["plex"]["url"], config["plex"]["token"], timeout=config["plex"].get("timeout", 60))
    plex.settings  # noqa: B018 - GET /:/prefs, as Kometa does at start-up
    for title in args.run_libraries.split("|"):
        if title in config["libraries"]:
            run_library(plex, title, config["libraries"][title], config.get("settings") or {})
    say("Finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
