"""The pages: the contact sheet's embedded JSON cannot be ended or bent by a title, pages link only names of the
grammar, and the watch page keeps its credential to itself (a capability path, no cookie a browser would send to
every port of 127.0.0.1), bounds its connections, closes idle ones, and answers odd paths with 404."""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from crafted import cli, poster, shard, target_entry

from kometa_preview.common.job import JobLayout
from kometa_preview.results import contact, pages, report
from kometa_preview.results import live_page as page
from kometa_preview.results.live_page import LivePage, LiveState
from kometa_preview.results.summary import TargetResult, load

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed")
HOSTILE_TITLE = "Alien <!--<script> & </script><img src=x onerror=alert(1)> Covenant"


def _browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"])


# --- contact sheet and report --------------------------------------------------------------------------------------


@pytest.fixture
def merged(tmp_path) -> Path:
    """A merged dry run whose second item is titled with a comment opener, a script and an ampersand."""
    job = tmp_path / "job"
    shard(job, "1-1", {"t1": target_entry(before="t1_before.png", after="t1_after.png", title="Arrival"),
                       "t2": target_entry(before="t2_before.png", after="t2_after.png", title=HOSTILE_TITLE),
                       "t3": target_entry("unchanged", before="t3_before.png", title="Zulu")})
    result = cli("merge", str(job))
    assert result.returncode == 0, result.stderr
    return job / "output"


def test_the_contact_sheets_json_escapes_lt_gt_and_amp(merged):
    html = (merged / "contact.html").read_text()
    embedded = re.search(r'<script type="application/json" id="items">(.*?)</script>', html, re.S)[1]
    assert "<" not in embedded and ">" not in embedded and "&" not in embedded
    assert "\\u003c!--\\u003cscript\\u003e \\u0026 \\u003c/script\\u003e" in embedded
    assert [item["title"] for item in json.loads(embedded)] == ["Alien" + HOSTILE_TITLE[5:], "Arrival", "Zulu"]


@needs_chromium
def test_in_chromium_a_hostile_title_neither_blanks_the_contact_sheet_nor_runs(merged):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = _browser(playwright)
        tab = browser.new_page()
        dialogs = []
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        tab.goto((merged / "contact.html").as_uri())
        tab.wait_for_load_state("load")
        cards = tab.eval_on_selector_all(".card .t", "els => els.map(e => e.textContent)")
        thumbs = tab.eval_on_selector_all(".card img", "els => els.map(e => e.getAttribute('src'))")
        tab.click(".card:nth-child(1)")
        shown = tab.inner_text("#full .body")
        browser.close()
    assert cards == [HOSTILE_TITLE, "Arrival", "Zulu"] and not dialogs
    assert thumbs == ["thumbs/t2_after.jpg", "thumbs/t1_after.jpg", "thumbs/t3_before.jpg"]
    assert HOSTILE_TITLE in shown


def test_pages_link_only_names_of_the_grammar(merged):
    """Even given a summary no reader would load (names from another program), report and contact sheet link none
    of its odd names."""
    summary = load(json.loads((merged / "summary.json").read_text()))
    summary.targets["t1"].after = "javascript:alert(1)"
    summary.targets["t2"].before = "../../../etc/passwd"
    summary.targets["t3"] = TargetResult("3", "movie", "x", status="exported", before=str(merged / "t1_before.png"),
                                         after="t3_after.png")
    pages = report.render_html(merged, summary) + contact.render_html(merged, summary)
    links = set(re.findall(r'(?:href|src)="([^"]*)"', pages)) - {href for _, href in report.job_links(merged)}
    assert not [link for link in links if re.match(r"[a-z]+:|/|\.\.", link)], links
    assert "javascript:alert(1)" in pages and 'href="javascript' not in pages  # named as text, never linked
    assert '"after":null' in pages and '"before":null' in pages


def test_every_job_gets_the_report_and_a_merged_dry_run_the_contact_sheet_too(merged, caplog):
    """pages.PAGES: a job's (or a shard's) output folder gets report.html; a dry run's merged one contact.html too.
    A page that cannot be written is named (REPORT_ERROR), and the others are written all the same."""
    layout = JobLayout(merged.parent)
    summary = load(json.loads(layout.summary.read_text()))
    layout.report.unlink()
    layout.contact.unlink()
    pages.write(layout, summary)
    assert layout.report.is_file() and not layout.contact.exists()
    layout.report.unlink()
    layout.report.mkdir()  # a report.html that cannot be replaced
    pages.write(layout, summary, merged=True)
    assert layout.contact.is_file() and layout.report.is_dir()
    assert "REPORT_ERROR could not write report.html" in caplog.text


# --- the watch page ------------------------------------------------------------------------------------------------


@pytest.fixture
def live(tmp_path):
    """A live page over one iteration: t1 with its before and after, and odd entries beside them."""
    output = tmp_path / "iterations" / "1" / "output"
    poster(output / "t1_before.png")
    poster(output / "t1_after.png", box=(0, 0, 49, 49))
    (output / "summary.json").write_text("{}")
    (output / "t9_after.png").symlink_to(output / "t1_after.png")
    (tmp_path / "secret_after.png").write_bytes(b"secret")
    state = LiveState()
    state.update(iteration=1, status="done", targets={"t1": {"title": "First", "status": "exported"}},
                 images={"t1": {"iteration": 1, "before": "t1_before.png", "after": "t1_after.png"}})
    live = LivePage(state, lambda n: output if n == 1 else None, idle_seconds=1.0).start()
    yield live
    live.stop()


def _get(live: LivePage, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


def test_the_printed_url_leads_to_a_capability_path_and_no_cookie_is_a_credential(live):
    first = _get(live, f"/?token={live.token}")
    assert first.status == 303 and first.getheader("Location") == f"/{live.token}/"
    assert first.getheader("Set-Cookie") is None and first.getheader("Referrer-Policy") == "no-referrer"
    own = _get(live, f"/{live.token}/")
    assert own.status == 200 and b"EventSource('events')" in own.body
    assert _get(live, f"/{live.token}/api/state").status == 200
    assert _get(live, f"/api/state?token={live.token}").status == 200          # scripts and the watch tests
    assert _get(live, f"/{live.token}/files/1/t1_after.png").body == (live.iteration_output(1) /
                                                                       "t1_after.png").read_bytes()
    for path, headers in ((f"/{live.token[:-1]}/api/state", {}), ("/api/state", {}),
                          ("/api/state", {"Cookie": f"kometa_preview_token={live.token}"}),
                          (f"/{live.token}/api/state", {"Host": f"attacker.example:{live.port}"})):
        assert _get(live, path, headers).status == 403, (path, headers)


def _status(live: LivePage, path: bytes) -> int:
    """The status of a GET of `path` sent byte for byte (a byte no client library would send included)."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as connection:
        connection.sendall(b"GET " + path + f" HTTP/1.1\r\nHost: 127.0.0.1:{live.port}\r\n"
                           "Connection: close\r\n\r\n".encode())
        answer = connection.recv(64)
    return int(answer.split(b" ")[1]) if answer.startswith(b"HTTP/1.") else 0


@pytest.mark.parametrize("path", ["/files/abc/t1_after.png", "/files/99999999999999999999/t1_after.png",
                                  "/files/\xb2/t1_after.png", "/files/0/t1_after.png", "/files/2/t1_after.png",
                                  "/files/1/../t1_after.png", "/files/1/%2e%2e/secret_after.png",
                                  "/files/1/summary.json", "/files/1/t9_after.png", "/files/1/", "/files/1",
                                  "/files//t1_after.png", "/files/1/t1_after.png/x", "/files/-1/t1_after.png"])
def test_odd_file_paths_and_symbolic_links_get_404(live, path):
    assert _status(live, f"{path}?token={live.token}".encode("latin-1")) == 404
    assert _status(live, f"/files/1/t1_after.png?token={live.token}".encode()) == 200


def test_the_state_links_only_names_of_the_grammar(live):
    live.state.update(images={"t1": {"iteration": 1, "before": "../../secret_after.png", "after": "javascript:x"}})
    shown = json.loads(_get(live, f"/{live.token}/api/state").body)["images"]["t1"]
    assert shown == {"iteration": 1, "before": None, "after": None}


def test_idle_connections_are_bounded_and_time_out(live):
    threads_before = threading.active_count()
    idle = []
    for _ in range(3000):
        idle.append(socket.create_connection(("127.0.0.1", live.port), timeout=10))
    time.sleep(0.3)
    held = threading.active_count() - threads_before
    assert held <= page.MAX_CONNECTIONS, held
    time.sleep(1.5)  # past the page's idle time (1 s here)
    closed = 0
    for connection in idle:
        try:
            closed += connection.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        connection.close()
    assert closed == len(idle)
    assert threading.active_count() - threads_before <= 1
    assert _get(live, f"/{live.token}/api/state").status == 200


class _Recorder(BaseHTTPRequestHandler):
    """Another local service on another port of 127.0.0.1, recording what browsers send it."""
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append(f"{self.path}\n{self.headers}")
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<!doctype html><title>other</title>")

    def log_message(self, *args) -> None:
        pass


@needs_chromium
def test_in_chromium_the_page_works_and_another_local_port_receives_no_token(live):
    from playwright.sync_api import sync_playwright
    _Recorder.seen = []
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = _browser(playwright)
            tab = browser.new_page()
            tab.goto(live.url)
            after = "#t-t1 img[data-side=after]"
            tab.wait_for_function(f"document.querySelector('{after}') && document.querySelector('{after}').complete "
                                  f"&& document.querySelector('{after}').naturalWidth > 0")
            where = tab.url
            tab.goto(f"http://127.0.0.1:{other.server_address[1]}/")
            tab.goto(f"http://localhost:{other.server_address[1]}/again")
            browser.close()
    finally:
        other.shutdown()
        other.server_close()
    assert len(_Recorder.seen) >= 2 and not [seen for seen in _Recorder.seen if live.token in seen], _Recorder.seen
    assert where == f"http://127.0.0.1:{live.port}/{live.token}/"
