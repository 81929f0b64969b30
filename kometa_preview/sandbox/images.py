"""Posters for the sample library: real images, distinct per item, drawn on demand.

Drawn lazily (and cached) so a 100,000-item library starts instantly. Every third item gets a PNG,
the rest JPEG, so clients meet both content types.
"""
from __future__ import annotations

import functools
import hashlib
import io

from PIL import Image, ImageDraw, ImageFont

POSTER_SIZE = (400, 600)
STILL_SIZE = (640, 360)


def poster_format(rating_key: int) -> str:
    return "png" if rating_key % 3 == 0 else "jpeg"


def content_type(fmt: str) -> str:
    return {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}[fmt]


@functools.lru_cache(maxsize=1024)
def render_poster(rating_key: int, title: str, kind: str) -> tuple[bytes, str]:
    """The item's own poster: a colour from its ratingKey, its title and key written across its middle, where
    Kometa's badges (in the corners and along the edges) leave them readable."""
    digest = hashlib.sha256(f"{rating_key}:{kind}".encode()).digest()
    size = STILL_SIZE if kind == "episode" else POSTER_SIZE
    image = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    draw = ImageDraw.Draw(image)
    stripe = (255 - digest[0], 255 - digest[1], 255 - digest[2])
    draw.rectangle((0, size[1] * 2 // 3, size[0], size[1] * 2 // 3 + 24), fill=stripe)
    font = ImageFont.load_default(size=28)
    middle = size[1] * 2 // 5
    draw.text((size[0] // 2, middle), title, fill=(255, 255, 255), font=font, anchor="mm")
    draw.text((size[0] // 2, middle + 40), f"#{rating_key}", fill=(255, 255, 255), font=font, anchor="mm")
    fmt = poster_format(rating_key)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt.upper(), **({"quality": 85} if fmt == "jpeg" else {}))
    return buffer.getvalue(), content_type(fmt)


def sniff(body: bytes) -> str | None:
    """Image content type by magic bytes, as Plex decides what an upload is."""
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    return None


def resize(body: bytes, width: int, height: int) -> tuple[bytes, str]:
    """What `/photo/:/transcode` does: scale to fit, answer JPEG."""
    image = Image.open(io.BytesIO(body)).convert("RGB")
    image.thumbnail((max(width, 1), max(height, 1)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), "image/jpeg"
