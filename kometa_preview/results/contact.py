"""contact.html: a whole-library dry run at a glance — every item as a thumbnail, its status and overlays, counts
per overlay, filters by status, by overlay, by "matched but not applied" and by "no overlay", and a click for the
full before and after with where each overlay is and why not.

Overlays are named for people (kometa/overlay_names.py): the overlay's own name with its file as a second label, and
counted by that pair, so one overlay is one row whatever number Kometa gave its file. A hovered thumbnail shows the
overlays' boxes. "why not" lists, per item, the overlays that matched but were not applied and Kometa's reason
(lost its group to …, suppressed by …); an item with no overlay says why none matched, grouped by reason. The
full list of every definition per item is in summary.json (`considered`) and the report.

Self-contained like report.html (inline CSS and script, images by relative path, nothing from the network). The
items are embedded as JSON and drawn a page at a time, with lazily loaded thumbnails (`thumbs/`, at most 300 px
wide, made with Pillow when the job exports), so a library of 100,000 items opens as fast as one of 100.

Titles come from Plex and names from summary.json: the embedded JSON escapes `<`, `>` and `&` (a title holding
`<!--<script>` cannot end or bend the script element), and only names of `names`' grammar are linked. Thumbnails
are made with `images.decode` (bounded, never through a symbolic link) and written in one step, so a `thumbs/` entry
that is a symbolic link is replaced, never written through.
"""
from __future__ import annotations

import io
import json
from collections import Counter
from html import escape
from pathlib import Path
from typing import Any

from ..common import images, names
from ..common.files import write_atomic
from ..common.job import REPORT, SUMMARY
from ..kometa.overlay_names import parse
from .outcomes import OverlayLabel
from .report import canvas_of, plural
from .summary import Summary, TargetResult

THUMB_WIDTH = 300
THUMBS = "thumbs"
PAGE = 200
#: The row counted for an item Kometa left alone.
NO_OVERLAY = "no overlay"


def thumbnail(output: Path, name: str | None, side: str) -> str | None:
    """`thumbs/<name>.jpg`, at most THUMB_WIDTH wide, for the exported `side` image `name` in `output` (None when
    there is none, its name is not of the grammar, or it is no image `images.decode` opens). JPEGs are decoded at
    a reduced scale, which is what keeps thousands of them cheap."""
    if names.exported_target(name, side) is None:
        return None
    stem = f"{Path(name).stem}.jpg"
    try:
        folder = names.folder(output, THUMBS)
        try:
            if names.entry(folder, stem, kind="file") is not None:
                return f"{THUMBS}/{stem}"
        except names.UnsafeName:
            pass  # a link or a folder where the thumbnail belongs: made again, replacing it
        small = images.decode(output / name, budget=4 * THUMB_WIDTH * THUMB_WIDTH * 2)
        small.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 2))
        data = io.BytesIO()
        small.save(data, format="JPEG", quality=80)
        write_atomic(folder / stem, data.getvalue())
    except (names.UnsafeName, images.Unreadable, OSError):
        return None
    return f"{THUMBS}/{stem}"


def embedded_json(value: object) -> str:
    """JSON to put inside a `<script type="application/json">` element: `<`, `>` and `&` as \\u escapes, so no text
    in it can close the element or open a comment or another script (`</script>`, `<!--<script>`)."""
    text = json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _linked(name: str | None, side: str) -> str | None:
    return names.href(name) if names.exported_target(name, side) is not None else None


def key(display_name: str, file: str | None) -> str:
    """An overlay as the contact sheet counts and filters it: its own name and its file."""
    return f"{display_name} · {file}" if file else display_name


def labels(entry: TargetResult) -> list[OverlayLabel]:
    """The target's applied overlays by their own names (Kometa's names, split, for a summary that has none)."""
    return entry.overlay_labels or [OverlayLabel(name, parse(name).display, None) for name in entry.overlays]


def counts(summary: Summary) -> list[tuple[str, int]]:
    """How many items each overlay (by its own name and file) was applied to, and how many got none, most first."""
    applied: Counter[str] = Counter()
    for entry in summary.targets.values():
        if entry.status == "exported":
            applied.update([key(label.display_name, label.file) for label in labels(entry)] or ["(unnamed)"])
        elif entry.status == "unchanged":
            applied[NO_OVERLAY] += 1
    return applied.most_common()


def item(output: Path, target_id: str, entry: TargetResult) -> dict[str, Any]:
    """One item of the embedded JSON: what its card and its full view show."""
    before, after = _linked(entry.before, "before"), _linked(entry.after, "after")
    thumb = thumbnail(output, entry.after, "after") if after else thumbnail(output, entry.before, "before")
    exported = entry.status == "exported"
    missed: dict[str, list[str]] = {}
    for c in entry.considered if entry.status == "unchanged" else []:
        missed.setdefault(c.reason or "no reason logged", []).append(c.display_name)
    return {"id": target_id, "title": entry.kometa_title or entry.title or target_id, "status": entry.status,
            "overlays": [key(label.display_name, label.file) for label in labels(entry)] if exported else [],
            "names": [label.display_name for label in labels(entry)] if exported else [],
            "error": entry.error or "", "before": before, "after": after, "thumb": thumb,
            "canvas": list(canvas_of(entry)), "warn": entry.overlap_warning,
            "boxes": [[b.x, b.y, b.w, b.h, b.display_name] for b in entry.boxes] if exported else [],
            "lost": [[key(c.display_name, c.file), c.reason or ""] for c in entry.considered
                     if c.matched and not c.applied],
            "missed": [[reason, shown] for reason, shown in missed.items()]}


STYLE = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
a{color:#8ab4f8}h1{font-size:1.3rem;margin:0 0 .4rem;overflow-wrap:anywhere}
.counts{display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin:.4rem 0}.counts span small,.full small{color:#9e9e9e}
.bar{display:flex;gap:.8rem;align-items:center;flex-wrap:wrap;margin:.8rem 0}.bar select{max-width:80vw}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8rem}
.card{background:#1c1c1c;border-radius:6px;padding:.4rem;cursor:pointer;min-width:0}
.frame{position:relative;line-height:0}.frame img{width:100%;display:block}
.boxes{position:absolute;inset:0;opacity:0;transition:opacity .15s;pointer-events:none}
.frame:hover .boxes,.show-boxes .boxes{opacity:1}
.box{position:absolute;border:2px solid #ffd54f;box-shadow:0 0 0 1px #000a}
.box span{position:absolute;left:0;top:100%;font:11px/1.2 system-ui,sans-serif;background:#000c;color:#ffd54f;
 padding:1px 3px;white-space:nowrap}
.card .t{font-size:.8rem;margin-top:.3rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.s{font-size:.75rem;padding:0 .3rem;border-radius:3px}.exported{background:#1b5e20}.unchanged{background:#455a64}
.failed,.missing{background:#b71c1c}.o{font-size:.75rem;color:#c5e1a5;overflow-wrap:anywhere}
.lost{font-size:.75rem;color:#ffcc80}.warn{color:#ffcc80}
#full{position:fixed;inset:0;background:#111;display:none;padding:1rem 1.5rem;overflow:auto;z-index:9}
#full .close{float:right;font-size:1.5rem;cursor:pointer;background:none;color:#fff;border:0}
.pair{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start}.pair figure{margin:0;flex:1 1 260px;max-width:520px}
.pair figcaption{color:#aaa;font-size:.85rem;margin-top:.3rem}.full li{overflow-wrap:anywhere;margin:.15rem 0}
@media (max-width:600px){body{margin:.7rem}.grid{grid-template-columns:repeat(2,minmax(0,1fr))}
 .counts{max-height:30vh;overflow:auto}}
"""

SCRIPT = """
const items = JSON.parse(document.getElementById('items').textContent);
const PAGE = %(page)d; let page = 0, shown = items;
const grid = document.getElementById('grid'), status = document.getElementById('status'),
      overlay = document.getElementById('overlay'), why = document.getElementById('why'),
      pager = document.getElementById('pager'), full = document.getElementById('full');
function esc(s){return String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';')}
function pct(a, b){return (100 * a / b).toFixed(3) + '%%'}
function boxes(it){return '<div class="boxes">' + it.boxes.map(b => '<div class="box" style="left:' +
  pct(b[0], it.canvas[0]) + ';top:' + pct(b[1], it.canvas[1]) + ';width:' + pct(b[2], it.canvas[0]) + ';height:' +
  pct(b[3], it.canvas[1]) + '"><span>' + esc(b[4]) + '</span></div>').join('') + '</div>'}
function draw(){
  const start = page * PAGE, rows = shown.slice(start, start + PAGE);
  grid.innerHTML = rows.map((it, n) => '<div class="card" data-n="' + (start + n) + '"><div class="frame">' +
    (it.thumb ? '<img loading="lazy" src="' + esc(it.thumb) + '" alt="">' + (it.after ? boxes(it) : '')
              : '<div>no image</div>') +
    '</div><div class="t">' + esc(it.title) + '</div><span class="s ' + esc(it.status) + '">' + esc(it.status) +
    '</span> <span class="o">' + esc(it.names.join(', ')) + '</span>' +
    (it.lost.length ? '<div class="lost">why not ' + esc(it.lost[0][0].split(' · ')[0]) +
      (it.lost.length > 1 ? ' and ' + (it.lost.length - 1) + ' more' : '') + '?</div>' : '') + '</div>').join('');
  pager.textContent = shown.length ? 'items ' + (start + 1) + '–' + (start + rows.length) + ' of ' + shown.length
                                   : 'no items';
}
function filter(){
  const wanted = overlay.value, mode = why.value;
  shown = items.filter(it => (!status.value || it.status === status.value) &&
    (mode === '%(none)s' ? it.status === 'unchanged' :
     mode === 'lost' ? it.lost.some(l => !wanted || l[0] === wanted) : (!wanted || it.overlays.includes(wanted))));
  page = 0; draw();
}
status.onchange = overlay.onchange = why.onchange = filter;
document.getElementById('prev').onclick = () => { if (page > 0) { page--; draw(); } };
document.getElementById('next').onclick = () => { if ((page + 1) * PAGE < shown.length) { page++; draw(); } };
function list(rows){return rows.length ? '<ul>' + rows.map(r => '<li>' + r + '</li>').join('') + '</ul>' : ''}
function named(key){const o = key.split(' · ');
  return '<b>' + esc(o[0]) + '</b>' + (o[1] ? ' <small>' + esc(o[1]) + '</small>' : '')}
grid.onclick = e => {
  const card = e.target.closest('.card'); if (!card) return;
  const it = shown[+card.dataset.n];
  full.querySelector('.body').innerHTML = '<h2>' + esc(it.title) + ' <small>' + esc(it.id) + ' · ' +
    esc(it.status) + '</small></h2>' + (it.error ? '<p class="warn">' + esc(it.error) + '</p>' : '') +
    (it.overlays.length ? '<p>' + it.overlays.map(named).join(' · ') + '</p>' : '') +
    (it.warn ? '<p class="warn">⚠ ' + esc(it.warn) + '</p>' : '') +
    (it.lost.length ? '<p>matched, not applied — why not:</p>' + list(it.lost.map(l => named(l[0]) + ': ' +
      esc(l[1]))) : '') +
    (it.missed.length ? '<p>why no overlay?</p>' + list(it.missed.map(m => esc(m[1].join(', ')) + ' <small>— ' +
      esc(m[0]) + '</small>')) : '') +
    '<div class="pair">' + (it.before ? '<figure><a href="' + esc(it.before) + '"><img src="' + esc(it.before) +
      '" alt="before" style="width:100%%"></a><figcaption>before</figcaption></figure>' : '') +
    (it.after ? '<figure><div class="frame show-boxes"><a href="' + esc(it.after) + '"><img src="' + esc(it.after) +
      '" alt="after"></a>' + boxes(it) + '</div><figcaption>after</figcaption></figure>' : '') + '</div>' +
    '<p><a href="%(report)s#' + encodeURIComponent(it.id) + '">in the report</a></p>';
  full.style.display = 'block';
};
full.querySelector('.close').onclick = () => { full.style.display = 'none'; };
document.addEventListener('keydown', e => { if (e.key === 'Escape') full.style.display = 'none'; });
draw();
"""


def _count_row(name: str, count: int) -> str:
    shown, _, file = name.partition(" · ")
    second = f" <small>{escape(file)}</small>" if file else ""
    return f"<span><b>{escape(shown)}</b>{second} · {plural(count, 'item')}</span>"


def render_html(output: Path, summary: Summary) -> str:
    items = sorted((item(output, target_id, entry) for target_id, entry in summary.targets.items()),
                   key=lambda it: (it["title"].lower(), it["id"]))
    tally = counts(summary)
    choices = sorted({name for name, _ in tally if name != NO_OVERLAY}
                     | {lost[0] for it in items for lost in it["lost"]})
    statuses = Counter(it["status"] for it in items)
    options = "".join(f'<option value="{escape(name)}">{escape(name)}</option>' for name in choices)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview contact sheet · '
            f'{escape(summary.preview_yml)}</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<style>{STYLE}</style></head><body><h1>Contact sheet · {plural(len(items), "item")} · '
            f'{escape(summary.preview_yml)}</h1>'
            f'<p class="counts">{"".join(_count_row(name, count) for name, count in tally)}</p>'
            f'<p>{" · ".join(f"{c:,} {escape(s)}" for s, c in statuses.items())} · '
            f'<a href="{REPORT}">report</a> · <a href="{SUMMARY}">{SUMMARY}</a></p>'
            f'<div class="bar"><label>status <select id="status"><option value="">all</option>'
            f'{"".join(f"<option>{escape(s)}</option>" for s in ("exported", "unchanged", "failed", "missing"))}'
            f'</select></label><label>overlay <select id="overlay"><option value="">all</option>{options}</select>'
            f'</label><label>show <select id="why"><option value="">applied</option><option value="lost">matched but '
            f'not applied</option><option value="{NO_OVERLAY}">{NO_OVERLAY}</option></select></label>'
            f'<button id="prev" type="button">‹ previous</button><span id="pager"></span>'
            f'<button id="next" type="button">next ›</button></div><div class="grid" id="grid"></div>'
            f'<div id="full" class="full"><button class="close" type="button" aria-label="close">×</button>'
            f'<div class="body"></div></div><script type="application/json" id="items">{embedded_json(items)}</script>'
            f'<script>{SCRIPT % {"page": PAGE, "none": NO_OVERLAY, "report": REPORT}}</script></body></html>')
