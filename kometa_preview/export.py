"""After Kometa: map captured uploads to targets and write the results.

Mapping is by ratingKey (seed): for each target, its captures, `poster` preferred over other kinds,
the newest winning; copied to `output/<id>_after.<ext>` (and the target's `output:`). The poster the
proxy served to Kometa becomes `output/<id>_before.<ext>`. `summary.json` holds every seed field,
a per-target section, and the counters, all read from the proxy's journal.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import report
from .config import PreviewConfig
from .outside_policy import Refusal
from .proxy import journal
from .proxy.setup import JOURNAL_FILE

log = logging.getLogger("kometa_preview.export")
KIND_PREFERENCE = ("poster", "thumb", "art", "square_art", "logo", "unknown")


@dataclass(frozen=True)
class Outcome:
    summary: dict[str, Any]
    exit_code: int
    summary_path: Path


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def copy_atomic(source: Path, destination: Path) -> None:
    """Copy so that `destination` is either the old file or the complete new one."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".partial-", suffix=destination.suffix)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, ensure_ascii=False)
        out.write("\n")
    os.replace(temporary, path)


def output_path(requested: Path, ext: str) -> Path:
    """A target's `output:` path, with the extension of the image Kometa really made."""
    same = requested.suffix.lower().lstrip(".") in ({"jpg", "jpeg"} if ext == "jpg" else {ext})
    return requested if same else requested.with_suffix(f".{ext}")


def choose_capture(captures: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Poster before any other kind; among equals the newest (journal time, then file name)."""
    usable = [c for c in captures if Path(c["saved"]).is_file()]
    if not usable:
        return None
    rank = {kind: n for n, kind in enumerate(KIND_PREFERENCE)}
    best_kind = min(rank.get(c["kind"], len(rank)) for c in usable)
    same_kind = [c for c in usable if rank.get(c["kind"], len(rank)) == best_kind]
    return max(same_kind, key=lambda c: (c["t"], Path(c["saved"]).name))


_CAPTURE_NAME = re.compile(r"(?P<rk>\d+)_(?P<kind>[a-z_]+?)_(?P<stamp>\d{8}_\d{6}_\d{6})(?:_\d+)?\.(?P<ext>jpg|png|webp)")


def captures_on_disk(folder: Path, recorded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Captures the journal missed (it could not be appended, e.g. on a full disk), read from their names."""
    known = {Path(r["saved"]).name for r in recorded}
    found = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        match = _CAPTURE_NAME.fullmatch(path.name)
        if match and path.name not in known:
            stamp = datetime.strptime(match["stamp"], "%Y%m%d_%H%M%S_%f").timestamp()
            found.append({"t": stamp, "rating_key": match["rk"], "kind": match["kind"], "ext": match["ext"],
                          "bytes": path.stat().st_size, "saved": str(path), "recovered_from_disk": True})
    return found


def _proxy_figures(by_event: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """What the proxy cost and did: its own CPU and memory, and how requests were answered."""
    done = next(iter(by_event.get("PROXY_DONE", [])), {})
    flows = by_event.get("FLOW", [])
    upstream = {"ALLOW_FORWARD", "PASS_THROUGH", "FILTER_LIST", "FILTER_CHILDREN", "UPSTREAM_STATUS",
                "FILTER_PARSE_ERROR"}
    return {"cpu_seconds": done.get("cpu_seconds"), "peak_rss_mib": done.get("peak_rss_mib"),
            "upstream_requests": done.get("upstream_requests"), "upstream_bytes": done.get("upstream_bytes"),
            "requests": len(flows),
            "answered_with_plex": sum(1 for f in flows if f.get("verdict") in upstream),
            "answered_locally": sum(1 for f in flows if f.get("verdict") not in upstream)}


def _why_missing(rating_key: str, missing_items: set[str], overlaid: set[str]) -> dict[str, str]:
    if rating_key in missing_items:
        return {"status": "missing", "error": f"MISSING_ITEM: Plex has no item with ratingKey {rating_key}"}
    if rating_key in overlaid:
        return {"status": "failed", "error": "OVERLAID_POSTER: Plex's poster already carries a Kometa overlay and "
                                             "Kometa refused it; give the target an input: image or set "
                                             "kometa.config so the stored original is used"}
    return {"status": "missing", "error": "MISSING_CAPTURE: Kometa uploaded no poster for this item"}


def _export_target(target, entry: dict[str, Any], output: Path, source: dict[str, Any] | None,
                   chosen: dict[str, Any] | None) -> None:
    """Copy the before image and the chosen capture to `<id>_before`/`<id>_after` (and `output:`)."""
    if source and Path(source["saved"]).is_file():
        before = output / f"{target.id}_before{Path(source['saved']).suffix}"
        copy_atomic(Path(source["saved"]), before)
        entry.update(before=before.name, poster_source=source["source"])
    if chosen is None:
        return
    after = output / f"{target.id}_after.{chosen['ext']}"
    copy_atomic(Path(chosen["saved"]), after)
    entry.update(after=after.name, kind=chosen["kind"], bytes=chosen["bytes"])
    if target.output is not None:
        destination = output_path(target.output, chosen["ext"])
        copy_atomic(after, destination)
        entry["output"] = str(destination)


#: Refused attempts to leave the preview by another door than the reverse proxy's reads: the outside-calls
#: port towards Plex, an address or a host not allowed, a write, raw TCP; and on the reverse door, a client
#: without the job token, oversized headers or bodies, side-effecting or unknown GETs. (`--offline` refusals
#: are expected and are not counted here.)
SIDE_DOOR_EVENTS = (*(r.value for r in Refusal if r is not Refusal.OFFLINE), "UNAUTHORIZED_CLIENT",
                    "HEADERS_TOO_LARGE", "UPLOADS_BUSY", "UPLOAD_TOO_LARGE", "UPLOAD_UNDECODABLE", "SLOW_REQUEST",
                    "BLOCKED_SIDE_EFFECT", "BLOCKED_UNKNOWN")


def side_doors(by_event: dict[str, list[dict]]) -> dict:
    """How many side-door attempts were refused, by kind, and the outside hosts they were aimed at."""
    by_kind = {event: len(by_event[event]) for event in SIDE_DOOR_EVENTS if by_event.get(event)}
    hosts: dict[str, int] = {}
    for event in SIDE_DOOR_EVENTS:
        for record in by_event.get(event, []):
            if record.get("host"):
                hosts[record["host"]] = hosts.get(record["host"], 0) + 1
    return {"total": sum(by_kind.values()), "by_kind": by_kind, "hosts": hosts}


def collect(config: PreviewConfig, job: Path, *, kometa_exit_code: int | None, error: str | None = None,
            interrupted: bool = False, started: float | None = None,
            timings: dict[str, float] | None = None, reserve: Path | None = None) -> Outcome:
    """Map captures to targets and write the results. `reserve` is a file holding back disk space: it is
    deleted just before summary.json is written, so a full disk still gets its summary."""
    records = journal.read(job / JOURNAL_FILE)
    output = job / "output"
    output.mkdir(parents=True, exist_ok=True)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_event.setdefault(record["event"], []).append(record)
    start = next(iter(by_event.get("PROXY_START", [])), {})
    mock = bool(start.get("mock_library", True))
    missing_items = {r["rating_key"] for r in by_event.get("MISSING_ITEM", [])}
    overlaid = {r["rating_key"] for r in by_event.get("OVERLAID_POSTER", [])}
    sources = {r["rating_key"]: r for r in by_event.get("POSTER_SOURCE", [])}
    captures = by_event.get("CAPTURED_UPLOAD", [])
    captures = captures + captures_on_disk(output / "by_ratingkey", captures)

    targets: dict[str, dict[str, Any]] = {}
    exported: dict[str, str] = {}
    missing: list[str] = []
    for target in config.targets:
        entry: dict[str, Any] = {"rating_key": target.rating_key, "type": target.type, "title": target.title,
                                 "status": "exported", "before": None, "after": None, "error": None}
        try:
            _export_target(target, entry, output, sources.get(target.rating_key),
                           choose_capture([c for c in captures if c["rating_key"] == target.rating_key]))
        except OSError as exc:
            entry.update(status="failed", after=None,
                         error=f"EXPORT_ERROR: could not write the results ({exc.strerror or exc})")
            log.error("EXPORT_ERROR target=%s: %s", target.id, exc)
        if entry["after"]:
            exported[target.id] = str(output / entry["after"])
        else:
            missing.append(target.id)
            if not entry["error"]:
                entry.update(_why_missing(target.rating_key, missing_items, overlaid))
                log.error("MISSING_CAPTURE ratingKey=%s target=%s", target.rating_key, target.id)
        targets[target.id] = entry

    kometa_ok = kometa_exit_code == 0 and not error and not interrupted
    success = kometa_ok and not missing
    blocked = [{"method": r["method"], "path": r["path"], "timestamp": _iso(r["t"]), "rating_key": r.get("rating_key"),
                "kind": r.get("kind"), "content_length": r.get("content_length"),
                **({"url": r["url"]} if r.get("url") else {})}
               for r in by_event.get("BLOCKED_WRITE", []) + by_event.get("UPLOAD_TOO_LARGE", [])]
    mock_lists = [{"path": r["path"], "type": "listing", "returned_items": r["returned_items"],
                   "timestamp": _iso(r["t"])} for r in by_event.get("MOCK_LIST", [])]
    filtered = [{"path": r["path"], "items_before": r["items_before"], "items_after": r["items_after"],
                 "removed": r["removed"], "timestamp": _iso(r["t"])} for r in by_event.get("FILTER_LIST", [])]
    forwarded = [r for r in by_event.get("FLOW", []) if r.get("verdict") in ("ALLOW_FORWARD", "PASS_THROUGH",
                                                                               "POSTER_SOURCE")]
    learned = sorted({r["rating_key"] for r in by_event.get("LEARNED_PARENT", [])})
    summary = {
        "timestamp": _iso(started or (records[0]["t"] if records else datetime.now().timestamp())),
        "success": success,
        "interrupted": interrupted,
        "error": error,
        "kometa_exit_code": kometa_exit_code,
        "blocked_write_attempts": blocked,
        "blocked_side_effects_count": len(by_event.get("BLOCKED_SIDE_EFFECT", [])),
        "blocked_unknown_count": len(by_event.get("BLOCKED_UNKNOWN", [])),
        "captured_uploads": [{"rating_key": c["rating_key"], "kind": c["kind"], "bytes": c["bytes"],
                              "saved_path": str(Path(c["saved"]).relative_to(output))
                              if Path(c["saved"]).is_relative_to(output) else c["saved"],
                              "timestamp": _iso(c["t"])} for c in captures],
        "captured_uploads_count": len(captures),
        "successful_captures_count": len(exported),
        "unparsed_uploads_count": len(by_event.get("CAPTURE_PARSE_ERROR", [])),
        "exported_files": exported,
        "missing_targets": missing,
        "output_files": [],
        "targets": targets,
        "mock_mode": {
            "enabled": mock,
            "mock_list_requests": mock_lists,
            "mock_list_requests_count": len(mock_lists),
            "forward_requests_count": len(forwarded),
            "blocked_metadata_count": len(by_event.get("BLOCK_METADATA", [])),
            "learned_parent_keys": learned,
            "filter_fallbacks": [{"path": r["path"], "reason": r["reason"], "timestamp": _iso(r["t"])}
                                 for r in by_event.get("FILTER_FALLBACK", [])],
        },
        "filtering": {
            "enabled": not mock,
            "allowed_rating_keys": [t.rating_key for t in config.targets],
            "allowed_count": len(config.targets),
            "filtered_requests": filtered,
            "filtered_requests_count": len(filtered),
        },
        "outside_calls": {name.lower(): len(by_event.get(name, [])) for name in
                          ("OUTSIDE_PASS", "OFFLINE_VERSION", "OFFLINE_TMDB_CONFIGURATION", "OFFLINE_ANIME_IDS",
                           *(refusal.value for refusal in Refusal))},
        "side_doors": side_doors(by_event),
        "unauthorized_client_requests": len(by_event.get("UNAUTHORIZED_CLIENT", [])),
        "timings_seconds": timings or {},
        "proxy": _proxy_figures(by_event),
        "proxy_errors": len(by_event.get("PROXY_ERROR", [])) + sum(1 for r in by_event.get("FLOW", [])
                                                                   if r.get("verdict") == "PROXY_ERROR"),
    }
    if reserve is not None:
        reserve.unlink(missing_ok=True)
    try:
        report.write(output, summary)
    except OSError as exc:
        log.error("REPORT_ERROR could not write report.html: %s", exc.strerror or exc)
    summary["output_files"] = sorted(p.name for p in output.iterdir() if p.is_file() and not p.name.startswith("."))
    summary["output_files"] += [] if "summary.json" in summary["output_files"] else ["summary.json"]
    write_json_atomic(output / "summary.json", summary)
    exit_code = 130 if interrupted else (0 if success else 1)
    return Outcome(summary, exit_code, output / "summary.json")
