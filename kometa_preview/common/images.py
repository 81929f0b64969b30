"""Image formats as Plex and Kometa see them (recognised by magic bytes, never by a name or a header), and the one
way the preview opens an image: as untrusted input.

One table for the whole project: config checks `input:` images with it, the proxy decides what an
upload or a served poster is, and the sample server answers uploads the way Plex does.

Every image the preview opens came from Plex, from Kometa or from a job folder someone else made: a PNG whose header
says 30,000 × 30,000 pixels decodes to 2.7 GB from a few kilobytes, a truncated JPEG fails halfway, and Pillow
raises a dozen types for broken files (`DecompressionBombError` is not an `OSError`). `probe` and `decode` are the
only openers (export, report, contact sheet, diff): JPEG, PNG and WebP only, never through a symbolic link or a
FIFO, at most `MAX_PIXELS` by the header before a byte is decoded, and every failure is `Unreadable` with the
reason in words, so the caller marks that one image and goes on.

Memory bound: an image is decoded whole only up to `MAX_PIXELS` (4 bytes a pixel: 160 MB); `decode(budget=…)`
reduces a larger one to the budget (JPEGs already while decoding), and only one decode over its budget runs at a
time in a process, so a process decoding in N threads holds at most about 2 × 160 MB for the large one plus N
images of its budget.
"""
from __future__ import annotations

import io
import math
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: The most pixels (width × height, read from the header) of an image the preview decodes. An 8K frame is 33 MP;
#: Kometa's posters are 1–6 MP. Pillow's own bomb limit warns at 89 MP and refuses at 179 MP.
MAX_PIXELS = 40_000_000


@dataclass(frozen=True)
class ImageFormat:
    name: str          # Pillow's format name
    ext: str           # the extension files of this format get
    content_type: str


JPEG = ImageFormat("JPEG", "jpg", "image/jpeg")
PNG = ImageFormat("PNG", "png", "image/png")
WEBP = ImageFormat("WEBP", "webp", "image/webp")
FORMATS = (JPEG, PNG, WEBP)
BY_EXT = {f.ext: f for f in FORMATS}


def sniff(data: bytes) -> ImageFormat | None:
    """The format by magic bytes: JPEG, PNG or WebP, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None


class Unreadable(Exception):
    """An image the preview will not or cannot open; its text is the reason, in words."""


_guard = threading.Lock()
_large = threading.BoundedSemaphore(1)
_pillow_ready = False


def _pillow():
    """Pillow, imported here and not at the top (the render's path to Kometa's start never decodes an image), with
    its decompression-bomb warning made an error in this process: an image that large is refused, not decoded."""
    global _pillow_ready
    from PIL import Image
    with _guard:
        if not _pillow_ready:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            _pillow_ready = True
    return Image


def _handle(source: Path | bytes) -> BinaryIO:
    """The bytes to read: a regular file opened without following a symbolic link (and without waiting on a FIFO),
    or bytes in memory."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise Unreadable(f"cannot be opened ({exc.strerror or exc})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unreadable("is not a regular file")
    return os.fdopen(fd, "rb")


def _reason(exc: Exception) -> str:
    """What went wrong, in words. Pillow raises a dozen types for broken files (OSError, ValueError, SyntaxError,
    struct.error, EOFError…; its bomb error is none of them), so every `Exception` is caught where it decodes."""
    Image = _pillow()
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        return f"a decompression bomb ({exc})"
    text = str(exc) or type(exc).__name__
    return f"not a readable image ({text})"


def _opened(handle: BinaryIO, formats: list[str], max_pixels: int) -> PILImage:
    Image = _pillow()
    try:
        image = Image.open(handle, formats=formats)
    except Exception as exc:  # noqa: BLE001 - see _reason
        raise Unreadable(_reason(exc)) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise Unreadable(f"{width}×{height} pixels, over the preview's bound of {max_pixels:,} (a decompression "
                         "bomb, or far larger than a poster)")
    return image


def probe(source: Path | bytes, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(width, height) of a JPEG, PNG or WebP, read from its header; nothing is decoded. Raises `Unreadable`."""
    with _handle(source) as handle, _opened(handle, [f.name for f in FORMATS], max_pixels) as image:
        return image.size


def decode(source: Path | bytes, *, mode: str = "RGB", budget: int | None = None) -> PILImage:
    """The image decoded into `mode`; with `budget`, reduced by a whole factor to at most that many pixels (a JPEG
    already while it is decoded, at 1/2, 1/4 or 1/8). Raises `Unreadable`: over `MAX_PIXELS`, a bomb, truncated,
    not a JPEG/PNG/WebP. At most one image over its budget is decoded at a time in this process."""
    with _handle(source) as handle:
        image = _opened(handle, [f.name for f in FORMATS], MAX_PIXELS)
        width, height = image.size
        factor = max(1, math.ceil(math.sqrt(width * height / budget))) if budget else 1
        if factor == 1:
            return _load(image, mode)
        with _large:
            if image.format == JPEG.name:
                image.draft(mode, (width // factor, height // factor))  # Pillow decodes at 1/2, 1/4 or 1/8
            return _load(image, mode, math.ceil(image.size[0] * factor / width))


def _load(image: PILImage, mode: str, factor: int = 1) -> PILImage:
    """Decode `image` (opened by `_opened`), reduce it by `factor`, convert it to `mode`; the opened one is closed
    when another is returned."""
    try:
        image.load()
        result = image
        if factor > 1:
            result = (result if result.mode in _REDUCIBLE else result.convert(mode)).reduce(factor)
        if result.mode != mode:
            result = result.convert(mode)
    except Exception as exc:  # noqa: BLE001 - see _reason
        image.close()
        raise Unreadable(_reason(exc)) from None
    if result is not image:
        image.close()
    return result


#: Modes `Image.reduce` takes as they are (a palette image is converted first).
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "I", "F"})


def decodes(data: bytes, fmt: ImageFormat) -> bool:
    """Does the whole image decode as the format its magic bytes claim, within `MAX_PIXELS`? (A truncated or
    polyglot body does not, nor a bomb: it is kept for debugging, never passed off as a poster.)"""
    try:
        image = _opened(io.BytesIO(data), [fmt.name], MAX_PIXELS)
        _load(image, image.mode).close()
        return True
    except Unreadable:
        return False
