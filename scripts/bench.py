"""What a preview costs, measured: library sizes from 100 to 100,000 items, mock vs filter mode, against
the baseline a user would otherwise run (the Kometa stand-in straight at the whole library, writes allowed).

    .venv/bin/python scripts/bench.py                 # the full table (several minutes)
    .venv/bin/python scripts/bench.py --quick         # a smoke run: small sizes, one run each
    .venv/bin/python scripts/bench.py --write-doc     # also refresh the tables in docs/PERFORMANCE.md

Every render is the real CLI (`kometa-preview render … --offline`) with the stand-in rendering 5 targets.
Upstream requests and bytes are counted by the sample Plex server; proxy CPU and peak RSS are reported by
the proxy itself (getrusage at exit). Timings are medians with [min–max] over the runs.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from kometa_preview.common.config import load  # noqa: E402
from kometa_preview.common.job import JobLayout  # noqa: E402
from kometa_preview.plex import xml as plexml  # noqa: E402
from kometa_preview.run.proxy_child import ProxyOptions, start_proxy  # noqa: E402
from kometa_preview.sandbox import SampleServer, generate  # noqa: E402

STANDIN = ROOT / "tests" / "kometa_standin" / "kometa.py"
TOKEN = "bench-token"
TARGETS = [{"id": f"m{k}", "type": "movie", "ratingKey": str(k)} for k in range(1001, 1006)]
LIBRARIES = {"Movies": {"overlay_files": [{"default": "resolution"}]}}
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def spread(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} [{min(values):.{digits}f}–{max(values):.{digits}f}]"


def write_config(folder: Path, server: SampleServer, **extra) -> Path:
    document = {"plex": {"url": server.url, "token": TOKEN, "timeout": 300}, "libraries": LIBRARIES,
                "preview": {"output": str(folder / "out"), "targets": TARGETS}, **extra}
    path = folder / "preview.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def render_once(server: SampleServer, mode: str, folder: Path) -> dict:
    config = write_config(folder, server)
    server.log.clear()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "-q",
                             "--kometa", str(STANDIN), "--job", str(folder / "job"), "--force",
                             *(["--filter-mode"] if mode == "filter" else [])], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"render failed ({mode}): {result.stderr.strip()[-500:]}")
    summary = json.loads((folder / "job" / "output" / "summary.json").read_text())
    entries = server.log.snapshot()
    return {"wall": wall, "kometa": summary["timings_seconds"]["kometa"],
            "upstream_requests": len(entries), "upstream_bytes": sum(e.bytes_out for e in entries),
            "cpu": summary["proxy"]["cpu_seconds"], "rss": summary["proxy"]["peak_rss_mib"],
            "local": summary["proxy"]["answered_locally"], "forwarded": summary["proxy"]["answered_with_plex"]}


def baseline_once(server: SampleServer, folder: Path) -> dict:
    """The stand-in straight at the sample server: every item overlaid and uploaded."""
    config = folder / "kometa.yml"
    config.write_text(yaml.safe_dump({"plex": {"url": server.url, "token": TOKEN, "timeout": 300},
                                      "libraries": LIBRARIES, "tmdb": {"apikey": "unused"}}), encoding="utf-8")
    server.log.clear()
    started = time.monotonic()
    subprocess.run([sys.executable, str(STANDIN), "--config", str(config), "--run", "--overlays-only",
                    "--run-libraries", "Movies"], check=True, capture_output=True,
                   env={**os.environ, "STANDIN_NO_OUTSIDE": "1"})
    wall = time.monotonic() - started
    entries = server.log.snapshot()
    return {"wall": wall, "upstream_requests": len(entries), "upstream_bytes": sum(e.bytes_out for e in entries),
            "writes": sum(1 for e in entries if e.write)}


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def renders(sizes: list[int], modes: list[str], runs: int, baseline_sizes: list[int]) -> str:
    results: dict[tuple[str, int], list[dict]] = {}
    baselines: dict[int, dict] = {}
    for size in sizes:
        library = generate(seed=1, movies=size, shows=0)
        with SampleServer(library, TOKEN) as server, tempfile.TemporaryDirectory() as scratch:
            for mode in modes:
                for run in range(runs):
                    folder = Path(scratch) / f"{mode}{run}"
                    folder.mkdir()
                    results.setdefault((mode, size), []).append(render_once(server, mode, folder))
                    print(f"  {mode:6} {size:>7} run {run + 1}: {results[(mode, size)][-1]['wall']:.2f}s",
                          file=sys.stderr)
            if size in baseline_sizes:
                baselines[size] = baseline_once(server, Path(scratch))
                print(f"  baseline {size:>7}: {baselines[size]['wall']:.2f}s", file=sys.stderr)
    rows = []
    for mode in modes:
        reference = statistics.median(r["wall"] for r in results[(mode, sizes[0])])
        for size in sizes:
            runs_ = results[(mode, size)]
            wall = [r["wall"] for r in runs_]
            up_requests = sorted({r["upstream_requests"] for r in runs_})
            up_bytes = sorted({r["upstream_bytes"] for r in runs_})
            rows.append([mode, f"{size:,}", spread(wall), f"{statistics.median(wall) / reference:.2f}×",
                         spread([r["kometa"] for r in runs_]),
                         "/".join(str(v) for v in up_requests), "/".join(f"{v / 1024:,.0f}" for v in up_bytes),
                         spread([r["cpu"] for r in runs_]), spread([r["rss"] for r in runs_], 0),
                         f"{statistics.median(r['local'] for r in runs_):.0f} / "
                         f"{statistics.median(r['forwarded'] for r in runs_):.0f}"])
    out = table(rows, ["mode", "items", "render s", "vs first size", "Kometa s", "upstream req",
                       "upstream KiB", "proxy CPU s", "proxy peak RSS MiB", "local / from Plex"])
    if baselines:
        base_rows = []
        mock_runs = {size: statistics.median(r["wall"] for r in results[("mock", size)])
                     for size in sizes if ("mock", size) in results}
        for size, figures in sorted(baselines.items()):
            ratio = f"{figures['wall'] / mock_runs[size]:.1f}×" if size in mock_runs else "–"
            base_rows.append([f"{size:,}", f"{figures['wall']:.2f}", str(figures["upstream_requests"]),
                              f"{figures['upstream_bytes'] / 1024:,.0f}", str(figures["writes"]), ratio])
        out += "\n\nBaseline — the stand-in straight at the whole library, writes allowed (what \"just run " \
               "Kometa\" costs):\n\n" + table(base_rows, ["items", "wall s", "requests to Plex", "KiB from Plex",
                                                            "writes to Plex", "mock-mode preview is faster by"])
    return out


def dry_run_once(server: SampleServer, folder: Path, shards: int) -> dict:
    """`render --library Movies --shards N`: every item of the library, through the preview."""
    document = {"plex": {"url": server.url, "token": TOKEN, "timeout": 300}, "libraries": LIBRARIES,
                "preview": {"output": str(folder / "out"), "libraries": ["Movies"]}}
    config = folder / f"dry{shards}.yml"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    server.log.clear()
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "-q",
                             "--kometa", str(STANDIN), "--job", str(folder / f"dry{shards}"), "--force",
                             "--shards", str(shards)], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"dry run failed (shards {shards}): {result.stderr.strip()[-500:]}")
    summary = json.loads((folder / f"dry{shards}" / "output" / "summary.json").read_text())
    shard_summaries = [json.loads(p.read_text())
                       for p in (folder / f"dry{shards}").glob("shards/*/output/summary.json")]
    return {"wall": wall, "exported": sum(1 for t in summary["targets"].values() if t["status"] == "exported"),
            "items": len(summary["targets"]), "writes": sum(1 for e in server.log.snapshot() if e.write),
            "kometa": max(s["timings_seconds"].get("kometa", 0) for s in shard_summaries),
            "rss": [s["proxy"]["peak_rss_mib"] for s in shard_summaries]}


def dry_runs(size: int, shard_counts: list[int], latencies: list[int]) -> str:
    """The whole-library dry run against the stand-in run straight on the library (what "just run Kometa" costs),
    with the sample Plex answering at once, and answering each request `latency` ms later (a Plex on the network,
    its database and its image handling: a real one takes tens of ms for metadata and more for an upload)."""
    rows = []
    for latency in latencies:
        rows += _dry_runs(size, shard_counts, latency / 1000)
    return table(rows, ["Plex answers after", "run", "wall s", "vs straight", "items exported", "writes to Plex",
                        "proxy peak RSS MiB (each shard)"])


def _dry_runs(size: int, shard_counts: list[int], latency: float) -> list[list[str]]:
    rows = []
    when = f"{latency * 1000:.0f} ms"
    with tempfile.TemporaryDirectory() as scratch:
        with SampleServer(generate(seed=1, movies=size, shows=0), TOKEN, latency=latency) as copy:  # it writes
            base = baseline_once(copy, Path(scratch))
        print(f"  baseline {size} ({when}): {base['wall']:.1f}s", file=sys.stderr)
        rows.append([when, "stand-in straight at the library (writes allowed)", f"{base['wall']:.1f}", "1.00×",
                     f"{base['writes'] // 2:,} overlaid", str(base["writes"]), "–"])
        server = SampleServer(generate(seed=1, movies=size, shows=0), TOKEN, latency=latency).start()
        try:
            for shards in shard_counts:
                figures = dry_run_once(server, Path(scratch), shards)
                print(f"  dry run {size} shards {shards} ({when}): {figures['wall']:.1f}s", file=sys.stderr)
                rows.append([when, f"dry run, --shards {shards}", f"{figures['wall']:.1f}",
                             f"{figures['wall'] / base['wall']:.2f}×",
                             f"{figures['exported']:,} of {figures['items']:,}", str(figures["writes"]),
                             " / ".join(f"{r:.0f}" for r in figures["rss"])])
        finally:
            server.stop()
    return rows


def dry_run_memory(sizes: list[int]) -> str:
    """The proxy's memory once a dry run's items are read (prefetch only, no Kometa): how it grows per item."""
    rows, first = [], None
    for size in sizes:
        library = generate(seed=1, movies=size, shows=0)
        with SampleServer(library, TOKEN) as server, tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            document = {"plex": {"url": server.url, "token": TOKEN, "timeout": 300},
                        "preview": {"output": str(folder / "out"), "libraries": ["Movies"]}}
            (folder / "preview.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
            started = time.monotonic()
            proxy = start_proxy(load(folder / "preview.yml").for_proxy(), JobLayout(folder / "job"),
                                ProxyOptions(timeout=1800))
            seconds = time.monotonic() - started
            status = Path(f"/proc/{proxy.process.pid}/status").read_text()
            rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
            proxy.stop()
        first = first or (size, rss)
        per_item = f"{(rss - first[1]) * 1024 / (size - first[0]):.1f}" if size != first[0] else "–"
        rows.append([f"{size:,}", f"{seconds:.1f}", f"{rss:.0f}", per_item])
        print(f"  dry-run memory {size}: {rss:.0f} MiB", file=sys.stderr)
    return table(rows, ["items", "proxy start (reads the library) s", "proxy RSS MiB", "KiB per item (vs first row)"])


class _Timer:
    """Median latency of sequential GETs on one keep-alive connection."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token = token

    def median_ms(self, path: str, count: int) -> float:
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            self.connection.request("GET", path, headers={"X-Plex-Token": self.token})
            response = self.connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status == 200, response.status
        return statistics.median(samples[count // 10:])  # drop warm-up


FLOOR_SCRIPT = textwrap.dedent('''
    import json, os
    from mitmproxy import ctx, http
    class Floor:
        def request(self, flow):
            flow.response = http.Response.make(200, b'<MediaContainer size="0"/>', {"Content-Type": "text/xml"})
        def running(self):
            addrs = ctx.master.addons.get("proxyserver").listen_addrs()
            with open(os.environ["FLOOR_READY"], "w") as out:
                json.dump({"port": addrs[0][1]}, out)
    addons = [Floor()]
''')


def start_floor(folder: Path) -> tuple[subprocess.Popen, int, float]:
    script = folder / "floor.py"
    script.write_text(FLOOR_SCRIPT)
    ready = folder / "floor_ready.json"
    ready.unlink(missing_ok=True)
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-c", "import sys; from mitmproxy.tools.main import mitmdump; "
                                "sys.exit(mitmdump())", "-q", "-s", str(script), "--mode",
                                "reverse:http://127.0.0.1:9@127.0.0.1:0", "--set", f"confdir={folder / 'conf'}",
                                "--set", "connection_strategy=lazy"],
                               env={**os.environ, "FLOOR_READY": str(ready)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    while not ready.exists():
        time.sleep(0.01)
    return process, json.loads(ready.read_text())["port"], time.monotonic() - started


def overheads(requests_per_path: int, starts: int) -> str:
    library = generate(seed=1, movies=1000, shows=0)
    rows = []
    with SampleServer(library, TOKEN) as server, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        config = write_config(folder, server)
        floor_starts, proxy_starts = [], []
        for run in range(starts):
            process, port, seconds = start_floor(folder)
            floor_starts.append(seconds)
            if run < starts - 1:
                process.terminate()
                process.wait()
            started = time.monotonic()
            proxy = start_proxy(load(config).for_proxy(), JobLayout(folder / f"job{run}"))
            proxy_starts.append(time.monotonic() - started)
            if run < starts - 1:
                proxy.stop()
        floor_ms = _Timer(port, "x").median_ms("/library/sections/1/all?type=1", requests_per_path)
        timer = _Timer(proxy.port, proxy.client_token)
        listing_ms = timer.median_ms("/library/sections/1/all?type=1&includeGuids=1", requests_per_path)
        filtered_ms = timer.median_ms("/library/sections/1/all?type=1&sort=titleSort&push=1&resolution=1080&or=1"
                                      "&resolution=720&pop=1&and=1&hdr=1", requests_per_path)
        blocked_ms = timer.median_ms("/library/metadata/1999", requests_per_path)
        process.terminate()
        process.wait()
        proxy.stop()
    rows.append(["mitmdump + one addon answering locally (floor)", f"{floor_ms:.2f}", "–"])
    for name, value in (("mock listing (5 targets, includeGuids)", listing_ms),
                        ("mock listing with push/pop/or/and filter", filtered_ms),
                        ("metadata of a non-target (BLOCK_METADATA)", blocked_ms)):
        rows.append([name, f"{value:.2f}", f"{value - floor_ms:+.2f}"])
    out = table(rows, ["locally answered request", "median ms", "added by our addons"])
    out += "\n\n" + table([["mitmdump + trivial addon (floor)", spread(floor_starts)],
                           ["kometa-preview proxy (prefetch of 5 targets)", spread(proxy_starts)],
                           ["difference (medians)",
                            f"{statistics.median(proxy_starts) - statistics.median(floor_starts):+.2f}"]],
                          ["start until ready", "seconds"])
    return out


def xml_floor(sizes: list[int]) -> str:
    rows = []
    for size in sizes:
        library = generate(seed=1, movies=size, shows=0)
        with SampleServer(library, TOKEN) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.httpd.server_address[1], timeout=300)
            connection.request("GET", "/library/sections/1/all?type=1&includeGuids=1", headers={"X-Plex-Token": TOKEN})
            body = connection.getresponse().read()
        keep = {str(k) for k in range(1001, 1006)}
        started = time.perf_counter()
        ET.tostring(ET.fromstring(body))
        floor = time.perf_counter() - started
        started = time.perf_counter()
        stream = plexml.StreamFilter(lambda e, keep=keep: e.get("ratingKey") in keep)
        for offset in range(0, len(body), 65536):
            stream.feed(body[offset:offset + 65536])
        plexml.serialize(stream.close())
        filtered = time.perf_counter() - started
        rows.append([f"{size:,}", f"{len(body) / 1048576:.1f}", f"{floor * 1000:.0f}", f"{filtered * 1000:.0f}",
                     f"{filtered / floor:.2f}×"])
    return table(rows, ["items", "listing MiB", "parse + serialize ms (floor)", "stream filter ms", "vs floor"])


TEXT_OVERLAY = {"overlays": {"Hello": {"overlay": {
    "name": "text(Hello)", "back_color": "#FF0000", "font_color": "#FFFFFF", "horizontal_offset": 30,
    "vertical_offset": 30, "horizontal_align": "left", "vertical_align": "top"}, "plex_all": True}}}


def cost_config(folder: Path, server: SampleServer, kometa: Path, python: str | None) -> Path:
    """5 movie targets, one text overlay from a file beside preview.yml (what a user edits while watching)."""
    (folder / "overlays.yml").write_text(yaml.safe_dump(TEXT_OVERLAY), encoding="utf-8")
    document = {"plex": {"url": server.url, "token": TOKEN, "timeout": 300},
                "libraries": {"Movies": {"overlay_files": [{"file": "overlays.yml"}]}},
                "kometa": {"path": str(kometa), "timeout": 900, **({"python": python} if python else {})},
                "preview": {"output": str(folder / "out"), "targets": TARGETS}}
    path = folder / "preview.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def one_shot_cost(config: Path, folder: Path, isolation: str) -> dict:
    """A one-shot render timed from outside: its wall time against Kometa's own (imports + cue → exit)."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "-q",
                             "--job", str(folder), "--force", "--isolation", isolation], capture_output=True, text=True)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"render failed ({result.returncode}): {(result.stdout + result.stderr).strip()[-800:]}")
    timings = json.loads((folder / "output" / "summary.json").read_text())["timings_seconds"]
    return {"wall": wall, "kometa": timings["kometa"], "overhead": wall - timings["kometa"],
            "proxy_start": timings["proxy_start"]}


def _state(port: int, token: str) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"/api/state?token={token}")
    state = json.loads(connection.getresponse().read())
    connection.close()
    return state


class PageEvents:
    """The page's server-sent events, as the browser gets them: one message per state change."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
        self.connection.request("GET", f"/events?token={token}")
        self.response = self.connection.getresponse()

    def next(self) -> None:
        while (line := self.response.readline()) and not line.startswith(b"data:"):
            pass


def watch_costs(config: Path, folder: Path, edits: int, isolation: str) -> tuple[list[dict], list[dict]]:
    """`watch`, edited `edits` times: from each save (the file's mtime) to the page learning that the iteration is
    done (its server-sent event, then /api/state), minus Kometa's run from its cue to its exit. Then `edits` moves
    made as the page makes them (api/move): from the drop (the POST sent) to the page learning of Kometa's result."""
    process = subprocess.Popen([sys.executable, "-m", "kometa_preview", "watch", str(config), "--offline", "-q",
                                "--job", str(folder), "--force", "--isolation", isolation],
                               stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline().strip()
        if not line.startswith("page: "):
            raise SystemExit(f"watch printed {line!r}")
        address = urllib.parse.urlsplit(line.removeprefix("page: "))
        port, token = address.port, urllib.parse.parse_qs(address.query)["token"][0]
        events = PageEvents(port, token)
        wait_done(events, port, token, 1)
        results = []
        for edit in range(edits):
            time.sleep(1.5)  # the user looks at the page; the next Kometa imports meanwhile
            overlays = config.parent / "overlays.yml"
            document = yaml.safe_load(overlays.read_text())
            document["overlays"]["Hello"]["overlay"]["back_color"] = f"#{(edit * 40) % 256:02X}00FF"
            overlays.write_text(yaml.safe_dump(document), encoding="utf-8")
            saved = overlays.stat().st_mtime
            state, seen = wait_done(events, port, token, edit + 2)
            if state["status"] != "done":
                raise SystemExit(f"iteration {edit + 2} {state['status']}: {state['error']}")
            timings = state["timings"]
            results.append({"save_to_done": seen - saved, "kometa_run": timings["kometa_run"],
                            "overhead": seen - saved - timings["kometa_run"],
                            "save_to_start": timings["save_to_start"], "exit_to_done": timings["exit_to_done"],
                            "diff": timings.get("diff", 0.0)})
        return results, [move_cost(events, port, token, edits + 2 + n, n) for n in range(edits)]
    finally:
        process.send_signal(2)
        process.wait(timeout=60)


def move_cost(events: PageEvents, port: int, token: str, iteration: int, n: int) -> dict:
    """One drag of the first target's overlay on the page (10 px right, then back): the POST and the write, the
    next iteration, and the page learning it is done."""
    time.sleep(1.5)  # the user looks at the page; the next Kometa imports meanwhile
    state = _state(port, token)
    target, entry = next(iter(state["targets"].items()))
    body = json.dumps({"target": target, "overlay": entry["overlays"][-1], "dx": 10 if n % 2 == 0 else -10, "dy": 0})
    dropped = time.time()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("POST", f"/{token}/api/move", body=body, headers={
        "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
    answer = connection.getresponse()
    if answer.status != 200:
        raise SystemExit(f"api/move answered {answer.status}: {answer.read()[:300]!r}")
    written = time.time()
    connection.close()
    state, seen = wait_done(events, port, token, iteration)
    if state["status"] != "done":
        raise SystemExit(f"iteration {iteration} {state['status']}: {state['error']}")
    kometa = state["timings"]["kometa_run"]
    return {"move_to_done": seen - dropped, "kometa_run": kometa, "overhead": seen - dropped - kometa,
            "write": written - dropped}


def wait_done(events: PageEvents, port: int, token: str, iteration: int) -> tuple[dict, float]:
    while True:
        state = _state(port, token)
        if state["iteration"] == iteration and state["status"] in ("done", "failed"):
            return state, time.time()
        events.next()


ISOLATIONS = ("box", "none")


def costs(runs: int, edits: int, kometas: list[tuple[str, Path, str | None]]) -> str:
    """What a preview adds to Kometa's own time: a one-shot render, and a watch iteration; with Kometa in its box and
    without (the box's own cost is the difference). One-shot renders alternate between the two, so both meet the
    same caches and the same load (run one after the other, the first group's cold start read as the box's cost)."""
    shot_rows, watch_rows, move_rows = [], [], []
    for name, kometa, python in kometas:
        with SampleServer(generate(seed=1, movies=100, shows=0), TOKEN) as server, \
                tempfile.TemporaryDirectory() as scratch:
            config = cost_config(Path(scratch), server, kometa, python)
            shots: dict[str, list[dict]] = {isolation: [] for isolation in ISOLATIONS}
            for n in range(runs):
                for isolation in (ISOLATIONS if n % 2 == 0 else ISOLATIONS[::-1]):
                    shot = one_shot_cost(config, Path(scratch) / f"shot-{isolation}-{n}", isolation)
                    shots[isolation].append(shot)
                    print(f"  one-shot {name}, {isolation}: wall {shot['wall']:.2f}s, Kometa {shot['kometa']:.2f}s",
                          file=sys.stderr)
            for isolation in ISOLATIONS:
                label = f"{name}, {isolation}"
                done = shots[isolation]
                shot_rows.append([label, spread([s["wall"] for s in done]), spread([s["kometa"] for s in done]),
                                  spread([s["overhead"] for s in done]), spread([s["proxy_start"] for s in done])])
                iterations, moves = watch_costs(config, Path(scratch) / f"watch-{isolation}", edits, isolation)
                for it in iterations:
                    print(f"  watch {label}: save→done {it['save_to_done']:.3f}s, Kometa {it['kometa_run']:.3f}s",
                          file=sys.stderr)
                for move in moves:
                    print(f"  move {label}: drop→done {move['move_to_done']:.3f}s, Kometa {move['kometa_run']:.3f}s",
                          file=sys.stderr)
                watch_rows.append([label] + [spread([it[k] for it in iterations], 3) for k in
                                             ("save_to_done", "kometa_run", "overhead", "save_to_start",
                                              "exit_to_done", "diff")])
                move_rows.append([label] + [spread([m[k] for m in moves], 3) for k in
                                            ("move_to_done", "kometa_run", "overhead", "write")])
    return ("One-shot render (5 targets, one text overlay, --offline; wall time from outside):\n\n" +
            table(shot_rows, ["Kometa, isolation", "render wall s", "Kometa's own s", "added s (target ≤ 0.5)",
                              "proxy start s"]) +
            f"\n\nWatch iteration ({edits} edits of the overlay file; the page's event stream, as a browser gets "
            f"it):\n\n" +
            table(watch_rows, ["Kometa, isolation", "save → done s", "Kometa cue → exit s", "added s (target ≤ 0.3)",
                               "save → Kometa's cue s", "Kometa's exit → done s", "of which diff s"]) +
            f"\n\nMove on the watch page ({edits} drags of the overlay, 10 px, as the page sends them to api/move; "
            f"from the drop to the page learning of Kometa's result):\n\n" +
            table(move_rows, ["Kometa, isolation", "drop → result s", "Kometa cue → exit s",
                              "added s (target ≤ 0.5)", "drop → file written s"]))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {system}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, one run: a smoke test")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--modes", default="mock,filter")
    parser.add_argument("--baseline-sizes", default="100,1000",
                        help="sizes at which to run the baseline (it overlays every item: slow)")
    parser.add_argument("--write-doc", action="store_true", help="refresh the tables in docs/PERFORMANCE.md")
    parser.add_argument("--dry-run-size", type=int, default=1000, help="items in the dry-run comparison")
    parser.add_argument("--only", choices=["dry-run", "cost"], help="run only one section")
    parser.add_argument("--kometa", type=Path, help="cost section: also measure this real kometa.py")
    parser.add_argument("--kometa-python", help="cost section: the interpreter with Kometa's requirements")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.sizes, args.baseline_sizes = 1, "100,1000", "100"
    sizes = [int(s) for s in args.sizes.split(",")]
    command = "python scripts/bench.py" + (" --quick" if args.quick else "")
    kometas = [("stand-in", STANDIN, sys.executable)]  # its interpreter named, as an installed Kometa has it
    if args.kometa:
        version = (args.kometa.parent / "VERSION").read_text().strip()
        kometas.append((f"Kometa {version}", args.kometa, args.kometa_python))
    cost_runs, edits = (1, 3) if args.quick else (args.runs, 10)
    if args.only == "cost":
        print("\n\n".join([f"Command: `{command} --only cost --runs {cost_runs}"
                            + (" --kometa …/kometa.py --kometa-python …" if args.kometa else "") + f"` · "
                            f"{time.strftime('%Y-%m-%d')} · {machine()}", costs(cost_runs, edits, kometas)]))
        return 0
    if args.only == "dry-run":
        print("\n\n".join([f"Command: `{command} --only dry-run --dry-run-size {args.dry_run_size}` · "
                            f"{time.strftime('%Y-%m-%d')} · {machine()}",
                            dry_runs(args.dry_run_size, [1, 2], [0, 20]),
                            dry_run_memory([1000, 10000] if args.quick else [1000, 10000, 50000, 100000])]))
        return 0
    sections = [f"Command: `{command}` · {time.strftime('%Y-%m-%d')} · {machine()}",
                "### Renders (5 targets, Kometa stand-in, --offline)",
                renders(sizes, args.modes.split(","), args.runs, [int(s) for s in args.baseline_sizes.split(",") if s]),
                "### What a preview adds to Kometa's own time",
                costs(cost_runs, edits, kometas),
                "### Proxy overhead per request and at start-up",
                overheads(100 if args.quick else 400, 2 if args.quick else 5),
                "### Filter mode: the streaming filter against plain parse + serialize",
                xml_floor([1000] if args.quick else [10000, 100000]),
                f"### Dry run of a whole library ({args.dry_run_size:,} movies, Kometa stand-in, --offline)",
                dry_runs(args.dry_run_size, [1, 2], [0, 20]),
                "### Dry run: the proxy's memory per item",
                dry_run_memory([1000, 10000] if args.quick else [1000, 10000, 50000, 100000])]
    report = "\n\n".join(sections)
    print(report)
    if args.write_doc:
        doc = ROOT / "docs" / "PERFORMANCE.md"
        text = doc.read_text(encoding="utf-8")
        head, _, rest = text.partition(MARK_START)
        _, _, tail = rest.partition(MARK_END)
        doc.write_text(f"{head}{MARK_START}\n{report}\n{MARK_END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
