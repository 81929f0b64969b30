"""Kometa's overlay names, read for people (kometa/overlay_names.py)."""
from __future__ import annotations

import pytest

from kometa_preview.kometa.overlay_names import file_label, labelled, parse, source
from kometa_preview.kometa.run_config import OverlaySource

SOURCES = [OverlaySource("Movies", "default", "resolution", "libraries.Movies.overlay_files[0].default"),
           OverlaySource("Movies", "file", "/home/me/kometa/my_text.yml", "libraries.Movies.overlay_files[1].file"),
           OverlaySource("Movies", "url", "https://example.org/o.yml", "libraries.Movies.overlay_files[2].url")]


@pytest.mark.parametrize("kometa, display, index", [
    ("Overlay File (0) 480P-Dovetail", "480P-Dovetail", 0),
    ("Overlay File (12) Preview Banner", "Preview Banner", 12),
    ("IMDb Top 250", "IMDb Top 250", None),          # a name Kometa gave no file number
])
def test_kometa_s_name_splits_into_the_overlay_s_own_and_its_file(kometa, display, index):
    name = parse(kometa)
    assert (name.kometa, name.display, name.file_index) == (kometa, display, index)


def test_the_file_is_found_by_its_place_in_overlay_files_and_labelled_for_people():
    assert labelled("Overlay File (0) 480P-Dovetail", SOURCES) == {
        "overlay": "Overlay File (0) 480P-Dovetail", "display_name": "480P-Dovetail", "file": "default: resolution"}
    assert labelled("Overlay File (1) Hello", SOURCES)["file"] == "file: my_text.yml"
    assert file_label(SOURCES[2]) == "url: https://example.org/o.yml"
    assert source("Overlay File (1) Hello", SOURCES) is SOURCES[1]
    assert labelled("Overlay File (7) Gone", SOURCES)["file"] is None and source("Hello", SOURCES) is None
