"""The same job with real, unmodified Kometa — runs only when KOMETA_PATH points at a Kometa checkout
(KOMETA_PYTHON: the interpreter with Kometa's requirements; default this one). Offline, so no internet."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sample_badges
import tv_levels
import yaml
from conftest import RESOLUTION_OVERLAYS, TOKEN, write_preview_yml
from PIL import Image
from real_kometa import CHECKOUT, MARKS, PYTHON

from kometa_preview.kometa.runner import KometaCommand

pytestmark = MARKS


def test_real_kometa_renders_movies_and_episodes_without_writing(sample_plex_factory, tmp_path):
    server = sample_plex_factory(movies=60, shows=2)
    targets = [{"id": "m1", "type": "movie", "ratingKey": "1001"}, {"id": "m2", "type": "movie", "ratingKey": "1002"},
               {"id": "e1", "type": "episode", "ratingKey": "500004"}]
    config = write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS,
                               kometa={"path": str(CHECKOUT / "kometa.py"),
                                       "python": PYTHON, "timeout": 900})
    server.log.clear()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    assert summary["success"] and summary["missing_targets"] == []
    for target in targets:
        after = tmp_path / "job" / "output" / summary["targets"][target["id"]]["after"]
        assert Image.open(after).getexif().get(0x04BC) == "overlay"
    assert server.log.changes() == []
    assert not any(TOKEN.encode() in p.read_bytes() for p in (tmp_path / "job").rglob("*") if p.is_file())


def test_real_kometa_badges_the_sample_items_by_their_media(sample_plex_factory, tmp_path):
    """Kometa's audio_codec, resolution and video_format defaults on the sample's movies and episodes: it finds the
    audio formats in the tracks' titles and file names, the release sources and HDR10+/HLG/DV HDR10 in the file
    names, and chooses by its weights what sample_badges.py works out from the library."""
    server = sample_plex_factory(movies=60, shows=2, seed=7)
    targets = sample_badges.media_targets(server.library)
    items = {t["id"]: server.library.items[int(t["ratingKey"])] for t in targets}
    assert {sample_badges.audio_codec(item) for item in items.values()} >= {
        "Dolby-TrueHD-Atmos", "DTS-X", "Dolby-Digital-Plus-Atmos", "DTS-HD-MA", "FLAC", "Dolby-Digital-Plus", "AAC"}
    assert {sample_badges.video_format(item) for item in items.values()} >= {"REMUX", "BLU-RAY", "WEB", "DVD", None}
    assert {"DV-HDR", "Plus"} <= {alt for item in items.values() for alt in sample_badges.alternatives(item)}
    config = write_preview_yml(tmp_path, server.url, targets, libraries=sample_badges.MEDIA_OVERLAYS,
                               kometa={"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900})
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    alts = sample_badges.defined_alternatives(CHECKOUT)
    for target_id, item in items.items():
        entry = summary["targets"][target_id]
        assert (entry["status"], entry["overlays"]) == ("exported", sample_badges.overlays(item, alts=alts)), target_id
    assert server.log.changes() == []


def test_real_kometa_puts_each_overlay_file_on_its_own_level(sample_plex_factory, tmp_path):
    """The stand-in's rule of builder_level (test_tv_fidelity has the same test) is real Kometa's."""
    server = sample_plex_factory(movies=5, shows=3)
    tv_levels.write_overlay_files(tmp_path)
    config = write_preview_yml(tmp_path, server.url, tv_levels.targets(server.library), libraries=tv_levels.LIBRARIES,
                               kometa={"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900})
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    tv_levels.check(json.loads((tmp_path / "job" / "output" / "summary.json").read_text()), server.library)
    assert server.log.changes() == []


def test_real_kometa_s_start_up_calls_go_through_the_user_s_proxy(sample_plex, tmp_path):
    """Online, behind a TLS-inspecting HTTPS_PROXY with its own CA: real Kometa's start-up calls leave through it."""
    from corporate_proxy import CorporateProxy
    corp = CorporateProxy(tmp_path / "corp").start()
    targets = [{"id": "m1", "type": "movie", "ratingKey": "1001"}]
    config = write_preview_yml(tmp_path, sample_plex.url, targets, libraries=RESOLUTION_OVERLAYS,
                               tmdb={"apikey": "0123456789abcdef0123456789abcdef"},
                               kometa={"path": str(CHECKOUT / "kometa.py"),
                                       "python": PYTHON, "timeout": 900})
    try:
        result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--job",
                                 str(tmp_path / "job")], capture_output=True, text=True, timeout=1200,
                                env={**os.environ, "HTTPS_PROXY": corp.url, "REQUESTS_CA_BUNDLE": str(corp.ca_file)})
    finally:
        corp.stop()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "api.themoviedb.org/3/configuration" in corp.requests
    assert any(r.endswith("/VERSION") for r in corp.requests)
    assert sample_plex.log.changes() == []


def real_kometa_on_the_whole_library(tmp_path, libraries: dict, size: dict) -> tuple[dict, dict]:
    """Real Kometa straight on a fresh copy of the sample library (writes applied), its start-up calls answered by
    an offline outside-calls door: what it applied (its log) and what it uploaded."""
    from kometa_preview.common.config import load
    from kometa_preview.common.job import JobLayout
    from kometa_preview.kometa import log as kometa_log
    from kometa_preview.run.proxy_child import ProxyOptions, start_proxy
    from kometa_preview.sandbox import SampleServer, generate
    server = SampleServer(generate(**size), TOKEN).start()
    folder = tmp_path / "direct"
    folder.mkdir()
    door = start_proxy(load(write_preview_yml(folder, server.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}])
                            ).for_proxy(), JobLayout(folder / "door"), ProxyOptions(outside=True, offline=True))
    try:
        (folder / "config.yml").write_text(json.dumps({
            "libraries": libraries, "settings": {"cache": False, "run_order": ["overlays"], "asset_directory": []},
            "plex": {"url": server.url, "token": TOKEN, "timeout": 60, "clean_bundles": False, "empty_trash": False,
                     "optimize": False, "db_cache": None},
            "tmdb": {"apikey": "kometa-preview-offline", "language": "en"}}))
        outside, ca = f"http://127.0.0.1:{door.outside_port}", str(folder / "door" / "mitmproxy" / "mitmproxy-ca-cert.pem")
        subprocess.run([PYTHON, str(CHECKOUT / "kometa.py"), "--config", str(folder / "config.yml"), "--run",
                        "--overlays-only", "--ignore-schedules", "--read-only-config", "--no-report", "--no-missing"],
                       cwd=CHECKOUT, capture_output=True, timeout=1200, check=True,
                       env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "HTTPS_PROXY": outside,
                            "HTTP_PROXY": outside, "NO_PROXY": "127.0.0.1,localhost", "REQUESTS_CA_BUNDLE": ca,
                            "SSL_CERT_FILE": ca})
    finally:
        door.stop()
        server.stop()
    run = kometa_log.read(folder / "logs" / "meta.log")
    return {title: item.applied for title, item in run.items.items()}, dict(server.library.uploads)


def test_real_kometa_show_targets_get_the_badges_it_draws_on_the_whole_library(sample_plex_factory, tmp_path):
    size = {"movies": 10, "shows": 4, "seasons": 2, "episodes": 3, "seed": 7}
    tv = {"TV Shows": {"overlay_files": [{"default": "resolution"}, {"default": "audio_codec"}]}}
    applied, uploads = real_kometa_on_the_whole_library(tmp_path, tv, size)
    assert any(name.startswith("Overlay File (1) ") for names in applied.values() for name in names)  # by episodes
    server = sample_plex_factory(**size)
    shows = sorted(k for k, item in server.library.items.items() if item.type == "show")
    config = write_preview_yml(tmp_path, server.url, [{"id": f"s{k}", "type": "show", "ratingKey": str(k)}
                                                      for k in shows], libraries=tv,
                               kometa={"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900})
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    for key in shows:
        entry = summary["targets"][f"s{key}"]
        assert entry["overlays"] == applied[entry["kometa_title"]], entry["kometa_title"]
        assert (tmp_path / "job" / "output" / entry["after"]).read_bytes() == uploads[key].body
    assert server.log.changes() == []


def test_real_kometa_reads_an_overlay_file_named_relatively_to_preview_yml(sample_plex, tmp_path):
    (tmp_path / "my_overlays.yml").write_text(
        "overlays:\n  Hello:\n    overlay:\n      name: text(Hello)\n      back_color: '#FF0000'\n"
        "      font_color: '#FFFFFF'\n      horizontal_offset: 30\n      vertical_offset: 30\n"
        "      horizontal_align: left\n      vertical_align: top\n    plex_all: true\n")
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries={"Movies": {"overlay_files": [{"file": "my_overlays.yml"}]}},
                               kometa={"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900})
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    entry = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())["targets"]["m"]
    assert entry["status"] == "exported" and [name.endswith("Hello") for name in entry["overlays"]] == [True]
    # Kometa's own version: VERSION, and the build number of its PART file when there is one (2.3.1 says 2.3.1.4)
    version = (CHECKOUT / "VERSION").read_text().strip()
    part = (CHECKOUT / "PART").read_text().strip() if (CHECKOUT / "PART").is_file() else ""
    assert summary_version(tmp_path) == (f"{version}.{part}" if part.isdigit() and int(part) else version)
    assert KometaCommand(PYTHON, CHECKOUT / "kometa.py").version == summary_version(tmp_path)


def summary_version(tmp_path) -> str:
    return json.loads((tmp_path / "job" / "output" / "summary.json").read_text())["kometa_version"]


def test_real_kometa_dry_run_of_a_movies_library_equals_its_own_run(sample_plex_factory, tmp_path):
    size = {"movies": 30, "shows": 0, "seed": 3}
    movies = {"Movies": {"overlay_files": [{"default": "resolution"}]}}
    applied, uploads = real_kometa_on_the_whole_library(tmp_path, movies, size)
    server = sample_plex_factory(**size)
    document = {"plex": {"url": server.url, "token": TOKEN}, "libraries": movies,
                "kometa": {"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900},
                "preview": {"output": str(tmp_path / "out")}}
    config = tmp_path / "preview.yml"
    config.write_text(json.dumps(document))
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--library",
                             "Movies", "--shards", "2", "--job", str(tmp_path / "job")], capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    assert set(summary["targets"]) == {str(k) for k in server.library.items}
    for key, entry in summary["targets"].items():
        if int(key) in uploads:
            assert entry["status"] == "exported" and entry["overlays"] == applied[entry["kometa_title"]]
            assert (tmp_path / "job" / "output" / entry["after"]).read_bytes() == uploads[int(key)].body
        else:
            assert entry["status"] == "unchanged"
    assert server.log.changes() == []


def test_real_kometa_watch_renders_an_edited_overlay_file_like_a_one_shot_render(sample_plex, tmp_path):
    from watching import Watching, assert_same_as_one_shot, write_overlays
    write_overlays(tmp_path / "overlays.yml", "#FF0000")
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries={"Movies": {"overlay_files": [{"file": "overlays.yml"}]}},
                               kometa={"timeout": 900})
    kometa = CHECKOUT / "kometa.py"
    watch = Watching(config, kometa, "--job", str(tmp_path / "watch"), python=PYTHON, startup_timeout=300)
    try:
        first = watch.wait_for(1, timeout=900)
        assert first["status"] == "done" and first["targets"]["m"]["status"] == "exported", first
        write_overlays(tmp_path / "overlays.yml", "#0000FF")
        second = watch.wait_for(2, timeout=900)
        assert second["status"] == "done" and set(second["changed"]) == {"m"}, second
    finally:
        assert watch.interrupt() == 130
    assert_same_as_one_shot(config, kometa, tmp_path, second, ["m"], python=PYTHON)
    assert sample_plex.log.changes() == []


def test_real_kometa_watch_move_writes_the_default_s_template_variables_like_kometa_s_own_run(sample_plex, tmp_path):
    """`watch` on `default: resolution`: a move through api/move writes the offsets into the default's
    template_variables with preview.yml's comments kept, and the next iteration is byte-identical to a one-shot render
    of the moved preview.yml."""
    from test_placement import inserted_only
    from watching import Watching, assert_same_as_one_shot
    config = tmp_path / "preview.yml"
    text = (f"# my preview: the editor keeps this comment\nplex:\n  url: {sample_plex.url}   # the sample server\n"
            f"  token: {TOKEN}\nlibraries:\n  Movies:\n    overlay_files:\n      - default: resolution   # the badges\n"
            f"kometa:\n  timeout: 900\npreview:\n  output: {tmp_path / 'out'}\n  targets:\n"
            "    - id: m\n      type: movie\n      ratingKey: '1001'\n")
    config.write_text(text)
    kometa = CHECKOUT / "kometa.py"
    watch = Watching(config, kometa, "--job", str(tmp_path / "watch"), python=PYTHON, startup_timeout=300)
    try:
        first = watch.wait_for(1, timeout=900)
        assert first["status"] == "done" and first["targets"]["m"]["status"] == "exported", first
        badge = first["targets"]["m"]["overlays"][0]
        assert badge.startswith("Overlay File (0) "), first["targets"]["m"]["overlays"]
        assert watch.post("/api/move", {"target": "m", "overlay": badge, "dx": 40, "dy": 20},
                          origin="http://attacker.example")[0] == 403
        assert config.read_text() == text
        status, answer = watch.post("/api/move", {"target": "m", "overlay": badge, "dx": 40, "dy": 20})
        assert status == 200, answer
        assert answer["file"] == str(config.resolve()) and [(c["old"], c["new"]) for c in answer["changes"]] == \
            [(15, 55), (15, 35)]                         # resolution.yml: 15 from the top left, left/top aligned
        assert inserted_only(text, config.read_text()) == ["        template_variables:",
                                                           "          horizontal_offset: 55",
                                                           "          vertical_offset: 35"]
        second = watch.wait_for(2, timeout=900)
        assert second["status"] == "done" and set(second["changed"]) == {"m"}, second
    finally:
        assert watch.interrupt() == 130
    oneshot_output = assert_same_as_one_shot(config, kometa, tmp_path, second, ["m"], python=PYTHON)
    oneshot = json.loads((oneshot_output / "summary.json").read_text())["targets"]["m"]
    assert (oneshot_output / oneshot["after"]).read_bytes() == \
        (Path(second["output_dir"]) / second["targets"]["m"]["after"]).read_bytes()   # byte for byte
    assert sample_plex.log.changes() == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_real_kometa_in_chromium_a_resolution_badge_dragged_lands_where_it_was_dropped(sample_plex, tmp_path):
    """The editor as a user drives it, on real Kometa's own boxes (summary.json's `boxes`): the badge dragged with the
    mouse, its drop outlined, then Kometa's next iteration puts it there."""
    from playwright.sync_api import sync_playwright
    from watching import Watching
    config = tmp_path / "preview.yml"
    config.write_text(f"plex:\n  url: {sample_plex.url}\n  token: {TOKEN}\nlibraries:\n  Movies:\n    overlay_files:\n"
                      "      - default: resolution   # badges top left\nkometa:\n  timeout: 900\npreview:\n"
                      f"  output: {tmp_path / 'out'}\n  targets:\n    - id: m\n      type: movie\n      ratingKey: '1001'\n")
    watch = Watching(config, CHECKOUT / "kometa.py", "--job", str(tmp_path / "watch"), python=PYTHON,
                     startup_timeout=300)
    try:
        first = watch.wait_for(1, timeout=900)["targets"]["m"]
        if not first.get("boxes"):
            pytest.skip("summary.json carries no boxes for real Kometa's overlays yet (issue 23 item 1)")
        badge = first["boxes"][0]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(watch.url)
            page.wait_for_function("document.querySelector('#t-m .box') && "
                                   "document.querySelector('#t-m img[data-side=after]').complete")
            page.hover("#t-m .stage")
            box = page.locator(f"#t-m .box[data-overlay='{badge['overlay']}']").bounding_box()
            scale = page.locator("#t-m img[data-side=after]").bounding_box()["width"] / 1000
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 60 * scale, box["y"] + box["height"] / 2 + 40 * scale,
                            steps=8)
            page.mouse.up()
            page.wait_for_selector("#t-m .ghost", timeout=10_000)
            page.wait_for_function("document.getElementById('edit').textContent.includes('Kometa put')",
                                   timeout=900_000)
            told = page.inner_text("#edit")
            src = page.get_attribute("#t-m img[data-side=after]", "src")
            browser.close()
    finally:
        watch.interrupt()
    assert src.startswith("files/2/") and "where you dropped it" in told, told
    variables = yaml.safe_load(config.read_text())["libraries"]["Movies"]["overlay_files"][0]["template_variables"]
    assert abs(variables["horizontal_offset"] - 75) <= 2 and abs(variables["vertical_offset"] - 55) <= 2, variables
    assert "# badges top left" in config.read_text()
    assert sample_plex.log.changes() == []
