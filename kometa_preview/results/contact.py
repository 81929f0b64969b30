"""contact.html: a whole-library dry run at a glance — every item as a thumbnail, its status and overlays, counts
per overlay, filters by status and overlay, and a click for the full before and after.

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

from ..common import images, names
from ..common.files import write_atomic
from ..common.job import REPORT, SUMMARY
from .summary import Summary

THUMB_WIDTH = 300
THUMBS = "thumbs"
PAGE = 200
#: The name counted for an item Kometa left alone.
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


def counts(summary: Summary) -> list[tuple[str, int]]:
    """How many items each overlay was applied to, and how many got none, most first."""
    applied: Counter[str] = Counter()
    for entry in summary.targets.values():
        if entry.status == "exported":
            applied.update(entry.overlays or ["(unnamed)"])
        elif entry.status == "unchanged":
            applied[NO_OVERLAY] += 1
    return applied.most_common()


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}a{color:#8ab4f8}
h1{font-size:1.3rem;margin:0 0 .4rem}.counts span{display:inline-block;margin:.15rem .6rem .15rem 0}
.bar{display:flex;gap:.8rem;align-items:center;flex-wrap:wrap;margin:.8rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8rem}
.card{background:#1c1c1c;border-radius:6px;padding:.4rem;cursor:pointer}.card img{width:100%;display:block}
.card .t{font-size:.8rem;margin-top:.3rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.s{font-size:.75rem;padding:0 .3rem;border-radius:3px}.exported{background:#1b5e20}.unchanged{background:#455a64}
.failed,.missing{background:#b71c1c}.o{font-size:.75rem;color:#c5e1a5}
#full{position:fixed;inset:0;background:#000d;display:none;padding:2rem;overflow:auto}
#full img{max-height:80vh;max-width:45vw;margin-right:1rem}#full .close{float:right;font-size:1.5rem;cursor:pointer}
"""

SCRIPT = """
const items = JSON.parse(document.getElementById('items').textContent);
const PAGE = %(page)d; let page = 0, shown = items;
const grid = document.getElementById('grid'), status = document.getElementById('status'),
      overlay = document.getElementById('overlay'), pager = document.getElementById('pager');
function esc(s){return String(s).replace(/[&<>"']/g, c => '&#' + c.charCodeAt(0) + ';')}
function draw(){
  const start = page * PAGE, rows = shown.slice(start, start + PAGE);
  grid.innerHTML = rows.map((it, n) => '<div class="card" data-n="' + (start + n) + '">' +
    (it.thumb ? '<img loading="lazy" src="' + esc(it.thumb) + '" alt="">' : '<div>no image</div>') +
    '<div class="t">' + esc(it.title) + '</div><span class="s ' + esc(it.status) + '">' + esc(it.status) +
    '</span> <span class="o">' + esc(it.overlays.join(', ')) + '</span></div>').join('');
  pager.textContent = shown.length ? 'items ' + (start + 1) + '–' + (start + rows.length) + ' of ' + shown.length
                                   : 'no items';
}
function filter(){
  const wanted = overlay.value;
  shown = items.filter(it => (!status.value || it.status === status.value) &&
    (!wanted || (wanted === '%(none)s' ? it.status === 'unchanged' : it.overlays.includes(wanted))));
  page = 0; draw();
}
status.onchange = overlay.onchange = filter;
document.getElementById('prev').onclick = () => { if (page > 0) { page--; draw(); } };
document.getElementById('next').onclick = () => { if ((page + 1) * PAGE < shown.length) { page++; draw(); } };
grid.onclick = e => {
  const card = e.target.closest('.card'); if (!card) return;
  const it = shown[+card.dataset.n], full = document.getElementById('full');
  full.querySelector('.body').innerHTML = '<h2>' + esc(it.title) + ' <small>' + esc(it.id) + ' · ' + esc(it.status) +
    '</small></h2><p>' + esc(it.overlays.join(', ') || it.error || '') + '</p>' +
    (it.before ? '<a href="' + esc(it.before) + '"><img src="' + esc(it.before) + '" alt="before"></a>' : '') +
    (it.after ? '<a href="' + esc(it.after) + '"><img src="' + esc(it.after) + '" alt="after"></a>' : '');
  full.style.display = 'block';
};
document.querySelector('#full .close').onclick = () => { document.getElementById('full').style.display = 'none'; };
draw();
"""


def render_html(output: Path, summary: Summary) -> str:
    items = []
    for target_id, entry in summary.targets.items():
        before, after = _linked(entry.before, "before"), _linked(entry.after, "after")
        thumb = thumbnail(output, entry.after, "after") if after else thumbnail(output, entry.before, "before")
        items.append({"id": target_id, "title": entry.kometa_title or entry.title or target_id, "status": entry.status,
                      "overlays": entry.overlays if entry.status == "exported" else [],
                      "error": entry.error or "", "before": before, "after": after, "thumb": thumb})
    items.sort(key=lambda item: (item["title"].lower(), item["id"]))
    tally = counts(summary)
    overlay_names = sorted(name for name, _ in tally if name != NO_OVERLAY)
    statuses = Counter(item["status"] for item in items)
    data = embedded_json(items)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview contact sheet · '
            f'{escape(summary.preview_yml)}</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<style>{STYLE}</style></head><body><h1>Contact sheet · {len(items):,} items · '
            f'{escape(summary.preview_yml)}</h1>'
            f'<p class="counts">{"".join(f"<span>{escape(n)}: {c:,} items</span>" for n, c in tally)}</p>'
            f'<p>{" · ".join(f"{c:,} {escape(s)}" for s, c in statuses.items())} · '
            f'<a href="{REPORT}">report</a> · <a href="{SUMMARY}">{SUMMARY}</a></p>'
            f'<div class="bar"><label>status <select id="status"><option value="">all</option>'
            f'{"".join(f"<option>{escape(s)}</option>" for s in ("exported", "unchanged", "failed", "missing"))}'
            f'</select></label><label>overlay <select id="overlay"><option value="">all</option>'
            f'<option>{NO_OVERLAY}</option>{"".join(f"<option>{escape(n)}</option>" for n in overlay_names)}'
            f'</select></label><button id="prev" type="button">‹ previous</button><span id="pager"></span>'
            f'<button id="next" type="button">next ›</button></div><div class="grid" id="grid"></div>'
            f'<div id="full"><span class="close">×</span><div class="body"></div></div>'
            f'<script type="application/json" id="items">{data}</script>'
            f'<script>{SCRIPT % {"page": PAGE, "none": NO_OVERLAY}}</script></body></html>')
