"""Request bodies judged by their decoded size, never by what they claim.

A 1.6 KB brotli body can decode to a gigabyte: decoding it whole (mitmproxy's `request.content`) to find
out is the exhaustion. Here each encoding in `Content-Encoding` is undone incrementally, and decoding stops
the moment the output would pass the limit, keeping nothing. No mitmproxy import: the codecs are the same
ones mitmproxy uses (zlib, brotli, zstd).
"""
from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import brotli

try:  # Python 3.14 has zstd in the standard library; mitmproxy depends on the backport before that.
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    from backports import zstd  # type: ignore[no-redef]

CHUNK = 64 << 10


class BodyError(ValueError):
    """The body cannot be accepted; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class TooLarge(BodyError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"decodes to more than {limit} bytes", 413)


def _zlib(wbits: int) -> Callable[[bytes, int], Iterator[bytes]]:
    def run(data: bytes, budget: int) -> Iterator[bytes]:
        decoder = zlib.decompressobj(wbits)
        pending = data
        while not decoder.eof:
            out = decoder.decompress(pending, min(CHUNK, budget + 1))
            pending = decoder.unconsumed_tail
            yield out
            if not out and not pending:
                raise BodyError("truncated compressed body", 400)
    return run


def _brotli(data: bytes, budget: int) -> Iterator[bytes]:
    decoder = brotli.Decompressor()
    yield decoder.process(data, output_buffer_limit=min(CHUNK, budget + 1))
    while not decoder.is_finished() and not decoder.can_accept_more_data():
        yield decoder.process(b"", output_buffer_limit=CHUNK)
    if not decoder.is_finished():
        raise BodyError("truncated brotli body", 400)


def _zstd(data: bytes, budget: int) -> Iterator[bytes]:
    decoder = zstd.ZstdDecompressor()
    yield decoder.decompress(data, max_length=min(CHUNK, budget + 1))
    while not decoder.eof and not decoder.needs_input:
        yield decoder.decompress(b"", max_length=CHUNK)


def _deflate_any(data: bytes, budget: int) -> Iterator[bytes]:
    """`deflate` is zlib-wrapped by the RFC and raw in practice; mitmproxy accepts both, and so do we."""
    try:
        yield from _zlib(zlib.MAX_WBITS)(data, budget)
    except zlib.error:
        yield from _zlib(-zlib.MAX_WBITS)(data, budget)


DECODERS: dict[str, Callable[[bytes, int], Iterator[bytes]]] = {
    "gzip": _zlib(16 + zlib.MAX_WBITS), "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate_any, "br": _brotli, "zstd": _zstd,
}


def decoded(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """`raw` with every `Content-Encoding` undone (last applied, first undone), at most `limit` bytes.

    Raises `TooLarge` (413) past the limit and `BodyError` (400 for a broken body, 415 for an unknown
    encoding). Nothing larger than `limit` plus one chunk is ever held.
    """
    data = raw
    for name in reversed([part.strip().lower() for part in content_encoding.split(",") if part.strip()]):
        if name == "identity":
            continue
        decoder = DECODERS.get(name)
        if decoder is None:
            raise BodyError(f"unknown Content-Encoding {name!r}", 415)
        out = bytearray()
        try:
            for piece in decoder(data, limit):
                out += piece
                if len(out) > limit:
                    raise TooLarge(limit)
        except (zlib.error, brotli.error, zstd.ZstdError) as exc:
            raise BodyError(f"broken {name} body ({exc})", 400) from None
        data = bytes(out)
    if len(data) > limit:
        raise TooLarge(limit)
    return data
