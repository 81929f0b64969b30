"""The dry run Kometa never had: every item of a library previewed, safely. The test computes both sides: the
Kometa stand-in run straight on a copy of the library that applies writes, and the dry run through the preview
(one job, then two shards); the images must be the same, items no overlay applies to have no after-image in
either, and the sample Plex server receives no write."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import STANDIN, TOKEN, standin_for, write_preview_yml

from kometa_preview.results.summary import load, merge
from kometa_preview.sandbox import SampleServer, generate

pytestmark = pytest.mark.e2e
SIZE = {"movies": 40, "shows": 2, "seasons": 2, "episodes": 2, "seed": 11}
OVERLAYS = {"Movies": {"overlay_files": [{"default": "resolution"}]},
            "TV Shows": {"overlay_files": [{"default": "resolution"}]}}
CLI = [sys.executable, "-m", "kometa_preview"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def dry_run(config, job, *args, env=None, kometa=STANDIN):
    return subprocess.run([*CLI, "render", str(config), "--kometa", str(kometa), "--offline", "--job", str(job),
                           *args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


def summary_of(job: Path) -> dict:
    return json.loads((job / "output" / "summary.json").read_text())


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """The stand-in straight on a fresh copy of the library, writes applied: what it uploaded, by ratingKey."""
    server = SampleServer(generate(**SIZE), TOKEN).start()
    folder = tmp_path_factory.mktemp("straight")
    try:
        (folder / "config.yml").write_text(yaml.safe_dump({
            "libraries": OVERLAYS, "plex": {"url": server.url, "token": TOKEN, "timeout": 60},
            "tmdb": {"apikey": "unused"}}))
        subprocess.run([sys.executable, str(STANDIN), "--config", str(folder / "config.yml"), "--run",
                        "--overlays-only", "--run-libraries", "Movies|TV Shows"], check=True, capture_output=True,
                       timeout=600, env={**os.environ, "STANDIN_NO_OUTSIDE": "1"})
        return {str(key): upload.body for key, upload in server.library.uploads.items()}
    finally:
        server.stop()


@pytest.fixture
def library(sample_plex_factory):
    return sample_plex_factory(**SIZE)


def _config(tmp_path, server) -> Path:
    document = {"plex": {"url": server.url, "token": TOKEN}, "libraries": OVERLAYS,
                "preview": {"output": str(tmp_path / "out"), "libraries": ["Movies", "TV Shows"]}}
    path = tmp_path / "preview.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def assert_same_as_the_straight_run(job: Path, server: SampleServer, uploads: dict[str, bytes]) -> dict:
    summary = summary_of(job)
    every_item = {str(key) for key in server.library.items}
    assert set(summary["targets"]) == every_item  # each item is a target, its id its ratingKey
    for key, entry in summary["targets"].items():
        assert entry["rating_key"] == key
        if key in uploads:
            assert entry["status"] == "exported", (key, entry)
            assert (job / "output" / entry["after"]).read_bytes() == uploads[key], key
        else:  # no overlay applies: no after-image in either
            assert (entry["status"], entry["after"]) == ("unchanged", None), (key, entry)
            assert not list((job / "output").glob(f"{key}_after.*"))
        assert entry["before"] and (job / "output" / entry["before"]).is_file()
    assert server.log.changes() == []
    return summary


def test_a_whole_library_dry_run_equals_kometa_run_straight_on_it(library, straight_run, tmp_path):
    config = _config(tmp_path, library)
    library.log.clear()
    one = dry_run(config, tmp_path / "one")
    assert one.returncode == 0, one.stderr + one.stdout
    summary = assert_same_as_the_straight_run(tmp_path / "one", library, straight_run)
    assert summary["mock_mode"]["enabled"] and summary["success"]
    assert "exported ·" in one.stdout and "unchanged (of " in one.stdout and "overlays: " in one.stdout
    two = dry_run(config, tmp_path / "two", "--shards", "2")
    assert two.returncode == 0, two.stderr + two.stdout
    assert_same_as_the_straight_run(tmp_path / "two", library, straight_run)
    assert sorted(p.name for p in (tmp_path / "two" / "shards").iterdir()) == ["1-1", "1-2"]
    shard_targets = [set(summary_of(tmp_path / "two" / "shards" / name)["targets"]) for name in ("1-1", "1-2")]
    assert not shard_targets[0] & shard_targets[1] and shard_targets[0] and shard_targets[1]
    # a show and its seasons and episodes stay in one shard
    for show in (k for k, item in library.library.items.items() if item.type == "show"):
        family = {str(k) for k, item in library.library.items.items() if show in (k, item.parent_key,
                                                                                     item.grandparent_key)}
        assert any(family <= targets for targets in shard_targets)


def test_the_library_flag_dry_runs_that_library_s_items_each_once(library, tmp_path):
    """A library dry run previews that library's items, each exactly once (id = ratingKey), in shards too: targets
    preview.yml also lists — by ratingKey, by title, in another library — are left out, said in one line."""
    movie = library.library.items[1003]
    episode = next(k for k, item in library.library.items.items() if item.type == "episode")
    listed = [{"id": "m", "type": "movie", "ratingKey": "1001"}, {"id": "titled", "type": "movie", "title": movie.title},
              {"id": "ep", "type": "episode", "ratingKey": str(episode)}]
    config = write_preview_yml(tmp_path, library.url, listed, libraries=OVERLAYS)
    result = dry_run(config, tmp_path / "job", "--library", "TV Shows")
    assert result.returncode == 0, result.stderr
    targets = summary_of(tmp_path / "job")["targets"]
    tv = {str(k) for k, item in library.library.items.items() if item.section_id == 2}
    assert set(targets) == tv
    assert result.stderr.count("preview.targets are left out") == 1
    sharded = dry_run(config, tmp_path / "sharded", "--library", "Movies", "--shards", "2")
    assert sharded.returncode == 0, sharded.stderr
    movies = {str(k) for k, item in library.library.items.items() if item.section_id == 1}
    summary = summary_of(tmp_path / "sharded")
    assert set(summary["targets"]) == movies and len(summary["targets"]) == SIZE["movies"]
    assert "TV Shows" not in sharded.stderr  # Kometa ran on Movies only
    progress = [line for line in sharded.stderr.splitlines() if "captured" in line and " of " in line]
    assert all(int(line.split(" of ")[1].split()[0]) <= SIZE["movies"] for line in progress), progress
    unknown = dry_run(config, tmp_path / "bad", "--library", "Music")
    assert unknown.returncode == 2 and "no movie or TV library named 'Music'" in unknown.stderr
    no_library = dry_run(config, tmp_path / "none", "--shards", "2")
    assert no_library.returncode == 2 and "--shards and --resume split a dry run" in no_library.stderr


def test_ctrl_c_keeps_every_capture_and_resume_finishes_the_job(library, straight_run, tmp_path):
    config = _config(tmp_path, library)
    job = tmp_path / "job"
    slow = standin_for(tmp_path, {"STANDIN_ITEM_DELAY": "0.4"})
    process = subprocess.Popen([*CLI, "render", str(config), "--kometa", str(slow), "--offline", "--job", str(job),
                                "--shards", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(job.glob("shards/*/output/by_ratingkey/*"))) < 6:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    interrupted = summary_of(job)
    exported = {k for k, e in interrupted["targets"].items() if e["status"] == "exported"}
    assert interrupted["interrupted"] and len(exported) >= 6 and len(exported) < len(straight_run)
    resumed = dry_run(config, job, "--resume", str(job))
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert f"{len(exported)} items already captured are skipped" in resumed.stderr
    second_round = [set(summary_of(folder)["targets"]) for folder in sorted(job.glob("shards/2-*"))]
    assert second_round and not set().union(*second_round) & exported
    assert_same_as_the_straight_run(job, library, straight_run)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed")
def test_the_contact_sheet_shows_every_item_and_the_counts_of_summary_json(library, tmp_path):
    from playwright.sync_api import sync_playwright
    config = _config(tmp_path, library)
    assert dry_run(config, tmp_path / "job").returncode == 0
    summary = summary_of(tmp_path / "job")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto((tmp_path / "job" / "output" / "contact.html").as_uri())
        cards = page.locator(".card")
        shown = cards.count()
        for n in range(shown):  # lazily loaded: bring each into view, then it must load
            cards.nth(n).scroll_into_view_if_needed()
        page.wait_for_function("[...document.images].every(i => i.complete)")
        widths = page.eval_on_selector_all(".card img", "els => els.map(e => e.naturalWidth)")
        counts = page.eval_on_selector_all(".counts span", "els => els.map(e => e.textContent)")
        page.select_option("#status", "unchanged")
        unchanged_cards = page.locator(".card").count()
        page.select_option("#status", "")
        page.locator(".card").first.click()
        full = page.eval_on_selector_all("#full img", "els => els.map(e => e.getAttribute('src'))")
        browser.close()
    targets = summary["targets"]
    assert shown == len(targets) and len(widths) == len(targets) and all(0 < w <= 300 for w in widths)
    statuses = [e["status"] for e in targets.values()]
    assert unchanged_cards == statuses.count("unchanged")
    expected = {}
    for entry in targets.values():
        labels = [f"{label['display_name']} {label['file']}" for label in entry["overlay_labels"]]
        for name in labels if entry["status"] == "exported" else ["no overlay"]:
            expected[name] = expected.get(name, 0) + 1
    # one row per overlay, by its own name and its file (never "Overlay File (n) …"), and "1 item"
    assert sorted(counts) == sorted(f"{name} · {count:,} item{'' if count == 1 else 's'}"
                                    for name, count in expected.items())
    assert not any("Overlay File (" in row for row in counts)
    assert full and all((tmp_path / "job" / "output" / src).is_file() for src in full)


def test_merged_summaries_prefer_an_exported_result_and_add_up():
    base = {"timestamp": "t", "preview_yml": "p", "success": True, "interrupted": False, "error": None,
            "kometa_exit_code": 0, "kometa_version": "2.4.4", "kometa_errors": [], "outside_data": [],
            "outside_unreachable": {}, "blocked_write_attempts": [], "blocked_side_effects_count": 0,
            "blocked_unknown_count": 0, "captured_uploads": [], "captured_uploads_count": 1,
            "successful_captures_count": 0, "unparsed_uploads_count": 0, "exported_files": {}, "missing_targets": [],
            "mock_mode": {"enabled": True, "mock_list_requests": [], "mock_list_requests_count": 2,
                          "forward_requests_count": 0, "blocked_metadata_count": 0, "learned_parent_keys": [],
                          "filter_fallbacks": []},
            "filtering": {"enabled": False, "allowed_rating_keys": [], "allowed_count": 0, "filtered_requests": [],
                          "filtered_requests_count": 0},
            "outside_calls": {"outside_pass": 1}, "side_doors": {"total": 0, "by_kind": {}, "hosts": {}},
            "unauthorized_client_requests": 0, "timings_seconds": {"kometa": 3.0},
            "proxy": {"cpu_seconds": 1.0, "peak_rss_mib": 90.0, "upstream_requests": 3, "upstream_bytes": 10,
                      "requests": 5, "answered_with_plex": 3, "answered_locally": 2},
            "proxy_errors": 0, "unknown_events": [], "output_files": []}

    def target(status, after=None):
        return {"rating_key": "1", "type": "movie", "title": "x", "status": status, "overlays": [],
                "kometa_title": "x", "candidates": [], "before": "1_before.jpg", "after": after, "error": None,
                "poster_source": "plex", "kind": None, "bytes": None, "output": None}
    first = load({**base, "targets": {"1": target("exported", "1_after.jpg"), "2": target("failed")}})
    second = load({**base, "interrupted": True, "targets": {"2": target("unchanged"), "1": target("failed")},
                   "timings_seconds": {"kometa": 5.0}})
    merged = merge([first, second])
    assert merged.targets["1"].status == "exported" and merged.targets["2"].status == "unchanged"
    assert merged.interrupted and not merged.success and merged.mock_mode.mock_list_requests_count == 4
    assert merged.timings_seconds == {"kometa": 5.0} and merged.proxy.cpu_seconds == 2.0
    assert merged.outside_calls == {"outside_pass": 2} and merged.missing_targets == []


def test_shards_rendered_apart_and_merged_equal_the_straight_run(library, straight_run, tmp_path):
    """The pattern of docs/SHARDS.md (one shard per machine, e.g. a Kubernetes Indexed Job, then one merge)."""
    config = _config(tmp_path, library)
    job = tmp_path / "job"
    for index in ("1", "2"):
        result = dry_run(config, job, "--shards", "2", "--shard", index)
        assert result.returncode == 0, result.stderr + result.stdout
    assert not (job / "output" / "summary.json").exists()
    merged = subprocess.run([*CLI, "merge", str(job)], capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr + merged.stdout
    assert_same_as_the_straight_run(job, library, straight_run)
    assert (job / "output" / "contact.html").is_file()
    bad = dry_run(config, tmp_path / "other", "--shards", "2", "--shard", "3")
    assert bad.returncode == 2 and "--shard K needs --shards N with 1 ≤ K ≤ N" in bad.stderr


def test_a_dry_run_keeps_an_item_s_matched_definitions_only(library, tmp_path):
    """`considered` costs about 25 KB an item for `default: resolution`: in a dry run an item keeps the definitions
    that matched it (applied or not); one no overlay applies to keeps them all, to say why none matched."""
    config = write_preview_yml(tmp_path, library.url, [], libraries=OVERLAYS)
    result = dry_run(config, tmp_path / "job", "--library", "Movies")
    assert result.returncode == 0, result.stderr
    targets = summary_of(tmp_path / "job")["targets"]
    exported = [entry for entry in targets.values() if entry["status"] == "exported"]
    assert exported and all(entry["considered"] and all(c["matched"] for c in entry["considered"])
                            for entry in exported)
    assert all(any(c["applied"] for c in entry["considered"]) for entry in exported)
    unchanged = [entry for entry in targets.values() if entry["status"] == "unchanged"]
    assert all(entry["considered"] and not any(c["matched"] for c in entry["considered"]) for entry in unchanged)
    size = (tmp_path / "job" / "output" / "summary.json").stat().st_size
    assert size < 4_000 * len(targets), size  # was about 36 KB an item as summary.json indents it
