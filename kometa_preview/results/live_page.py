"""The live page of `watch`: before/after per target, updated without a reload when an iteration ends, and the
editor: an overlay's box dragged (or nudged with the arrow keys) on the page is written into the YAML that defines
it, and the next iteration shows where Kometa put it.

A door like the others, and an allowlist too: it listens on 127.0.0.1 only and answers only a request that carries
the random token. `GET` reads only these paths: `/` (the page), `/favicon.ico`, `/api/state` (JSON), `/events`
(server-sent events: one message per state change) and `/files/<iteration>/<name>` (an exported image directly
inside that iteration's output folder: a name of `names`' grammar, never a path, never a symbolic link). `POST`
writes only through `/api/move` and `/api/undo`, and only from the page's own origin (`Origin`, and
`Sec-Fetch-Site` when the browser sends it), with a JSON body of at most `MAX_BODY` bytes; what a move may write
(offsets and alignments, in files the watch reads) is decided by the `writes` callback (run/editor.py).
Everything else is 403, 404 or 405.

The token is a capability in the path, not a cookie: the URL `watch` prints (`/?token=T`) redirects to `/T/`, and
the page's own requests are relative to it (`/T/api/state`, `/T/events`, `/T/files/…`, `/T/api/move`). A browser
sends cookies to every port of 127.0.0.1 — any local service it visits would receive a cookie token, and any page
could make it POST with that cookie attached — but a path only where it is written. `?token=T` is accepted on every
path too (scripts, `curl`). Requests naming another host (DNS rebinding) are refused.

Bounded: at most `MAX_CONNECTIONS` at once (more are closed unanswered), and a connection idle for `IDLE_SECONDS`
(no request, or an event stream its reader stopped reading) is closed, so idle clients never hold threads for
long.
"""
from __future__ import annotations

import hmac
import json
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..common import images, names

#: Connections served at once; one more is closed at once (a tab needs about 7: the page, its events, images).
MAX_CONNECTIONS = 64
#: Seconds a connection may wait for its next request, or an event stream for its reader, before it is closed.
IDLE_SECONDS = 20.0
#: Bytes a move's JSON body may have.
MAX_BODY = 4096
#: The writes the page may ask for, by path: the action handed to `writes`.
WRITES = {"/api/move": "move", "/api/undo": "undo"}
#: `writes(action, body)` → (HTTP status, JSON answer): run/editor.py's moves, judged there.
Writes = Callable[[str, Any], tuple[int, dict[str, Any]]]
_ITERATION = re.compile(r"[1-9][0-9]{0,8}")


@dataclass
class LiveState:
    """What the page shows; `watch` updates it, the server reads it. Thread-safe."""
    iteration: int = 0
    status: str = "running"             # running | done | failed
    output_dir: str | None = None
    kometa_seconds: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    targets: dict[str, Any] = field(default_factory=dict)
    #: target id → changed-pixel percentage against the previous iteration (present only when it changed)
    changed: dict[str, float] = field(default_factory=dict)
    #: target id → the images the page shows: {"iteration", "before", "after"} — this iteration's, or, when it
    #: has none (it failed), the last iteration's that had them
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The iteration whose images the page shows: this one when it is good, else the last good one (None: none yet)
    shown_iteration: int | None = None
    #: Seconds: save_to_start, kometa_run, exit_to_done, export — what the watch costs around Kometa's own run
    timings: dict[str, float] = field(default_factory=dict)
    version: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition, repr=False)

    def update(self, **values: Any) -> None:
        with self.lock:
            for name, value in values.items():
                setattr(self, name, value)
            self.version += 1
            self.lock.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"iteration": self.iteration, "status": self.status, "output_dir": self.output_dir,
                    "kometa_seconds": self.kometa_seconds, "started_at": self.started_at,
                    "finished_at": self.finished_at, "error": self.error, "targets": self.targets,
                    "changed": self.changed, "images": _linkable(self.images), "timings": self.timings,
                    "shown_iteration": self.shown_iteration, "version": self.version}

    def wait_change(self, seen: int, timeout: float) -> int:
        with self.lock:
            self.lock.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version


def _linkable(shown: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The images the page may link: names of `names`' grammar, others as none."""
    return {target: {**entry, **{side: entry.get(side) if names.exported_target(entry.get(side), side) else None
                                 for side in names.SIDES}}
            for target, entry in shown.items()}


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most `MAX_CONNECTIONS` of them: one more is closed unanswered."""

    daemon_threads = True
    request_queue_size = 1024  # a burst waits in the kernel, not in threads

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def handle_error(self, request, client_address) -> None:
        """A reader that left (a tab closed, a page reloaded mid-image) is no error to print in the user's terminal."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class LivePage:
    def __init__(self, state: LiveState, iteration_output: Callable[[int], Path | None], port: int = 0,
                 idle_seconds: float = IDLE_SECONDS, writes: Writes | None = None) -> None:
        """`iteration_output(n)` is iteration n's output folder (None if there is none); `writes` makes the moves
        (None: the page only reads)."""
        self.state = state
        self.writes = writes
        self.token = secrets.token_urlsafe(18)
        self.iteration_output = iteration_output
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"page": self, "timeout": idle_seconds})
        self.httpd = _Server(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="live-page", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def start(self) -> LivePage:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        with self.state.lock:
            self.state.lock.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    page: LivePage
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
        pass

    def _route(self) -> tuple[str | None, bool]:
        """(the path below the token, or None when the request is not allowed; whether the token came in the path).
        The token is the first path segment (`/T/api/state`) or `?token=T`; cookies are no credential."""
        split = urlsplit(self.path)
        token = self.page.token.encode()
        first, slash, rest = split.path[1:].partition("/")
        if hmac.compare_digest(first.encode(), token):
            return "/" + rest if slash else "", True
        offered = parse_qs(split.query).get("token", [""])[0]
        return (split.path if hmac.compare_digest(offered.encode(), token) else None), False

    def _own_host(self) -> bool:
        """Is the request addressed to this page (not a name rebound to 127.0.0.1 by another site's DNS)?"""
        return self.headers.get("Host", "") in (f"127.0.0.1:{self.page.port}", f"localhost:{self.page.port}")

    def _own_origin(self) -> bool:
        """Does a write come from the page itself? A browser names the page that sent a POST in `Origin` (and, the
        newer ones, `Sec-Fetch-Site`); another site, a sandboxed frame (`null`) or a file is refused. A client that
        is no browser (curl) sends neither: the token is its credential."""
        origin = self.headers.get("Origin")
        site = self.headers.get("Sec-Fetch-Site")
        own = (f"http://127.0.0.1:{self.page.port}", f"http://localhost:{self.page.port}")
        return (origin is None or origin in own) and (site is None or site == "same-origin")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path, in_path = self._route()
        if path is None or not self._own_host():
            self._send(403, b"kometa-preview: this page needs its token (the URL watch printed)\n", "text/plain")
        elif path == "" or path == "/" and not in_path:  # the printed URL, or /T: to the page's own address
            self._send(303, b"", "text/plain", {"Location": f"/{self.page.token}/"})
        elif path == "/":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8")
        elif path == "/favicon.ico":
            self._send(200, ICON, "image/svg+xml")
        elif path == "/api/state":
            self._send(200, json.dumps(self.page.state.snapshot()).encode(), "application/json")
        elif path == "/events":
            self._events()
        elif path.startswith("/files/"):
            self._file(path[len("/files/"):])
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        """A move or an undo, from the page itself: token, own host, own origin, JSON of at most MAX_BODY bytes."""
        path, _ = self._route()
        if path is None or not self._own_host():
            self._send(403, b"kometa-preview: this page needs its token (the URL watch printed)\n", "text/plain")
        elif not self._own_origin():
            self._answer(403, {"error": "a move is taken only from the page itself (another Origin was refused)"})
        elif path not in WRITES or self.page.writes is None:
            self._send(405, b"read-only\n", "text/plain")
        elif self.headers.get_content_type() != "application/json":
            self._answer(415, {"error": "a move is sent as application/json"})
        else:
            body = self._body()
            if body is not None:
                self._answer(*self.page.writes(WRITES[path], body))

    def _body(self) -> Any:
        """The JSON body, or None once an error was answered (no length, too long, not JSON)."""
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._answer(411, {"error": "a move needs a Content-Length"})
            return None
        if int(length) > MAX_BODY:
            self.close_connection = True
            self._answer(413, {"error": f"a move is at most {MAX_BODY} bytes"})
            return None
        try:
            return json.loads(self.rfile.read(int(length)) or b"{}")
        except ValueError:
            self._answer(400, {"error": "a move is JSON"})
            return None

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every other method: refused
            return lambda: self._send(405, b"read-only\n", "text/plain")
        raise AttributeError(name)

    def _file(self, rest: str) -> None:
        """An exported image of an iteration, by its name: 404 for anything else (`/files/abc/x`, a number past any
        iteration, a name outside the grammar, a symbolic link, a folder)."""
        iteration, _, name = rest.partition("/")
        side = next((s for s in names.SIDES if names.exported_target(name, s)), None)
        folder = self.page.iteration_output(int(iteration)) if _ITERATION.fullmatch(iteration) else None
        try:
            path = names.entry(folder, name, kind="file") if folder is not None and side is not None else None
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            body = None if path is None else _read(os.open(path, flags))
        except (names.UnsafeName, OSError):
            body = None
        if body is None:
            self._send(404, b"not found\n", "text/plain")
            return
        self._send(200, body, images.BY_EXT[name.rpartition(".")[2]].content_type)

    def _events(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        try:
            while not self.page.stopping.is_set():
                version = self.page.state.wait_change(seen, timeout=15)
                message = f"data: {version}\n\n" if version != seen else ": keep-alive\n\n"
                seen = version
                self.wfile.write(message.encode())
                self.wfile.flush()
        except OSError:
            return
        finally:
            self.close_connection = True


def _read(fd: int) -> bytes:
    with open(fd, "rb") as handle:
        return handle.read()


#: The page's icon (a poster with a badge): asked for under the token, like everything else.
ICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 24"><rect width="16" height="24" rx="2" '
        b'fill="#455a64"/><rect x="2" y="2" width="8" height="5" rx="1" fill="#ffd54f"/></svg>')

PAGE = r"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview watch</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="favicon.ico"><style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}h1{font-size:1.3rem}
.bar{color:#aaa;margin-bottom:1rem}.error{color:#ff8a80;white-space:pre-wrap}.grid{display:flex;flex-wrap:wrap;gap:1rem}
.target{border:2px solid #333;border-radius:8px;padding:.6rem;max-width:100%}.target.changed{border-color:#ffab40}
.pair{display:flex;gap:.5rem}figure{margin:0}.s{padding:0 .4rem;border-radius:4px}small.id{color:#888}
figcaption{color:#aaa;font-size:.75rem;text-transform:uppercase;letter-spacing:.06em;margin-top:.2rem}
.stage{position:relative;line-height:0}.pair img{max-height:360px;max-width:28vw;display:block}
.box{position:absolute;box-sizing:border-box;border:2px solid transparent;cursor:grab;touch-action:none}
.stage:hover .box{border-color:rgba(100,181,246,.85)}.box.sel{border-color:#64b5f6;background:rgba(100,181,246,.18)}
.box:focus{outline:none}.box span{display:none;position:absolute;left:0;bottom:100%;line-height:1.3;font-size:.7rem;
white-space:nowrap;background:#0d47a1;color:#fff;padding:0 .3rem;border-radius:3px}
.stage:hover .box span,.box.sel span{display:block}.ghost{position:absolute;box-sizing:border-box;
border:2px dashed #ffd54f;pointer-events:none}.exported{background:#1b5e20}.unchanged{background:#455a64}
.failed,.missing{background:#b71c1c}.o{color:#c5e1a5}.stale{opacity:.55}.running{color:#ffd54f}
#edit{color:#ffd54f;min-height:1.4em;margin-bottom:.6rem}#edit button{margin-left:.6rem}
.hint{color:#888;font-size:.85rem}
@media (max-width:700px){body{margin:.8rem}.pair img{max-width:calc(50vw - 1.9rem)}.target{padding:.4rem}}
</style></head><body><h1>kometa-preview · watch</h1><div class="bar" id="bar">waiting for the first render…</div>
<div class="hint">Hover a poster to see its overlays; drag one, or select it and use the arrow keys (Shift: 10 px),
to write its offsets into your YAML.</div><div id="edit"></div>
<div class="error" id="error"></div><div class="grid" id="grid"></div><script>
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,c=>'&#'+c.charCodeAt(0)+';')}
const canvasOf = t => t.type === 'episode' ? [1920, 1080] : [1000, 1500];
const short = n => String(n).replace(/^Overlay File \(\d+\) /, '');
const pct = (v, whole) => (100 * v / whole) + '%';
let state = null, selected = null, drag = null, nudge = null, nudgeTimer = null, ghost = null, waiting = false;
let message = '', canUndo = false;
const grid = document.getElementById('grid');
function boxesOf(id) { const t = state && state.targets[id]; return (t && t.boxes) || []; }
function place(t, b) { const [W, H] = canvasOf(t);
  return 'left:' + pct(b.x, W) + ';top:' + pct(b.y, H) + ';width:' + pct(b.w, W) + ';height:' + pct(b.h, H); }
function stage(id, t, shown, name) {
  const img = '<img src="files/' + shown.iteration + '/' + esc(name) + '" alt="after" data-side="after"' +
    (shown.iteration !== state.iteration ? ' class="stale"' : '') + '>';
  // the targets' boxes are of the last iteration that ended (the running one has none yet): drawn on its images only
  const ended = state.status === 'running' ? state.iteration - 1 : state.iteration;
  const fresh = shown.iteration === ended;
  const boxes = fresh ? boxesOf(id).map(b => { const on = selected && selected.target === id &&
    selected.overlay === b.overlay; const label = b.display_name || short(b.overlay);
    return '<div class="box' + (on ? ' sel' : '') + '" tabindex="0" role="button" data-target="' + esc(id) +
      '" data-overlay="' + esc(b.overlay) + '" style="' + place(t, b) + '" title="' + esc(label) +
      (b.file ? ' · ' + esc(b.file) : '') + '"><span>' + esc(label) + '</span></div>'; }).join('') : '';
  const drop = ghost && ghost.target === id ? '<div class="ghost" style="' + place(t, ghost) + '"></div>' : '';
  return '<div class="stage">' + img + boxes + drop + '</div>';
}
function render() {
  document.getElementById('bar').innerHTML = 'iteration ' + state.iteration + ' · <span class="' +
    esc(state.status) + '">' + esc(state.status) + '</span>' +
    (state.kometa_seconds ? ' · Kometa ' + state.kometa_seconds + ' s' : '');
  document.getElementById('error').textContent = state.error || '';
  document.getElementById('edit').innerHTML = esc(message) + (canUndo ? '<button id="undo">undo</button>' : '');
  const html = [];
  for (const [id, t] of Object.entries(state.targets)) {
    const shown = state.images[id] || {}; const changed = id in state.changed;
    const title = t.title || t.kometa_title || id;
    const before = shown.before ? '<figure><img src="files/' + shown.iteration + '/' + esc(shown.before) +
      '" alt="before" data-side="before"' + (shown.iteration !== state.iteration ? ' class="stale"' : '') +
      '><figcaption>before</figcaption></figure>' : '';
    const after = shown.after ? '<figure>' + stage(id, t, shown, shown.after) +
      '<figcaption>after</figcaption></figure>' : '';
    html.push('<div class="target' + (changed ? ' changed' : '') + '" id="t-' + esc(id) + '"><b>' + esc(title) +
      '</b>' + (title !== id ? ' <small class="id">' + esc(id) + '</small>' : '') + ' <span class="s ' +
      esc(t.status) + '">' + esc(t.status) + '</span>' +
      (changed ? ' <span class="o">changed ' + state.changed[id].toFixed(1) + '%</span>' : '') +
      '<div class="o">' + esc((t.overlays || []).map(short).join(', ')) + '</div>' +
      (t.error ? '<div class="error">' + esc(t.error) + '</div>' : '') +
      '<div class="pair">' + before + after + '</div></div>');
  }
  grid.innerHTML = html.join('');
}
function settle() {  // the iteration that carries the move has ended: where did Kometa put it?
  if (!ghost || ghost.from === null || state.iteration < ghost.from || state.status === 'running') return;
  const name = short(ghost.overlay);
  const b = boxesOf(ghost.target).find(b => b.overlay === ghost.overlay);
  if (state.status === 'failed') message = 'iteration ' + state.iteration + ' failed after the move of ' + name +
    ' (the file keeps it; undo puts the old one back)';
  else if (!b) message = 'iteration ' + state.iteration + ': Kometa did not draw ' + name + ' after the move';
  else if (Math.abs(b.x - ghost.x) <= 1 && Math.abs(b.y - ghost.y) <= 1) message = 'iteration ' +
    state.iteration + ': Kometa put ' + name + ' where you dropped it (' + b.x + ', ' + b.y + ')';
  else message = 'iteration ' + state.iteration + ': Kometa put ' + name + ' at (' + b.x + ', ' + b.y +
    '), not where you dropped it (' + ghost.x + ', ' + ghost.y + ')' + (ghost.notes ? ': ' + ghost.notes : '');
  if (b) selected = {target: ghost.target, overlay: ghost.overlay};
  ghost = null;
}
async function refresh() {
  if (drag || nudge || waiting) { return; }
  state = await (await fetch('api/state' + location.search, {cache: 'no-store'})).json();
  settle(); render();
}
async function post(path, body) {
  const answer = await fetch(path + location.search, {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(body)});
  let doc = {}; try { doc = await answer.json(); } catch (e) { doc = {error: 'HTTP ' + answer.status}; }
  return [answer.ok, doc];
}
async function move(target, overlay, dx, dy) {
  const b = boxesOf(target).find(b => b.overlay === overlay);
  ghost = {target, overlay, x: b.x + dx, y: b.y + dy, w: b.w, h: b.h, from: null}; waiting = true; render();
  const [ok, doc] = await post('api/move', {target, overlay, dx, dy});
  if (!ok || !doc.changes.length) { ghost = null; message = ok ? 'nothing to write: ' + doc.notes.join('; ') :
    'not moved: ' + doc.error; }
  else { ghost.from = doc.applies_from; ghost.notes = doc.notes.join('; '); canUndo = doc.undo;
    message = 'wrote ' + doc.changes.map(c => c.key.split('.').pop() + ' ' + c.old + ' → ' + c.new).join(', ') +
      ' in ' + doc.file + (doc.notes.length ? ' (' + doc.notes.join('; ') + ')' : '') + ' · waiting for Kometa…'; }
  waiting = false; await refresh();
}
async function undo() {
  waiting = true; const [ok, doc] = await post('api/undo', {});
  message = ok ? 'restored ' + doc.file + ' as it was; the next iteration shows it' : 'not undone: ' + doc.error;
  canUndo = ok && doc.undo; ghost = null; waiting = false; await refresh();
}
function scale(box) { const t = state.targets[box.dataset.target]; const [W] = canvasOf(t);
  return box.parentElement.clientWidth / W; }
grid.addEventListener('pointerdown', e => {
  const box = e.target.closest('.box'); if (!box || e.button !== 0) return;
  e.preventDefault(); selected = {target: box.dataset.target, overlay: box.dataset.overlay};
  grid.querySelectorAll('.box.sel').forEach(b => b.classList.remove('sel')); box.classList.add('sel'); box.focus();
  box.setPointerCapture(e.pointerId); drag = {box, x: e.clientX, y: e.clientY, k: scale(box)};
});
grid.addEventListener('pointermove', e => { if (!drag) return;
  drag.box.style.transform = 'translate(' + (e.clientX - drag.x) + 'px,' + (e.clientY - drag.y) + 'px)'; });
grid.addEventListener('pointerup', e => { if (!drag) return; const d = drag; drag = null;
  const dx = Math.round((e.clientX - d.x) / d.k), dy = Math.round((e.clientY - d.y) / d.k);
  if (dx || dy) move(d.box.dataset.target, d.box.dataset.overlay, dx, dy); else refresh(); });
document.addEventListener('click', e => { if (e.target.id === 'undo') undo(); });
document.addEventListener('keydown', e => {
  const steps = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
  if (e.key === 'Escape') { selected = null; render(); return; }
  if (!selected || !(e.key in steps) || waiting) return;
  const box = [...grid.querySelectorAll('.box.sel')][0]; if (!box) return;
  e.preventDefault(); const n = e.shiftKey ? 10 : 1; nudge = nudge || {dx: 0, dy: 0};
  nudge.dx += steps[e.key][0] * n; nudge.dy += steps[e.key][1] * n; const k = scale(box);
  box.style.transform = 'translate(' + nudge.dx * k + 'px,' + nudge.dy * k + 'px)';
  clearTimeout(nudgeTimer);
  nudgeTimer = setTimeout(() => { const n = nudge; nudge = null;
    move(selected.target, selected.overlay, n.dx, n.dy); }, 600);
});
const events = new EventSource('events'); events.onmessage = refresh; refresh();
</script></body></html>"""
