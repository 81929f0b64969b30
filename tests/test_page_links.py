"""Every page a job writes, walked as a browser would: each local link and image resolves to a file inside the job
folder — a render's report, a sharded dry run's merged report (each shard's logs) and contact sheet, and each shard's
own report — and in Chromium, at 1400×1000 and at a phone's width, no page is wider than the window, every image
loads, boxes show on hover, the slider says which side is before, and overlays go by their own names."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from conftest import RESOLUTION_OVERLAYS, render_cli, write_preview_yml

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed")
TEXT = ("overlays:\n  Hello:\n    overlay:\n      name: text(Hello)\n      back_color: '#FF0000'\n"
        "      horizontal_offset: 30\n      vertical_offset: 30\n    plex_all: true\n")
VIEWPORTS = ((1400, 1000), (390, 844))


def local_links(page: Path) -> list[str]:
    """Every link and image source of a page, and those its script makes of its embedded JSON (the contact sheet's:
    thumbnails, before and after, the report's card)."""
    html = page.read_text(encoding="utf-8")
    found = re.findall(r'(?:href|src)="([^"]*)"', re.sub(r"<script.*?</script>", "", html, flags=re.S))
    embedded = re.search(r'<script type="application/json" id="items">(.*?)</script>', html, re.S)
    for item in json.loads(embedded[1]) if embedded else []:
        found += [item[key] for key in ("thumb", "before", "after") if item[key]] + [f"report.html#{item['id']}"]
    return [link for link in found if not urlsplit(link).scheme and not link.startswith("#")]


def assert_links_resolve(page: Path, job: Path) -> int:
    for link in local_links(page):
        target = (page.parent / unquote(urlsplit(link).path)).resolve()
        assert target.is_file(), f"{page.relative_to(job)} links {link}, which does not exist"
        assert target.is_relative_to(job.resolve()), f"{page.relative_to(job)} links {link}, outside the job"
    return len(local_links(page))


@pytest.fixture(scope="module")
def jobs(tmp_path_factory, sample_plex_factory_module):
    """A render of three movies and a show (`default: resolution` and a text file) and a sharded dry run of Movies,
    through the user's commands."""
    server = sample_plex_factory_module(movies=12, shows=1, seasons=1, episodes=2, seed=5)
    folder = tmp_path_factory.mktemp("pages")
    (folder / "hello.yml").write_text(TEXT)
    libraries = {"Movies": {"overlay_files": [{"default": "resolution"}, {"file": "hello.yml"}]},
                 "TV Shows": RESOLUTION_OVERLAYS["TV Shows"]}
    targets = [{"id": f"m{k}", "type": "movie", "ratingKey": str(k)} for k in (1001, 1002, 1003)]
    config = write_preview_yml(folder, server.url, [*targets, {"id": "s", "type": "show", "ratingKey": "500001"}],
                               libraries=libraries)
    render = render_cli(config, "--job", str(folder / "render"), timeout=300)
    assert render.returncode == 0, render.stdout + render.stderr
    dry = folder / "dry"
    dry.mkdir()
    (dry / "hello.yml").write_text(TEXT)
    dry_config = write_preview_yml(dry, server.url, [], libraries=libraries)
    sharded = render_cli(dry_config, "--library", "Movies", "--shards", "2", "--job", str(folder / "sharded"),
                         timeout=600)
    assert sharded.returncode == 0, sharded.stdout + sharded.stderr
    return folder / "render", folder / "sharded"


@pytest.fixture(scope="module")
def sample_plex_factory_module():
    from conftest import TOKEN

    from kometa_preview.sandbox import SampleServer, generate
    started = []

    def start(**size):
        server = SampleServer(generate(**size), TOKEN).start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def with_a_box(job: Path, folder: Path) -> Path:
    """The render's output again, its report written with a box for m1001's Hello (the stand-in's log names no
    Kometa folder to measure its overlays in; real Kometa's boxes: tests/test_real_kometa_boxes.py)."""
    from kometa_preview.common.job import JobLayout
    from kometa_preview.results import pages
    from kometa_preview.results.outcomes import OverlayBox
    from kometa_preview.results.summary import load
    shutil.copytree(job / "output", folder / "output")
    summary = load(json.loads((folder / "output" / "summary.json").read_text()))
    summary.targets["m1001"].boxes = [OverlayBox("Overlay File (1) Hello", "Hello", "file: hello.yml", 30, 230, 300,
                                                 100)]
    pages.write(JobLayout(folder), summary)
    return folder / "output"


def contact_filters(tab, output: Path) -> dict[str, int]:
    """The contact sheet's "matched but not applied" and "no overlay" filters: how many cards each shows, and how
    many items of summary.json each should."""
    targets = json.loads((output / "summary.json").read_text())["targets"].values()
    tab.goto((output / "contact.html").as_uri())
    tab.select_option("#why", "lost")
    lost = tab.locator(".card").count()
    tab.select_option("#why", "no overlay")
    none = tab.locator(".card").count()
    return {"lost": lost, "none": none, "expected none": sum(1 for t in targets if t["status"] == "unchanged"),
            "expected lost": sum(1 for t in targets if any(c["matched"] and not c["applied"] for c in t["considered"]))}


def pages_of(job: Path) -> list[Path]:
    return sorted(job.glob("output/*.html")) + sorted(job.glob("shards/*/output/*.html"))


def test_every_local_link_and_image_of_every_page_resolves(jobs):
    render, sharded = jobs
    assert [p.name for p in pages_of(render)] == ["report.html"]
    assert {p.name for p in pages_of(sharded)} == {"report.html", "contact.html"} and len(pages_of(sharded)) == 4
    for job in jobs:
        for page in pages_of(job):
            assert assert_links_resolve(page, job) > 0
    merged = (sharded / "output" / "report.html").read_text()
    for shard in ("1-1", "1-2"):   # a merged job links each shard's logs, and no log of its own it does not have
        assert f'href="../shards/{shard}/kometa/logs/meta.log"' in merged
        assert f'href="../shards/{shard}/logs/proxy.log"' in merged
    assert 'href="../logs/kometa.log"' not in merged and 'href="../proxy_journal.jsonl"' not in merged


def test_pages_name_overlays_by_their_own_names_and_count_each_once(jobs):
    render, sharded = jobs
    report = (render / "output" / "report.html").read_text()
    contact = (sharded / "output" / "contact.html").read_text()
    counted = re.search(r'<p class="counts">(.*?)</p>', contact)[1]
    assert "Overlay File (" not in re.sub(r'<script.*?</script>|title="[^"]*"', "", report) + counted
    assert "<b>Hello</b> <small>file: hello.yml</small>" in report
    assert counted.count("<b>Hello</b>") == 1 and "1 items" not in contact
    summary = json.loads((render / "output" / "summary.json").read_text())
    hello = summary["targets"]["m1001"]["overlay_labels"][-1]
    assert hello == {"overlay": "Overlay File (1) Hello", "display_name": "Hello", "file": "file: hello.yml"}
    assert summary["targets"]["m1001"]["overlays"][-1] == "Overlay File (1) Hello"   # Kometa's names stay


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS, ids=lambda v: f"{v[0]}x{v[1]}")
def test_in_chromium_the_pages_fit_the_window_load_every_image_and_show_boxes(jobs, viewport, tmp_path):
    from playwright.sync_api import sync_playwright
    render, sharded = jobs
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        tab = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        for page in (render / "output" / "report.html", sharded / "output" / "report.html",
                     sharded / "output" / "contact.html"):
            tab.goto(page.as_uri())
            tab.wait_for_load_state("load")
            tab.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            tab.wait_for_function("[...document.images].every(i => i.complete)")
            assert tab.evaluate("document.documentElement.scrollWidth") <= viewport[0], page
            broken = tab.eval_on_selector_all("img", "els => els.filter(e => !e.naturalWidth).map(e => e.src)")
            assert broken == [], (page, broken)
            tab.screenshot(path=str(tmp_path / f"{page.parent.parent.name}-{page.stem}.png"))
            tab.locator(".grid .frame, .card").first.click()       # the full view opens without a script error
            assert tab.locator("#full").is_visible() and errors == [], (page, errors)
        filtered = contact_filters(tab, sharded / "output")
        boxed = with_a_box(render, tmp_path / "boxed")
        tab.goto((boxed / "report.html").as_uri())
        frame = tab.locator("section#m1001 .frame")
        hidden = tab.eval_on_selector("section#m1001 .boxes", "e => getComputedStyle(e).opacity")
        frame.hover()
        tab.wait_for_timeout(300)
        shown = tab.eval_on_selector("section#m1001 .boxes", "e => getComputedStyle(e).opacity")
        boxes = tab.eval_on_selector_all("section#m1001 .box span", "els => els.map(e => e.textContent)")
        tags = tab.eval_on_selector_all("section#m1001 .tag", "els => els.map(e => [e.textContent, "
                                                              "e.getBoundingClientRect().left])")
        frame.click()
        opened = tab.eval_on_selector("#full", "e => getComputedStyle(e).display")
        browser.close()
    assert (hidden, shown, opened) == ("0", "1", "block") and errors == []
    assert boxes == ["Hello"]
    assert filtered["lost"] == filtered["expected lost"] > 0 and filtered["none"] == filtered["expected none"]
    assert [tag for tag, _ in sorted(tags, key=lambda t: t[1])] == ["before", "after"]
