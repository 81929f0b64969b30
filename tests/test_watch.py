"""`kometa-preview watch`, its live page and `kometa-preview diff`, driven as a user drives them: the real CLI,
a real mitmdump, the Kometa stand-in, the sample Plex server; the page read over HTTP and in Chromium."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from conftest import STANDIN, gone, standin_for, write_preview_yml
from PIL import Image
from watching import Watching, assert_same_as_one_shot, diff_cli, write_overlays

from kometa_preview.common.config import load
from kometa_preview.run.watch import wait_for_change, watched_files

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _config(folder: Path, server, keys=(1001, 1002), colour: str = "#FF0000") -> Path:
    write_overlays(folder / "overlays.yml", colour)
    return write_preview_yml(folder, server.url, [{"id": f"m{k}", "type": "movie", "ratingKey": str(k)} for k in keys],
                             libraries={"Movies": {"overlay_files": [{"file": "overlays.yml"}]}})


def _processes_under(folder: Path) -> list[int]:
    """Processes whose command line names this folder (the proxy, a Kometa waiting for its cue)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_an_edited_overlay_file_renders_the_next_iteration_like_a_one_shot_render(sample_plex, tmp_path):
    config = _config(tmp_path, sample_plex)
    job = tmp_path / "watch"
    watch = Watching(config, STANDIN, "--job", str(job))
    try:
        assert sum(line.startswith("page:") for line in watch.stdout) == 1
        first = watch.wait_for(1)
        assert first["status"] == "done", first
        assert {t: e["status"] for t, e in first["targets"].items()} == {"m1001": "exported", "m1002": "exported"}
        assert first["kometa_seconds"] > 0 and first["finished_at"] >= first["started_at"]
        assert Path(first["output_dir"]) == job / "iterations" / "1" / "output"
        proxy_pid = json.loads((job / "proxy-1" / "proxy_ready.json").read_text())["pid"]

        write_overlays(tmp_path / "overlays.yml", "#0000FF")  # the user edits the overlay file
        second = watch.wait_for(2)
        assert second["status"] == "done", second
        assert Path(second["output_dir"]) == job / "iterations" / "2" / "output"
        assert set(second["changed"]) == {"m1001", "m1002"} and all(v > 0 for v in second["changed"].values())
        assert not gone(proxy_pid) and not (job / "proxy-2").exists()  # the proxy stayed up: no new prefetch

        # The iteration's images are what a one-shot render of the edited config makes.
        assert_same_as_one_shot(config, STANDIN, tmp_path, second, ["m1001", "m1002"])
        # diff names every changed target, and reports none for a folder compared with itself.
        changed = diff_cli(job / "iterations" / "1", job / "iterations" / "2", "--fail-on-change",
                           "--out", str(tmp_path / "d2"))
        assert changed.returncode == 1
        lines = changed.stdout.splitlines()
        assert [line.split()[:2] for line in lines[:2]] == [["m1001", "changed"], ["m1002", "changed"]]
        assert all(line.endswith("%") for line in lines[:2]) and (tmp_path / "d2" / "diff.html").is_file()
        assert diff_cli(job / "iterations" / "2", job / "iterations" / "2").stdout.splitlines()[:2] == \
            ["m1001 identical", "m1002 identical"]

        # A change of the targets prefetches again, in a new proxy.
        _config(tmp_path, sample_plex, keys=(1001, 1002, 1003), colour="#0000FF")
        third = watch.wait_for(3)
        assert third["status"] == "done" and set(third["targets"]) == {"m1001", "m1002", "m1003"}
        assert (job / "proxy-2").is_dir() and gone(proxy_pid)
        assert set(third["changed"]) == {"m1003"}  # added since iteration 2; the others are identical
    finally:
        code = watch.interrupt()
    assert code == 130
    assert _processes_under(job) == []  # Ctrl-C stopped the proxy and the Kometa waiting for the next edit
    assert sample_plex.log.changes() == []


def test_a_save_while_an_iteration_runs_starts_the_next_one(sample_plex, tmp_path):
    config = _config(tmp_path, sample_plex)
    slow = standin_for(tmp_path, {"STANDIN_ITEM_DELAY": "0.5"})
    watch = Watching(config, slow, "--job", str(tmp_path / "watch"))
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "watch" / "proxy-1" / "output" / "by_ratingkey").glob("*")):
            assert time.monotonic() < deadline  # until Kometa has read the overlay file and uploaded one poster
            time.sleep(0.02)
        write_overlays(tmp_path / "overlays.yml", "#0000FF")   # saved while Kometa draws iteration 1
        assert watch.state()["iteration"] == 1 and watch.state()["status"] == "running"
        assert watch.wait_for(1)["status"] == "done"
        second = watch.wait_for(2)
        assert second["status"] == "done" and set(second["changed"]) == {"m1001", "m1002"}
    finally:
        watch.interrupt()


def test_a_failing_iteration_shows_its_error_beside_the_last_good_images(sample_plex, tmp_path):
    config = _config(tmp_path, sample_plex)
    watch = Watching(config, STANDIN, "--job", str(tmp_path / "watch"))
    try:
        good = watch.wait_for(1)
        assert good["status"] == "done"
        # An overlay Kometa refuses (offsets must be used together): the iteration runs and fails.
        (tmp_path / "overlays.yml").write_text(yaml.safe_dump({"overlays": {"Hello": {
            "overlay": {"name": "text(Hello)", "horizontal_offset": 30}, "plex_all": True}}}))
        failed = watch.wait_for(2)
        assert failed["status"] == "failed" and "horizontal_offset" in failed["error"], failed
        # `check`'s overlay rules ran first: Kometa was not started for an overlay it would refuse
        assert failed["kometa_seconds"] is None and failed["shown_iteration"] == 1
        for target in ("m1001", "m1002"):
            assert failed["images"][target]["iteration"] == 1
            assert failed["images"][target]["after"] == good["targets"][target]["after"]
            status, body, _ = watch.get(f"/files/1/{failed['images'][target]['after']}")
            assert status == 200 and body[:3] == b"\xff\xd8\xff"
        # preview.yml itself broken: no iteration, the error names the file; fixing it runs the next one.
        text = config.read_text()
        config.write_text(text + "\npreview: [unclosed\n")
        deadline = time.monotonic() + 30
        while "preview.yml" not in (watch.state()["error"] or ""):
            assert time.monotonic() < deadline, watch.state()
            time.sleep(0.05)
        assert watch.state()["iteration"] == 2 and watch.state()["status"] == "failed"
        _config(tmp_path, sample_plex)
        fixed = watch.wait_for(3)
        assert fixed["status"] == "done" and fixed["shown_iteration"] == 3
        # A file that does not parse: the iteration fails at once, naming the file, line and column, and the page
        # keeps showing iteration 3's images.
        (tmp_path / "overlays.yml").write_text("overlays:\n  Hello:\n   overlay: [unclosed\n")
        broken = watch.wait_for(4)
        assert broken["status"] == "failed" and broken["kometa_seconds"] is None, broken
        assert "overlays.yml is not valid YAML at line 4, column 1" in broken["error"], broken["error"]
        assert broken["shown_iteration"] == 3 and {i["iteration"] for i in broken["images"].values()} == {3}
    finally:
        watch.interrupt()


def test_the_page_answers_only_to_its_token_on_loopback_and_only_reads(sample_plex, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    watch = Watching(_config(tmp_path, sample_plex), STANDIN, "--job", str(tmp_path / "watch"), "--port", str(port))
    try:
        assert watch.port == port and len(watch.token) >= 20
        state = watch.wait_for(1)
        after = state["targets"]["m1001"]["after"]
        assert watch.get("/api/state", token=None)[0] == 403
        assert watch.get("/api/state", token="wrong" + watch.token)[0] == 403
        assert watch.get(f"/files/1/{after}", token=None)[0] == 403
        # The printed URL leads to the page's own address, the token in its path (the capability its relative
        # fetches carry); no cookie, which a browser would send to every port of 127.0.0.1.
        status, page, headers = watch.get("/")
        assert status == 200 and b"EventSource('events')" in page and "Set-Cookie" not in headers
        assert watch.get(f"/{watch.token}/api/state", token=None)[0] == 200  # the page's own fetches
        assert watch.get(f"/{watch.token}/files/1/{after}", token=None)[0] == 200
        assert watch.get("/api/state", token=None, headers={"Cookie": f"kometa_preview_token={watch.token}"})[0] == 403
        assert watch.get(f"/files/1/{after}")[0] == 200
        for path in ("/files/1/../../preview.yml", "/files/1/%2e%2e/summary.json", "/files/9/summary.json",
                     "/files/1/", "/files/x/summary.json", "/elsewhere"):
            assert watch.get(path)[0] == 404, path
        for method in ("POST", "PUT", "DELETE"):
            assert watch.get("/api/state", method=method)[0] == 405
        with socket.socket() as other, pytest.raises(OSError):  # 127.0.0.1 only, not every loopback address
            other.settimeout(2)
            other.connect(("127.0.0.2", port))
        # The port is taken now: a second watch on it is a one-line error, exit 2, before anything starts.
        refused = subprocess.run([sys.executable, "-m", "kometa_preview", "watch", str(tmp_path / "preview.yml"),
                                  "--kometa", str(STANDIN), "--offline", "--port", str(port)],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and "--port" in refused.stderr and len(refused.stderr.splitlines()) == 1
    finally:
        watch.interrupt()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_in_chromium_the_image_changes_after_an_edit_without_a_reload(sample_plex, tmp_path):
    from playwright.sync_api import sync_playwright
    watch = Watching(_config(tmp_path, sample_plex), STANDIN, "--job", str(tmp_path / "watch"))
    try:
        watch.wait_for(1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"])
            page = browser.new_page()
            page.goto(watch.url)
            after = "#t-m1001 img[data-side=after]"
            page.wait_for_function(f"document.querySelector('{after}') && "
                                   f"document.querySelector('{after}').complete")
            first_src = page.get_attribute(after, "src")
            first_pixel = page.evaluate(_PIXEL, after)
            page.evaluate("window.kept = 'no reload'")
            write_overlays(tmp_path / "overlays.yml", "#00FF00")
            page.wait_for_function(f"document.querySelector('{after}').getAttribute('src').startsWith('files/2/') "
                                   f"&& document.querySelector('{after}').complete", timeout=60_000)
            second_pixel = page.evaluate(_PIXEL, after)
            assert page.evaluate("window.kept") == "no reload"
            assert first_src.startswith("files/1/")
            assert page.locator("#t-m1001.changed").count() == 1 and "iteration 2" in page.inner_text("#bar")
            browser.close()
    finally:
        watch.interrupt()
    # The overlay's box (at 30,230 of the poster) went from red to green on the page itself.
    assert first_pixel[0] > 200 > first_pixel[1] and second_pixel[1] > 200 > second_pixel[0], (first_pixel,
                                                                                                second_pixel)


EDITABLE = ("# my overlays: the preview moves them, and keeps this comment\noverlays:\n  Hello:   # a red banner\n"
            "    overlay:\n      name: text(Hello)\n      back_color: '#FF0000'\n      font_color: '#FFFFFF'\n"
            "      horizontal_offset: 30   # px from the left\n      vertical_offset: 30\n"
            "      horizontal_align: left\n      vertical_align: top\n    plex_all: true\n")


def _editable(folder: Path, server) -> Path:
    (folder / "overlays.yml").write_text(EDITABLE)
    return write_preview_yml(folder, server.url, [{"id": "m1001", "type": "movie", "ratingKey": "1001"}],
                             libraries={"Movies": {"overlay_files": [{"file": "overlays.yml"}]}})


def test_a_move_writes_the_overlay_file_and_the_next_iteration_is_a_one_shot_render_of_it(sample_plex, tmp_path):
    config = _editable(tmp_path, sample_plex)
    watch = Watching(config, STANDIN, "--job", str(tmp_path / "watch"))
    try:
        first = watch.wait_for(1)
        hello = "Overlay File (0) Hello"
        assert first["targets"]["m1001"]["overlays"] == [hello], first
        move = {"target": "m1001", "overlay": hello, "dx": 40, "dy": 25}
        # Without the page's credential, or from another site: refused, nothing written, no iteration.
        request = urllib.request.Request(f"http://127.0.0.1:{watch.port}/api/move", data=json.dumps(move).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as no_token:
            urllib.request.urlopen(request, timeout=10)
        assert no_token.value.code == 403
        assert watch.post("/api/move", move, origin="http://attacker.example")[0] == 403
        assert watch.post("/api/move", move, origin="null")[0] == 403
        assert watch.post("/api/move", {**move, "target": "nobody"})[0] == 404
        time.sleep(0.5)
        assert (tmp_path / "overlays.yml").read_text() == EDITABLE and watch.state()["iteration"] == 1

        status, answer = watch.post("/api/move", move)
        assert status == 200, answer
        assert answer["file"] == str((tmp_path / "overlays.yml").resolve()) and answer["applies_from"] == 2
        assert answer["changes"] == [{"key": "overlays.Hello.overlay.horizontal_offset", "old": 30, "new": 70},
                                     {"key": "overlays.Hello.overlay.vertical_offset", "old": 30, "new": 55}]
        assert (tmp_path / "overlays.yml").read_text() == EDITABLE.replace("offset: 30   #", "offset: 70   #") \
            .replace("vertical_offset: 30", "vertical_offset: 55")             # comments and layout kept
        second = watch.wait_for(2)                                               # started by itself
        assert second["status"] == "done" and set(second["changed"]) == {"m1001"}, second
        assert_same_as_one_shot(config, STANDIN, tmp_path, second, ["m1001"])

        status, undone = watch.post("/api/undo", {})
        assert status == 200 and (tmp_path / "overlays.yml").read_text() == EDITABLE, undone
        third = watch.wait_for(3)
        assert third["status"] == "done"
        iterations = tmp_path / "watch" / "iterations"
        back = diff_cli(iterations / "1", iterations / "3", "--fail-on-change", "--out", str(tmp_path / "d2"))
        assert back.returncode == 0, back.stdout                                  # undo: iteration 1's poster again
        kept = sorted((tmp_path / "watch" / "edits").iterdir())                  # each write kept what it replaced
        assert [p.read_text() for p in kept] == [EDITABLE, EDITABLE.replace("offset: 30   #", "offset: 70   #")
                                                 .replace("vertical_offset: 30", "vertical_offset: 55")]
    finally:
        watch.interrupt()
    assert sample_plex.log.changes() == []


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_in_chromium_a_badge_dragged_with_the_mouse_lands_where_it_was_dropped(sample_plex, tmp_path):
    from playwright.sync_api import sync_playwright
    _editable(tmp_path, sample_plex)
    watch = Watching(tmp_path / "preview.yml", STANDIN, "--job", str(tmp_path / "watch"), boxes=True)
    try:
        first = watch.wait_for(1)["targets"]["m1001"]
        title = first["title"] or first["kometa_title"]     # given by ratingKey: titled as the report titles it
        assert title and title != "m1001"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(watch.url)
            box = "#t-m1001 .box"
            page.wait_for_function(f"document.querySelector('{box}') && "
                                   "document.querySelector('#t-m1001 img[data-side=after]').complete")
            assert page.inner_text("#t-m1001 figure:first-child figcaption") == "BEFORE"   # shown upper-case
            assert page.inner_text("#t-m1001 > b") == title and page.inner_text("#t-m1001 small.id") == "m1001"
            page.hover("#t-m1001 .stage")
            where = page.locator(box).bounding_box()
            shown = page.locator("#t-m1001 img[data-side=after]").bounding_box()
            scale = shown["width"] / 1000                                # display pixels per canvas pixel
            page.mouse.move(where["x"] + 20, where["y"] + 20)
            page.mouse.down()
            page.mouse.move(where["x"] + 20 + 60 * scale, where["y"] + 20 + 30 * scale, steps=8)
            page.mouse.up()
            page.wait_for_selector("#t-m1001 .ghost", timeout=10_000)    # where it was dropped, until Kometa's
            page.wait_for_function("document.getElementById('edit').textContent.includes('Kometa put')",
                                   timeout=60_000)
            told = page.inner_text("#edit")
            src = page.get_attribute("#t-m1001 img[data-side=after]", "src")
            assert page.locator("#t-m1001 .ghost").count() == 0
            moved = yaml.safe_load((tmp_path / "overlays.yml").read_text())["overlays"]["Hello"]["overlay"]
            # The arrow keys nudge the selected badge (Shift: 10 px); the nudge is sent once the keys rest.
            for _ in range(3):
                page.keyboard.press("Shift+ArrowLeft")
            page.keyboard.press("ArrowDown")
            page.wait_for_function("document.getElementById('edit').textContent.startsWith('iteration 3: Kometa put')",
                                   timeout=60_000)
            nudged = yaml.safe_load((tmp_path / "overlays.yml").read_text())["overlays"]["Hello"]["overlay"]
            page.set_viewport_size({"width": 390, "height": 844})          # a phone: nothing wider than the window
            page.wait_for_timeout(200)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            browser.close()
    finally:
        watch.interrupt()
    assert src.startswith("files/2/"), src
    assert abs(moved["horizontal_offset"] - 90) <= 2 and abs(moved["vertical_offset"] - 60) <= 2, moved
    assert (nudged["horizontal_offset"], nudged["vertical_offset"]) == (moved["horizontal_offset"] - 30,
                                                                        moved["vertical_offset"] + 1)
    assert "where you dropped it" in told, told
    assert (tmp_path / "overlays.yml").read_text().startswith("# my overlays: the preview moves them")
    assert not [e for e in errors if "favicon" in e or "404" in e], errors


_PIXEL = """selector => { const img = document.querySelector(selector); const canvas = document.createElement('canvas');
canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; const context = canvas.getContext('2d');
context.drawImage(img, 0, 0); return Array.from(context.getImageData(60, 250, 1, 1).data); }"""


# --- the pieces, without processes ---------------------------------------------------------------------------


def test_watched_files_follow_overlay_files_into_the_files_they_name(tmp_path):
    kometa_folder = tmp_path / "kometa"
    (kometa_folder / "config").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "templates.yml").write_text("templates: {}\n")
    (tmp_path / "mine.yml").write_text(yaml.safe_dump({"external_templates": {"file": "sub/templates.yml"},
                                                       "overlays": {}}))
    (tmp_path / "borrowed.yml").write_text("overlays: {}\n")
    (kometa_folder / "config" / "config.yml").write_text(yaml.safe_dump(
        {"libraries": {"TV Shows": {"overlay_files": [{"file": str(tmp_path / "borrowed.yml")}]}}}))
    poster = tmp_path / "poster.png"
    Image.new("RGB", (10, 15)).save(poster)
    config_path = write_preview_yml(tmp_path, "http://127.0.0.1:1", [
        {"id": "m", "type": "movie", "ratingKey": "1", "input": str(poster)}],
        libraries={"Movies": {"overlay_files": [{"file": "mine.yml"}]}},
        kometa={"config": str(kometa_folder / "config" / "config.yml")})
    files = watched_files(load(config_path), kometa_folder)
    assert {config_path.resolve(), (tmp_path / "mine.yml").resolve(), (tmp_path / "sub" / "templates.yml").resolve(),
            (tmp_path / "borrowed.yml").resolve(), (kometa_folder / "config" / "config.yml").resolve(),
            poster.resolve()} <= files


def test_a_save_in_several_steps_is_one_change(tmp_path):
    import threading
    watched = tmp_path / "overlays.yml"
    watched.write_text("a")
    stop = threading.Event()
    results = []
    thread = threading.Thread(target=lambda: results.append(wait_for_change({watched}, stop)))
    thread.start()
    time.sleep(0.1)
    watched.write_text("")            # an editor that truncates, then writes
    time.sleep(0.03)                  # within SETTLE_SECONDS
    watched.write_text("overlays: {}")
    thread.join(timeout=10)
    (changed, saved_at, settled), = results
    assert settled == {watched: (watched.stat().st_mtime_ns, watched.stat().st_size)}
    assert changed == [watched] and saved_at == pytest.approx(watched.stat().st_mtime, abs=0.005)
    assert watched.read_text() == "overlays: {}"


def test_a_kometa_config_named_while_watching_is_hidden_from_the_next_iteration_s_kometa(sample_plex, tmp_path):
    """The next iteration's Kometa is started (in its box) before the user edits; naming a Kometa config (it holds
    the Plex token) in preview.yml then must start a new one, whose box covers that config's folder too."""
    from conftest import HOSTILE, TOKEN
    config = _config(tmp_path, sample_plex, keys=(1001,))
    user_config = tmp_path / "kometa-config" / "config.yml"
    user_config.parent.mkdir()
    user_config.write_text(f"plex:\n  url: {sample_plex.url}\n  token: {TOKEN}\n", encoding="utf-8")
    hostile = standin_for(tmp_path, {"HOSTILE_PLEX_URL": sample_plex.url, "HOSTILE_THEN_KOMETA": "1",
                                     "HOSTILE_BULK": "0", "HOSTILE_FILES": str(user_config)}, script=HOSTILE)
    watch = Watching(config, hostile, "--job", str(tmp_path / "watch"))
    try:
        assert watch.wait_for(1, timeout=300)["status"] == "done"
        document = yaml.safe_load(config.read_text(encoding="utf-8"))
        document["kometa"] = {**document.get("kometa", {}), "config": str(user_config)}
        config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        second = watch.wait_for(2, timeout=300)
        assert second["status"] == "done", second
    finally:
        assert watch.interrupt() == 130
    report = json.loads((tmp_path / "watch" / "iterations" / "2" / "kometa" / "hostile.json").read_text())
    assert [item["where"] for item in report["harvest"] if item["where"] == str(user_config)] == [], \
        "the Kometa config named while watching was readable"
    assert not [item["where"] for item in report["harvest"] if TOKEN in item["text"]]
    assert sample_plex.log.changes() == []
