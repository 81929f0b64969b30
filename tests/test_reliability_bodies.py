"""Hostile upload bodies through a live proxy: oversized, truncated, polyglot, odd multipart. Nothing is
forwarded, nothing lands outside the job folder, and what is not a complete image is kept for debugging."""
from __future__ import annotations

import io
import os
import socket

import pytest
import requests
from conftest import movie_targets
from PIL import Image

pytestmark = pytest.mark.e2e
LIMIT = 2 << 20


def image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 96), (10, 120, 240)).save(buffer, format=fmt)
    return buffer.getvalue()


def multipart(parts: list[tuple[str, bytes, str]], boundary: str = "xYz") -> tuple[bytes, str]:
    body = b""
    for filename, data, content_type in parts:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
                 f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


CASES = {
    "truncated JPEG": (image("JPEG")[:300], ""),
    "truncated PNG": (image("PNG")[:80], ""),
    "truncated WebP": (image("WEBP")[:40], ""),
    "JPEG magic + PHP (polyglot)": (b"\xff\xd8\xff\xe0<?php system($_GET['c']); ?>", ""),
    "PNG header + HTML (polyglot)": (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", ""),
    "GIF (not a poster format)": (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", ""),
    "multipart without an image": multipart([("notes.txt", b"hello", "text/plain")]),
    "multipart with 500 parts, image last": multipart([(f"p{n}.txt", b"x", "text/plain") for n in range(499)]
                                                      + [("poster.png", image("PNG"), "image/png")]),
    "multipart with a traversal filename": multipart([("../../../../tmp/evil.png", image("PNG"), "image/png")]),
    "multipart with an absolute filename": multipart([("/etc/cron.d/evil", image("JPEG"), "image/jpeg")]),
    "raw body of zeros": (b"\0" * 100_000, ""),
}


def test_hostile_bodies_are_answered_locally_and_kept_safely(sample_plex_factory, proxy_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=10, shows=0)
    proxy = proxy_factory(server, movie_targets([1001]), max_upload=LIMIT)
    server.log.clear()
    before = set(os.listdir("/tmp"))
    for name, (data, content_type) in CASES.items():
        headers = {"X-Plex-Token": proxy.client_token, **({"Content-Type": content_type} if content_type else {})}
        response = requests.post(f"{proxy.url}/library/metadata/1001/posters", data=data, headers=headers, timeout=30)
        assert response.status_code == 200, name
    output = proxy.layout.output
    captured = sorted(p.name for p in (output / "by_ratingkey").iterdir())
    kept = list((output / "captured_requests").iterdir())
    # The two multiparts holding a complete image are captures (their filenames are ignored); the 500-part one
    # is past capture's part limit (64) and, like every other body, is kept for debugging.
    assert len(captured) == 2 and all(n.startswith("1001_poster_") for n in captured)
    assert len(kept) == len(CASES) - 2
    assert all(p.resolve().is_relative_to(proxy.layout.root.resolve()) for p in proxy.layout.root.rglob("*"))
    assert set(os.listdir("/tmp")) - before <= {p for p in set(os.listdir("/tmp")) - before if p.startswith("pytest")}
    assert not (tmp_path / "evil.png").exists() and not os.path.exists("/tmp/evil.png")
    assert server.log.changes() == []
    evidence("Hostile bodies", "truncated JPEG/PNG/WebP, polyglots (JPEG+PHP, PNG+HTML), GIF, multipart with no "
             "image / 500 parts / traversal and absolute filenames, 100 KB of zeros", len(CASES),
             f"all answered 200 locally; {len(captured)} complete images captured under by_ratingkey/, "
             f"{len(kept)} bodies kept in captured_requests/; nothing written outside the job folder; 0 writes at Plex")


def raw_post(port: int, headers: list[str], body: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(("POST /library/metadata/1001/posters HTTP/1.1\r\nHost: plex\r\nConnection: close\r\n"
                            + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode())
        connection.settimeout(5)
        try:
            connection.sendall(body)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the proxy answered 413 and stopped reading the body; its answer is waiting
        connection.settimeout(30)
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    break  # the whole answer is in; the proxy may still be draining our body
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def test_uploads_over_the_limit_are_refused_and_never_forwarded(sample_plex_factory, proxy_factory, evidence):
    server = sample_plex_factory(movies=10, shows=0)
    proxy = proxy_factory(server, movie_targets([1001]), max_upload=LIMIT)
    server.log.clear()
    def chunked(data: bytes) -> bytes:
        return b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n"
                        for c in (data[i:i + 65536] for i in range(0, len(data), 65536))) + b"0\r\n\r\n"

    token = f"X-Plex-Token: {proxy.client_token}"
    just_over = b"\xff\xd8\xff" + b"\0" * (LIMIT + 1024)
    far_over = b"\xff\xd8\xff" + b"\0" * (3 * LIMIT)
    answers = [raw_post(proxy.port, [token, f"Content-Length: {len(just_over)}"], just_over),
               raw_post(proxy.port, [token, "Transfer-Encoding: chunked"], chunked(just_over)),
               raw_post(proxy.port, [token, "Transfer-Encoding: chunked"], chunked(far_over))]
    assert all(a.startswith(b"HTTP/1.1 413") for a in answers), [a[:40] for a in answers]
    assert proxy.alive() and server.log.changes() == []
    assert not (proxy.layout.by_ratingkey).exists()
    evidence("Hostile bodies", f"uploads over the {LIMIT >> 20} MiB limit: declared, chunked just over, chunked 3× "
             "over", 3, "413 every time (a declared length is refused before the body is read; a chunked one by "
             "its size, or by mitmproxy's body_size_limit); nothing saved, nothing forwarded")
