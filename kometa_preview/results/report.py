"""report.html: the job's results for people — what Kometa did to each target, before and after, and why not.

Self-contained: inline CSS and a few lines of inline script (the before/after slider), images by relative path
next to it, nothing fetched from the network, so the output folder can be zipped, mailed or opened from a file
share. A view of `Summary`, like summary.json.

It links only names of `names`' grammar (`<id>_before.<ext>`, `<id>_after.<ext>`: plain names of the output folder,
never `../x`, `/x` or `javascript:`), and shows an image only when `images.probe` opens it within its bounds:
otherwise the reason is written in its place.
"""
from __future__ import annotations

from html import escape
from pathlib import Path

from ..common import images, names
from .summary import Summary, TargetResult

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem;background:#111;color:#eee;max-width:1400px}
a{color:#8ab4f8}h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:0 0 .4rem}
.meta{color:#aaa;margin:0 0 1rem}
.problems{border-left:4px solid #f9a825;padding:.4rem 1rem;margin:1rem 0;background:#221d0f}
.problems li{margin:.2rem 0}table.counters{border-collapse:collapse;margin:.5rem 0 1rem}
.counters td,.counters th{border:1px solid #444;padding:.25rem .6rem;text-align:left}
.target{border:1px solid #333;border-radius:8px;padding:1rem;margin:0 0 1.5rem}
.status{font-weight:bold;padding:.1rem .5rem;border-radius:4px;font-size:.9rem}
.exported{background:#1b5e20}.unchanged{background:#455a64}.missing,.failed{background:#b71c1c}
.error{color:#ff8a80;white-space:pre-wrap}.overlays{color:#c5e1a5}
.compare{position:relative;display:inline-block;max-width:100%;line-height:0}
.compare img{max-height:480px;max-width:100%;display:block}
.compare .after{position:absolute;top:0;left:0;height:100%;overflow:hidden;border-right:2px solid #fff}
.compare .after img{height:100%;max-width:none}
.controls{margin:.5rem 0;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
.pair{display:flex;gap:1rem;flex-wrap:wrap}.pair figure{margin:0}.pair img{max-height:420px;max-width:45vw}
figcaption{color:#aaa;font-size:.85rem;line-height:1.4;margin-top:.3rem}
"""

SCRIPT = """
document.querySelectorAll('.slider').forEach(function(box){
  var range=box.querySelector('input[type=range]'),after=box.querySelector('.after'),
      img=box.querySelector('.before img');
  function set(v){after.style.width=v+'%';after.querySelector('img').style.width=img.clientWidth+'px';}
  range.addEventListener('input',function(){set(range.value)});
  box.querySelectorAll('button').forEach(function(b){b.addEventListener('click',function(){
    range.value=b.dataset.to;set(b.dataset.to)})});
  if(img.complete){set(range.value)}else{img.addEventListener('load',function(){set(range.value)})}
  window.addEventListener('resize',function(){set(range.value)});
});
"""

#: The job's own files, relative to output/ where report.html is.
LINKS = (("Kometa's output", "../logs/kometa.log"), ("Kometa's own log", "../kometa/logs/meta.log"),
         ("the proxy's log", "../logs/proxy.log"), ("this tool's log", "../logs/render.log"),
         ("every proxy decision", "../proxy_journal.jsonl"), ("summary.json", "summary.json"))


#: An image as the report shows it: (its link, or None when it is not shown; what to say about it).
Shown = tuple[str | None, str]


def _shown(output: Path, name: str | None, side: str) -> Shown:
    """(the link to an exported image or None, what to say about it). A link only for a name of the grammar whose
    file opens as an image within `images`' bounds."""
    if not name:
        return None, "none"
    if names.exported_target(name, side) is None:
        return None, f"not shown: {name!r} is not an image name of this folder"
    try:
        width, height = images.probe(output / name)
    except images.Unreadable as exc:
        return None, f"{name}: not shown, {exc}"
    return names.href(name), f"{name} · {width}×{height}, {(output / name).stat().st_size // 1024} KiB"


def _figure(shown: Shown, label: str) -> str:
    link, said = shown
    if link is None:
        return f"<figure><figcaption>{escape(label)}: {escape(said)}</figcaption></figure>"
    return (f'<figure><a href="{escape(link)}" title="full size"><img src="{escape(link)}" alt="{escape(label)}">'
            f'</a><figcaption>{escape(label)} · {escape(said)}</figcaption></figure>')


def _compare(before: Shown, after: Shown) -> str:
    """Before and after in one frame, a slider between them (and buttons for either whole), plus both as links.
    Both are shown (their links are not None)."""
    (before_link, before_said), (after_link, after_said) = before, after
    links = (f'<a href="{escape(before_link)}">before, full size</a> ({escape(before_said)}) · '
             f'<a href="{escape(after_link)}">after, full size</a> ({escape(after_said)})')
    return (f'<div class="slider"><div class="compare"><div class="before"><img src="{escape(before_link)}" '
            f'alt="before"></div><div class="after" style="width:50%"><img src="{escape(after_link)}" alt="after">'
            f'</div></div><div class="controls"><button type="button" data-to="0">before</button>'
            f'<input type="range" min="0" max="100" value="50" aria-label="before/after">'
            f'<button type="button" data-to="100">after</button><span>{links}</span></div></div>')


def _target(output: Path, target_id: str, entry: TargetResult) -> str:
    title = escape(entry.title or entry.kometa_title or target_id)
    key = f", ratingKey {escape(entry.rating_key)}" if entry.rating_key else ""
    head = (f'<h2>{title} <small>({escape(target_id)}, {escape(entry.type)}{key})</small> '
            f'<span class="status {escape(entry.status)}">{escape(entry.status)}</span></h2>')
    body = []
    if entry.overlays:
        label = "Overlays applied" if entry.status == "exported" else "Overlays attempted"
        body.append(f'<p class="overlays">{label}: {escape(", ".join(entry.overlays))}</p>')
    if entry.error:
        body.append(f'<p class="error">{escape(entry.error)}</p>')
    before, after = _shown(output, entry.before, "before"), _shown(output, entry.after, "after")
    if entry.status == "exported" and before[0] and after[0]:
        body.append(_compare(before, after))
    elif entry.status == "unchanged":
        body.append(f'<p>Kometa finished and applied no overlay to it: no overlay applies.</p>'
                    f'<div class="pair">{_figure(before, "before — no overlay applies")}</div>')
    else:
        body.append(f'<div class="pair">{_figure(before, "before")}{_figure(after, "after")}</div>')
    return f'<section class="target" id="{escape(target_id)}">{head}{"".join(body)}</section>'


def problems(summary: Summary) -> list[str]:
    """What went wrong or was refused, in words (also what the terminal says)."""
    found = []
    if summary.error:
        found.append(summary.error)
    if summary.outside_unreachable:
        found.append(f"No internet? Kometa's outside calls could not reach {', '.join(summary.outside_unreachable)}; "
                     "run with --offline to preview without them.")
    for item in summary.outside_data:
        found.append(f"{item.overlay or 'An overlay file'}: its data comes from "
                     f"{', '.join(item.hosts) or 'an outside service'}, which the preview could not read "
                     f"({item.error}).")
    if summary.proxy_errors:
        found.append(f"The proxy answered {summary.proxy_errors} requests with 502 after an internal error "
                     "(see the proxy's log).")
    if summary.side_doors.total:
        kinds = ", ".join(f"{kind} × {count}" for kind, count in summary.side_doors.by_kind.items())
        found.append(f"{summary.side_doors.total} attempts to reach past the preview were refused ({kinds}).")
    return found


def isolation_words(summary: Summary) -> str:
    """How Kometa was isolated, in words (README, "Why it is safe")."""
    used = summary.isolation
    if used.mode == "box":
        return "ran in its box (its own network, processes and read-only files)"
    if used.mode == "none":
        return f"not isolated: {used.problem}" if used.problem else "not isolated (--isolation none)"
    return "Kometa did not start"


def render_html(output: Path, summary: Summary) -> str:
    mock = summary.mock_mode
    statuses = [entry.status for entry in summary.targets.values()]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("exported", "unchanged", "failed", "missing")
                       if statuses.count(s))
    counters = [("Result", "success" if summary.success else "failed"),
                ("Kometa", f"{summary.kometa_version or 'version unknown'}, exit code {summary.kometa_exit_code}"),
                ("Kometa's box", isolation_words(summary)),
                ("Mode", "mock library" if mock.enabled else "filter"),
                ("Mock listings answered", mock.mock_list_requests_count),
                ("Filtered listings", summary.filtering.filtered_requests_count),
                ("Answered with Plex's help (read-only)", summary.proxy.answered_with_plex),
                ("Blocked metadata requests", mock.blocked_metadata_count),
                ("Blocked writes", len(summary.blocked_write_attempts)),
                ("Captured uploads", summary.captured_uploads_count),
                ("Filter fallbacks to Plex", len(mock.filter_fallbacks)),
                ("Proxy errors", summary.proxy_errors),
                *((f"Time: {name.replace('_', ' ')}", f"{seconds:g} s") for name, seconds in
                  summary.timings_seconds.items())]
    rows = "".join(f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>" for name, value in counters)
    errors = "".join(f"<tr><td>{item['count']}</td><td>{escape(str(item['message']))}</td></tr>"
                     for item in summary.kometa_errors)
    listed = problems(summary)
    problem_block = (f'<div class="problems"><strong>What went wrong or was refused</strong><ul>'
                     f'{"".join(f"<li>{escape(p)}</li>" for p in listed)}</ul></div>') if listed else ""
    links = " · ".join(f'<a href="{href}">{escape(name)}</a>' for name, href in LINKS)
    targets = "".join(_target(output, target_id, entry) for target_id, entry in summary.targets.items())
    title = f"kometa-preview · {summary.preview_yml} · {summary.timestamp[:16].replace('T', ' ')} UTC"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
            f'<h1>{escape(title)}</h1><p class="meta">{escape(counts)} · Kometa '
            f'{escape(summary.kometa_version or "version unknown")} · {links}</p>{problem_block}{targets}'
            f'<details><summary>Counters and timings</summary><table class="counters">{rows}</table></details>'
            + (f'<details><summary>Kometa\'s errors ({len(summary.kometa_errors)})</summary><table class="counters">'
               f'<tr><th>count</th><th>message</th></tr>{errors}</table></details>' if errors else "")
            + f"<script>{SCRIPT}</script></body></html>")
