"""Which poster is a target's clean original: its `input:` image, else Kometa's stored original, else Plex's.

Kometa refuses a poster whose EXIF says it already carries an overlay, and on a library where Kometa already
runs, Plex's current posters do; Kometa keeps the originals it overlaid at
`<config dir>/overlays/<Library> Original Posters/<ratingKey>.<ext>`. The proxy serves this poster to Kometa
(PosterSource), and export shows it as the "before" image of a target Kometa left alone — one rule for both.
No mitmproxy import.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from . import images

OVERLAY_EXIF_TAG = 0x04BC


@dataclass(frozen=True)
class Poster:
    data: bytes
    ext: str
    source: str          # input | kometa_original | plex

    @property
    def content_type(self) -> str:
        return images.BY_EXT[self.ext].content_type


def from_bytes(data: bytes, source: str) -> Poster | None:
    """A poster from image bytes (None when they are not a JPEG, PNG or WebP)."""
    fmt = images.sniff(data)
    return Poster(data, fmt.ext, source) if fmt else None


def has_overlay_mark(data: bytes) -> bool:
    """Kometa marks every poster it uploads with EXIF 0x04BC = "overlay"."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.getexif().get(OVERLAY_EXIF_TAG) == "overlay"
    except Exception:  # noqa: BLE001 - an unreadable image simply carries no mark
        return False


def stored_original(config_file: Path | None, library: str, rating_key: str) -> Path | None:
    """Kometa's own copy of the poster it overlaid, beside the user's Kometa config."""
    if config_file is None:
        return None
    folder = config_file.parent / "overlays" / f"{library} Original Posters"
    for ext in ("jpg", "png", "webp"):
        candidate = folder / f"{rating_key}.{ext}"
        if candidate.is_file():
            return candidate
    return None


def local_original(input_image: Path | None, config_file: Path | None, library: str,
                   rating_key: str) -> Poster | None:
    """The clean original when it is on this machine (`input:`, then Kometa's stored original); None means Plex's
    own poster is the one to use."""
    if input_image is not None:
        return from_bytes(input_image.read_bytes(), "input")
    original = stored_original(config_file, library, rating_key)
    return from_bytes(original.read_bytes(), "kometa_original") if original is not None else None
