"""The Kometa stand-in's pieces on their own: its choice among the overlays that matched an item (Kometa's
`compile_overlays`, quirks included) and its badges (each one different, where Kometa puts it, white on a dark
translucent back)."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "kometa_standin"))
import standin_defaults  # noqa: E402 - the stand-in's modules, beside its kometa.py
import standin_draw  # noqa: E402


def _choose(matched: list[str]) -> list[str]:
    """Kometa's choice for one item among names of resolution.yml's overlays."""
    found = standin_defaults.definitions("resolution")
    return standin_defaults.choose(matched, {d.name: d.suppress for d in found},
                                   {d.name: (d.group, d.weight) for d in found})


@pytest.mark.parametrize("matched, chosen", [
    # a 1080p Dolby Vision movie with a Theatrical Cut: the dovetails win (as real Kometa 2.4.4 chose for one)
    (["1080P-DV-Dovetail", "1080P-HDR-Dovetail", "1080P-Dovetail", "DV-Dovetail", "HDR-Dovetail",
      "Theatrical-Cut-Dovetail", "1080P-DV", "1080P-HDR", "1080P", "DV", "HDR", "Theatrical-Cut"],
     ["1080P-DV-Dovetail", "Theatrical-Cut-Dovetail"]),
    # the same without an edition: each plain overlay suppresses its dovetail twin
    (["1080P-DV-Dovetail", "1080P-HDR-Dovetail", "1080P-Dovetail", "DV-Dovetail", "HDR-Dovetail", "1080P-DV",
      "1080P-HDR", "1080P", "DV", "HDR"], ["1080P-DV"]),
    # Kometa removes suppressed names from the list it is walking, so the name after a removal is skipped: here
    # 1080P-DV-HDR-Plus never suppresses its twin, whose weight (130) ties 4K's and, listed first, wins
    (["4K-Dovetail", "1080P-DV-HDR-Plus-Dovetail", "4K", "1080P-DV-HDR-Plus"], ["1080P-DV-HDR-Plus-Dovetail"]),
])
def test_the_choice_is_kometa_s_compile_overlays(matched, chosen):
    assert _choose(matched) == chosen


def test_groups_keep_their_heaviest_and_other_files_untouched():
    audio = standin_defaults.definitions("audio_codec")
    names = ["Dolby-Atmos", "Dolby-TrueHD-Atmos", "Dolby-TrueHD", "Hello"]
    groups = {d.name: (d.group, d.weight) for d in audio}
    assert standin_defaults.choose(names, {}, groups) == ["Dolby-TrueHD-Atmos", "Hello"]


def test_tv_libraries_get_no_dovetail_and_no_edition():
    """`allowed_libraries: movie`: Kometa does not run them for a TV library."""
    movies_only = {d.name for d in standin_defaults.definitions("resolution") if d.movies_only}
    assert "4K-Dovetail" in movies_only and "Directors-Cut" in movies_only and "4K-DV" not in movies_only


#: A mid-grey poster: the back darkens it, the text lightens it.
POSTER = Image.new("RGB", (400, 600), (128, 128, 128))


def _poster_bytes() -> bytes:
    buffer = io.BytesIO()
    POSTER.save(buffer, format="PNG")
    return buffer.getvalue()


def _shown(names: list[str], libtype: str = "movie") -> Image.Image:
    return standin_draw.compose(_poster_bytes(), libtype, names)


BADGES = [d.name for default in ("resolution", "audio_codec", "video_format")
          for d in standin_defaults.definitions(default) if "Dovetail" not in d.name]


def test_every_badge_looks_different():
    images = {name: _shown([name]).tobytes() for name in BADGES}
    assert len(set(images.values())) == len(BADGES)


@pytest.mark.parametrize("name, box", [
    ("4K-DV-HDR", (15, 15, 320, 120)), ("Dolby-TrueHD-Atmos", (347, 15, 652, 120)), ("REMUX", (15, 1365, 320, 1470)),
])
def test_a_badge_is_white_text_on_a_dark_translucent_back_where_kometa_puts_it(name, box):
    image = _shown([name])
    left, top, right, bottom = box
    inside = [image.getpixel((x, y)) for x in range(left + 2, right - 2, 3) for y in range(top + 2, bottom - 2, 3)]
    dark = sum(1 for pixel in inside if pixel == (51, 51, 51))        # 60 % black over grey 128
    white = sum(1 for pixel in inside if min(pixel) > 230)
    assert dark > len(inside) // 2 and white > len(inside) // 25, (dark, white, len(inside))
    outside = image.copy()
    outside.paste((128, 128, 128), (left, top, right + 1, bottom + 1))  # the back's edges are its own
    assert outside.getcolors() == [(1000 * 1500, (128, 128, 128))]     # nothing drawn anywhere else


def test_a_dovetailed_edition_sits_under_the_resolution_in_one_back():
    image = _shown(["1080P-Dovetail", "Directors-Cut-Dovetail"])
    assert image.getpixel((310, 140)) == (51, 51, 51) and _shown(["1080P"]).getpixel((310, 140)) == (128, 128, 128)
    under = (15, 118, 320, 188)
    assert image.crop(under).tobytes() != _shown(["1080P-Dovetail", "IMAX-Dovetail"]).crop(under).tobytes()


def test_episodes_are_drawn_on_kometa_s_16_9_canvas():
    assert _shown(["1080P"], "episode").size == (1920, 1080) and _shown(["1080P"]).size == (1000, 1500)
