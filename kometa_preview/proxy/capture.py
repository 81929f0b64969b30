"""Pull an image out of an upload body and save it atomically.

Kometa (through plexapi) uploads the raw image bytes with no Content-Type; other clients send
multipart/form-data. Images are recognised by magic bytes and must decode completely: a truncated
or polyglot body is kept under `captured_requests/` for debugging, never passed off as a poster.

Multipart bodies are split with the standard library's email parser, not mitmproxy's
`multipart.decode_multipart`: that one splits the body into lines and joins them back without their line
breaks, which corrupts any binary part (a JPEG holds 0x0a and 0x0d bytes).
"""
from __future__ import annotations

import email.parser
import email.policy
from pathlib import Path

from ..common import images
from ..common.files import save_new
from ..common.job import CaptureName

MAX_PARTS = 64


def find_image(body: bytes, content_type: str) -> tuple[bytes, str] | None:
    """The first complete image in a raw or multipart body, as (bytes, extension)."""
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
        fmt = images.sniff(data)
        if fmt and images.decodes(data, fmt):
            return data, fmt.ext
    return None


def save(folder: Path, name: CaptureName, data: bytes) -> Path:
    """Write a capture under its name (numbered when taken), complete or not at all."""
    return save_new(folder, lambda attempt: name.numbered(attempt).name, data)
