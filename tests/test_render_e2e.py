"""`kometa-preview render` end to end: the sample Plex server, the real proxy, the Kometa stand-in.

The badge each poster must carry is computed here from the generated library, the way Kometa's
resolution overlay weighs it; the stand-in only learns it through Plex searches answered by the proxy.
"""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import requests
from conftest import RESOLUTION_OVERLAYS, TOKEN, render_cli, write_preview_yml
from PIL import Image

pytestmark = pytest.mark.e2e

BADGES = {"4k": ("4K", 130), "1080": ("1080P", 100), "720": ("720P", 70), "576": ("576P", 40),
          "480": ("480P", 10), "sd": ("480P", 10)}
COLOURS = {"4K": (220, 20, 60), "1080P": (30, 144, 255), "720P": (50, 205, 50), "576P": (255, 165, 0),
           "480P": (148, 0, 211), "HDR": (255, 215, 0), "DV": (0, 206, 209)}
SEED_FIELDS = {"timestamp", "success", "kometa_exit_code", "blocked_write_attempts", "captured_uploads",
               "captured_uploads_count", "successful_captures_count", "exported_files", "missing_targets",
               "output_files", "mock_mode", "filtering"}


def expected_badge(item) -> str:
    hdr, dovi = any(m.hdr for m in item.media), any(m.dovi for m in item.media)
    options = []
    for media in item.media:
        name, weight = BADGES[media.resolution]
        options.append((weight, name))
        if hdr:
            options.append((weight + 10, f"{name}-HDR"))
        if dovi:
            options.append((weight + 20, f"{name}-DV"))
    return max(options)[1]


def close(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def badge_of(path: Path) -> str:
    image = Image.open(path).convert("RGB")
    main = next(name for name in ("4K", "1080P", "720P", "576P", "480P") if close(image.getpixel((180, 82)), COLOURS[name]))
    alt = next((name for name in ("HDR", "DV") if close(image.getpixel((390, 82)), COLOURS[name])), None)
    return f"{main}-{alt}" if alt else main


def varied_targets(server) -> list[dict]:
    """One movie per badge the library offers, and two episodes."""
    chosen: dict[str, int] = {}
    for key in sorted(server.library.items):
        item = server.library.items[key]
        if item.type == "movie":
            chosen.setdefault(expected_badge(item), key)
    episodes = [k for k in sorted(server.library.items) if server.library.items[k].type == "episode"][:2]
    targets = [{"id": f"movie_{badge.replace('-', '_').lower()}", "type": "movie", "ratingKey": str(key)}
               for badge, key in sorted(chosen.items())]
    return targets + [{"id": f"episode{n}", "type": "episode", "ratingKey": str(key)} for n, key in enumerate(episodes)]


@pytest.mark.parametrize("mode", ["mock", "filter"])
def test_render_puts_the_right_badge_on_each_target_and_never_writes(sample_plex_factory, tmp_path, mode):
    server = sample_plex_factory(movies=150, shows=2)
    targets = varied_targets(server)
    assert len(targets) >= 8
    config = write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS)
    server.log.clear()
    result = render_cli(config, "--job", str(tmp_path / "job"), *(["--filter-mode"] if mode == "filter" else []))
    assert result.returncode == 0, result.stderr
    output = tmp_path / "job" / "output"
    summary = json.loads((output / "summary.json").read_text())
    jsonschema.validate(summary, json.loads((Path(__file__).parents[1] / "docs" / "summary.schema.json").read_text()))
    assert SEED_FIELDS <= set(summary) and summary["success"] and summary["missing_targets"] == []
    for target in targets:
        item = server.library.items[int(target["ratingKey"])]
        after = output / summary["targets"][target["id"]]["after"]
        assert badge_of(after) == expected_badge(item), target["id"]
        real_poster = requests.get(f"{server.url}{item.thumb_path}", headers={"X-Plex-Token": TOKEN}).content
        assert (output / summary["targets"][target["id"]]["before"]).read_bytes() == real_poster
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
    assert "✓ movie_" in result.stdout and "summary:" in result.stdout
    html = (output / "report.html").read_text()
    for target in targets:
        entry = summary["targets"][target["id"]]
        assert f'src="{entry["before"]}"' in html and f'src="{entry["after"]}"' in html
    assert "http://" not in html and "https://" not in html and html.count('class="status exported"') == len(targets)


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
