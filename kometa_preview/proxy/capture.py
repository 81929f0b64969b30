"""Pull an image out of an upload body and save it atomically.

Kometa (through plexapi) uploads the raw image bytes with no Content-Type; other clients send
multipart/form-data. Images are recognised by magic bytes and must decode completely: a truncated
or polyglot body is kept under `captured_requests/` for debugging, never passed off as a poster.
"""
from __future__ import annotations

import email.parser
import email.policy
import io
import os
import tempfile
from datetime import datetime
from pathlib import Path

from PIL import Image

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_PARTS = 64


def sniff(data: bytes) -> str | None:
    """The image format by magic bytes: JPEG, PNG or WebP, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def decodes(data: bytes, fmt: str) -> bool:
    """Does the whole image decode as the format its magic bytes claim?"""
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            image.load()
        return True
    except Exception:  # noqa: BLE001 - Pillow raises many types for broken images
        return False


def find_image(body: bytes, content_type: str) -> tuple[bytes, str] | None:
    """The first image in a raw or multipart body, as (bytes, extension)."""
    candidates: list[bytes] = []
    if content_type.lower().startswith("multipart/"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + body)
        if message.is_multipart():
            for count, part in enumerate(message.iter_parts()):
                if count >= MAX_PARTS:
                    break
                candidates.append(part.get_payload(decode=True) or b"")
    else:
        candidates.append(body)
    for data in candidates:
        fmt = sniff(data)
        if fmt and decodes(data, fmt):
            return data, EXTENSIONS[fmt]
    return None


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d_%H%M%S_%f")


def save_atomic(folder: Path, stem: str, ext: str, data: bytes) -> Path:
    """Write `folder/stem.ext` so it is either absent or complete; never overwrite an earlier file."""
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=f".{ext}")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        for attempt in range(1000):
            final = folder / (f"{stem}.{ext}" if attempt == 0 else f"{stem}_{attempt}.{ext}")
            try:
                os.link(temporary, final)
            except FileExistsError:
                continue
            return final
        raise FileExistsError(f"{folder / stem}.{ext}")
    finally:
        os.unlink(temporary)
