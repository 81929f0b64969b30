"""Every door the preview opens, attacked during real renders: a hostile Kometa stand-in (run where Kometa
runs, with Kometa's argv and environment) tries the outside-calls port towards Plex in every spelling, raw TCP
through a tunnel, webhooks and writes, wildcard and item-listing routes, item-pulling parameters, compression
bombs, header floods and concurrent uploads. Plex's request log must show only reads a preview needs; no
answer may show a non-target; no environment or command line may hold the Plex token."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import HOSTILE, RESOLUTION_OVERLAYS, TOKEN, movie_targets, standin_for, write_preview_yml

from kometa_preview.plex.routes import classify

pytestmark = pytest.mark.e2e

MOVIES = [1001, 1003]


def hostile_render(tmp_path: Path, server, *, offline: bool, then_kometa: bool, bulk: bool) -> tuple:
    episode = next(k for k in sorted(server.library.items) if server.library.items[k].type == "episode")
    targets = movie_targets(MOVIES) + [{"id": "episode", "type": "episode", "ratingKey": str(episode)}]
    config = write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS,
                               tmdb={"apikey": "tmdb-key-0123456789abcdef"})
    # As the README recommends: the token comes from the environment, and the parent's environment holds it.
    config.write_text(config.read_text(encoding="utf-8").replace(TOKEN, "${PLEX_TOKEN}"), encoding="utf-8")
    job = tmp_path / "job"
    report = job / "kometa" / "hostile.json"  # its config folder: the one folder Kometa may write
    kometa = standin_for(tmp_path, {"HOSTILE_PLEX_URL": server.url,
                                    "HOSTILE_THEN_KOMETA": "1" if then_kometa else "0",
                                    "HOSTILE_BULK": "1" if bulk else "0"}, script=HOSTILE)
    env = {**os.environ, "PLEX_TOKEN": TOKEN, "MY_NOTES": f"remember {TOKEN}", "HTTPS_PROXY": "",
           "KOMETA_CONFIG": "/elsewhere.yml"}
    server.log.clear()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                             "--job", str(job), *(["--offline"] if offline else [])],
                            capture_output=True, text=True, timeout=600, env=env)
    assert report.exists(), result.stderr[-2000:]
    return result, json.loads(report.read_text(encoding="utf-8")), job, server.log.snapshot(), targets


def allowed_keys(server, targets) -> set[str]:
    keys = {t["ratingKey"] for t in targets}
    for key in list(keys):
        item = server.library.items[int(key)]
        keys |= {str(k) for k in (item.parent_key, item.grandparent_key) if k}
    return keys


def assert_plex_saw_only_preview_reads(seen, allowed: set[str]) -> None:
    assert seen, "the render read nothing from Plex"
    assert [e for e in seen if e.write or e.side_effect] == []
    assert {e.method for e in seen} <= {"GET", "HEAD"}
    for entry in seen:
        route = classify(entry.method, entry.path + (f"?{entry.query}" if entry.query else ""))
        assert route.is_read, (entry.method, entry.path)
        assert set(route.rating_keys) <= allowed, (entry.path, route.rating_keys)
        assert entry.path.rsplit("/", 1)[-1] not in ("Refresh", "REFRESH", "emptytrash", "Analyze", "autocomplete",
                                                     "common", "firstCharacter"), entry.path


def assert_no_secret_anywhere(job: Path, report: dict, client_token: str | None) -> None:
    secrets = [TOKEN, "hostile-bearer-secret", "hostile-cookie-secret", "tmdb-key-0123456789abcdef"]
    if client_token:
        secrets.append(client_token)
    for path in job.rglob("*"):
        if path.name in ("proxy_ready.json", "hostile.json"):  # 0600, the job token's one place; the test's report
            continue
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log", ".html", ".yml", ".yaml"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for secret in secrets:
                assert secret not in text, f"{secret[:6]}… in {path.relative_to(job)}"
    assert not [k for k, v in report["environment"].items() if TOKEN in v], "Kometa's environment holds the token"
    assert "PLEX_TOKEN" not in report["environment"] and "KOMETA_CONFIG" not in report["environment"]
    assert not [line for line in report["cmdlines"] if TOKEN in line], "a command line holds the Plex token"
    assert not [item["where"] for item in report["harvest"] if TOKEN in item["text"]], "Kometa could read the token"


def test_a_hostile_kometa_finds_no_side_door_offline(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=2, seasons=2, episodes=3)
    result, report, job, seen, targets = hostile_render(tmp_path, server, offline=True, then_kometa=True, bulk=True)
    summary = json.loads((job / "output" / "summary.json").read_text(encoding="utf-8"))
    allowed = allowed_keys(server, targets)

    assert_plex_saw_only_preview_reads(seen, allowed)
    assert set(report["rating_keys_seen"]) <= allowed
    outside = [a for a in report["attempts"] if a["door"] == "outside"]
    for attempt in outside:
        if attempt["what"].startswith("CONNECT api.themoviedb.org"):
            assert attempt["status"] == 200 and not attempt["tunnel_answer"], attempt  # tunnel opened, then closed
        else:
            assert attempt["status"] in (403, 404, None) and attempt["tunnel_answer"] is None, attempt
    by_what = {a["what"]: a for a in report["attempts"]}
    assert by_what[next(w for w in by_what if w.startswith("brotli bomb"))]["status"] == 413
    assert by_what["20,000 headers"]["status"] == 431
    assert by_what["100,000 headers"]["status"] in (431, 400, None)
    uploads = by_what["20 concurrent 63 MiB uploads"]["statuses"]
    # Two fit the in-flight budget and are answered; the rest are closed unread (status None) at once: reset, not
    # left open for the client to give up on (its timeout is 60 s) with the proxy holding their sockets for good.
    assert set(uploads) <= {"200", "None"} and uploads.get("200", 0) >= 1 and uploads.get("None", 0) >= 10, uploads
    refused = [u for u in by_what["20 concurrent 63 MiB uploads"]["each"] if u["status"] is None]
    assert all(u["error"] in ("ConnectionResetError", "BrokenPipeError") for u in refused), refused
    latencies = by_what["normal requests during the attacks"]["latencies"]
    assert latencies and max(latencies) < 5, latencies  # answered throughout (measured below, not asserted tight)

    done = [json.loads(line) for line in (job / "proxy_journal.jsonl").read_text().splitlines()
            if '"PROXY_DONE"' in line][0]
    from kometa_preview.proxy.request_limits import PEAK_RSS_BOUND_MIB
    assert done["peak_rss_mib"] < PEAK_RSS_BOUND_MIB, done["peak_rss_mib"]
    doors = summary["side_doors"]
    for kind in ("OUTSIDE_REFUSED_PLEX", "OUTSIDE_REFUSED_ADDRESS", "OUTSIDE_REFUSED_HOST", "OUTSIDE_REFUSED_PROTOCOL",
                 "HEADERS_TOO_LARGE", "UPLOAD_TOO_LARGE", "UPLOADS_BUSY", "BLOCKED_UNKNOWN"):
        assert doors["by_kind"].get(kind), (kind, doors)
    assert "attempts to reach past the preview were refused" in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]  # and the real work still got done
    assert all(entry["status"] == "exported" or entry["after"] for entry in summary["targets"].values())
    run_yml = job / "kometa" / "kometa_run.redacted.yml"
    assert run_yml.exists() and TOKEN not in run_yml.read_text()
    assert_no_secret_anywhere(job, report, json.loads((job / "proxy_ready.json").read_text())["client_token"])
    evidence("Side doors", "a hostile Kometa during an offline render: the outside port towards Plex in 7 spellings "
             "(CONNECT + raw bytes, absolute-form with Host: api.themoviedb.org, origin-form), webhooks, Trakt writes, "
             "link-local, raw TCP in an allowed tunnel; wildcard section routes, item-listing routes, item-pulling "
             "parameters; a 1 GiB brotli bomb, 20,000 and 100,000 headers, 20 × 63 MiB concurrent uploads; encoded "
             "and nested tokens, Authorization/Cookie", len(report["attempts"]),
             f"Plex saw {len(seen)} reads, all on the read-only table for targets and parents, 0 writes; no answer "
             f"showed a non-target; {doors['total']} refusals recorded by kind; normal requests answered in at most "
             f"{max(latencies):.2f} s; peak proxy RSS {done['peak_rss_mib']:.0f} MiB; token in no environment, "
             "command line, journal, log or summary")


def test_a_hostile_kometa_finds_no_side_door_online(sample_plex_factory, tmp_path, evidence):
    """With online pass-through the allowlist still holds: Plex in any spelling, or behind a harmless Host
    header, is refused by where the connection goes."""
    server = sample_plex_factory(movies=10, shows=1)
    result, report, job, seen, targets = hostile_render(tmp_path, server, offline=False, then_kometa=False, bulk=False)
    allowed = allowed_keys(server, targets)
    assert_plex_saw_only_preview_reads(seen, allowed) if seen else None
    assert not [e for e in seen if e.write or e.side_effect or e.method not in ("GET", "HEAD")]
    outside = [a for a in report["attempts"] if a["door"] == "outside"]
    plex_bound = [a for a in outside if "api.themoviedb.org:443" not in a["what"]]
    assert all(a["status"] in (403, None) and a["tunnel_answer"] is None for a in plex_bound), plex_bound
    journal = [json.loads(line) for line in (job / "proxy_journal.jsonl").read_text().splitlines()]
    assert not [r for r in journal if r["event"] == "OUTSIDE_PASS" and any(
        spelling in r["request"] for spelling in ("127.", "localhost", "2130706433", "0.0.0.0", "::"))]
    assert_no_secret_anywhere(job, report, None)
    evidence("Side doors", "the same hostile Kometa, online (pass-through on): absolute-form and CONNECT towards "
             "Plex in 7 spellings, with and without a harmless Host header", len(outside),
             "every one refused by where the connection goes; 0 OUTSIDE_PASS towards Plex; 0 writes at Plex")


def test_mitmweb_s_password_is_never_on_a_command_line(sample_plex, tmp_path, evidence):
    """`proxy --web`: the password (hashed), the Plex URL and the token reach mitmweb through the launch socket,
    never a command line or a file; the printed URL still logs in."""
    import re
    import urllib.request

    from kometa_preview.common.children import free_port
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    config.write_text(config.read_text(encoding="utf-8").replace(TOKEN, "${PLEX_TOKEN}"), encoding="utf-8")
    web_port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "kometa_preview", "proxy", str(config), "--web",
                                "--web-port", str(web_port), "--job", str(tmp_path / "job")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PLEX_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("web:") for line in lines) and time.monotonic() < deadline:
            lines.append(process.stdout.readline().strip())
        url = next(line.split(None, 1)[1] for line in lines if line.startswith("web:"))
        password = re.search(r"token=([^&\s]+)", url)[1]
        cmdlines = [p.read_bytes().decode("utf-8", "replace") for p in Path("/proc").glob("[0-9]*/cmdline")
                    if p.exists()]
        assert not [c for c in cmdlines if password in c], "mitmweb's password is on a command line"
        assert not [c for c in cmdlines if TOKEN in c], "the Plex token is on a command line"
        assert not [c for c in cmdlines if sample_plex.url in c], "the Plex URL is on a command line"
        # Handed over through the launch socket: no file of the job holds the password's hash or the Plex token.
        assert not (tmp_path / "job" / "mitmproxy" / "config.yaml").exists()
        assert not [p for p in (tmp_path / "job").rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
        with urllib.request.urlopen(url, timeout=10) as response:  # the printed URL logs in
            assert response.status == 200
        refused = urllib.request.Request(f"http://127.0.0.1:{web_port}/options")
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(refused, timeout=10)
        assert caught.value.code in (401, 403)
    finally:
        process.terminate()
        process.wait(timeout=30)
    evidence("Side doors", "`proxy --web`: every process's command line read from /proc while mitmweb runs", len(cmdlines),
             "neither mitmweb's password nor the Plex token in any; the printed URL logs in; no password, no options")


def test_the_client_idle_timeout_closes_half_open_connections(sample_plex, proxy_factory, evidence):
    """A connection that sends nothing is closed by the listening side (mitmproxy's tcp_timeout, set by the
    launcher; shortened here so the test does not wait a minute)."""
    import socket
    proxy = proxy_factory(sample_plex, movie_targets([1001]), idle_timeout=2)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as idle:
        assert idle.recv(1) == b""  # closed by the proxy
    waited = time.monotonic() - started
    assert waited < 25
    evidence("Side doors", "a half-open connection that sends nothing", 1,
             f"closed by the proxy after {waited:.1f} s (tcp_timeout; the launcher sets 60 s)")


def test_allowed_outside_calls_leave_through_the_user_s_own_proxy(sample_plex, tmp_path, evidence):
    """Behind a corporate proxy (HTTPS_PROXY, its CA in REQUESTS_CA_BUNDLE), Kometa's allowed start-up calls
    leave through it (mitmproxy's upstream mode), verified against the user's CA; nothing else does."""
    from corporate_proxy import CorporateProxy
    corp = CorporateProxy(tmp_path / "corp").start()
    try:
        config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]), libraries=RESOLUTION_OVERLAYS,
                                   tmdb={"apikey": "tmdb-key-0123456789abcdef"})
        result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa",
                                 str(standin_for(tmp_path)), "--job", str(tmp_path / "job")],
                                capture_output=True, text=True, timeout=300,
                                env={**os.environ, "HTTPS_PROXY": corp.url, "REQUESTS_CA_BUNDLE": str(corp.ca_file)})
    finally:
        corp.stop()
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(set(corp.destinations)) == ["api.themoviedb.org:443", "raw.githubusercontent.com:443"]
    assert sorted(corp.requests) == ["api.themoviedb.org/3/configuration",
                                     "raw.githubusercontent.com/Kometa-Team/Anime-IDs/master/anime_ids.json",
                                     "raw.githubusercontent.com/Kometa-Team/Kometa/master/VERSION"]
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text(encoding="utf-8"))
    assert summary["outside_calls"]["outside_pass"] == 3 and summary["side_doors"]["total"] == 0
    evidence("Side doors", "a render behind the user's own HTTPS_PROXY (a TLS-inspecting proxy with its own CA)", 3,
             "Kometa's three start-up calls left through it, verified against REQUESTS_CA_BUNDLE; it was asked for "
             "no other destination")


ITEM_ROUTES = ["/library/sections/{m}/all", "/library/sections/{m}/unwatched", "/library/sections/{s}/allLeaves",
               "/library/sections/{s}/unwatched?type=4", "/library/sections/{m}/recentlyAdded",
               "/library/sections/{m}/newest", "/library/sections/{m}/search?title=a", "/library/sections/{m}/collections",
               "/library/all?type=1", "/library/recentlyAdded", "/hubs/search?query=e",
               "/library/metadata/{show}/children", "/library/metadata/{show}/allLeaves",
               "/library/metadata/{movie}?includeRelated=1&includeChildren=1&includeOnDeck=1&includePopularLeaves=1",
               "/library/metadata/{show}?includeChildren=1", "/library/sections/{m}/Refresh",
               "/library/sections/{m}/firstCharacter", "/library/sections/{m}/autocomplete?query=a",
               "/library/sections/{m}/common?type=1"]


@pytest.mark.parametrize("mock", [True, False], ids=["mock", "filter"])
def test_no_answer_shows_a_non_target_in_either_mode(sample_plex_factory, proxy_factory, evidence, mock):
    """Every route that can list items, asked with the job token: only targets and their learned parents come back."""
    import re
    import urllib.request
    server = sample_plex_factory(movies=20, shows=2, seasons=2, episodes=3)
    episode = next(k for k in sorted(server.library.items) if server.library.items[k].type == "episode")
    show = server.library.items[episode].grandparent_key
    targets = movie_targets(MOVIES) + [{"id": "episode", "type": "episode", "ratingKey": str(episode)}]
    proxy = proxy_factory(server, targets, mock=mock, name=f"mode-{mock}")
    allowed = allowed_keys(server, targets)
    seen, answers = set(), 0
    for template in ITEM_ROUTES:
        path = template.format(m=1, s=2, show=show, movie=MOVIES[0])
        request = urllib.request.Request(f"{proxy.url}{path}", headers={"X-Plex-Token": proxy.client_token})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        answers += 1
        keys = set(re.findall(rb'ratingKey="(\d+)"', body)) | set(re.findall(rb'parentRatingKey="(\d+)"', body))
        assert {k.decode() for k in keys} <= allowed, (path, keys)
        seen |= {k.decode() for k in keys}
    assert set(MOVIES_AS_TEXT) <= seen  # the routes did list the targets: the check looked at real answers
    assert [e for e in server.log.snapshot() if e.path.rsplit("/", 1)[-1] in ("Refresh", "firstCharacter",
                                                                              "autocomplete", "common")] == []
    evidence("Side doors", f"every item-listing route and item-pulling parameter, {'mock' if mock else 'filter'} mode",
             answers, f"only targets and learned parents in every answer ({len(seen)} distinct ratingKeys)")


MOVIES_AS_TEXT = [str(key) for key in MOVIES]


def test_a_client_that_sends_its_request_slowly_is_closed(sample_plex, proxy_factory, evidence):
    """Slow-loris from the client side: a byte every 0.3 s keeps the idle timeout from firing, so a deadline for
    the whole request applies (preview_request_timeout; shortened here), while normal requests go on."""
    import socket
    import urllib.request
    proxy = proxy_factory(sample_plex, movie_targets([1001]), request_timeout=2)
    started = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as slow:
        request = f"GET /identity HTTP/1.1\r\nHost: plex\r\nX-Plex-Token: {proxy.client_token}\r\n" + "X-Slow: a\r\n" * 60
        try:
            for byte in request.encode():
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
                normal = urllib.request.Request(f"{proxy.url}/identity", headers={"X-Plex-Token": proxy.client_token})
                with urllib.request.urlopen(normal, timeout=10) as answer:  # Kometa's requests go on meanwhile
                    assert answer.status == 200
                if time.monotonic() - started > 20:
                    break
            closed_after = None if slow.recv(1) else time.monotonic() - started
        except OSError:
            closed_after = time.monotonic() - started
    assert closed_after is not None and closed_after < 10, closed_after
    events = [json.loads(line)["event"] for line in (proxy.layout.journal).read_text().splitlines()]
    assert "SLOW_REQUEST" in events
    evidence("Side doors", "a client sending its request a byte every 0.3 s", 1,
             f"closed after {closed_after:.1f} s (preview_request_timeout; 30 s by default); normal requests answered")


def test_a_host_not_allowed_is_refused_inside_its_tunnel_so_kometa_gives_up_at_once(sample_plex, proxy_factory,
                                                                                      evidence):
    """A custom overlay's image host missing from outside.allow: the CONNECT is accepted and the request inside is
    answered 403 (why, and how to allow it), never connected anywhere. Refused at the CONNECT, Kometa's requests
    retried it six times, ten seconds apart (52 s measured for one image with Kometa 2.4.4)."""
    import http.client
    import ssl

    proxy = proxy_factory(sample_plex, movie_targets([1001]), outside=True)
    context = ssl.create_default_context(cafile=str(proxy.layout.ca_cert))
    started = time.monotonic()
    connection = http.client.HTTPSConnection("127.0.0.1", proxy.outside_port, timeout=10, context=context)
    connection.set_tunnel("images.example.org", 443)
    connection.request("GET", "/badge.png")
    response = connection.getresponse()
    body = response.read().decode()
    connection.close()
    assert response.status == 403 and "outside.allow" in body, (response.status, body)
    local = http.client.HTTPConnection("127.0.0.1", proxy.outside_port, timeout=10)
    local.set_tunnel("localhost", 32400)
    with pytest.raises(OSError, match="403"):
        local.request("GET", "/identity")  # a local name: refused at the CONNECT, as Plex and addresses are
    local.close()
    journal = [json.loads(line) for line in (proxy.layout.journal).read_text().splitlines()]
    refused = [r for r in journal if r["event"] == "OUTSIDE_REFUSED_HOST"]
    assert [r["request"] for r in refused] == ["GET https://images.example.org:443/badge.png", "CONNECT localhost:32400"]
    evidence("Side doors", "CONNECT to an image host not in outside.allow, then GET inside it; CONNECT to localhost", 2,
             f"the image request answered 403 inside the tunnel in {time.monotonic() - started:.2f} s, no connection "
             "made; localhost refused at the CONNECT")
