"""report.html: the job's results for people — before and after side by side, per target.

Self-contained: inline CSS, images by relative path next to it, nothing fetched from the network,
so the output folder can be zipped, mailed or opened from a file share.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from PIL import Image

from .files import write_atomic
from .summary import Summary

STYLE = """
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;background:#111;color:#eee}
h1{font-size:1.4rem}table.counters{border-collapse:collapse;margin:1rem 0 2rem}
.counters td,.counters th{border:1px solid #444;padding:.3rem .7rem;text-align:left}
.target{border:1px solid #333;border-radius:8px;padding:1rem;margin:0 0 1.5rem}
.pair{display:flex;gap:1rem;flex-wrap:wrap}.pair figure{margin:0}.pair img{max-height:420px;max-width:45vw}
figcaption{color:#aaa;font-size:.85rem}.status{font-weight:bold;padding:.1rem .5rem;border-radius:4px}
.exported{background:#1b5e20}.missing,.failed{background:#b71c1c}.error{color:#ff8a80}
"""


def _image_info(path: Path) -> str:
    try:
        with Image.open(path) as image:
            width, height = image.size
        return f"{width}×{height}, {path.stat().st_size // 1024} KiB"
    except OSError:
        return "unreadable"


def _figure(output: Path, name: str | None, label: str) -> str:
    if not name:
        return f'<figure><figcaption>{label}: none</figcaption></figure>'
    return (f'<figure><img src="{escape(name)}" alt="{label}"><figcaption>{label} · {escape(name)} · '
            f'{_image_info(output / name)}</figcaption></figure>')


def render_html(output: Path, summary: Summary) -> str:
    mock = summary.mock_mode
    counters = [("Result", "success" if summary.success else "failed"),
                ("Kometa exit code", summary.kometa_exit_code),
                ("Mode", "mock library" if mock.enabled else "filter"),
                ("Mock listings answered", mock.mock_list_requests_count),
                ("Filtered listings", summary.filtering.filtered_requests_count),
                ("Answered with Plex's help (read-only)", summary.proxy.answered_with_plex),
                ("Blocked metadata requests", mock.blocked_metadata_count),
                ("Blocked writes", len(summary.blocked_write_attempts)),
                ("Captured uploads", summary.captured_uploads_count),
                ("Filter fallbacks to Plex", len(mock.filter_fallbacks)),
                ("Proxy errors", summary.proxy_errors)]
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>" for name, value in counters)
    targets = []
    for target_id, entry in summary.targets.items():
        title = escape(entry.title or target_id)
        error = f'<p class="error">{escape(entry.error)}</p>' if entry.error else ""
        targets.append(
            f'<section class="target" id="{escape(target_id)}"><h2>{title} <small>({escape(target_id)}, '
            f'{escape(entry.type)} {escape(entry.rating_key)})</small> '
            f'<span class="status {escape(entry.status)}">{escape(entry.status)}</span></h2>{error}'
            f'<div class="pair">{_figure(output, entry.before, "before")}'
            f'{_figure(output, entry.after, "after")}</div></section>')
    if summary.error:
        targets.insert(0, f'<p class="error">{escape(summary.error)}</p>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview report</title>'
            f'<style>{STYLE}</style></head><body><h1>kometa-preview · {escape(summary.timestamp)}</h1>'
            f'<table class="counters">{rows}</table>{"".join(targets)}</body></html>')


def write(output: Path, summary: Summary) -> Path:
    path = output / "report.html"
    write_atomic(path, render_html(output, summary))
    return path
