"""`kometa-preview render` end to end: the sample Plex server, the real proxy, the Kometa stand-in.

The overlays each poster must carry are computed from the generated library, the way Kometa's resolution overlay
weighs them (sample_badges.py: resolution, HDR, Dolby Vision, the HDR10+/HLG/DV HDR10 its file names say, the
edition dovetailed beside it); the stand-in only learns them through Plex searches and reads answered by the
proxy. The exported poster must be the stand-in's drawing of exactly those badges on the item's own poster.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest
import requests
import sample_badges
from conftest import RESOLUTION_OVERLAYS, TOKEN, render_cli, write_preview_yml
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "kometa_standin"))
import standin_draw  # noqa: E402 - the stand-in's own drawing, beside its kometa.py

pytestmark = pytest.mark.e2e

SEED_FIELDS = {"timestamp", "success", "kometa_exit_code", "blocked_write_attempts", "captured_uploads",
               "captured_uploads_count", "successful_captures_count", "exported_files", "missing_targets",
               "output_files", "mock_mode", "filtering"}


def varied_targets(server) -> list[dict]:
    """One movie per resolution badge the library offers (with or without an edition dovetailed), two episodes."""
    chosen: dict[str, int] = {}
    for key in sorted(server.library.items):
        item = server.library.items[key]
        if item.type == "movie":
            chosen.setdefault(sample_badges.resolution(item)[0].removesuffix("-Dovetail"), key)
    episodes = [k for k in sorted(server.library.items) if server.library.items[k].type == "episode"][:2]
    targets = [{"id": f"movie{n}", "type": "movie", "ratingKey": str(key)} for n, key in enumerate(chosen.values())]
    return targets + [{"id": f"episode{n}", "type": "episode", "ratingKey": str(key)} for n, key in enumerate(episodes)]


@pytest.mark.parametrize("mode", ["mock", "filter"])
def test_render_puts_the_right_badge_on_each_target_and_never_writes(sample_plex_factory, tmp_path, mode):
    server = sample_plex_factory(movies=150, shows=2)
    targets = varied_targets(server)
    editions = {bool(server.library.items[int(t["ratingKey"])].edition) for t in targets if t["type"] == "movie"}
    assert 12 <= len(targets) <= 20 and editions == {True, False}  # file-named alternatives, dovetails and not
    config = write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS)
    server.log.clear()
    result = render_cli(config, "--job", str(tmp_path / "job"), *(["--filter-mode"] if mode == "filter" else []))
    assert result.returncode == 0, result.stderr
    output = tmp_path / "job" / "output"
    summary = json.loads((output / "summary.json").read_text())
    jsonschema.validate(summary, json.loads((Path(__file__).parents[1] / "docs" / "summary.schema.json").read_text()))
    assert SEED_FIELDS <= set(summary) and summary["success"] and summary["missing_targets"] == []
    for target in targets:
        item, entry = server.library.items[int(target["ratingKey"])], summary["targets"][target["id"]]
        wanted = sample_badges.resolution(item)
        assert entry["overlays"] == [f"Overlay File (0) {name}" for name in wanted], target["id"]
        real_poster = requests.get(f"{server.url}{item.thumb_path}", headers={"X-Plex-Token": TOKEN}).content
        assert (output / entry["before"]).read_bytes() == real_poster
        drawn = standin_draw.encode(standin_draw.compose(real_poster, item.type, wanted), "jpg")
        assert (output / entry["after"]).read_bytes() == drawn, target["id"]  # those badges, on its own poster
    assert server.log.changes() == []
    assert summary["captured_uploads_count"] == len(targets)
    writes = summary["blocked_write_attempts"]
    assert {w["method"] for w in writes} == {"POST", "PUT"} and len(writes) == 2 * len(targets)
    assert summary["mock_mode"]["enabled"] is (mode == "mock") and summary["filtering"]["enabled"] is (mode == "filter")
    if mode == "mock":
        assert summary["mock_mode"]["mock_list_requests_count"] > 10
        assert summary["mock_mode"]["learned_parent_keys"]  # the episodes' seasons and shows
    else:
        assert summary["filtering"]["filtered_requests_count"] > 10
    for path in (tmp_path / "job").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert "✓ movie0 exported" in result.stdout and "summary:" in result.stdout
    html = (output / "report.html").read_text()
    for target in targets:
        entry = summary["targets"][target["id"]]
        assert f'src="{entry["before"]}"' in html and f'src="{entry["after"]}"' in html
    assert "http://" not in html and "https://" not in html and html.count('class="status exported"') == len(targets)


def test_render_badges_audio_codec_and_video_format_by_the_items_media(sample_plex_factory, tmp_path):
    """Kometa's audio_codec and video_format defaults read the audio tracks' titles and the files' names: through
    the proxy, the stand-in finds each target's, and draws what Kometa's weights choose."""
    server = sample_plex_factory(movies=60, shows=2, seed=7)
    targets = sample_badges.media_targets(server.library)
    items = {t["id"]: server.library.items[int(t["ratingKey"])] for t in targets}
    assert len({sample_badges.audio_codec(item) for item in items.values()}) >= 10
    assert {sample_badges.video_format(item) for item in items.values()} >= {"REMUX", "BLU-RAY", "WEB", "DVD", None}
    config = write_preview_yml(tmp_path, server.url, targets, libraries=sample_badges.MEDIA_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr + result.stdout
    output = tmp_path / "job" / "output"
    summary = json.loads((output / "summary.json").read_text())
    for target_id, item in items.items():
        entry = summary["targets"][target_id]
        assert entry["overlays"] == sample_badges.overlays(item), target_id
        names = [name.split(") ", 1)[1] for name in entry["overlays"]]
        drawn = standin_draw.encode(standin_draw.compose((output / entry["before"]).read_bytes(), item.type, names),
                                    "jpg")
        assert (output / entry["after"]).read_bytes() == drawn, target_id
    assert server.log.changes() == []


def test_input_image_and_output_copy(sample_plex, tmp_path):
    source = tmp_path / "original.png"
    Image.new("RGB", (500, 750), (12, 34, 56)).save(source)
    copy = tmp_path / "copies" / "mine.png"
    config = write_preview_yml(tmp_path, sample_plex.url,
                               [{"id": "mine", "type": "movie", "ratingKey": "1001", "input": str(source),
                                 "output": str(copy)}], libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr
    output = tmp_path / "job" / "output"
    summary = json.loads((output / "summary.json").read_text())
    assert (output / "mine_before.png").read_bytes() == source.read_bytes()
    assert summary["targets"]["mine"]["poster_source"] == "input"
    after = output / "mine_after.jpg"
    assert Image.open(after).convert("RGB").getpixel((600, 900)) == pytest.approx((12, 34, 56), abs=6)
    assert copy.with_suffix(".jpg").read_bytes() == after.read_bytes()


def test_kometas_stored_original_is_preferred_over_plex(sample_plex, tmp_path):
    kometa_dir = tmp_path / "kometa-config"
    originals = kometa_dir / "overlays" / "Movies Original Posters"
    originals.mkdir(parents=True)
    Image.new("RGB", (400, 600), (200, 100, 50)).save(originals / "1002.png")
    (kometa_dir / "config.yml").write_text(
        "libraries:\n  Movies:\n    overlay_files:\n      - default: resolution\n    collection_files:\n"
        "      - default: basic\n    operations:\n      delete_collections: {managed: true}\n"
        "webhooks:\n  error: https://example.invalid/hook\ntmdb:\n  apikey: from-user-config\n"
        "settings:\n  overlay_artwork_filetype: png\n  run_again_delay: 2\n")
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1002"}],
                               kometa={"config": str(kometa_dir / "config.yml")})
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr
    output = tmp_path / "job" / "output"
    assert (output / "m_before.png").read_bytes() == (originals / "1002.png").read_bytes()
    assert (output / "m_after.png").exists()  # overlay_artwork_filetype borrowed from the user's config
    redacted = (tmp_path / "job" / "kometa" / "kometa_run.redacted.yml").read_text()
    assert "collection_files" not in redacted and "operations" not in redacted and "webhooks" not in redacted
    assert "from-user-config" not in redacted and not (tmp_path / "job" / "kometa" / "kometa_run.yml").exists()
