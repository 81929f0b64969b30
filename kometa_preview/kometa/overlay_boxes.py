"""Where Kometa draws an overlay: its box on Kometa's canvas (1000×1500 for posters, 1920×1080 for episodes' title
cards; x, y the top-left corner), worked out from the overlay's final attributes as Kometa's log states them
(overlay_log.py) the way Kometa's own code places it (modules/overlay.py: `Overlay.__init__` reads the attributes,
`get_backdrop` and `get_coordinates` place the back, the text and the image; modules/overlays.py pastes them).

The box covers everything the overlay draws: its back (a rectangle from `back_padding` outside its start to
`back_width`/`back_height` — or the content's size — plus the padding, both ends included as Pillow draws them;
left out when its colours are fully transparent), its image (scaled as Kometa scales it) and its text (measured as
Kometa measures it: Pillow's `textbbox` with anchor `lt` and Kometa's own font file, plus the stroke). An image
overlay without offsets covers the whole canvas (Kometa stretches it over the poster), and so does a blur.

What cannot be placed is None (docs/BOXES.md): an overlay placed by a queue (Kometa does not log the queue's
positions), a text whose words come from the item (`text(<<audience_rating>>)`: Kometa does not log the words it
drew) unless its back has a fixed width and height, an image or font this machine cannot read.

`place` is pure: what it needs of files (an image's size, a text's extent) it asks of a `Measure`; `KometaFiles`
is the one that reads Kometa's own folder with Pillow.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .overlay_log import OverlayLog

PORTRAIT = (1000, 1500)
LANDSCAPE = (1920, 1080)
#: Kometa's canvas per item type (`overlay.get_canvas_size`: episodes are landscape, the rest portrait).
CANVAS = {"movie": PORTRAIT, "show": PORTRAIT, "season": PORTRAIT, "episode": LANDSCAPE}
#: Kometa's default font (modules/overlay.py) and size.
DEFAULT_FONT = "fonts/Roboto-Medium.ttf"
DEFAULT_FONT_SIZE = 36


@dataclass(frozen=True)
class Box:
    """A rectangle of canvas pixels: x, y its top-left corner."""
    x: int
    y: int
    w: int
    h: int

    def union(self, other: Box | None) -> Box:
        if other is None:
            return self
        x, y = min(self.x, other.x), min(self.y, other.y)
        return Box(x, y, max(self.x + self.w, other.x + other.w) - x, max(self.y + self.h, other.y + other.h) - y)

    def clipped(self, canvas: tuple[int, int]) -> Box:
        """The part on the canvas (Pillow draws nothing beyond it: a back's far edge may be one pixel past it)."""
        x, y = max(self.x, 0), max(self.y, 0)
        return Box(x, y, max(min(self.x + self.w, canvas[0]) - x, 0), max(min(self.y + self.h, canvas[1]) - y, 0))

    def intersects(self, other: Box) -> bool:
        return (self.x < other.x + other.w and other.x < self.x + self.w
                and self.y < other.y + other.h and other.y < self.y + self.h)


class Measure(Protocol):
    """What placing an overlay needs of files."""

    def image(self, spec: ImageSpec) -> tuple[int, int] | None:
        """The overlay image's size in pixels, before Kometa scales it (None: not found or not readable)."""

    def text(self, font: str, size: int, style: str | None, text: str) -> tuple[int, int, int, int] | None:
        """Pillow's `textbbox((0, 0), text, anchor="lt")` with that font (None: the font cannot be read)."""


@dataclass(frozen=True)
class ImageSpec:
    """Where Kometa takes an overlay's image from: `default` (its own defaults/overlays/images/), `file` (a path),
    `downloaded` (git/repo/url: saved in the library's overlay folder under the overlay's name), `named` (an
    image of that name in the overlay folder)."""
    kind: str
    value: str


class Unplaced(ValueError):
    """Attributes Kometa would refuse, or a box this module cannot know."""


def _offset(value: Any) -> int | str | None:
    """`util.parse_cords`' offset: a whole number, or `n%`."""
    if value is None:
        return None
    text = str(value)
    if text.endswith("%"):
        return f"{int(text[:-1])}%"
    return int(text)


def _colour_visible(value: Any) -> bool | None:
    """Whether Kometa draws with this colour (None: no colour given). Its alpha decides."""
    if not value:
        return None
    from PIL import ImageColor
    try:
        return ImageColor.getcolor(str(value), "RGBA")[3] > 0  # type: ignore[index]
    except ValueError as exc:
        raise Unplaced(f"colour {value!r}") from exc


def _int(attributes: dict[str, Any], key: str, default: int) -> int:
    value = attributes.get(key)
    return default if value is None or value == "" else int(str(value))


def _image_spec(attributes: dict[str, Any], name: str) -> ImageSpec | None:
    """Where the overlay's image comes from (`Overlay.__init__`), None for a text without an image, a backdrop or
    a blur."""
    if name.startswith(("blur", "backdrop")):
        return None
    git = str(attributes.get("git") or "")
    default = attributes.get("default") or attributes.get("pmm") or (git[4:] if git.startswith("PMM/") else None)
    if default:
        path = str(default)[16:] if str(default).startswith("overlays/images/") else str(default)
        return ImageSpec("default", path if path.endswith(".png") else f"{path}.png")
    if attributes.get("file"):
        return ImageSpec("file", str(attributes["file"]))
    if git or attributes.get("repo") or attributes.get("url"):
        return ImageSpec("downloaded", f"{name}.png")
    return None if name.startswith("text") else ImageSpec("named", f"{name}.png")


def _scaled(size: tuple[int, int], attributes: dict[str, Any]) -> tuple[int, int]:
    """The image's size after `scale_width`/`scale_height` (`n` pixels or `n%`), as Kometa resizes it."""
    base_w, base_h = size

    def parse(key: str, base: int) -> int | None:
        value = attributes.get(key)
        if value is None:
            return None
        text = str(value)
        return int(base * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    width, height = parse("scale_width", base_w), parse("scale_height", base_h)
    if not width and not height:
        return size
    if height and not width:
        width = int(base_w * height / base_h)
    if width and not height:
        height = int(base_h * width / base_w)
    return int(width or 0), int(height or 0)


@dataclass(frozen=True)
class Overlay:
    """The attributes of Kometa's `Overlay` that place it, read as its `__init__` reads them."""
    name: str
    horizontal: tuple[int | str | None, str | None]
    vertical: tuple[int | str | None, str | None]
    back: tuple[int, int]                 # back_width, back_height (-1: not given)
    back_align: str
    back_padding: int
    back_visible: bool | None             # None: no back; False: a back Kometa draws fully transparent
    has_back_box: bool
    image: ImageSpec | None
    font: str
    font_size: int
    font_style: str | None
    stroke_width: int
    addon: tuple[int, str]                # addon_offset, addon_position

    @classmethod
    def of(cls, attributes: dict[str, Any]) -> Overlay:
        """Raises `Unplaced` for attributes Kometa would refuse (it would have logged an error instead)."""
        try:
            name = str(attributes["name"])
            back = (_int(attributes, "back_width", -1), _int(attributes, "back_height", -1))
            fill = _colour_visible(attributes.get("back_color"))
            line = _colour_visible(attributes.get("back_line_color"))
            line = line and _int(attributes, "back_line_width", 1) > 0
            return cls(name=name, horizontal=(_offset(attributes.get("horizontal_offset")),
                                              attributes.get("horizontal_align")),
                       vertical=(_offset(attributes.get("vertical_offset")), attributes.get("vertical_align")),
                       back=back, back_align=str(attributes.get("back_align") or "center"),
                       back_padding=_int(attributes, "back_padding", 0),
                       back_visible=None if fill is None and line is None else bool(fill or line),
                       has_back_box=name == "backdrop" or back[0] >= 0 or back[1] >= 0,
                       image=_image_spec(attributes, name), font=str(attributes.get("font") or DEFAULT_FONT),
                       font_size=_int(attributes, "font_size", DEFAULT_FONT_SIZE),
                       font_style=attributes.get("font_style") or None,
                       stroke_width=_int(attributes, "stroke_width", 0),
                       addon=(_int(attributes, "addon_offset", 0), str(attributes.get("addon_position") or "left")))
        except (KeyError, TypeError, ValueError) as exc:
            raise Unplaced(f"attributes Kometa would refuse ({exc})") from exc

    @property
    def has_coordinates(self) -> bool:
        return self.horizontal[0] is not None and self.vertical[0] is not None

    @property
    def text(self) -> str | None:
        """The words of a `text(…)` overlay (None: not a text overlay)."""
        return self.name[5:-1] if self.name.startswith("text(") and self.name.endswith(")") else None


def _cord(value: int | str | None, canvas: int, size: int, align: str | None) -> int:
    """`get_coordinates`' `get_cord`."""
    offset = int(canvas * 0.01 * int(value[:-1])) if isinstance(value, str) else int(value or 0)
    if align in ("right", "bottom"):
        return canvas - size - offset
    if align == "center":
        return int(canvas / 2) - int(size / 2) + offset
    return offset


def start(overlay: Overlay, canvas: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """`get_coordinates`: where the overlay's box (its back's, when it has a back size) starts."""
    if not overlay.has_coordinates:
        return 0, 0
    if overlay.has_back_box:
        box = (overlay.back[0] if overlay.back[0] >= 0 else box[0], overlay.back[1] if overlay.back[1] >= 0 else box[1])
    return (_cord(overlay.horizontal[0], canvas[0], box[0], overlay.horizontal[1]),
            _cord(overlay.vertical[0], canvas[1], box[1], overlay.vertical[1]))


def _content(overlay: Overlay, image: tuple[int, int] | None, text: tuple[int, int, int, int] | None
             ) -> tuple[int, int]:
    """`get_backdrop`'s box: the text's extent (Kometa takes textbbox's right and bottom as its size), the image's,
    or both beside or above each other."""
    if text is None:
        return image if image is not None else overlay.back  # a backdrop: its own size (-1: not given)
    width, height = text[2], text[3]
    if image is None:
        return width, height
    offset, position = overlay.addon
    if position in ("left", "right"):
        return width + image[0] + offset, max(height, image[1])
    return max(width, image[0]), height + image[1] + offset


#: Kometa's old names of special texts (`overlay.old_special_text`): their words come from the item too.
_OLD_SPECIAL = tuple(f"{attribute}{mod}" for attribute in ("audience_rating", "critic_rating", "user_rating")
                     for mod in ("", "0", "%", "#"))


def _back(overlay: Overlay, begin: tuple[int, int], size: tuple[int, int]) -> Box | None:
    """The back's rectangle as Pillow draws it (both corners included), None when it draws nothing visible."""
    if not overlay.back_visible:
        return None
    pad = overlay.back_padding
    x0, y0 = begin[0] - pad, begin[1] - pad
    x1, y1 = begin[0] + size[0] + pad, begin[1] + size[1] + pad
    return Box(x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _addon(overlay: Overlay, main: list[float], text: tuple[int, int, int, int], image: tuple[int, int]
           ) -> tuple[float, float]:
    """`get_backdrop`'s addon step: where a text's image goes, moving the text beside or below it (`main`)."""
    offset, position = overlay.addon
    width, height = text[2], text[3]
    addon = [main[0], main[1]]
    if position == "left":
        main[0] += image[0] + offset
    elif position == "right":
        addon[0] = main[0] + width + offset
    elif width < image[0]:
        main[0] += (image[0] - width) / 2
    elif width > image[0]:
        addon[0] = main[0] + (width - image[0]) / 2
    if position == "top":
        main[1] += image[1] + offset
    elif position == "bottom":
        addon[1] = main[1] + height + offset
    elif height < image[1]:
        main[1] += (image[1] - height) / 2
    elif height > image[1]:
        addon[1] = main[1] + (height - image[1]) / 2
    return addon[0], addon[1]


def drawn(overlay: Overlay, canvas: tuple[int, int], image: tuple[int, int] | None,
          text: tuple[int, int, int, int] | None) -> Box:
    """`get_backdrop` followed by the paste of the image (modules/overlays.py), as boxes instead of pixels: what the
    overlay draws, given its image's size and its text's extent."""
    content = _content(overlay, image, text)
    back = [overlay.back[n] if overlay.back[n] >= 0 else (canvas[n] if overlay.name == "backdrop" else content[n])
            for n in (0, 1)] if overlay.has_back_box else list(content)
    begin = start(overlay, canvas, content)
    main: list[float] = [begin[0], begin[1]]
    parts: list[Box | None] = []
    image_at: tuple[float, float] = (main[0], main[1])
    if text is not None or overlay.back_visible is not None:
        parts.append(_back(overlay, begin, (back[0], back[1])))
        if overlay.has_back_box:
            align = overlay.back_align
            if align in ("left", "right", "center", "bottom"):
                main[1] = begin[1] + (back[1] - content[1]) // (1 if align == "bottom" else 2)
            if align in ("top", "bottom", "center", "right"):
                main[0] = begin[0] + (back[0] - content[0]) // (1 if align == "right" else 2)
        image_at = (main[0], main[1])
        if text is not None and image is not None:
            image_at = _addon(overlay, main, text, image)
        if text is not None:
            x, y, stroke = int(main[0]), int(main[1]), overlay.stroke_width
            parts.append(Box(x + text[0] - stroke, y + text[1] - stroke, text[2] - text[0] + 2 * stroke,
                             text[3] - text[1] + 2 * stroke))
    if image is not None:
        parts.append(Box(int(image_at[0]), int(image_at[1]), image[0], image[1]))
    found = [part for part in parts if part is not None]
    if not found:
        raise Unplaced("it draws nothing visible")
    box = found[0]
    for part in found[1:]:
        box = box.union(part)
    return box


def place(attributes: dict[str, Any], canvas: tuple[int, int], measure: Measure, *, scales: bool = True) -> Box:
    """The box of the overlay with these attributes (Kometa's `Value:` of `Validating Method: overlay`) on a canvas
    of this size, the part on the canvas (`scales`: this Kometa reads `scale_width`/`scale_height`; 2.0 did not).
    Raises `Unplaced` with the reason when it cannot be known."""
    box = _unclipped(attributes, canvas, measure, scales).clipped(canvas)
    if not box.w or not box.h:
        raise Unplaced("it draws nothing on the canvas")
    return box


def _unclipped(attributes: dict[str, Any], canvas: tuple[int, int], measure: Measure, scales: bool) -> Box:
    if attributes.get("queue"):
        raise Unplaced("a queue places it, and Kometa does not log the queue's positions")
    overlay = Overlay.of(attributes)
    whole = Box(0, 0, canvas[0], canvas[1])
    if overlay.name.startswith("blur"):
        return whole
    if overlay.name == "backdrop":  # Kometa places a backdrop without offsets at 0, 0
        return drawn(replace(overlay, horizontal=(overlay.horizontal[0] or 0, overlay.horizontal[1]),
                             vertical=(overlay.vertical[0] or 0, overlay.vertical[1])), canvas, None, None)
    image = None
    if overlay.image is not None:
        found = measure.image(overlay.image)
        if found is None:
            raise Unplaced(f"its image ({overlay.image.kind}: {overlay.image.value}) cannot be read here")
        image = _scaled(found, attributes) if scales else found
    words = overlay.text
    if words is None:
        return drawn(overlay, canvas, image, None) if overlay.has_coordinates else whole
    if "<<" in words or words in _OLD_SPECIAL:
        if overlay.back_visible and overlay.back[0] >= 0 and overlay.back[1] >= 0:
            return _back(overlay, start(overlay, canvas, overlay.back), overlay.back) or whole
        raise Unplaced("its words come from the item, and Kometa does not log the words it drew")
    extent = measure.text(overlay.font, overlay.font_size, overlay.font_style, words)
    if extent is None:
        raise Unplaced(f"its font {overlay.font!r} cannot be read here")
    return drawn(overlay, canvas, image, extent)


class KometaFiles:
    """A `Measure` over Kometa's own files: its defaults' images (`<kometa>/defaults/overlays/images/`), the images
    it saved in the library's overlay folder (`<config dir>/overlays/`), the user's files, its fonts. Paths that are
    not absolute are Kometa's: relative to its folder, its working directory."""

    def __init__(self, kometa_folder: Path, overlay_folder: Path) -> None:
        self.kometa_folder, self.overlay_folder = kometa_folder, overlay_folder
        self._images: dict[ImageSpec, tuple[int, int] | None] = {}

    def _path(self, spec: ImageSpec) -> Path:
        if spec.kind == "default":
            return self.kometa_folder / "defaults" / "overlays" / "images" / spec.value
        if spec.kind == "file":
            return self.kometa_folder / os.path.expanduser(spec.value)
        return self.overlay_folder / spec.value

    def image(self, spec: ImageSpec) -> tuple[int, int] | None:
        """Its size from the image's header (Pillow opens it lazily: no pixel is decoded)."""
        if spec not in self._images:
            from PIL import Image, UnidentifiedImageError
            try:
                with Image.open(self._path(spec)) as image:
                    self._images[spec] = image.size
            except (OSError, UnidentifiedImageError, ValueError):
                self._images[spec] = None
        return self._images[spec]

    def font_path(self, font: str) -> Path | None:
        """`Overlay.__init__`'s font: the path as given (relative to Kometa's folder), else one of Kometa's fonts by
        name. A system font Kometa would find by name is not looked for (None)."""
        for candidate in (self.kometa_folder / font, self.kometa_folder / "fonts" / font):
            if candidate.is_file():
                return candidate
        return None

    def text(self, font: str, size: int, style: str | None, text: str) -> tuple[int, int, int, int] | None:
        from PIL import Image, ImageDraw, ImageFont
        path = self.font_path(font)
        if path is None:
            return None
        try:
            loaded = ImageFont.truetype(str(path), size)
            if style:
                loaded.set_variation_by_name(style)
            left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (0, 0))).textbbox(
                (0, 0), text, font=loaded, anchor="lt")
        except (OSError, ValueError):
            return None
        return int(left), int(top), int(right), int(bottom)


def canvas_of(level: str | None) -> tuple[int, int]:
    """The canvas of a definition's level (None: its library's own, movies or shows: portrait)."""
    return CANVAS.get(level or "movie", PORTRAIT)


def placements(log: OverlayLog, measure: Measure, version: str | None = None) -> dict[tuple[str, str], Box | str]:
    """Each definition that found items, by (library, Kometa's name): its box, or why it has none. `version`:
    Kometa's (2.0 scaled no image)."""
    scales = not (version or "").startswith("2.0.")
    placed: dict[tuple[str, str], Box | str] = {}
    for definition in log.definitions:
        if not definition.found or not definition.kometa_name or definition.attributes is None:
            continue
        try:
            placed[(definition.library, definition.kometa_name)] = place(
                definition.attributes, canvas_of(definition.level), measure, scales=scales)
        except Unplaced as exc:
            placed[(definition.library, definition.kometa_name)] = str(exc)
    return placed
