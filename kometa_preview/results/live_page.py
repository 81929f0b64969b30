"""The live page of `watch`: before/after per target, updated without a reload when an iteration ends.

A door like the others, and an allowlist too: it listens on 127.0.0.1 only, answers only a request that carries
the random token, serves only `GET`, and only these paths: `/` (the page), `/api/state` (JSON), `/events`
(server-sent events: one message per state change) and `/files/<iteration>/<name>` (an exported image directly
inside that iteration's output folder: a name of `names`' grammar, never a path, never a symbolic link).
Everything else is 403 or 404.

The token is a capability in the path, not a cookie: the URL `watch` prints (`/?token=T`) redirects to `/T/`, and
the page's own requests are relative to it (`/T/api/state`, `/T/events`, `/T/files/…`). A browser sends cookies
to every port of 127.0.0.1 — any local service it visits would receive a cookie token — but a path only where it
is written. `?token=T` is accepted on every path too (scripts, `curl`). Requests naming another host (DNS
rebinding) are refused.

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

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class LivePage:
    def __init__(self, state: LiveState, iteration_output: Callable[[int], Path | None], port: int = 0,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        """`iteration_output(n)` is iteration n's output folder (None if there is none)."""
        self.state = state
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
        elif path == "/api/state":
            self._send(200, json.dumps(self.page.state.snapshot()).encode(), "application/json")
        elif path == "/events":
            self._events()
        elif path.startswith("/files/"):
            self._file(path[len("/files/"):])
        else:
            self._send(404, b"not found\n", "text/plain")

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
