"""report.html: the job's results for people — what Kometa did to each target, before and after, where each overlay
is, and why not.

A grid of cards, one per target: its poster with a before/after slider (before left of the divider, after right,
each labelled), the overlays by their own names with their file as a second label, their boxes drawn on hover (and
on a hovered name), one warning when two overlap, and "why not …?": each overlay that matched but was not applied,
with Kometa's reason, then every other definition of its library and level by the reason it did not match. A click
on a poster opens it full size. The header links the job's logs (each shard's, for a merged dry run) — only those
that exist.

Self-contained: inline CSS and a few lines of inline script, images by relative path next to it, nothing fetched from
the network, so the output folder can be zipped, mailed or opened from a file share. A view of `Summary`, like
summary.json. It links only names of `names`' grammar (`<id>_before.<ext>`, `<id>_after.<ext>`: plain names of the
output folder, never `../x`, `/x` or `javascript:`) and the job's own files checked one folder entry at a time
(`names.entry`), and shows an image only when `images.probe` opens it within its bounds: otherwise the reason is
written in its place.
"""
from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path

from ..common import images, names
from ..common.job import CONTACT, SHARDS, SUMMARY
from ..kometa.overlay_boxes import CANVAS, PORTRAIT
from ..kometa.overlay_names import parse
from .outcomes import OverlayBox, OverlayLabel
from .summary import Summary, TargetResult

STYLE = """
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
a{color:#8ab4f8}h1{font-size:1.35rem;margin:0 0 .3rem;overflow-wrap:anywhere}h2{font-size:1.05rem;margin:0}
.meta{color:#aaa;margin:0 0 1rem;overflow-wrap:anywhere}.links span{white-space:nowrap}
.problems{border-left:4px solid #f9a825;padding:.4rem 1rem;margin:1rem 0;background:#221d0f;overflow-wrap:anywhere}
.problems li{margin:.2rem 0}table.counters{border-collapse:collapse;margin:.5rem 0 1rem}
.counters td,.counters th{border:1px solid #444;padding:.25rem .6rem;text-align:left;overflow-wrap:anywhere}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:1rem;margin:0 0 1.5rem}
.target{background:#1b1b1b;border:1px solid #333;border-radius:8px;padding:.7rem;min-width:0}
.head{display:flex;gap:.5rem;align-items:baseline;justify-content:space-between}
.sub{color:#999;font-size:.8rem;margin:.1rem 0 .5rem;overflow-wrap:anywhere}
.status{font-weight:bold;padding:.05rem .45rem;border-radius:4px;font-size:.8rem;white-space:nowrap}
.exported{background:#1b5e20}.unchanged{background:#455a64}.missing,.failed{background:#b71c1c}
.error{color:#ff8a80;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.85rem}
.warn{color:#ffcc80;font-size:.85rem;overflow-wrap:anywhere}
.overlays{list-style:none;padding:0;margin:.5rem 0;display:flex;flex-wrap:wrap;gap:.3rem}
.overlays li{background:#263238;border-radius:4px;padding:.1rem .4rem;font-size:.8rem;cursor:default}
.overlays li small,.why small{color:#9e9e9e}.overlays li.hot{outline:2px solid #ffd54f}
.frame{position:relative;line-height:0;cursor:zoom-in;background:#000;border-radius:4px;overflow:hidden}
.frame>img{width:100%;display:block}
.frame .before{position:absolute;inset:0;width:100%;height:100%;object-fit:fill;clip-path:inset(0 50% 0 0)}
.divider{position:absolute;top:0;bottom:0;left:50%;width:2px;margin-left:-1px;background:#fff;pointer-events:none}
.tag{position:absolute;top:.4rem;font:bold 11px/1 system-ui,sans-serif;background:#000b;color:#fff;padding:.25rem .4rem;
 border-radius:3px;pointer-events:none}.tag.l{left:.4rem}.tag.r{right:.4rem}
.boxes{position:absolute;inset:0;opacity:0;transition:opacity .15s;pointer-events:none}
.frame:hover .boxes,.show-boxes .boxes{opacity:1}
.box{position:absolute;border:2px solid #ffd54f;box-shadow:0 0 0 1px #000a}.box.hot{border-color:#ff5252}
.box span{position:absolute;left:0;top:100%;font:11px/1.2 system-ui,sans-serif;background:#000c;color:#ffd54f;
 padding:1px 3px;white-space:nowrap}
.controls{display:flex;gap:.4rem;align-items:center;margin:.4rem 0}.controls input{flex:1;min-width:0}
.controls button{font-size:.8rem}
.files{font-size:.8rem;color:#aaa;overflow-wrap:anywhere;margin:.3rem 0}
.why{font-size:.85rem;margin:.4rem 0}.why summary{cursor:pointer;color:#c5e1a5}
.why ul{padding-left:1.1rem;margin:.3rem 0}.why li{overflow-wrap:anywhere;margin:.15rem 0}
#full{position:fixed;inset:0;background:#111;display:none;padding:1rem;overflow:auto;z-index:9}
#full.open{display:block}#full .close{position:sticky;top:0;float:right;font-size:1.6rem;cursor:pointer;background:none;
 color:#fff;border:0}#full .frame{max-width:min(100%,calc((100vh - 7rem) * var(--ratio)));margin:0 auto;cursor:default}
#full .controls{max-width:40rem;margin:.6rem auto}
@media (max-width:600px){body{margin:.7rem}.grid{grid-template-columns:1fr}}
"""

SCRIPT = """
function wire(root){
  root.querySelectorAll('.slider').forEach(function(box){
    var range=box.querySelector('input[type=range]'),before=box.querySelector('.before'),
        line=box.querySelector('.divider');
    function set(v){if(before){before.style.clipPath='inset(0 '+(100-v)+'% 0 0)'}if(line){line.style.left=v+'%'}}
    if(range){range.addEventListener('input',function(){set(range.value)});set(range.value)}
    box.querySelectorAll('button[data-to]').forEach(function(b){b.addEventListener('click',function(){
      range.value=b.dataset.to;set(b.dataset.to)})});
  });
  root.querySelectorAll('.overlays li[data-box]').forEach(function(li){
    var card=li.closest('.target'),box=card&&card.querySelector('.box[data-n="'+li.dataset.box+'"]');
    function hot(on){li.classList.toggle('hot',on);if(box){box.classList.toggle('hot',on);
      card.querySelector('.frame').classList.toggle('show-boxes',on)}}
    li.addEventListener('mouseenter',function(){hot(true)});li.addEventListener('mouseleave',function(){hot(false)});
  });
}
wire(document);
var full=document.getElementById('full');
document.querySelectorAll('.grid .frame').forEach(function(frame){frame.addEventListener('click',function(){
  var card=frame.closest('.target'),body=full.querySelector('.body');
  body.innerHTML='';body.appendChild(card.querySelector('.head').cloneNode(true));
  body.appendChild(card.querySelector('.slider').cloneNode(true));
  var files=card.querySelector('.files');if(files){body.appendChild(files.cloneNode(true))}
  body.querySelector('.frame').classList.add('show-boxes');wire(body);full.classList.add('open');
})});
full.querySelector('.close').addEventListener('click',function(){full.classList.remove('open')});
document.addEventListener('keydown',function(e){if(e.key==='Escape'){full.classList.remove('open')}});
"""

#: The job's own files, relative to its folder (output/ is where the pages are).
JOB_FILES = (("Kometa's output", ("logs", "kometa.log")), ("Kometa's own log", ("kometa", "logs", "meta.log")),
             ("the proxy's log", ("logs", "proxy.log")), ("this tool's log", ("logs", "render.log")),
             ("every proxy decision", ("proxy_journal.jsonl",)))


#: An image as the report shows it: (its link, or None when it is not shown; what to say about it).
Shown = tuple[str | None, str]


def plural(count: int, word: str) -> str:
    """`1 item`, `2 items`."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _exists(folder: Path, parts: Iterable[str]) -> bool:
    """Whether `folder/…parts` is a regular file reached through plain entries, no symbolic link on the way."""
    try:
        *dirs, last = parts
        for part in dirs:
            found = names.entry(folder, part, kind="dir")
            if found is None:
                return False
            folder = found
        return names.entry(folder, last, kind="file") is not None
    except (names.UnsafeName, OSError):
        return False


def job_links(output: Path) -> list[tuple[str, str]]:
    """(label, link) of the job's own files that exist, relative to `output`: the job's logs and journal, and for a
    merged dry run each shard's (`shards/<round>-<n>/…`); the summary, and the contact sheet of a merged job."""
    job, links = output.parent, []
    for label, parts in JOB_FILES:
        if _exists(job, parts):
            links.append((label, names.href("../" + "/".join(parts))))
    shards = job / SHARDS
    found = sorted((number, path.name) for path in (shards.iterdir() if _is_dir(job, SHARDS) else ())
                   if (number := names.shard_folder(path.name)) is not None)
    for _, shard in found:
        for label, parts in JOB_FILES:
            if _exists(shards, (shard, *parts)):
                links.append((f"shard {shard}: {label}", names.href(f"../{SHARDS}/{shard}/" + "/".join(parts))))
    if found:
        links.append(("contact sheet", CONTACT))
    return [*links, ("summary.json", SUMMARY)]


def _is_dir(folder: Path, name: str) -> bool:
    try:
        return names.entry(folder, name, kind="dir") is not None
    except (names.UnsafeName, OSError):
        return False


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


def label_html(label: OverlayLabel | OverlayBox) -> str:
    """An overlay's own name, its file as the second label."""
    file = f" <small>{escape(label.file)}</small>" if label.file else ""
    return f"<b>{escape(label.display_name)}</b>{file}"


def canvas_of(entry: TargetResult) -> tuple[int, int]:
    return CANVAS.get(entry.type, PORTRAIT)


def boxes_html(entry: TargetResult) -> str:
    """The target's boxes over its poster, in percent of Kometa's canvas (any displayed size of the after-image)."""
    width, height = canvas_of(entry)
    drawn = "".join(
        f'<div class="box" data-n="{n}" style="left:{box.x / width:.3%};top:{box.y / height:.3%};'
        f'width:{box.w / width:.3%};height:{box.h / height:.3%}" title="{escape(box.display_name)}">'
        f'<span>{escape(box.display_name)}</span></div>' for n, box in enumerate(entry.boxes))
    return f'<div class="boxes">{drawn}</div>'


def _frame(entry: TargetResult, before: Shown, after: Shown) -> str:
    """The poster: after and before in one frame with a divider (before to its left), labelled, with the boxes and a
    slider; or the one image there is."""
    width, height = canvas_of(entry)
    ratio = f"{width / height:.4f}"
    if before[0] and after[0]:
        return (f'<div class="slider"><div class="frame" style="--ratio:{ratio}" title="full size">'
                f'<img src="{escape(after[0])}" alt="after"><img class="before" src="{escape(before[0])}" alt="before">'
                f'<div class="divider"></div>{boxes_html(entry)}<span class="tag l">before</span>'
                f'<span class="tag r">after</span></div><div class="controls"><button type="button" data-to="100">'
                f'before</button><input type="range" min="0" max="100" value="50" aria-label="before (left) / after '
                f'(right)"><button type="button" data-to="0">after</button></div></div>')
    side, shown = ("after", after) if after[0] else ("before", before)
    if shown[0] is None:
        return ""
    tag = "before — no overlay applies" if entry.status == "unchanged" else side
    return (f'<div class="slider"><div class="frame" style="--ratio:{ratio}" title="full size">'
            f'<img src="{escape(shown[0])}" alt="{side}">{boxes_html(entry) if side == "after" else ""}'
            f'<span class="tag l">{escape(tag)}</span></div></div>')


def _files(before: Shown, after: Shown) -> str:
    parts = [f'<a href="{escape(link)}">{side}, full size</a> ({escape(said)})' if link else f"{side}: {escape(said)}"
             for side, (link, said) in (("before", before), ("after", after)) if link or said != "none"]
    return f'<p class="files">{" · ".join(parts)}</p>' if parts else ""


def why_not(entry: TargetResult) -> str:
    """"why not …?": each overlay that matched but was not applied, with Kometa's reason; then every other
    definition of the target's library and level, grouped by why it did not match."""
    lost = [c for c in entry.considered if c.matched and not c.applied]
    missed: dict[str, list[str]] = {}
    for c in entry.considered:
        if not c.matched:
            missed.setdefault(c.reason or "no reason logged", []).append(c.display_name)
    if not lost and not missed:
        return ('<p class="why">Kometa built no overlay for its level (an overlay file\'s <code>builder_level</code> '
                'decides it).</p>') if entry.status == "unchanged" and not entry.considered else ""
    if lost:
        more = f" and {plural(len(lost) - 1, 'other')}" if len(lost) > 1 else ""
        question = f"why not {lost[0].display_name}{more}?"
    else:
        question = "why not the other overlays?" if entry.overlays else "why no overlay?"
    items = "".join(f"<li>{label_html(c)}: {escape(c.reason or '')}</li>" for c in lost)
    others = "".join(f"<li>{escape(', '.join(shown))} <small>— {escape(reason)}</small></li>"
                     for reason, shown in missed.items())
    count = sum(len(shown) for shown in missed.values())
    rest = (f"<details><summary>{plural(count, 'other overlay')} did not match</summary><ul>{others}</ul></details>"
            if others else "")
    return f'<details class="why"><summary>{escape(question)}</summary><ul>{items}</ul>{rest}</details>'


def _overlays(entry: TargetResult) -> str:
    """The applied (or attempted) overlays by their own names, the file second; a hovered one shows its box."""
    if not entry.overlay_labels and not entry.overlays:
        return ""
    labels = entry.overlay_labels or [OverlayLabel(name, parse(name).display, None) for name in entry.overlays]
    boxes = {box.overlay: n for n, box in enumerate(entry.boxes)}
    queued = {c.overlay: c.reason for c in entry.considered if c.applied and c.reason}
    said = "Overlays applied" if entry.status == "exported" else "Overlays attempted"
    chips = "".join(
        f'<li{_data_box(boxes.get(label.overlay))}'
        f' title="{escape(entry.unplaced.get(label.overlay) or queued.get(label.overlay) or label.overlay)}">'
        f"{label_html(label)}</li>" for label in labels)
    return f'<p class="sub">{said}:</p><ul class="overlays">{chips}</ul>'


def _data_box(n: int | None) -> str:
    return f' data-box="{n}"' if n is not None else ""


def _target(output: Path, target_id: str, entry: TargetResult) -> str:
    title = escape(entry.title or entry.kometa_title or target_id)
    key = f" · ratingKey {escape(entry.rating_key)}" if entry.rating_key else ""
    before, after = _shown(output, entry.before, "before"), _shown(output, entry.after, "after")
    body = [f'<div class="head"><h2>{title}</h2><span class="status {escape(entry.status)}">{escape(entry.status)}'
            f'</span></div><p class="sub">{escape(target_id)} · {escape(entry.type)}{key}</p>',
            _frame(entry, before, after), _overlays(entry)]
    if entry.overlap_warning:
        body.append(f'<p class="warn">⚠ {escape(entry.overlap_warning)}</p>')
    if entry.error:
        body.append(f'<p class="error">{escape(entry.error)}</p>')
    elif entry.status == "unchanged":
        body.append("<p class=\"sub\">Kometa finished and applied no overlay to it: no overlay applies.</p>")
    body += [why_not(entry), _files(before, after)]
    return f'<section class="target" id="{escape(target_id)}">{"".join(body)}</section>'


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
    overlapping = sum(1 for entry in summary.targets.values() if entry.overlap_warning)
    if overlapping:
        found.append(f"{plural(overlapping, 'target')} with overlapping overlays (each says which).")
    return found


def isolation_words(summary: Summary) -> str:
    """How Kometa was isolated, in words (README, "Why it is safe")."""
    used = summary.isolation
    if used.mode == "box":
        return "ran in its box (its own network, processes and read-only files)"
    if used.mode == "none":
        return f"not isolated: {used.problem}" if used.problem else "not isolated (--isolation none)"
    return "Kometa did not start"


def _counters(summary: Summary) -> str:
    mock = summary.mock_mode
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
    return (f'<details><summary>Counters and timings</summary><table class="counters">{rows}</table></details>'
            + (f'<details><summary>Kometa\'s errors ({len(summary.kometa_errors)})</summary><table class="counters">'
               f'<tr><th>count</th><th>message</th></tr>{errors}</table></details>' if errors else ""))


def render_html(output: Path, summary: Summary) -> str:
    statuses = [entry.status for entry in summary.targets.values()]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in ("exported", "unchanged", "failed", "missing")
                       if statuses.count(s))
    listed = problems(summary)
    problem_block = (f'<div class="problems"><strong>What went wrong or was refused</strong><ul>'
                     f'{"".join(f"<li>{escape(p)}</li>" for p in listed)}</ul></div>') if listed else ""
    links = " · ".join(f'<span><a href="{escape(href)}">{escape(name)}</a></span>' for name, href in job_links(output))
    targets = "".join(_target(output, target_id, entry) for target_id, entry in summary.targets.items())
    title = f"kometa-preview · {summary.preview_yml} · {summary.timestamp[:16].replace('T', ' ')} UTC"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
            f'<h1>{escape(title)}</h1><p class="meta">{escape(counts)} · Kometa '
            f'{escape(summary.kometa_version or "version unknown")} · <span class="links">{links}</span></p>'
            f'{problem_block}<div class="grid">{targets}</div>{_counters(summary)}'
            f'<div id="full" role="dialog" aria-label="full size"><button class="close" type="button" '
            f'aria-label="close">×</button><div class="body"></div></div>'
            f"<script>{SCRIPT}</script></body></html>")
