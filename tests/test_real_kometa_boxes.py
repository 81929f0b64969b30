"""Where each overlay is and why (not), with real, unmodified Kometa — runs only when KOMETA_PATH points at a Kometa
checkout (KOMETA_PYTHON: its interpreter), like tests/test_real_kometa.py. Offline.

The boxes are checked against Kometa's own pixels: with lossless PNG output, every pixel that differs between the
poster Kometa started from (resized to its canvas, as Kometa resizes it) and the one it uploaded lies inside a box,
and every box holds changed pixels."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_preview_yml
from PIL import Image, ImageChops
from real_kometa import CHECKOUT, MARKS, PYTHON

from kometa_preview.kometa.overlay_boxes import CANVAS

pytestmark = MARKS
#: Text, image, addon and backdrop overlays in every alignment, one of them over the resolution badge.
MOVIE_OVERLAYS = """overlays:
  Centre:
    overlay: {name: text(Centre), font: fonts/Inter-Medium.ttf, font_size: 80, font_color: '#FFFFFF',
              stroke_width: 4, stroke_color: '#000000', horizontal_offset: 0, horizontal_align: center,
              vertical_offset: 10%, vertical_align: center}
    plex_all: true
  Badge:
    overlay: {name: Badge, file: BADGE, scale_width: 50%, back_color: '#00FF0080', back_width: 200,
              back_height: 100, back_align: left, back_padding: 5, back_radius: 10, horizontal_offset: 0,
              horizontal_align: center, vertical_offset: 300, vertical_align: top}
    plex_all: true
  Addon:
    overlay: {name: text(Addon), file: BADGE, addon_position: right, addon_offset: 10, font_size: 50,
              font_color: '#FFFF00', back_color: '#000000AA', back_padding: 8, horizontal_offset: 40,
              horizontal_align: left, vertical_offset: 30%, vertical_align: top}
    plex_all: true
  Strip:
    overlay: {name: backdrop, back_color: '#FF00FF66', back_height: 60, horizontal_offset: 0,
              horizontal_align: left, vertical_offset: 0, vertical_align: bottom}
    plex_all: true
  Overlapper:
    overlay: {name: text(Over), font_size: 40, font_color: '#FF0000', horizontal_offset: 100, vertical_offset: 60,
              horizontal_align: left, vertical_align: top}
    plex_all: true
"""
EPISODE_OVERLAYS = """overlays:
  Corner:
    builder_level: episode
    overlay: {name: text(S01), font_size: 70, font_color: '#FFFFFF', back_color: '#0000FFCC', back_padding: 12,
              back_radius: 20, horizontal_offset: 25, horizontal_align: right, vertical_offset: 25,
              vertical_align: bottom}
    plex_all: true
"""
#: Winter Orbit (4K, Dolby Vision, HDR10, Extended Edition of `sandbox --movies 100`), The Winter (480p), the show
#: Harbor Signal and its episodes S01E03 (4K DV HDR10) and S02E01 (480p).
TARGETS = [{"id": "winter", "type": "movie", "ratingKey": "1081"}, {"id": "m2", "type": "movie", "ratingKey": "1002"},
           {"id": "show", "type": "show", "ratingKey": "500001"},
           {"id": "e7", "type": "episode", "ratingKey": "500007"}, {"id": "e9", "type": "episode", "ratingKey": "500009"}]


def render(tmp_path: Path, server_url: str, name: str = "job", *, trace: bool = True) -> dict:
    """`kometa-preview render` with real Kometa, PNG output; `trace=False`: Kometa's command line without `--trace`."""
    badge = tmp_path / "badge.png"
    if not badge.exists():
        image = Image.new("RGBA", (120, 80), (0, 0, 0, 0))
        from PIL import ImageDraw
        ImageDraw.Draw(image).ellipse((5, 5, 115, 75), fill=(0, 200, 255, 255))
        image.save(badge)
        (tmp_path / "movies.yml").write_text(MOVIE_OVERLAYS.replace("BADGE", str(badge)))
        (tmp_path / "episodes.yml").write_text(EPISODE_OVERLAYS)
    libraries = {"Movies": {"overlay_files": [{"default": "resolution"}, {"file": "movies.yml"}]},
                 "TV Shows": {"overlay_files": [{"default": "resolution"},
                                                {"default": "resolution", "template_variables": {"builder_level":
                                                                                                 "episode"}},
                                                {"file": "episodes.yml"}]}}
    config = write_preview_yml(tmp_path, server_url, TARGETS, libraries=libraries,
                               settings={"overlay_artwork_filetype": "png"},
                               kometa={"path": str(CHECKOUT / "kometa.py"), "python": PYTHON, "timeout": 900})
    wrapper = ([] if trace else ["-c", "import sys; from kometa_preview.kometa import runner; a = runner.KometaCommand."
                                       "arguments; runner.KometaCommand.arguments = lambda s, c, l: [x for x in a(s, c,"
                                       " l) if x != '--trace']; from kometa_preview.cli import main; sys.argv[0] = "
                                       "'kometa-preview'; main()"])
    command = [sys.executable, *(wrapper or ["-m", "kometa_preview"]), "render", str(config), "--offline", "--job",
               str(tmp_path / name)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads((tmp_path / name / "output" / "summary.json").read_text())


def changed(output: Path, entry: dict) -> Image.Image:
    """The pixels Kometa changed: the uploaded poster against the one it started from, resized to the canvas."""
    canvas = CANVAS[entry["type"]]
    before = Image.open(output / entry["before"]).convert("RGB").resize(canvas, Image.Resampling.LANCZOS)
    after = Image.open(output / entry["after"]).convert("RGB")
    assert after.size == canvas
    return ImageChops.difference(before, after).convert("L").point(lambda v: 255 if v > 2 else 0)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from conftest import TOKEN

    from kometa_preview.sandbox import SampleServer, generate
    server = SampleServer(generate(movies=100, shows=3), TOKEN).start()
    folder = tmp_path_factory.mktemp("boxes")
    try:
        yield folder, server, render(folder, server.url)
    finally:
        server.stop()


def test_real_kometa_s_pixels_lie_in_the_boxes_and_every_box_holds_some(rendered):
    folder, _, summary = rendered
    output = folder / "job" / "output"
    for target_id, entry in summary["targets"].items():
        assert entry["status"] == "exported" and entry["unplaced"] == {}, (target_id, entry["unplaced"])
        assert [box["overlay"] for box in entry["boxes"]] == entry["overlays"], target_id
        diff = changed(output, entry)
        inside = Image.new("L", diff.size, 0)
        for box in entry["boxes"]:
            region = (box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"])
            inside.paste(255, region)
            assert diff.crop(region).getbbox() is not None, (target_id, box)   # each box holds changed pixels
        outside = ImageChops.subtract(diff, inside)
        assert outside.getbbox() is None, (target_id, outside.getbbox())       # none changed outside the boxes
    corner = summary["targets"]["e7"]["boxes"][-1]                              # a title card's far corner
    assert corner["display_name"] == "Corner" and corner["x"] + corner["w"] == 1920 - 25 + 12 + 1


def test_real_kometa_s_4k_dolby_vision_hdr10_movie_lists_a_resolution_overlay_that_matched_and_lost(rendered):
    _, _, summary = rendered
    winter = summary["targets"]["winter"]
    lost = {c["display_name"]: c["reason"] for c in winter["considered"] if c["matched"] and not c["applied"]}
    assert lost["4K-Dovetail"] == "lost group `resolution` to `4K-DV-HDR-Dovetail` (weight 158 > 130)"
    assert lost["4K-DV-HDR"] == "suppressed by `Extended-Edition-Dovetail`"
    applied = [c["overlay"] for c in winter["considered"] if c["applied"]]
    assert applied == winter["overlays"]
    assert winter["overlap_warning"] == ("Overlays overlap: 4K-DV-HDR-Dovetail (default: resolution) and Overlapper "
                                         "(file: movies.yml)")
    four_k = next(c for c in summary["targets"]["m2"]["considered"] if c["display_name"] == "4K")
    assert (four_k["matched"], four_k["reason"]) == (False, "Plex's search did not return it (Resolution is 4K)")
    assert summary["targets"]["m2"]["overlap_warning"] is None or "Overlapper" in summary["targets"]["m2"][
        "overlap_warning"]


def test_real_kometa_uploads_the_same_bytes_without_trace(rendered):
    """`--trace` (what `matched` is read from) changes none of Kometa's images."""
    folder, server, summary = rendered
    plain = render(folder, server.url, "plain", trace=False)
    for target_id, entry in summary["targets"].items():
        assert (folder / "job" / "output" / entry["after"]).read_bytes() == \
            (folder / "plain" / "output" / plain["targets"][target_id]["after"]).read_bytes(), target_id
    assert not any("Titles Found" in line for line in (folder / "plain" / "kometa" / "logs" / "meta.log").open())
