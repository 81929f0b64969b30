"""A sample that shows every badge: `find --sample N --library NAME` picks at most N items that together cover the
distinct values of the fields overlays decide on, read-only, and `render --sample` previews them directly."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import RESOLUTION_OVERLAYS, STANDIN, TOKEN, write_preview_yml

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "kometa_preview"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PLEX_TOKEN": TOKEN})


def test_a_movie_sample_covers_every_value_overlays_decide_on(sample_plex_factory):
    server = sample_plex_factory(movies=120, shows=0, seed=5)
    movies = [item for item in server.library.items.values() if item.type == "movie"]
    server.log.clear()
    result = cli("find", "--sample", "12", "--library", "Movies", "--plex-url", server.url)
    assert result.returncode == 0, result.stderr
    picked = [server.library.items[int(e["ratingKey"])] for e in yaml.safe_load(result.stdout)]
    assert 0 < len(picked) <= 12 and len({p.rating_key for p in picked}) == len(picked)
    assert "not covered" not in result.stdout.splitlines()[0]
    for values in (lambda i: {m.resolution for m in i.media}, lambda i: {m.audio_codec for m in i.media},
                   lambda i: {i.content_rating}):
        assert set().union(*map(values, picked)) == set().union(*map(values, movies))
    assert any(m.hdr for p in picked for m in p.media) and any(m.dovi for p in picked for m in p.media)
    # each sampled item says which badges it is there for, and they are its own
    notes = [line.split("# movie in Movies: ", 1)[1] for line in result.stdout.splitlines() if "# movie in Movies" in line]
    assert len(notes) == len(picked)
    for item, note in zip(picked, notes):
        assert note.startswith("for ") and len(note) > len("for "), note
        assert ("Dolby Vision" in note) <= any(m.dovi for m in item.media), (item.title, note)
        for said in re.findall(r"resolution (\w+)", note):
            assert said.lower() in {m.resolution.lower() for m in item.media}, (item.title, note)
    assert {e.method for e in server.log.snapshot()} == {"GET"} and server.log.changes() == []


def test_a_show_sample_covers_its_episodes_resolutions(sample_plex_factory):
    server = sample_plex_factory(movies=0, shows=6, seed=5)
    result = cli("find", "--sample", "6", "--library", "TV Shows", "--plex-url", server.url)
    assert result.returncode == 0, result.stderr
    picked = {int(e["ratingKey"]) for e in yaml.safe_load(result.stdout)}
    lib = server.library

    def resolutions(show) -> set[str]:
        return {m.resolution for s in show.children for e in lib.items[s].children for m in lib.items[e].media}
    shows = [i for i in lib.items.values() if i.type == "show"]
    assert set().union(*(resolutions(lib.items[k]) for k in picked)) == set().union(*map(resolutions, shows))


def test_render_sample_previews_the_sample_directly(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "mine", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    found = cli("find", "--sample", "4", "--library", "Movies", "--plex-url", sample_plex.url)
    wanted = {e["id"] for e in yaml.safe_load(found.stdout)} | {"mine"}
    result = subprocess.run([*CLI, "render", str(config), "--kometa", str(STANDIN), "--offline", "--sample", "4",
                             "--library", "Movies", "--job", str(tmp_path / "job")], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    assert set(summary["targets"]) == wanted and sample_plex.log.changes() == []


def test_find_sample_needs_a_library(sample_plex):
    assert cli("find", "--sample", "3", "--plex-url", sample_plex.url).returncode == 2
    wrong = cli("find", "--sample", "3", "--library", "Music", "--plex-url", sample_plex.url)
    assert wrong.returncode == 2 and "no movie or TV library named 'Music'" in wrong.stderr
