"""The stand-in's badges, drawn with Pillow the way Kometa's defaults look: a rounded, dark translucent back
(`back_color: "#00000099"`, `back_radius: 30`, 305×105 on Kometa's 1000×1500 poster canvas) with clear white text
— the resolution top left with its HDR/Dolby Vision tag beside it, an edition dovetailed under it, the audio codec
top centre, the video format bottom left. Kometa's own images are pictures of logos; the stand-in writes their
names, so a person (and a test) can tell every badge apart at poster size. Deterministic: the same poster and
names always give the same bytes (the tests redraw what they expect and compare).

`draw` takes the overlays' own names (without Kometa's `Overlay File (n) ` prefix).
"""
from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont
from standin_defaults import kind_of

#: Kometa's canvases: posters 1000×1500, episode title cards 1920×1080.
POSTER, EPISODE = (1000, 1500), (1920, 1080)
BACK = (0, 0, 0, 153)            # "#00000099"
WHITE = (255, 255, 255, 255)
BOX_W, BOX_H, RADIUS, MARGIN = 305, 105, 30, 15
#: A badge's tag beside the resolution: Kometa's alternatives as their logos read.
ALT_LABELS = {"DV-HDR-Plus": "DV HDR10+", "DV-HDR": "DV HDR", "Plus": "HDR10+", "DV": "DV", "HLG": "HLG",
              "HDR": "HDR"}
AUDIO_LABELS = {"Dolby-TrueHD-Atmos": "TrueHD Atmos", "DTS-X": "DTS:X", "Dolby-Digital-Plus-Atmos": "DD+ Atmos",
                "Dolby-Atmos": "Atmos", "Dolby-TrueHD": "TrueHD", "DTS-HD-MA": "DTS-HD MA", "DTS-HD-HRA": "DTS-HD HRA",
                "Dolby-Digital-Plus": "DD+", "Dolby-Digital": "Dolby Digital"}
RESOLUTION_KEYS = ("4K", "1080P", "720P", "576P", "480P")
#: The order badges are drawn in (later ones on top where they meet).
ORDER = ("resolution", "resolution_dovetail", "edition", "edition_dovetail", "audio_codec", "quality")


@functools.lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's own scalable font (the same on every machine): no font file to ship or find."""
    return ImageFont.load_default(size=size)


def _fitting(pen: ImageDraw.ImageDraw, text: str, width: int, size: int) -> ImageFont.FreeTypeFont:
    """The largest font up to `size` in which `text` fits `width` pixels."""
    while size > 12 and pen.textlength(text, font=font(size)) > width:
        size -= 2
    return font(size)


def _text(pen: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, size: int) -> None:
    """White text centred in `box`, bold by a stroke of its own colour, shrunk to fit."""
    left, top, right, bottom = box
    face = _fitting(pen, text, right - left - 16, size)
    pen.text(((left + right) / 2, (top + bottom) / 2), text, font=face, fill=WHITE, anchor="mm",
             stroke_width=max(1, face.size // 28), stroke_fill=WHITE)


def split_resolution(name: str) -> tuple[str, str]:
    """("4K", "DV-HDR") from "4K-DV-HDR" or "4K-DV-HDR-Dovetail"; ("", "DV") from "DV"."""
    name = name.removesuffix("-Dovetail")
    for key in RESOLUTION_KEYS:
        if name == key or name.startswith(f"{key}-"):
            return key, name[len(key) + 1:]
    return "", name


def _resolution(pen: ImageDraw.ImageDraw, box: tuple[int, int, int, int], name: str) -> None:
    """The resolution large on the left, its HDR/Dolby Vision tag in an outlined pill on the right (on two lines,
    "DV" over "HDR10+", when one does not fit)."""
    key, alt = split_resolution(name)
    left, top, right, bottom = box
    if not alt:
        _text(pen, box, key, 70)
        return
    if not key:
        _text(pen, box, ALT_LABELS[alt], 60)
        return
    split = left + min(int(pen.textlength(key, font=font(64))) + 28, 176)   # the rest is the tag's
    _text(pen, (left + 4, top, split, bottom), key, 64)
    pill = (split + 2, top + 16, right - 12, bottom - 16)
    pen.rounded_rectangle(pill, radius=12, outline=WHITE, width=3)
    label = ALT_LABELS[alt]
    one_line = pen.textlength(label, font=font(32)) <= pill[2] - pill[0] - 16
    lines = [label] if one_line else label.split()
    step = (pill[3] - pill[1]) // len(lines)
    for n, line in enumerate(lines):
        _text(pen, (pill[0], pill[1] + n * step, pill[2], pill[1] + (n + 1) * step), line, 40 if one_line else 30)


def _edition_label(name: str) -> str:
    return name.removesuffix("-Dovetail").replace("-", " ").upper()


def _box(pen: ImageDraw.ImageDraw, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    pen.rounded_rectangle(box, radius=RADIUS, fill=BACK)
    return box


def _badge(pen: ImageDraw.ImageDraw, size: tuple[int, int], name: str, kind: str, dovetailed: bool) -> None:
    """One badge where Kometa's default puts it. A resolution dovetailed with an edition is one taller back, the
    edition's name under the resolution's."""
    width, height = size
    top_left = (MARGIN, MARGIN, MARGIN + BOX_W, MARGIN + BOX_H)
    under = (MARGIN, MARGIN + BOX_H - 4, MARGIN + BOX_W, MARGIN + BOX_H + 66)
    if kind in ("resolution", "resolution_dovetail"):
        _box(pen, (*top_left[:3], under[3] if dovetailed else top_left[3]))
        _resolution(pen, top_left, name)
    elif kind == "edition_dovetail":
        if not dovetailed:
            _box(pen, under)
        _text(pen, under, _edition_label(name), 34)
    elif kind == "edition":
        _text(pen, _box(pen, top_left), _edition_label(name), 40)
    elif kind == "audio_codec":
        box = _box(pen, ((width - BOX_W) // 2, MARGIN, (width + BOX_W) // 2, MARGIN + BOX_H))
        _text(pen, box, AUDIO_LABELS.get(name, name), 50)
    else:
        _text(pen, _box(pen, (MARGIN, height - 30 - BOX_H, MARGIN + BOX_W, height - 30)), name, 56)


def _badges(pen: ImageDraw.ImageDraw, size: tuple[int, int], names: list[str]) -> None:
    kinds = {name: kind for name in names if (kind := kind_of(name))}
    dovetailed = {"resolution_dovetail", "edition_dovetail"} <= set(kinds.values())
    for name in sorted(kinds, key=lambda n: ORDER.index(kinds[n])):
        _badge(pen, size, name, kinds[name], dovetailed)


def canvas(poster: bytes, libtype: str) -> Image.Image:
    """The poster on Kometa's canvas for its kind of item."""
    size = EPISODE if libtype == "episode" else POSTER
    return Image.open(io.BytesIO(poster)).convert("RGB").resize(size)


def compose(poster: bytes, libtype: str, names: list[str]) -> Image.Image:
    """The poster with the default files' badges of `names` (names of no default file are left out), each back
    blended onto the poster where it is drawn."""
    image = canvas(poster, libtype)
    _badges(ImageDraw.Draw(image, "RGBA"), image.size, names)
    return image


#: The EXIF tag Kometa marks its overlaid posters with (it refuses to overlay a poster that carries it).
OVERLAY_EXIF = 0x04BC


def encode(image: Image.Image, filetype: str) -> bytes:
    """The poster as Kometa uploads it: marked as overlaid, in `overlay_artwork_filetype`."""
    exif = image.getexif()
    exif[OVERLAY_EXIF] = "overlay"
    out = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}[filetype]
    image.save(out, format=fmt, exif=exif, **({"quality": 95} if fmt != "PNG" else {}))
    return out.getvalue()
