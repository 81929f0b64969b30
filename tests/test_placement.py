"""The editor's writes (kometa/placement.py): a move becomes offsets, shifted the way Kometa reads them, written into
the user's YAML with every other byte kept. Real files where they exist: the examples' preview.yml, and — with
KOMETA_PATH — Kometa's own defaults and its config template."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
import yaml

from kometa_preview.kometa import placement
from kometa_preview.kometa.placement import PlacementError, move_default, move_own, shifted

ROOT = Path(__file__).resolve().parent.parent
KOMETA = Path(os.environ.get("KOMETA_PATH", "/nonexistent"))
KOMETA = KOMETA.parent if KOMETA.name == "kometa.py" else KOMETA
needs_kometa = pytest.mark.skipif(not (KOMETA / "defaults" / "overlays").is_dir(),
                                  reason="KOMETA_PATH does not point at a Kometa checkout (its defaults are read)")
POSTER = (1000, 1500)
#: A default file shaped like Kometa's (external template variables, a conditional on the alignment, an overlay's
#: own key), small enough to read: the same rules the real ones follow.
DEFAULT = """external_templates:
  default: templates
  template_variables:
    default:
      horizontal_align: center
      vertical_align: top
    conditionals:
      horizontal_offset:
        default: 15
        conditions:
          - horizontal_align: center
            value: 0
          - horizontal_align: [left, right]
            value: 15
    vertical_offset: 15
overlays:
  4K:
    variables: {key: 4k, weight: 130}
    template: [name: standard]
"""


def inserted_only(old: str, new: str) -> list[str]:
    """The lines `new` adds to `old`, asserting that every old line is still there, byte for byte, in order."""
    matcher = difflib.SequenceMatcher(a=old.splitlines(keepends=True), b=new.splitlines(keepends=True),
                                      autojunk=False)
    added = []
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        assert tag in ("equal", "insert"), (tag, old.splitlines()[a1:a2], new.splitlines()[b1:b2])
        added += new.splitlines()[b1:b2] if tag == "insert" else []
    return added


def replaced_only(old: str, new: str) -> list[tuple[str, str]]:
    """(old line, new line) for each line that differs; the files have the same lines otherwise."""
    assert len(old.splitlines()) == len(new.splitlines())
    return [(a, b) for a, b in zip(old.splitlines(), new.splitlines()) if a != b]


@pytest.mark.parametrize("value, align, delta, size, expected, noted", [
    (15, "left", 20, 1000, 35, False),          # from the near edge: the offset grows with the move
    (15, None, 20, 1000, 35, False),            # no alignment: Kometa counts from the left/top
    (15, "top", -5, 1500, 10, False),
    (15, "right", 20, 1000, -0 + 0, True),      # from the far edge: a move right lowers it, not below 0
    (40, "right", 20, 1000, 20, False),
    (40, "bottom", -30, 1500, 70, False),
    (0, "center", -25, 1000, -25, False),       # from the middle: below 0 is fine
    (10, "left", -25, 1000, 0, True),           # Kometa refuses a negative offset unless centred
    ("10%", "left", 20, 1000, "12%", False),    # a share of the canvas stays one, in whole percents
    ("10%", "left", 25, 1000, "12%", True),     # 2.5 % rounds: said
    ("5%", "right", 100, 1000, "0%", True),
    ("15", "left", 5, 1000, 20, False),         # a number written as a string (template variables often are)
])
def test_a_shift_is_written_the_way_kometa_reads_the_offset_back(value, align, delta, size, expected, noted):
    new, note = shifted(value, align, delta, size)
    assert new == expected and (note is not None) == noted, (new, note)


def test_a_default_s_move_adds_template_variables_to_the_examples_preview_yml_and_keeps_every_byte():
    text = (ROOT / "examples" / "sandbox-preview.yml").read_text()
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (20, 30), POSTER)
    assert inserted_only(text, edit.text) == ["        template_variables:", "          horizontal_offset: 20",
                                              "          vertical_offset: 45"]
    assert [(c.key, c.old, c.new) for c in edit.changes] == [
        ("libraries.Movies.overlay_files[0].template_variables.horizontal_offset", 0, 20),
        ("libraries.Movies.overlay_files[0].template_variables.vertical_offset", 15, 45)]
    entry = yaml.safe_load(edit.text)["libraries"]["Movies"]["overlay_files"][0]
    assert entry == {"default": "resolution", "template_variables": {"horizontal_offset": 20, "vertical_offset": 45}}
    # Moved again: the values are replaced in place, the comments after them kept
    again = move_default(edit.text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (-5, 0), POSTER)
    assert replaced_only(edit.text, again.text) == [("          horizontal_offset: 20", "          horizontal_offset: 15")]


def test_the_user_s_own_values_and_alignment_are_shifted_in_place_with_their_comments():
    text = ("libraries:\n  Movies:   # mine\n    overlay_files:\n      - default: resolution\n"
            "        template_variables:\n          horizontal_align: right   # badges on the right\n"
            "          horizontal_offset: 40    # from the right edge\n          vertical_offset: '5%'\n")
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (10, 30), POSTER)
    assert replaced_only(text, edit.text) == [
        ("          horizontal_offset: 40    # from the right edge", "          horizontal_offset: 30    # from the right edge"),
        ("          vertical_offset: '5%'", "          vertical_offset: '7%'")]
    assert edit.notes == ()


def test_a_per_key_variable_is_written_only_when_it_places_this_overlay():
    text = ("libraries:\n  Movies:\n    overlay_files:\n      - default: resolution\n        template_variables:\n"
            "          horizontal_offset: 50\n          horizontal_offset_4k: 100   # the 4K badge apart\n"
            "          vertical_offset_1080p: 80\n")
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (10, 10), POSTER)
    assert [(c.key.rpartition(".")[2], c.old, c.new) for c in edit.changes] == [
        ("horizontal_offset_4k", 100, 110), ("vertical_offset", 15, 25)]   # centred: from the middle
    assert "horizontal_offset: 50" in edit.text and "vertical_offset_1080p: 80" in edit.text


def test_a_flow_style_entry_gets_its_variables_inside_its_braces():
    text = "libraries:\n  Movies:\n    overlay_files: [{default: resolution}, {default: ribbon}]  # two\n"
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 1), DEFAULT, "4K", (0, 5), POSTER)
    assert edit.text == ("libraries:\n  Movies:\n    overlay_files: [{default: resolution}, {default: ribbon, "
                         "template_variables: {vertical_offset: 20}}]  # two\n")


def test_a_file_with_windows_line_breaks_keeps_them():
    text = "# saved on Windows\r\nlibraries:\r\n  Movies:\r\n    overlay_files:\r\n      - default: resolution\r\n" \
           "      - file: mine.yml   # last\r\n"
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (5, 0), POSTER)
    assert edit.text == text.replace("resolution\r\n", "resolution\r\n        template_variables:\r\n"
                                     "          horizontal_offset: 5\r\n")
    again = move_default(edit.text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (0, 7), POSTER)
    assert again.text == edit.text.replace("offset: 5\r\n", "offset: 5\r\n          vertical_offset: 22\r\n")


def test_library_variables_are_the_starting_point_and_the_entry_s_own_win():
    text = "libraries:\n  Movies:\n    overlay_files:\n      - default: resolution\n"
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), DEFAULT, "4K", (5, 0), POSTER,
                        library_variables={"horizontal_offset": 100, "horizontal_align": "left"})
    assert [(c.old, c.new) for c in edit.changes] == [(100, 105)]


def test_an_overlay_of_the_user_s_file_moves_by_its_own_offsets():
    text = ("# my overlays\noverlays:\n  Hello:   # the banner\n    overlay:\n      name: text(Hello)\n"
            "      horizontal_offset: 30    # from the left\n      vertical_offset: 30\n"
            "      horizontal_align: left\n      vertical_align: top\n    plex_all: true\n"
            "  Bare:\n    overlay: {name: text(X), back_color: \"#FF0000\"}\n    plex_all: true\n")
    edit = move_own(text, "Hello", (12, -4), POSTER)
    assert replaced_only(text, edit.text) == [
        ("      horizontal_offset: 30    # from the left", "      horizontal_offset: 42    # from the left"),
        ("      vertical_offset: 30", "      vertical_offset: 26")]
    bare = move_own(text, "Bare", (12, 0), POSTER)   # none yet: both written (Kometa wants them together)
    assert replaced_only(text, bare.text) == [
        ('    overlay: {name: text(X), back_color: "#FF0000"}',
         '    overlay: {name: text(X), back_color: "#FF0000", horizontal_offset: 12, vertical_offset: 0}')]


@pytest.mark.parametrize("text, overlay, message", [
    ("overlays:\n  Hello:\n    overlay: text(Hello)\n", "Hello", "no overlay 'Hello' with an `overlay:` mapping"),
    ("overlays:\n  Hello:\n    overlay: {name: x, horizontal_offset: <<h>>, vertical_offset: 0}\n", "Hello",
     "comes from a template variable"),
    ("overlays: {}\n", "Gone", "no overlay 'Gone'"),
])
def test_what_the_editor_cannot_write_is_refused_in_one_line(text, overlay, message):
    with pytest.raises(PlacementError, match=message):
        move_own(text, overlay, (1, 1), POSTER)


def test_only_offsets_and_alignments_are_ever_written():
    text = "overlays:\n  Hello:\n    overlay: {name: x, horizontal_offset: 1, vertical_offset: 1}\n"
    with pytest.raises(placement.NotWritable, match="not overlays.Hello.overlay.url"):
        placement.write(text, ("overlays", "Hello", "overlay"), {"url": "https://example.org/x.png"})
    with pytest.raises(placement.NotWritable):
        placement.write(text, ("overlays", "Hello"), {"plex_all": True})
    assert placement.write(text, ("overlays", "Hello", "overlay"), {"horizontal_align": "right"}).endswith(
        "vertical_offset: 1, horizontal_align: \"right\"}\n")


@needs_kometa
@pytest.mark.parametrize("default, overlay, user, expected", [
    ("resolution", "4K-DV-HDR", {}, (("horizontal_offset", 15, "left"), ("vertical_offset", 15, "top"))),
    ("resolution", "4K-DV-HDR-Dovetail", {"horizontal_align": "right"},
     (("horizontal_offset", 15, "right"), ("vertical_offset", 15, "top"))),
    ("audio_codec", "TrueHD-Atmos", {}, (("horizontal_offset", 0, "center"), ("vertical_offset", 15, "top"))),
    ("audio_codec", "TrueHD-Atmos", {"horizontal_align": "left"},
     (("horizontal_offset", 15, "left"), ("vertical_offset", 15, "top"))),
    ("ribbon", "Oscars Best Picture", {"horizontal_offset_oscars": 5}, (("horizontal_offset_oscars", 5, "right"),
                                                                        ("vertical_offset", 0, "bottom"))),
])
def test_kometa_s_own_defaults_say_where_their_offsets_come_from(default, overlay, user, expected):
    text = (KOMETA / "defaults" / "overlays" / f"{default}.yml").read_text()
    axes = placement.default_axes(text, overlay, user)
    assert tuple((a.key, a.value, a.align) for a in axes) == expected


@needs_kometa
def test_a_move_into_kometa_s_own_config_template_keeps_its_comments():
    text = (KOMETA / "config" / "config.yml.template").read_text()
    ribbon = (KOMETA / "defaults" / "overlays" / "ribbon.yml").read_text()
    edit = move_default(text, ("libraries", "Movies", "overlay_files", 0), ribbon, "Oscars Best Picture", (-20, -10),
                        POSTER)
    entry = next(line for line in text.splitlines() if line.strip().startswith("- default: ribbon"))
    keys = " " * (len(entry) - len(entry.lstrip()) + 2)   # the entry's own keys' column (2.0's template is indented)
    assert inserted_only(text, edit.text) == [f"{keys}template_variables:", f"{keys}  horizontal_offset: 20",
                                              f"{keys}  vertical_offset: 10"]
    assert yaml.safe_load(edit.text)["libraries"]["Movies"]["overlay_files"][0]["template_variables"] == \
        {"horizontal_offset": 20, "vertical_offset": 10}
