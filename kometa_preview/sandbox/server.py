"""A sample Plex Media Server over real HTTP, accepted by plexapi and Kometa.

It answers the endpoint families plexapi and Kometa use (docs/PLEX-PROTOCOL.md, docs/KOMETA-TRAFFIC.md),
applies writes the way Plex does (uploaded posters are served afterwards, labels change), and keeps
a request log in which every write and every side-effecting GET is flagged, so a test can prove
that nothing a preview does ever changed it.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from ..plex.routes import LIBTYPES
from . import images, views
from .library import Item, Library, Upload
from .search import Evaluator, UnsupportedQuery, parse_filters, sort_items, split_query

log = logging.getLogger(__name__)

#: GETs that change server state in real Plex (play state, scans, maintenance).
SIDE_EFFECT_GET = re.compile(
    r"^/(:/(scrobble|unscrobble|timeline|rate|progress)|library/sections/[^/]+/(refresh|emptyTrash|analyze)"
    r"|library/(optimize|clean/bundles)|butler|updater|playQueues|player)(/|$)")
_METADATA = re.compile(r"^/library/metadata/(?P<keys>[\d,]+)(?:/(?P<sub>[^/]+)(?:/(?P<rest>.*))?)?$")
_SECTION = re.compile(r"^/library/sections/(?P<id>\d+)(?:/(?P<sub>[^/]+))?$")
_LISTING_SUBS = {"all", "search", "recentlyAdded", "newest", "firstCharacter", "unwatched", "allLeaves",
                 "recentlyViewed", "onDeck"}


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int
    bytes_in: int
    bytes_out: int
    write: bool
    side_effect: bool
    time: float


class RequestLog:
    """Every request that reached the server, with tokens removed from the recorded query."""

    def __init__(self, path: Path | None = None) -> None:
        self.entries: list[LoggedRequest] = []
        self._lock = threading.Lock()
        self._path = path

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.entries.append(entry)
            if self._path:
                with self._path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(asdict(entry)) + "\n")

    def changes(self) -> list[LoggedRequest]:
        """Writes and side-effecting GETs: what a preview must never cause."""
        with self._lock:
            return [e for e in self.entries if e.write or e.side_effect]

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()

    def snapshot(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self.entries)


class Answer(Exception):
    """Raised by a route to answer with a status and optional XML."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/html") -> None:
        super().__init__(status)
        self.status, self.body, self.content_type = status, body, content_type


def _paging(headers, params: dict[str, str]) -> tuple[int, int | None]:
    """Plex pages by headers or by query parameters; neither means everything."""
    start = headers.get("X-Plex-Container-Start", params.get("X-Plex-Container-Start"))
    size = headers.get("X-Plex-Container-Size", params.get("X-Plex-Container-Size"))
    try:
        return int(start or 0), (int(size) if size is not None else None)
    except ValueError as exc:
        raise Answer(400) from exc


class SampleServer:
    """Owns the library, the HTTP server thread and the request log."""

    def __init__(self, library: Library, token: str, host: str = "127.0.0.1", port: int = 0,
                 log_path: Path | None = None, latency: float = 0.0) -> None:
        self.library = library
        self.token = token
        #: Seconds each answer takes (a Plex on the network, its database and transcoder), for the benchmark.
        self.latency = latency
        self.log = RequestLog(log_path)
        handler = type("Handler", (_Handler,), {"app": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.connections: set = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> SampleServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="sample-plex", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop like a server going away: no new connections, and open keep-alive ones closed."""
        self.httpd.shutdown()
        self.httpd.server_close()
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> SampleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    app: SampleServer
    protocol_version = "HTTP/1.1"
    server_version = "PlexMediaServer-sample"
    #: Status line, headers and body go out as separate small writes; with Nagle's algorithm on, each keep-alive
    #: answer then waits for the client's delayed ACK (40 ms on Linux). Plex answers without that stall.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.app.connections.add(self.connection)

    def finish(self) -> None:
        self.app.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature from the base class
        log.debug("%s " + format, self.address_string(), *args)

    def __getattr__(self, name: str):
        """Answer every method, PROPFIND and friends included, so the log sees them all."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # --- plumbing ----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        started = time.time()
        if self.app.latency:
            time.sleep(self.app.latency)
        self._extra_headers: dict[str, str] = {}
        split = urlsplit(self.path)
        path = split.path or "/"
        raw_query = split.query
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        method = self.command.upper()
        try:
            self._check_token(raw_query)
            status, payload, content_type = self._route(method, path, raw_query, body)
        except Answer as answer:
            status, payload, content_type = answer.status, answer.body, answer.content_type
        except UnsupportedQuery as exc:
            status, payload, content_type = 400, f"<html><body>{exc}</body></html>".encode(), "text/html"
        clean_query = "&".join(p for p in raw_query.split("&") if not p.lower().startswith("x-plex-token="))
        self.app.log.add(LoggedRequest(
            method=method, path=path, query=clean_query, status=status, bytes_in=len(body),
            bytes_out=len(payload), write=method not in ("GET", "HEAD"),
            side_effect=method in ("GET", "HEAD") and bool(SIDE_EFFECT_GET.match(path)), time=started))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in self._extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _check_token(self, raw_query: str) -> None:
        offered = self.headers.get("X-Plex-Token") or dict(parse_qsl(raw_query)).get("X-Plex-Token")
        if offered != self.app.token:
            raise Answer(401, b"<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1>"
                              b"</body></html>")

    def _xml(self, element: ET.Element) -> tuple[int, bytes, str]:
        return 200, views.serialize(element), "text/xml;charset=utf-8"

    # --- routing -----------------------------------------------------------------------------
    def _route(self, method: str, path: str, raw_query: str, body: bytes) -> tuple[int, bytes, str]:
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        lib = self.app.library
        if method in ("GET", "HEAD"):
            if SIDE_EFFECT_GET.match(path):
                return self._side_effect(path, params)
            return self._read(path, raw_query, params)
        with lib.lock:
            return self._write(method, path, raw_query, params, body)

    def _read(self, path: str, raw_query: str, params: dict[str, str]) -> tuple[int, bytes, str]:
        lib = self.app.library
        if path == "/":
            return self._xml(views.root())
        if path == "/identity":
            return self._xml(views.container(size=0, machineIdentifier=views.MACHINE_ID, version=views.VERSION,
                                             claimed="1", apiVersion="1.1.1"))
        if path == "/:/prefs":
            return self._xml(views.settings(views.SERVER_PREFS))
        if path == "/library":
            root = views.container(size=3, allowSync="0", title1="Plex Library")
            for key in ("sections", "recentlyAdded", "onDeck"):
                ET.SubElement(root, "Directory", {"key": key, "title": key})
            return self._xml(root)
        if path == "/library/sections":
            root = views.container(size=len(lib.sections), allowSync="0", title1="Plex Library")
            for section in lib.sections.values():
                root.append(views.section_directory(section))
            return self._xml(root)
        if path in ("/library/all", "/library/search", "/library/recentlyAdded"):
            items = [i for s in lib.sections for i in lib.in_section(s)]
            if path.endswith("recentlyAdded"):
                raw_query += "&sort=addedAt:desc"
            return self._listing(items, raw_query, params, section=None)
        if path == "/hubs/search":
            return self._hubs(params)
        if path == "/photo/:/transcode":
            return self._transcode(params)
        if match := _SECTION.match(path):
            return self._section(int(match["id"]), match["sub"], raw_query, params)
        if match := _METADATA.match(path):
            return self._metadata(match["keys"], match["sub"], match["rest"], raw_query, params)
        raise Answer(404)

    def _section(self, section_id: int, sub: str | None, raw_query: str,
                 params: dict[str, str]) -> tuple[int, bytes, str]:
        lib = self.app.library
        section = lib.sections.get(section_id)
        if section is None:
            raise Answer(404)
        items = lib.in_section(section_id)
        if sub is None:
            root = views.container(size=4, allowSync="1", title1=section.title, **{"librarySectionID": section_id})
            for key in ("all", "unwatched", "newest", "recentlyAdded"):
                ET.SubElement(root, "Directory", {"key": key, "title": key})
            return self._xml(root)
        if sub == "prefs":
            return self._xml(views.settings(views.SECTION_PREFS))
        if sub == "collections":
            return self._listing([], raw_query, params, section=section, meta=views.collections_meta(section))
        if sub in _LISTING_SUBS:
            if sub in ("recentlyAdded", "newest"):
                raw_query += "&sort=addedAt:desc"
            if sub == "allLeaves" and section.type == "show" and "type" not in params:
                params = {**params, "type": "4"}  # every episode of the library, as Plex lists it
            elif sub in ("recentlyViewed", "onDeck"):  # nothing in the sample library has been watched
                items = []
            return self._listing(items, raw_query, params, section=section, meta=views.meta(section))
        libtype = LIBTYPES.get(params.get("type", ""), "movie" if section.type == "movie" else "show")
        typed = [i for i in items if i.type == libtype]
        return self._xml(views.choices(lib, section, sub, typed))

    def _listing(self, items: list[Item], raw_query: str, params: dict[str, str], section,
                 meta: ET.Element | None = None) -> tuple[int, bytes, str]:
        pairs = split_query(raw_query)
        type_value = params.get("type")
        if type_value is not None and type_value not in LIBTYPES:
            raise Answer(400)
        libtype = LIBTYPES.get(type_value or "") if type_value else None
        if libtype is None:
            default = {"movie": "movie", "show": "show"}.get(section.type) if section else None
            libtype = default
        if libtype == "collection":
            chosen: list[Item] = []
        else:
            if libtype:
                items = [i for i in items if i.type == libtype]
            elif section is None:
                items = [i for i in items if i.type in ("movie", "show")]
            tree = parse_filters(pairs)
            evaluator = Evaluator(self.app.library, libtype or "movie")
            query = params.get("query", "").lower()
            chosen = [i for i in items if evaluator.matches(i, tree) and query in i.title.lower()]
        chosen = sort_items(chosen, params.get("sort"))
        return self._page(chosen, params, section, guids=params.get("includeGuids") == "1",
                          meta=meta if params.get("includeMeta") == "1" else None)

    def _page(self, items: list[Item], params: dict[str, str], section, *, guids: bool,
              meta: ET.Element | None = None, extra: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        start, size = _paging(self.headers, params)
        page = items[start:] if size is None else items[start:start + size]
        attrs: dict[str, object] = {"size": len(page), "allowSync": "1", **(extra or {})}
        if size is not None or start:
            attrs.update(offset=start, totalSize=len(items))
            self._extra_headers = {"X-Plex-Container-Start": str(start),
                                   "X-Plex-Container-Total-Size": str(len(items))}
        if section is not None:
            attrs.update(librarySectionID=section.id, librarySectionTitle=section.title,
                         librarySectionUUID=section.uuid, title1=section.title)
        root = views.container(**attrs)
        if meta is not None:
            root.append(meta)
        lib = self.app.library
        for item in page:
            root.append(views.item_element(lib, item, full=False, guids=guids))
        return self._xml(root)

    def _hubs(self, params: dict[str, str]) -> tuple[int, bytes, str]:
        lib = self.app.library
        query = params.get("query", "").lower()
        limit = int(params.get("limit") or 10)
        section_id = params.get("sectionId")
        root = views.container(size=4)
        for libtype in ("movie", "show", "season", "episode"):
            found = [i for i in lib.items.values() if i.type == libtype and query in i.title.lower()
                     and (section_id is None or str(i.section_id) == section_id)]
            found = sort_items(found, None)
            hub = ET.SubElement(root, "Hub", {"title": libtype.title() + "s", "type": libtype,
                                              "hubIdentifier": libtype, "size": str(min(len(found), limit)),
                                              "more": "1" if len(found) > limit else "0", "style": "shelf"})
            for item in found[:limit]:
                element = views.item_element(lib, item, full=False, guids=False)
                section = lib.sections[item.section_id]
                element.set("librarySectionID", str(section.id))
                element.set("librarySectionTitle", section.title)
                hub.append(element)
        return self._xml(root)

    def _item(self, rating_key: int) -> Item:
        item = self.app.library.items.get(rating_key)
        if item is None:
            raise Answer(404)
        return item

    def _metadata(self, keys: str, sub: str | None, rest: str | None, raw_query: str,
                  params: dict[str, str]) -> tuple[int, bytes, str]:
        lib = self.app.library
        if sub is None:
            found = [lib.items[int(k)] for k in keys.split(",") if k and int(k) in lib.items]
            if not found:
                raise Answer(404)
            root = views.container(size=len(found), allowSync="1", identifier="com.plexapp.plugins.library",
                                   **({"librarySectionID": found[0].section_id} if len(found) == 1 else {}))
            for item in found:
                root.append(views.item_element(lib, item, full=True, guids=True))
            return self._xml(root)
        item = self._item(int(keys.split(",")[0]))
        if sub in ("children", "allLeaves"):
            if sub == "children":
                kids = [lib.items[k] for k in item.children]
            else:
                kids = [lib.items[e] for s in item.children for e in lib.items[s].children]
            kids.sort(key=lambda k: (lib.items[k.parent_key].index if sub == "allLeaves" else 0, k.index))
            section = lib.sections[item.section_id]
            return self._page(kids, params, section, guids=params.get("includeGuids") == "1",
                              extra={"key": item.rating_key, "parentTitle": item.title, "title2": item.title})
        if sub in ("posters", "arts"):
            kind = "thumb" if sub == "posters" else "art"
            root = views.container(size=1, identifier="com.plexapp.plugins.library")
            current = item.thumb_path if kind == "thumb" else item.art_path
            ET.SubElement(root, "Photo", {"key": current, "ratingKey": f"local://{item.rating_key}/{kind}",
                                          "selected": "1", "thumb": current, "provider": "local"})
            return self._xml(root)
        if sub in ("thumb", "art", "file"):
            return self._image(item, sub)
        raise Answer(404)

    def _image(self, item: Item, kind: str) -> tuple[int, bytes, str]:
        upload = self.app.library.uploads.get(item.rating_key)
        if kind != "art" and upload is not None:
            return 200, upload.body, upload.content_type
        body, content_type = images.render_poster(item.rating_key, item.title, item.type if kind != "art" else "art")
        return 200, body, content_type

    def _transcode(self, params: dict[str, str]) -> tuple[int, bytes, str]:
        target = urlsplit(unquote(params.get("url", "")))
        match = _METADATA.match(target.path)
        if not match or match["sub"] not in ("thumb", "art", "file"):
            raise Answer(404)
        _, body, _ = self._image(self._item(int(match["keys"].split(",")[0])), match["sub"])
        return (200, *images.resize(body, int(params.get("width") or 0) or 400,
                                    int(params.get("height") or 0) or 600))

    # --- state changes -----------------------------------------------------------------------
    def _side_effect(self, path: str, params: dict[str, str]) -> tuple[int, bytes, str]:
        lib = self.app.library
        key = params.get("key") or params.get("ratingKey")
        if path.startswith("/:/scrobble") and key and key.isdigit() and int(key) in lib.items:
            lib.items[int(key)].view_count += 1
        elif path.startswith("/:/unscrobble") and key and key.isdigit() and int(key) in lib.items:
            lib.items[int(key)].view_count = 0
        return 200, b"", "text/html"

    def _write(self, method: str, path: str, raw_query: str, params: dict[str, str],
               body: bytes) -> tuple[int, bytes, str]:
        lib = self.app.library
        if match := _METADATA.match(path):
            item = self._item(int(match["keys"].split(",")[0]))
            sub = match["sub"]
            if method == "POST" and sub in ("posters", "arts"):
                if "url" in params:
                    item.poster_version += 1
                    return 200, b"", "text/html"
                image = _extract_image(body, self.headers.get("Content-Type", ""))
                if image is None:
                    raise Answer(400)
                if sub == "posters":
                    lib.uploads[item.rating_key] = image
                    item.poster_version += 1
                    item.locked_fields.add("thumb")
                return 200, b"", "text/html"
            if method == "PUT" and sub in ("poster", "art", "refresh", "analyze", "unmatch", "match"):
                return 200, b"", "text/html"
            if method == "DELETE" and sub is None:
                lib.items.pop(item.rating_key)
                return 200, b"", "text/html"
            raise Answer(404)
        if (match := _SECTION.match(path)) and method == "PUT" and match["sub"] == "all":
            self._edit(params, raw_query)
            return 200, b"", "text/html"
        if method == "PUT" and path in ("/:/prefs", "/library/sections"):
            return 200, b"", "text/html"
        raise Answer(404)

    def _edit(self, params: dict[str, str], raw_query: str) -> None:
        """Apply a plexapi edit (`PUT /library/sections/{id}/all?id=…&label[0].tag.tag=…`)."""
        lib = self.app.library
        targets = [lib.items.get(int(k)) for k in params.get("id", "").split(",") if k.isdigit()]
        if not targets or None in targets:
            raise Answer(404)
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        new_labels = [v for k, v in pairs if re.fullmatch(r"label\[\d+\]\.tag\.tag", k)]
        removed = [unquote(v).lower() for k, v in pairs if k == "label[].tag.tag-" for v in v.split(",")]
        for item in targets:
            if new_labels:
                item.labels = list(dict.fromkeys(new_labels))
                for label in new_labels:
                    lib.label_id(label)
            if removed:
                item.labels = [label for label in item.labels if label.lower() not in removed]
            if "title.value" in params:
                item.title = params["title.value"]
            for name, value in pairs:
                if name.endswith(".locked") and value == "1":
                    item.locked_fields.add(name[: -len(".locked")])


def _extract_image(body: bytes, content_type: str) -> Upload | None:
    """Plex takes the raw body (plexapi's form) or the first image part of multipart/form-data."""
    if content_type.lower().startswith("multipart/"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            payload = part.get_payload(decode=True) or b""
            if kind := images.sniff(payload):
                return Upload(payload, kind)
        return None
    kind = images.sniff(body)
    return Upload(body, kind) if kind else None
