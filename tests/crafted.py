"""Crafted inputs for the tests of what the preview reads back: job folders, summary.json documents and images made
by hand the way an attacker (or a broken machine) would make them, plus the CLI run as a user runs it."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

CLI = [sys.executable, "-m", "kometa_preview"]


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG whose header says width × height RGB pixels, with a few compressed rows of zeros as its data: a few
    hundred bytes that would decode to width × height × 3 bytes (30,000²: 2.7 GB)."""
    rows = zlib.compressobj(9)
    data = b"".join(rows.compress(b"\0" * (1 + width * 3)) for _ in range(4)) + rows.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def poster(path: Path, colour=(40, 60, 80), size=(200, 300), box=None, fmt: str | None = None) -> Path:
    image = Image.new("RGB", size, colour)
    if box:
        ImageDraw.Draw(image).rectangle(box, fill=(255, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt or ("JPEG" if path.suffix == ".jpg" else "PNG"))
    return path


def truncated_jpeg(path: Path) -> Path:
    whole = poster(path.with_suffix(".whole.jpg"), size=(400, 600)).read_bytes()
    path.with_suffix(".whole.jpg").unlink()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def target_entry(status: str = "exported", before: str | None = None, after: str | None = None,
                 title: str = "x", **extra) -> dict:
    return {"rating_key": "1", "type": "movie", "title": title, "status": status, "overlays": [],
            "kometa_title": title, "candidates": [], "before": before, "after": after, "error": None,
            "poster_source": "plex", "kind": None, "bytes": None, "output": None, **extra}


def summary_document(targets: dict[str, dict], **extra) -> dict:
    """A summary.json with every field `Summary.to_json` writes."""
    return {"timestamp": "2024-01-01T00:00:00.000000Z", "preview_yml": "preview.yml", "success": True,
            "interrupted": False, "error": None, "kometa_exit_code": 0, "kometa_version": "2.4.4",
            "kometa_errors": [], "outside_data": [], "outside_unreachable": {}, "blocked_write_attempts": [],
            "blocked_side_effects_count": 0, "blocked_unknown_count": 0, "captured_uploads": [],
            "captured_uploads_count": 0, "successful_captures_count": 0, "unparsed_uploads_count": 0,
            "exported_files": {}, "missing_targets": [], "targets": targets,
            "mock_mode": {"enabled": True, "mock_list_requests": [], "mock_list_requests_count": 0,
                          "forward_requests_count": 0, "blocked_metadata_count": 0, "learned_parent_keys": [],
                          "filter_fallbacks": []},
            "filtering": {"enabled": False, "allowed_rating_keys": [], "allowed_count": 0, "filtered_requests": [],
                          "filtered_requests_count": 0},
            "outside_calls": {}, "side_doors": {"total": 0, "by_kind": {}, "hosts": {}},
            "unauthorized_client_requests": 0, "timings_seconds": {},
            "proxy": {"cpu_seconds": None, "peak_rss_mib": None, "upstream_requests": None, "upstream_bytes": None,
                      "requests": 0, "answered_with_plex": 0, "answered_locally": 0},
            "proxy_errors": 0, "unknown_events": [], "output_files": [], **extra}


def shard(job: Path, name: str, targets: dict[str, dict], document: dict | None = None) -> Path:
    """`<job>/shards/<name>/output/` holding summary.json (from `targets`, or `document` as it is) and a poster for
    every plain before/after name the targets give. Returns the output folder."""
    output = job / "shards" / name / "output"
    output.mkdir(parents=True, exist_ok=True)
    for entry in targets.values():
        for side in ("before", "after"):
            named = entry.get(side)
            if isinstance(named, str) and "/" not in named and ":" not in named:
                poster(output / named, (30, 90, 200) if side == "after" else (40, 60, 80))
    body = document if document is not None else summary_document(targets)
    (output / "summary.json").write_text(body if isinstance(body, str) else json.dumps(body))
    return output


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder` (not following links): file contents, or where a link points."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = f"-> {path.readlink()}"
        elif path.is_file():
            found[key] = path.read_bytes()
    return found
