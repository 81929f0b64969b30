"""The live page of `watch`: before/after per target, updated without a reload when an iteration ends.

A door like the others, and an allowlist too: it listens on 127.0.0.1 only, answers only a request that carries
the random token (`?token=T` on the URL `watch` prints, which also sets a cookie for the images and the event
stream), serves only `GET`, and only these paths: `/` (the page), `/api/state` (JSON), `/events` (server-sent
events: one message per state change) and `/files/<iteration>/<name>` (a file directly inside that iteration's
output folder, by name — never a path). Everything else is 403 or 404.
"""
from __future__ import annotations

import hmac
import json
import mimetypes
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

COOKIE = "kometa_preview_token"


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
                    "changed": self.changed, "images": self.images, "timings": self.timings,
                    "version": self.version}

    def wait_change(self, seen: int, timeout: float) -> int:
        with self.lock:
            self.lock.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version


class LivePage:
    def __init__(self, state: LiveState, iteration_output: Callable[[int], Path | None], port: int = 0) -> None:
        """`iteration_output(n)` is iteration n's output folder (None if there is none)."""
        self.state = state
        self.token = secrets.token_urlsafe(18)
        self.iteration_output = iteration_output
        self.stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"page": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="live-page", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/?token={self.token}"

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

    def _allowed(self, query: dict[str, list[str]]) -> bool:
        offered = query.get("token", [""])[0]
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and not offered:
                offered = value
        return bool(offered) and hmac.compare_digest(offered.encode(), self.page.token.encode())

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        if not self._allowed(query):
            self._send(403, b"kometa-preview: this page needs its token (the URL watch printed)\n", "text/plain")
            return
        if split.path == "/":
            self._send(200, PAGE.encode(), "text/html; charset=utf-8",
                       {"Set-Cookie": f"{COOKIE}={self.page.token}; HttpOnly; SameSite=Strict; Path=/"})
        elif split.path == "/api/state":
            self._send(200, json.dumps(self.page.state.snapshot()).encode(), "application/json")
        elif split.path == "/events":
            self._events()
        elif split.path.startswith("/files/"):
            self._file(split.path[len("/files/"):])
        else:
            self._send(404, b"not found\n", "text/plain")

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every other method: refused
            return lambda: self._send(405, b"read-only\n", "text/plain")
        raise AttributeError(name)

    def _file(self, rest: str) -> None:
        iteration, _, name = rest.partition("/")
        folder = self.page.iteration_output(int(iteration)) if iteration.isdigit() else None
        if folder is None or not name or "/" in name or "\\" in name or name.startswith(".") \
                or not (folder / name).is_file():
            self._send(404, b"not found\n", "text/plain")
            return
        path = folder / name
        self._send(200, path.read_bytes(), mimetypes.guess_type(name)[0] or "application/octet-stream")

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


PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview watch</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}h1{font-size:1.3rem}
.bar{color:#aaa;margin-bottom:1rem}.error{color:#ff8a80;white-space:pre-wrap}.grid{display:flex;flex-wrap:wrap;gap:1rem}
.target{border:2px solid #333;border-radius:8px;padding:.6rem}.target.changed{border-color:#ffab40}
.pair{display:flex;gap:.5rem}.pair img{max-height:360px;max-width:28vw}.s{padding:0 .4rem;border-radius:4px}
.exported{background:#1b5e20}.unchanged{background:#455a64}.failed,.missing{background:#b71c1c}
.o{color:#c5e1a5}.stale{opacity:.55}.running{color:#ffd54f}
</style></head><body><h1>kometa-preview · watch</h1><div class="bar" id="bar">waiting for the first render…</div>
<div class="error" id="error"></div><div class="grid" id="grid"></div><script>
function esc(s){return String(s==null?'':s).replace(/[&<>"']/g,c=>'&#'+c.charCodeAt(0)+';')}
async function refresh(){
  const state = await (await fetch('api/state', {cache:'no-store'})).json();
  document.getElementById('bar').innerHTML = 'iteration ' + state.iteration + ' · <span class="' + esc(state.status) +
    '">' + esc(state.status) + '</span>' + (state.kometa_seconds ? ' · Kometa ' + state.kometa_seconds + ' s' : '');
  document.getElementById('error').textContent = state.error || '';
  const grid = document.getElementById('grid'); const html = [];
  for (const [id, t] of Object.entries(state.targets)) {
    const shown = state.images[id] || {}; const stale = shown.iteration !== state.iteration;
    const img = (n, label) => n ? '<img class="' + (stale ? 'stale' : '') + '" src="files/' + shown.iteration + '/' +
      esc(n) + '" alt="' + label + '" data-side="' + label + '">' : '';
    const changed = id in state.changed;
    html.push('<div class="target' + (changed ? ' changed' : '') + '" id="t-' + esc(id) + '"><b>' + esc(t.title || id) +
      '</b> <span class="s ' + esc(t.status) + '">' + esc(t.status) + '</span>' +
      (changed ? ' <span class="o">changed ' + state.changed[id].toFixed(1) + '%</span>' : '') +
      '<div class="o">' + esc((t.overlays || []).join(', ')) + '</div>' +
      (t.error ? '<div class="error">' + esc(t.error) + '</div>' : '') +
      '<div class="pair">' + img(shown.before, 'before') + img(shown.after, 'after') + '</div></div>');
  }
  grid.innerHTML = html.join('');
}
const events = new EventSource('events'); events.onmessage = refresh; refresh();
</script></body></html>"""
