"""Where each overlay is and why (not): Kometa's log read into overlay definitions (kometa/overlay_log.py), each
placed as Kometa places it (kometa/overlay_boxes.py), and Kometa's choice per item replayed (kometa/overlay_choice.py),
on a real Kometa 2.4.4 log (tests/fixtures/kometa_logs/README.md) and on tables of hand-made attributes. Real Kometa's
pixels are the test of the placements in tests/test_real_kometa_boxes.py."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from kometa_preview.kometa import log, overlay_choice
from kometa_preview.kometa.overlay_boxes import (
    LANDSCAPE,
    PORTRAIT,
    Box,
    ImageSpec,
    KometaFiles,
    Unplaced,
    place,
    placements,
)
from kometa_preview.kometa.overlay_choice import Considered, Item, considered
from kometa_preview.kometa.overlay_log import OverlayDefinition
from kometa_preview.results.outcomes import EXPORTED, OverlayBox, TargetVerdict, overlaid, overlap_warning

FIXTURE = Path(__file__).parent / "fixtures" / "kometa_logs" / "2.4.4" / "overlays_trace.meta.log"
#: The sizes of Kometa 2.4.4's own images and of the fixture's badge.png, and the text extents Pillow measures with
#: its fonts (KometaFiles on /tmp/kometa/2.4.4), so that the fixture places without Kometa's folder.
SIZES = {"resolution/4kdvhdr.png": (208, 53), "edition/extended.png": (219, 74), "resolution/480p.png": (215, 38),
         "/tmp/mt2work/badge.png": (120, 80)}
EXTENTS = {"Centre": (0, 0, 259, 61), "Addon": (0, 0, 146, 38), "Over": (0, 0, 83, 29)}


class Sizes:
    """A `Measure` from tables instead of files."""

    def __init__(self, images=None, texts=None) -> None:
        self.images, self.texts = images or SIZES, texts or EXTENTS

    def image(self, spec: ImageSpec):
        return self.images.get(spec.value)

    def text(self, font, size, style, text):
        return self.texts.get(text)


@pytest.fixture(scope="module")
def run() -> log.KometaRun:
    return log.read_lines(log.file_lines(FIXTURE.read_text(encoding="utf-8").splitlines()))


# --- the log ---------------------------------------------------------------------------------------------------------

def test_each_library_s_overlay_files_are_numbered_as_kometa_numbers_them(run):
    files = run.overlays.files
    assert [(f.kind, f.value) for f in files["Movies"]] == [("default", "resolution"), ("file", "/tmp/mt2work/my_many.yml")]
    assert [(f.kind, f.value) for f in files["TV Shows"]] == [("default", "resolution")] * 2
    assert run.overlays.kometa_folder == "/tmp/kometa/2.4.4"


def test_a_definition_holds_kometa_s_attributes_its_search_its_filters_and_what_they_kept(run):
    dovetail = run.overlays.named("Movies")["Overlay File (0) 4K-DV-HDR-Dovetail"]
    assert dovetail.attributes["back_width"] == 245 and dovetail.attributes["horizontal_offset"] == "45"
    assert dovetail.attributes["default"] == "resolution/4kdvhdr" and dovetail.level is None
    assert dovetail.searches == ["Resolution is 4K"] and dovetail.filters == ["filepath.regex: ['(?i)\\\\bdv(.hdr10?\\\\b)']"]
    assert (dovetail.ids, dovetail.titles, dovetail.found) == ({"1081"}, ["Winter Orbit"], 1)
    assert dovetail.suppress[:2] == ["Open-Matte", "Extended-Edition"]
    plus = run.overlays.named("Movies")["Overlay File (0) 4K-DV-HDR-Plus-Dovetail"]
    assert (plus.ids, plus.titles, plus.found) == ({"1081"}, [], 0)        # searched, then filtered out
    text = run.overlays.named("Movies")["Overlay File (1) Centre"]
    assert text.attributes["name"] == "text(Centre)" and text.searches == ["every item"]


def test_definitions_kometa_skipped_or_stopped_are_kept_with_its_reason_and_named_by_their_neighbours(run):
    tv = run.overlays.of_library("TV Shows")
    skipped = [d for d in tv if d.skipped]
    assert len(skipped) == 178 and {d.skipped for d in skipped} == {
        "Skipped because run_definition library_type: movie doesn't match"}
    assert skipped[0].kometa_name == "Overlay File (0) 4K-DV-HDR-Plus-Dovetail"   # only file 0 comes before
    stopped = run.overlays.named("Movies")["Overlay File (0) 576P"]
    assert not stopped.gathered and stopped.error == "Plex Error: resolution: No matches found with regex pattern (?i)576"
    assert {d.level for d in tv if d.kometa_name.startswith("Overlay File (1) ")} == {"episode"}


# --- where each overlay is -------------------------------------------------------------------------------------------

def test_the_fixture_s_overlays_are_placed_where_real_kometa_drew_them(run):
    """The boxes real Kometa 2.4.4's own pixels confirmed (every changed pixel inside, each box's changed pixels
    reaching its four edges), worked out from the log alone."""
    placed = placements(run.overlays, Sizes())
    assert {name: placed[("Movies", f"Overlay File ({n}) {name}")] for n, name in (
        (0, "4K-DV-HDR-Dovetail"), (0, "Extended-Edition-Dovetail"), (0, "480P"), (1, "Centre"), (1, "Badge"),
        (1, "Addon"), (1, "Strip"), (1, "Overlapper"))} == {
        "4K-DV-HDR-Dovetail": Box(15, 15, 306, 190),        # the back: 245 + 2 × 30 padding, both ends drawn
        "Extended-Edition-Dovetail": Box(58, 106, 219, 74),  # a transparent back: the image alone
        "480P": Box(15, 15, 306, 106), "Centre": Box(367, 866, 267, 69), "Badge": Box(395, 295, 211, 111),
        "Addon": Box(32, 442, 293, 97), "Strip": Box(0, 1440, 1000, 60), "Overlapper": Box(100, 60, 83, 29)}
    assert placed[("TV Shows", "Overlay File (1) 4K-DV-HDR")] == Box(15, 15, 306, 106)


@pytest.mark.parametrize("attributes, canvas, box", [
    ({"name": "Frame", "file": "f.png"}, PORTRAIT, Box(0, 0, 1000, 1500)),              # no offsets: the whole poster
    ({"name": "blur(50)"}, PORTRAIT, Box(0, 0, 1000, 1500)),
    ({"name": "text(Hi)", "horizontal_offset": 0, "horizontal_align": "center", "vertical_offset": "10%",
      "vertical_align": "center", "stroke_width": 2}, PORTRAIT, Box(479, 888, 44, 29)),
    ({"name": "text(E)", "horizontal_offset": 20, "horizontal_align": "right", "vertical_offset": 10,
      "vertical_align": "bottom"}, LANDSCAPE, Box(1870, 1050, 30, 20)),              # a title card's far corner
    ({"name": "text(<<audience_rating>>)", "back_color": "#000000", "back_width": 100, "back_height": 50,
      "horizontal_offset": 10, "horizontal_align": "right", "vertical_offset": 20, "vertical_align": "bottom"},
     PORTRAIT, Box(890, 1430, 101, 51)),                                               # the words are the item's
    ({"name": "text(A)", "file": "b.png", "addon_position": "right", "addon_offset": 10, "back_color": "#000",
      "back_padding": 8, "horizontal_offset": 40, "vertical_offset": 100}, PORTRAIT, Box(32, 92, 293, 97)),
    ({"name": "B", "file": "b.png", "scale_height": 20, "horizontal_offset": 5, "vertical_offset": 5},
     PORTRAIT, Box(5, 5, 30, 20)),                                                     # 120×80 scaled to 20 high
])
def test_attributes_place_an_overlay_as_kometa_places_it(attributes, canvas, box):
    sizes = Sizes({"f.png": (500, 750), "b.png": (120, 80)}, {"Hi": (1, 5, 41, 30), "E": (0, 0, 30, 20),
                                                              "A": (0, 0, 146, 38)})
    assert place(attributes, canvas, sizes) == box


def test_kometa_2_0_draws_an_image_at_its_own_size():
    attributes = {"name": "B", "file": "b.png", "scale_height": 20, "horizontal_offset": 5, "vertical_offset": 5}
    assert place(attributes, PORTRAIT, Sizes({"b.png": (120, 80)}), scales=False) == Box(5, 5, 120, 80)


@pytest.mark.parametrize("attributes, why", [
    ({"name": "Q", "file": "b.png", "queue": "ratings", "weight": 10}, "queue"),
    ({"name": "text(<<runtime>>)", "horizontal_offset": 0, "vertical_offset": 0}, "words come from the item"),
    ({"name": "text(user_rating)", "horizontal_offset": 0, "vertical_offset": 0}, "words come from the item"),
    ({"name": "Gone", "file": "missing.png", "horizontal_offset": 0, "vertical_offset": 0}, "cannot be read"),
    ({"name": "text(No font)", "font": "nowhere.ttf", "horizontal_offset": 0, "vertical_offset": 0}, "font"),
    ({"horizontal_offset": 0, "vertical_offset": 0}, "refuse"),                         # no name
    ({"name": "text(x)", "back_color": "not a colour", "horizontal_offset": 0, "vertical_offset": 0}, "colour"),
    ({"name": "backdrop", "back_color": "#00000000"}, "nothing visible"),
])
def test_what_cannot_be_placed_says_why(attributes, why):
    with pytest.raises(Unplaced, match=why):
        place(attributes, PORTRAIT, Sizes({"b.png": (120, 80)}, {}))


def test_kometa_s_files_are_measured_where_kometa_finds_them(tmp_path):
    kometa = tmp_path / "kometa"
    (kometa / "defaults" / "overlays" / "images" / "resolution").mkdir(parents=True)
    (kometa / "fonts").mkdir()
    (kometa / "fonts" / "Inter-Medium.ttf").write_bytes(b"not parsed here")
    Image.new("RGBA", (229, 47)).save(kometa / "defaults" / "overlays" / "images" / "resolution" / "4k.png")
    Image.new("RGBA", (12, 34)).save(tmp_path / "mine.png")
    (tmp_path / "overlays").mkdir()
    Image.new("RGBA", (7, 8)).save(tmp_path / "overlays" / "Downloaded.png")
    files = KometaFiles(kometa, tmp_path / "overlays")
    assert files.image(ImageSpec("default", "resolution/4k.png")) == (229, 47)
    assert files.image(ImageSpec("file", str(tmp_path / "mine.png"))) == (12, 34)
    assert files.image(ImageSpec("downloaded", "Downloaded.png")) == (7, 8)
    assert files.image(ImageSpec("default", "resolution/none.png")) is None
    assert files.font_path("fonts/Inter-Medium.ttf") == files.font_path("Inter-Medium.ttf") == \
        kometa / "fonts" / "Inter-Medium.ttf"
    assert files.font_path("Comic Sans") is None and files.text("Inter-Medium.ttf", 10, None, "x") is None


# --- why (not) -------------------------------------------------------------------------------------------------------

def _verdicts(run, library, kind, title, key) -> dict[str, Considered]:
    item = run.item(title)
    chosen = tuple(item.applied) if item else None
    return {c.overlay: c for c in considered(run.overlays.of_library(library), Item(kind, title, key, chosen))}


def test_a_4k_dolby_vision_hdr10_movie_lists_the_resolution_overlays_that_matched_and_lost(run):
    found = _verdicts(run, "Movies", "movie", "Winter Orbit", "1081")
    assert found["Overlay File (0) 4K-DV-HDR-Dovetail"] == Considered("Overlay File (0) 4K-DV-HDR-Dovetail", True, True)
    assert found["Overlay File (0) 4K-Dovetail"] == Considered(
        "Overlay File (0) 4K-Dovetail", True, False, "lost group `resolution` to `4K-DV-HDR-Dovetail` (weight 158 > 130)")
    assert found["Overlay File (0) 4K"].reason == "suppressed by `Extended-Edition-Dovetail`"
    assert found["Overlay File (0) Extended-Edition"].reason == "suppressed by `4K-DV-HDR-Dovetail`"
    assert found["Overlay File (0) 480P"] == Considered("Overlay File (0) 480P", False, False,
                                                        "Plex's search did not return it (Resolution is SD)")
    assert found["Overlay File (0) 4K-Plus-Dovetail"].reason.startswith("Kometa's filters removed it (filepath.regex")
    assert found["Overlay File (0) 576P"].reason == ("Kometa could not gather its items: Plex Error: resolution: No "
                                                     "matches found with regex pattern (?i)576")
    applied = [name for name, c in found.items() if c.applied]
    assert applied == run.item("Winter Orbit").applied                     # Kometa's own line, in its order


def test_levels_keep_a_show_s_and_an_episode_s_overlays_apart(run):
    show = _verdicts(run, "TV Shows", "show", "Harbor Signal", "500001")
    episode = _verdicts(run, "TV Shows", "episode", "Harbor Signal S01E03", "500007")
    assert not any(name.startswith("Overlay File (1) ") for name in show)
    assert all(name.startswith("Overlay File (1) ") for name in episode)
    assert show["Overlay File (0) 4K-Dovetail"].reason == \
        "Kometa skipped it (run_definition library_type: movie doesn't match)"
    assert [n for n, c in episode.items() if c.applied] == ["Overlay File (1) 4K-DV-HDR"]


def _definition(key: str, *, suppress=(), group=None, weight=None, queue=None, titles=("T",), found=None):
    attributes = {"name": key, **({"group": group} if group else {}), **({"queue": queue} if queue else {}),
                  **({"weight": weight} if weight is not None else {})}
    return OverlayDefinition(key, "Movies", f"Overlay File (0) {key}", attributes=attributes, suppress=list(suppress),
                             titles=list(titles) if titles is not None else None,
                             found=found if found is not None else len(titles or ()))


def test_suppression_runs_over_the_list_kometa_iterates_so_an_overlay_removed_before_its_turn_suppresses_nothing():
    definitions = [_definition("A", suppress=["B"]), _definition("B", suppress=["C"]), _definition("C")]
    verdicts = considered(definitions, Item("movie", "T", "1", None))
    assert [(c.overlay[17:], c.matched, c.reason) for c in verdicts] == [
        ("A", True, "Kometa did not overlay this item"), ("B", True, "suppressed by `A`"),
        ("C", True, "Kometa did not overlay this item")]


def test_a_group_keeps_its_heaviest_the_first_of_equals_and_a_queue_says_each_position():
    definitions = [_definition("Low", group="g", weight=10), _definition("Tie1", group="h", weight=5),
                   _definition("Tie2", group="h", weight=5), _definition("Q1", queue="q", weight=1),
                   _definition("Q2", queue="q", weight=2), _definition("High", group="g", weight=20)]
    chosen = tuple(f"Overlay File (0) {k}" for k in ("Tie1", "Q1", "Q2", "High"))
    verdicts = {c.overlay[17:]: c for c in considered(definitions, Item("movie", "T", "1", chosen))}
    assert verdicts["Low"].reason == "lost group `g` to `High` (weight 20 > 10)"
    assert verdicts["Tie2"].reason == "lost group `h` to `Tie1` (the same weight 5, and it comes first)"
    assert (verdicts["Q2"].reason, verdicts["Q1"].reason) == ("queue `q` position 1", "queue `q` position 2")
    assert verdicts["High"] == Considered("Overlay File (0) High", True, True)


def test_kometa_s_own_line_is_the_last_word_and_a_missing_trace_is_said():
    definitions = [_definition("A", suppress=["B"]), _definition("B"), _definition("C"),
                   _definition("N", titles=None, found=3)]
    verdicts = {c.overlay[17:]: c for c in considered(definitions, Item("movie", "T", "1", (
        "Overlay File (0) A", "Overlay File (0) B")))}
    assert verdicts["B"] == Considered("Overlay File (0) B", True, True)          # applied, whatever the replay says
    assert verdicts["C"].reason == "Kometa's log does not say why it was not applied"
    assert verdicts["N"].reason.endswith("(its --trace lines are missing)")


# --- per target --------------------------------------------------------------------------------------------------------

def _box(name: str, x: int, y: int, w: int = 100, h: int = 100, file: str = "default: resolution") -> OverlayBox:
    return OverlayBox(f"Overlay File (0) {name}", name, file, x, y, w, h)


def test_two_applied_overlays_whose_boxes_intersect_give_one_warning_naming_both():
    assert overlap_warning([_box("4K", 15, 15), _box("Hello", 900, 1400, file="file: my.yml")]) is None
    assert overlap_warning([_box("4K", 15, 15), _box("Hello", 60, 60, file="file: my.yml"), _box("X", 0, 0)]) == (
        "Overlays overlap: 4K (default: resolution) and Hello (file: my.yml); 4K (default: resolution) and X (default: "
        "resolution); Hello (file: my.yml) and X (default: resolution)")
    assert overlap_warning([_box("4K", 15, 15), _box("Hello", 115, 15)]) is None     # touching is not overlapping
    assert overlap_warning([_box("4K-Dovetail", 15, 15), _box("IMAX-Dovetail", 58, 106)]) is None  # drawn to fit


def test_a_target_s_overlays_are_labelled_placed_and_explained(run):
    from kometa_preview.common.events import TargetSeen
    run.placements = placements(run.overlays, Sizes())
    seen = TargetSeen(target="winter", rating_key="1081", type="movie", title="Winter Orbit", library="Movies")
    result = overlaid(run, seen, TargetVerdict(EXPORTED, None, tuple(run.item("Winter Orbit").applied)))
    assert [(label.display_name, label.file) for label in result.labels][:3] == [
        ("4K-DV-HDR-Dovetail", "default: resolution"), ("Extended-Edition-Dovetail", "default: resolution"),
        ("Centre", "file: my_many.yml")]
    assert [box.display_name for box in result.boxes] == [label.display_name for label in result.labels]
    assert result.overlap_warning == ("Overlays overlap: 4K-DV-HDR-Dovetail (default: resolution) and Overlapper "
                                      "(file: my_many.yml)")
    assert len(result.considered) == len(overlay_choice.relevant(run.overlays.of_library("Movies"), "movie"))
    failed = overlaid(run, seen, TargetVerdict("failed", "x", tuple(run.item("Winter Orbit").applied)))
    assert failed.boxes == [] and failed.labels == result.labels                  # nothing was drawn


def test_a_summary_can_be_written_without_its_why_not_lists_for_a_full_disk():
    """export writes summary.json without `considered` when the disk cannot hold it whole (about 25 KB a target)."""
    from crafted import summary_document, target_entry

    from kometa_preview.results.outcomes import Consideration
    from kometa_preview.results.summary import load
    summary = load(summary_document({"t": target_entry()}))
    summary.targets["t"].considered = [Consideration("Overlay File (0) 4K", "4K", None, False, False, "why")]
    assert summary.to_json()["targets"]["t"]["considered"][0]["reason"] == "why"
    assert summary.to_json(considered=False)["targets"]["t"]["considered"] == []
    assert summary.targets["t"].considered                                       # the summary itself keeps them
