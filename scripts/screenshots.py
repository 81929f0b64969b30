"""The pages as a browser shows them, for docs/screenshots/: report.html, a dry run's contact.html, the watch page
and diff.html, each at 1400×1000 and at a phone's width (390×844), in Debian's chromium.

    .venv/bin/python scripts/screenshots.py            # the Kometa stand-in
    KOMETA_PATH=/path/to/Kometa KOMETA_PYTHON=… .venv/bin/python scripts/screenshots.py   # real Kometa

It renders the demo's sample library offline (as scripts/demo.py does), so the pictures are what a new user sees.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from kometa_preview.sandbox import SampleServer, generate

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
TOKEN = "screenshots-token-not-a-secret"
SIZES = {"desktop": (1400, 1000), "phone": (390, 844)}
DEFAULTS = ("resolution", "audio_codec", "video_format")


def kometa_args() -> list[str]:
    kometa = os.environ.get("KOMETA_PATH") or str(ROOT / "tests" / "kometa_standin" / "kometa.py")
    python = os.environ.get("KOMETA_PYTHON")
    return ["--kometa", kometa, *(["--kometa-python", python] if python else [])]


def preview_yml(folder: Path, server: SampleServer, targets: list[dict], **extra) -> Path:
    document = {"plex": {"url": server.url, "token": TOKEN},
                "libraries": {name: {"overlay_files": [{"default": d} for d in DEFAULTS]}
                              for name in ("Movies", "TV Shows")},
                "preview": {"output": str(folder / "out"), "targets": targets}, **extra}
    path = folder / "preview.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def render(config: Path, job: Path, *args: str) -> Path:
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(job), *kometa_args(), *args], check=False, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        raise SystemExit(f"render {job.name} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    return job / "output"


def watch_page(config: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "kometa_preview", "watch", str(config), "--offline", "-q",
                                "--job", str(folder / "watch"), *kometa_args()], stdout=subprocess.PIPE, text=True)
    url = process.stdout.readline().strip().removeprefix("page: ")
    state_url = re.sub(r"/\?token=(.+)$", r"/api/state?token=\1", url)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        with urllib.request.urlopen(state_url, timeout=10) as response:
            if b'"status": "done"' in response.read():
                break
        time.sleep(0.5)
    return process, url


def shoot(pages: dict[str, str]) -> None:
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        for name, url in pages.items():
            for size, (width, height) in SIZES.items():
                page = browser.new_page(viewport={"width": width, "height": height})
                errors: list[str] = []
                page.on("pageerror", lambda error, errors=errors: errors.append(str(error)))
                page.goto(url)
                page.wait_for_timeout(800)
                if errors:
                    raise SystemExit(f"{name} at {size}: script error: {errors[0]}")
                page.screenshot(path=str(OUT / f"{name}-{size}.png"))
                page.close()
                print(OUT / f"{name}-{size}.png")
        browser.close()


def main() -> int:
    library = generate(seed=7, movies=40, shows=2)
    with SampleServer(library, TOKEN) as server, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        movies = [k for k in sorted(library.items) if library.items[k].type == "movie"][:5]
        targets = [{"id": f"movie{n}", "type": "movie", "ratingKey": str(k)} for n, k in enumerate(movies, 1)]
        config = preview_yml(folder, server, targets)
        report = render(config, folder / "one") / "report.html"
        contact = render(config, folder / "dry", "--library", "Movies") / "contact.html"
        moved = dict(yaml.safe_load(config.read_text()))
        moved["libraries"]["Movies"]["overlay_files"][0]["template_variables"] = {"horizontal_offset": 60}
        (folder / "moved").mkdir()
        second = preview_yml(folder / "moved", server, targets, libraries=moved["libraries"])
        subprocess.run([sys.executable, "-m", "kometa_preview", "diff", str(folder / "one"),
                        str(render(second, folder / "two").parent)], check=False, capture_output=True)
        diff = folder / "two" / "output" / "diff.html"
        process, url = watch_page(config, folder)
        try:
            shoot({"report": report.as_uri(), "contact-sheet": contact.as_uri(), "diff": diff.as_uri(),
                   "watch": url})
        finally:
            process.send_signal(2)
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
