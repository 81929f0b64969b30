"""TV shows previewed right: a show's overlays are decided from its episodes (`episode.resolution` listings, and
Kometa's `episodes` filters read through `show.episodes()`), so the preview must let a target show's episodes be
read — never listed as targets, never uploaded. The test computes both sides: the Kometa stand-in run straight on
a copy of the library that applies writes, and the preview, in both modes; the badges and the uploaded bytes must
be the same."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import tv_levels
import yaml
from conftest import STANDIN, TOKEN, render_cli, write_preview_yml
from PIL import Image

from kometa_preview.kometa import log as kometa_log
from kometa_preview.sandbox import SampleServer, generate

pytestmark = pytest.mark.e2e
SIZE = {"movies": 12, "shows": 5, "seasons": 2, "episodes": 4, "seed": 7}
#: At show level, Kometa's file and track filters ask the episodes (at least half of them must match).
TV_DEFAULT = {"TV Shows": {"overlay_files": [{"default": "resolution"}, {"default": "audio_codec"},
                                             {"default": "video_format"}]}}


def direct_run(tmp_path, libraries: dict, size: dict) -> tuple[dict[str, list[str]], dict[int, bytes]]:
    """The stand-in on a fresh copy of the library, no proxy, writes applied: what it applied, what it uploaded."""
    server = SampleServer(generate(**size), TOKEN).start()
    try:
        folder = tmp_path / "direct"
        folder.mkdir()
        (folder / "config.yml").write_text(yaml.safe_dump({
            "libraries": libraries, "settings": {"overlay_artwork_filetype": "jpg"},
            "plex": {"url": server.url, "token": TOKEN, "timeout": 60}, "tmdb": {"apikey": "unused"}}))
        subprocess.run([sys.executable, str(STANDIN), "--config", str(folder / "config.yml"), "--run",
                        "--overlays-only", "--run-libraries", "|".join(libraries)], check=True, capture_output=True,
                       timeout=300, env={**os.environ, "STANDIN_NO_OUTSIDE": "1"})
        run = kometa_log.read(folder / "logs" / "meta.log")
        return ({title: item.applied for title, item in run.items.items()},
                {key: upload.body for key, upload in server.library.uploads.items()})
    finally:
        server.stop()


@pytest.fixture
def tv_library(sample_plex_factory):
    return sample_plex_factory(**SIZE)


@pytest.fixture(scope="module")
def whole_library_run(tmp_path_factory):
    """The stand-in's own run on the whole TV library at show level, once for both modes."""
    return direct_run(tmp_path_factory.mktemp("tv"), TV_DEFAULT, SIZE)


@pytest.mark.parametrize("mode", ["mock", "filter"])
def test_show_targets_get_the_badges_kometa_draws_on_the_whole_library(tv_library, whole_library_run, tmp_path, mode):
    shows = sorted(k for k, item in tv_library.library.items.items() if item.type == "show")
    applied, uploads = whole_library_run
    titles = {key: tv_library.library.items[key].title for key in shows}
    assert len({applied[title][0] for title in titles.values()}) > 1  # the library offers different answers
    assert any(name.startswith("Overlay File (1) ") for title in titles.values() for name in applied[title])
    config = write_preview_yml(tmp_path, tv_library.url, [{"id": f"s{key}", "type": "show", "ratingKey": str(key)}
                                                          for key in shows], libraries=TV_DEFAULT)
    tv_library.log.clear()
    result = render_cli(config, "--job", str(tmp_path / "job"), *(["--filter-mode"] if mode == "filter" else []))
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    for key in shows:
        entry = summary["targets"][f"s{key}"]
        assert entry["kometa_title"] == titles[key] and entry["overlays"] == applied[titles[key]], titles[key]
        after = tmp_path / "job" / "output" / entry["after"]
        assert after.read_bytes() == uploads[key], titles[key]
    assert tv_library.log.changes() == [] and summary["proxy_errors"] == 0
    # the episodes were read, never listed as targets, never uploaded
    assert {int(c["rating_key"]) for c in summary["captured_uploads"]} == set(shows)
    if mode == "mock":
        assert summary["mock_mode"]["filter_fallbacks"]  # episode.hdr needs streams: Plex is asked, not guessed


def test_episode_targets_match_the_whole_library_run_too(sample_plex_factory, tmp_path):
    size = {**SIZE, "shows": 2, "episodes": 3}
    tv_library = sample_plex_factory(**size)
    libraries = {"TV Shows": {"overlay_files": [{"default": "resolution"}],
                              "template_variables": {"builder_level": "episode"}}}
    episodes = sorted(k for k, item in tv_library.library.items.items() if item.type == "episode")[::2]
    applied, uploads = direct_run(tmp_path, libraries, size)
    config = write_preview_yml(tmp_path, tv_library.url, [{"id": f"e{key}", "type": "episode", "ratingKey": str(key)}
                                                          for key in episodes], libraries=libraries)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    for key in episodes:
        entry = summary["targets"][f"e{key}"]
        assert entry["overlays"] == applied[entry["kometa_title"]]
        assert (tmp_path / "job" / "output" / entry["after"]).read_bytes() == uploads[key]
        assert Image.open(tmp_path / "job" / "output" / entry["after"]).size == (1920, 1080)  # 16:9, as Kometa


def test_each_overlay_file_works_at_its_own_level(sample_plex_factory, tmp_path):
    """Kometa's builder_level: a default file's template variable (or the library's), a definition's own attribute;
    a show, a season and episodes each get the overlays of their level, as real Kometa gives them
    (test_real_kometa has the same test)."""
    server = sample_plex_factory(movies=5, shows=3)
    tv_levels.write_overlay_files(tmp_path)  # beside preview.yml, which names them relatively
    config = write_preview_yml(tmp_path, server.url, tv_levels.targets(server.library), libraries=tv_levels.LIBRARIES)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr + result.stdout
    tv_levels.check(json.loads((tmp_path / "job" / "output" / "summary.json").read_text()), server.library)
    assert server.log.changes() == []
