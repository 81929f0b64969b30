"""Image formats as Plex and Kometa see them: recognised by magic bytes, never by a name or a header.

One table for the whole project: config checks `input:` images with it, the proxy decides what an
upload or a served poster is, and the sample server answers uploads the way Plex does.
"""
from __future__ import annotations

import io
from dataclasses import dataclass


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


def decodes(data: bytes, fmt: ImageFormat) -> bool:
    """Does the whole image decode as the format its magic bytes claim? (A truncated or polyglot body
    does not: it is kept for debugging, never passed off as a poster.)"""
    from PIL import Image  # here, not at the top: the render's path to Kometa's start never decodes an image
    try:
        with Image.open(io.BytesIO(data), formats=[fmt.name]) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - Pillow raises many types for broken images
        return False
