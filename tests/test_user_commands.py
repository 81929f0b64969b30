"""The user's side: `find` → paste → `check` → `render` → the report in a real browser."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import RESOLUTION_OVERLAYS, STANDIN, TOKEN, render_cli, write_preview_yml

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "kometa_preview"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})})


def test_find_prints_pasteable_targets_and_only_reads(sample_plex):
    movie = next(i for i in sample_plex.library.items.values() if i.type == "movie")
    word = movie.title.split()[-1]
    sample_plex.log.clear()
    result = cli("find", word, "--type", "movie", env={"PLEX_URL": sample_plex.url, "PLEX_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    pasted = yaml.safe_load(result.stdout)  # the comment line and entries parse as a YAML list
    expected = {m.rating_key for m in sample_plex.library.items.values()
                if m.type == "movie" and word.lower() in m.title.lower()}
    assert {int(e["ratingKey"]) for e in pasted} == expected
    assert all(e["type"] == "movie" and e["id"].replace("_", "").isalnum() for e in pasted)
    assert len({e["id"] for e in pasted}) == len(pasted)
    assert {e.method for e in sample_plex.log.snapshot()} == {"GET"} and sample_plex.log.changes() == []


def test_find_children_of_a_show(sample_plex):
    show = next(i for i in sample_plex.library.items.values() if i.type == "show")
    result = cli("find", show.title, "--type", "show", "--children", "--plex-url", sample_plex.url, "--token", TOKEN)
    pasted = yaml.safe_load(result.stdout)
    assert [e["type"] for e in pasted] == ["show", "season", "episode", "episode", "episode",
                                           "season", "episode", "episode", "episode"]
    assert pasted[0]["ratingKey"] == str(show.rating_key)
    assert [int(e["ratingKey"]) for e in pasted if e["type"] == "season"] == show.children


def test_every_title_find_prints_resolves_when_pasted_without_its_ratingkey(sample_plex, tmp_path):
    """find's titles are written the way a target's `title:` is (`Show S01E02`, `Show Season 1`, `Title (Year)`):
    pasted with their ratingKeys removed, `check` resolves every one to the same item."""
    show = next(i for i in sample_plex.library.items.values() if i.type == "show")
    movie = next(i for i in sample_plex.library.items.values() if i.type == "movie")
    found = cli("find", show.title, "--type", "show", "--children", "--plex-url", sample_plex.url, "--token", TOKEN)
    found_movie = cli("find", movie.title, "--type", "movie", "--plex-url", sample_plex.url, "--token", TOKEN)
    pasted = yaml.safe_load(found.stdout) + yaml.safe_load(found_movie.stdout)
    assert {e["type"] for e in pasted} == {"show", "season", "episode", "movie"}
    assert any(" S01E02" in e["title"] for e in pasted) and any(e["title"].endswith(" Season 1") for e in pasted)
    episode_lines = [line for line in found.stdout.splitlines() if "# episode in" in line]
    assert episode_lines and all(": " in line.split("# episode in", 1)[1] for line in episode_lines)  # its name
    targets = [{key: value for key, value in entry.items() if key != "ratingKey"} for entry in pasted]
    config = write_preview_yml(tmp_path, sample_plex.url, targets, libraries=RESOLUTION_OVERLAYS)
    result = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    for entry in pasted:
        assert f"✓ target {entry['id']}: ratingKey {entry['ratingKey']} is the {entry['type']} " in result.stdout, \
            (entry, result.stdout)
    season = next(e for e in pasted if e["type"] == "season")
    assert f"is the season '{show.title} Season 1' in TV Shows" in result.stdout, season  # its show named


@pytest.mark.parametrize("args, env, code, message", [
    (["nothing-like-this"], {}, 1, "No item with 'nothing-like-this' in its title."),
    (["x"], {"PLEX_TOKEN": "wrong"}, 2, "Error: find: Plex at {url} refused the token (401)"),
    (["x", "--library", "Music"], {}, 2, "Error: find: no library named 'Music' (libraries: Movies, TV Shows)"),
    (["x"], {"PLEX_URL": "http://127.0.0.1:9"}, 2, "Error: find: Plex at http://127.0.0.1:9 is unreachable: connection refused"),
])
def test_find_failures(sample_plex, args, env, code, message):
    result = cli("find", *args, env={"PLEX_URL": sample_plex.url, "PLEX_TOKEN": TOKEN, **env})
    assert result.returncode == code
    assert result.stderr.strip().splitlines() == [message.format(url=sample_plex.url)]


def test_check_passes_on_a_good_setup(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert all(line.startswith("✓") for line in lines[:-1]) and lines[-1] == "all checks passed"
    assert {line.split(":")[0][2:] for line in lines[:-1]} >= {"config", "plex", "target m", "overlays Movies",
                                                              "kometa", "tmdb", "internet", "output", "ports"}
    assert "✓ kometa: " in result.stdout and "2.4.4-standin" in result.stdout


def test_check_names_each_problem_and_its_fix(sample_plex, tmp_path):
    broken_image = tmp_path / "broken.png"
    broken_image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    config = write_preview_yml(tmp_path, sample_plex.url, [
        {"id": "gone", "type": "movie", "ratingKey": "999999"},
        {"id": "wrongtype", "type": "movie", "ratingKey": "500001"},
        {"id": "img", "type": "movie", "ratingKey": "1001", "input": str(broken_image)}],
        kometa={"python": sys.executable})
    result = cli("check", str(config), "--kometa", str(tmp_path / "no-kometa.py"), "--offline")
    assert result.returncode == 1
    out = result.stdout
    assert "✗ target gone: ratingKey 999999 does not exist in Plex — fix preview.targets[0].ratingKey" in out
    assert "✗ target wrongtype: ratingKey 500001 is the show" in out and "set preview.targets[1].type: show" in out
    assert "✗ overlays Movies: no overlay_files for this library — add `libraries:" in out
    assert "✗ kometa: Kometa not found" in out
    assert "✗ input img: " in out and "is not a readable image" in out
    assert out.strip().endswith("5 check(s) failed")


def test_check_refuses_a_bad_token_and_a_bad_config(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}])
    config.write_text(config.read_text().replace(TOKEN, "wrong-token"))
    result = cli("check", str(config), "--kometa", str(STANDIN))
    assert result.returncode == 1 and "✗ plex: Plex at" in result.stdout and "refused the token (401)" in result.stdout
    config.write_text("preview: {targets: []}\n")
    bad = cli("check", str(config))
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == ["Error: preview.yml: plex.url: is required"]


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_report_shows_every_image_and_the_statuses_of_summary_json(sample_plex, tmp_path):
    from playwright.sync_api import sync_playwright
    config = write_preview_yml(tmp_path, sample_plex.url,
                               [{"id": "m1", "type": "movie", "title": "First", "ratingKey": "1001"},
                                {"id": "m2", "type": "movie", "title": "Second", "ratingKey": "1002"},
                                {"id": "m3", "type": "movie", "title": "Skipped", "ratingKey": "1003"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"), env={"STANDIN_SKIP_UPLOAD": "1003"})
    assert result.returncode == 1
    output = tmp_path / "job" / "output"
    summary = json.loads((output / "summary.json").read_text())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page()
        requests_made = []
        page.on("request", lambda request: requests_made.append(request.url))
        page.goto((output / "report.html").as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])")
        statuses = page.eval_on_selector_all("section.target", "els => els.map(e => [e.id, "
                                                               "e.querySelector('.status').textContent])")
        title = page.title()
        texts = page.eval_on_selector_all("section.target", "els => els.map(e => e.innerText)")
        slider = page.locator("section#m1 input[type=range]")
        divider = "e => e.getBoundingClientRect().left - e.parentElement.getBoundingClientRect().left"
        before_width = page.eval_on_selector("section#m1 .divider", divider)
        slider.fill("90")
        after_width = page.eval_on_selector("section#m1 .divider", divider)
        sides = page.eval_on_selector_all("section#m1 .tag", "els => els.map(e => [e.textContent, "
                                                             "e.getBoundingClientRect().left])")
        page.screenshot(path=os.environ.get("REPORT_SCREENSHOT", str(tmp_path / "report.png")), full_page=True)
        browser.close()
    assert len(images) == 5 and all(width > 0 for _, width in images)  # 2 × (before + after) + 1 before
    assert statuses == [[target_id, entry["status"]] for target_id, entry in summary["targets"].items()]
    assert all(url.startswith("file://") for url in requests_made)
    assert title.startswith("kometa-preview · ") and str(config) in title
    first = summary["targets"]["m1"]
    shown = [f"{label['display_name']} {label['file']}" for label in first["overlay_labels"]]
    assert "Overlays applied:" in texts[0] and shown and all(label in texts[0] for label in shown)
    assert "Overlay File (" not in "".join(texts)                             # the overlays' own names
    assert summary["targets"]["m3"]["error"] in texts[2]
    assert after_width > before_width * 1.5  # the divider moves right: more of the before image
    assert [side for side, _ in sorted(sides, key=lambda s: s[1])] == ["before", "after"]  # before left of after


def test_check_runs_kometa_without_the_plex_token_in_its_environment(sample_plex, tmp_path):
    """`check` runs kometa.py --help: Kometa's module code runs, so it runs as a render runs it — in its box (where
    it can leave no file behind), and with a render's environment, no secrets."""
    spy = tmp_path / "kometa.py"
    (tmp_path / "spied").mkdir()
    seen = tmp_path / "spied" / "environment.json"  # a folder beside preview.yml: read-only in the box
    spy.write_text(f"import json, os, sys\njson.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n"
                   "print('usage: kometa.py [--run]')\n", encoding="utf-8")
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    config.write_text(config.read_text(encoding="utf-8").replace(TOKEN, "${PLEX_TOKEN}"), encoding="utf-8")
    env = {"PLEX_TOKEN": TOKEN, "NOTES": f"x{TOKEN}x"}
    boxed = cli("check", str(config), "--kometa", str(spy), env=env)
    assert "✓ plex" in boxed.stdout and "✗ kometa" in boxed.stdout and "Read-only file system" in boxed.stdout
    assert not seen.exists()
    result = cli("check", str(config), "--kometa", str(spy), "--isolation", "none", env=env)
    assert "✓ plex" in result.stdout, result.stdout
    environment = json.loads(seen.read_text(encoding="utf-8"))
    assert "PATH" in environment and not [k for k, v in environment.items() if TOKEN in v]


def test_check_says_where_kometa_s_interpreter_came_from(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    from_env = cli("check", str(config), "--kometa", str(STANDIN), "--offline", env={"KOMETA_PYTHON": sys.executable})
    assert f"runs with {sys.executable} (KOMETA_PYTHON)" in from_env.stdout, from_env.stdout
    from_flag = cli("check", str(config), "--kometa", str(STANDIN), "--offline", "--kometa-python", sys.executable)
    assert f"runs with {sys.executable} (--kometa-python)" in from_flag.stdout, from_flag.stdout


def test_find_takes_the_token_from_a_file_and_warns_about_one_on_the_command_line(sample_plex, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    quiet = cli("find", "a", "--plex-url", sample_plex.url, "--token-file", str(token_file))
    assert quiet.returncode == 0 and "warning" not in quiet.stderr and "ratingKey" in quiet.stdout
    loud = cli("find", "a", "--plex-url", sample_plex.url, "--token", TOKEN)
    assert loud.returncode == 0 and "--token on the command line can be read by other users" in loud.stderr
    from_env = cli("find", "a", "--plex-url", sample_plex.url, env={"PLEX_TOKEN": TOKEN})
    assert from_env.returncode == 0 and "warning" not in from_env.stderr


def test_open_on_a_host_without_a_display_prints_where_the_report_is(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([*CLI, "render", str(config), "--kometa", str(STANDIN), "--offline", "--open", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    report = tmp_path / "job" / "output" / "report.html"
    assert [line for line in result.stdout.splitlines() if line.startswith("open:")] == \
        [f"open: no display here; the report is {report}"]
