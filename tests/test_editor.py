"""The watch page's first write path (run/editor.py behind results/live_page.py): a move is taken only with the
page's token, from its own origin, for a target and overlay on the page, into a file the preview reads, and writes
only offsets — atomically, the previous bytes kept for undo. Refused moves change nothing."""
from __future__ import annotations

import http.client
import json
import os
import stat
from pathlib import Path

import pytest
from conftest import write_preview_yml

from kometa_preview.common.config import load
from kometa_preview.results.live_page import PAGE, LivePage, LiveState
from kometa_preview.run.editor import Editor, Refused, Scene
from kometa_preview.run.watch import watched_files

OVERLAYS = ("# the user's own overlays\noverlays:\n  Hello:   # a red banner\n    overlay:\n"
            "      name: text(Hello)\n      back_color: '#FF0000'\n      horizontal_offset: 30   # px from the left\n"
            "      vertical_offset: 30\n      horizontal_align: left\n      vertical_align: top\n    plex_all: true\n")
HELLO = "Overlay File (0) Hello"


@pytest.fixture
def scene(tmp_path) -> Scene:
    (tmp_path / "overlays.yml").write_text(OVERLAYS)
    config = load(write_preview_yml(tmp_path, "http://127.0.0.1:1", [{"id": "m", "type": "movie", "ratingKey": "1"}],
                                    libraries={"Movies": {"overlay_files": [{"file": "overlays.yml"}]}}))
    (tmp_path / "kometa").mkdir()
    return Scene(config, tmp_path / "kometa", frozenset(watched_files(config, tmp_path / "kometa")),
                 {"m": {"type": "movie", "overlays": [HELLO], "status": "exported"}}, {"m": "Movies"}, 1)


def test_a_move_writes_the_offsets_atomically_keeps_the_old_bytes_and_undo_puts_them_back(scene, tmp_path):
    overlays = tmp_path / "overlays.yml"
    os.chmod(overlays, 0o640)
    editor = Editor(tmp_path / "watch", lambda: scene)
    answer = editor.move({"target": "m", "overlay": HELLO, "dx": 25, "dy": -10})
    assert answer["file"] == str(overlays.resolve()) and answer["applies_from"] == 2 and answer["undo"]
    assert answer["changes"] == [{"key": "overlays.Hello.overlay.horizontal_offset", "old": 30, "new": 55},
                                 {"key": "overlays.Hello.overlay.vertical_offset", "old": 30, "new": 20}]
    assert overlays.read_text() == OVERLAYS.replace("horizontal_offset: 30   #", "horizontal_offset: 55   #") \
        .replace("vertical_offset: 30", "vertical_offset: 20")
    assert stat.S_IMODE(overlays.stat().st_mode) == 0o640        # the file's mode kept
    backup = Path(answer["backup"])
    assert backup.parent == tmp_path / "watch" / "edits" and backup.read_text() == OVERLAYS
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600          # preview.yml may hold the token
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]
    undone = editor.undo()
    assert overlays.read_text() == OVERLAYS and undone["restored"] == str(backup) and not undone["undo"]
    with pytest.raises(Refused, match="nothing to undo"):
        editor.undo()


def test_undo_never_overwrites_a_later_save(scene, tmp_path):
    editor = Editor(tmp_path / "watch", lambda: scene)
    answer = editor.move({"target": "m", "overlay": HELLO, "dx": 5, "dy": 5})
    (tmp_path / "overlays.yml").write_text(OVERLAYS + "# saved by the user after the move\n")
    with pytest.raises(Refused, match=f"changed since the move: its earlier version is {answer['backup']}") as refused:
        editor.undo()
    assert refused.value.status == 409 and (tmp_path / "overlays.yml").read_text().endswith("after the move\n")


@pytest.mark.parametrize("body, status, message", [
    ({"target": "m", "overlay": HELLO, "dx": 1, "dy": 1, "key": "url"}, 403, "a move writes offsets only, not key"),
    ({"target": "m", "overlay": HELLO, "dx": 1, "dy": 1, "horizontal_offset": 9}, 403, "offsets only"),
    ({"target": "x", "overlay": HELLO, "dx": 1, "dy": 1}, 404, "no target 'x'"),
    ({"target": "m", "overlay": "Overlay File (0) Other", "dx": 1, "dy": 1}, 404, "applied no overlay"),
    ({"target": "m", "overlay": HELLO, "dx": 1.5, "dy": 1}, 400, "whole canvas pixels"),
    ({"target": "m", "overlay": HELLO, "dx": 99999, "dy": 1}, 400, "at most"),
    (["m"], 400, "a JSON object"),
])
def test_a_move_is_judged_before_anything_is_read_or_written(scene, tmp_path, body, status, message):
    editor = Editor(tmp_path / "watch", lambda: scene)
    with pytest.raises(Refused, match=message) as refused:
        editor.move(body)
    assert refused.value.status == status
    assert (tmp_path / "overlays.yml").read_text() == OVERLAYS and not (tmp_path / "watch").exists()


def test_a_file_the_preview_does_not_read_is_never_written(scene, tmp_path):
    unread = Scene(scene.config, scene.kometa_folder, frozenset(p for p in scene.watched if p.name != "overlays.yml"),
                   scene.targets, scene.libraries, 1)
    with pytest.raises(Refused, match="is not a file this preview reads") as refused:
        Editor(tmp_path / "watch", lambda: unread).move({"target": "m", "overlay": HELLO, "dx": 1, "dy": 1})
    assert refused.value.status == 403 and (tmp_path / "overlays.yml").read_text() == OVERLAYS


# --- the page's door for writes --------------------------------------------------------------------------------


@pytest.fixture
def page(tmp_path):
    """A live page whose writes are recorded (the editor behind it is tested above)."""
    calls = []

    def writes(action, body):
        calls.append((action, body))
        return 200, {"file": "overlays.yml", "changes": []}

    live = LivePage(LiveState(), lambda n: None, writes=writes, idle_seconds=2).start()
    live.calls = calls
    yield live
    live.stop()


def _post(live: LivePage, path: str, body: bytes = b'{"target": "m"}', headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    sent = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{live.port}", **(headers or {})}
    connection.request("POST", path, body=body, headers={k: v for k, v in sent.items() if v is not None})
    response = connection.getresponse()
    status, answer = response.status, response.read()
    connection.close()
    try:
        return status, json.loads(answer)
    except ValueError:
        return status, {"text": answer.decode()}


def test_the_page_takes_a_move_from_itself_with_its_token(page):
    own = f"/{page.token}/api/move"
    assert _post(page, own) == (200, {"file": "overlays.yml", "changes": []})
    assert _post(page, f"/{page.token}/api/undo", b"{}", {"Origin": f"http://localhost:{page.port}",
                                                          "Sec-Fetch-Site": "same-origin"})[0] == 200
    assert _post(page, f"/api/move?token={page.token}", headers={"Origin": None})[0] == 200  # curl: no Origin
    assert page.calls == [("move", {"target": "m"}), ("undo", {}), ("move", {"target": "m"})]


@pytest.mark.parametrize("path, headers, status", [
    ("/api/move", {}, 403),                                                           # no token
    ("/{wrong}/api/move", {}, 403),
    ("/api/move", {"Cookie": "kometa_preview_token={token}"}, 403),                   # a cookie is no credential
    ("/{token}/api/move", {"Origin": "http://attacker.example"}, 403),                 # another site
    ("/{token}/api/move", {"Origin": "null"}, 403),                                    # a sandboxed frame, a file
    ("/{token}/api/move", {"Origin": "http://127.0.0.1:1"}, 403),                      # another local port
    ("/{token}/api/move", {"Origin": None, "Sec-Fetch-Site": "cross-site"}, 403),
    ("/{token}/api/move", {"Sec-Fetch-Site": "same-site"}, 403),
    ("/{token}/api/move", {"Host": "attacker.example:{port}"}, 403),                   # DNS rebinding
    ("/{token}/api/move", {"Content-Type": "text/plain"}, 415),                        # a form, a beacon
    ("/{token}/api/state", {}, 405),                                                   # only the two writes
    ("/{token}/files/1/t1_after.png", {}, 405),
])
def test_moves_without_the_credential_or_from_elsewhere_reach_nothing(page, path, headers, status):
    fill = {"token": page.token, "wrong": page.token[:-1] + "x", "port": page.port}
    headers = {k: v.format(**fill) if isinstance(v, str) else v for k, v in headers.items()}
    assert _post(page, path.format(**fill), headers=headers)[0] == status
    assert page.calls == []


def test_a_move_s_body_is_bounded_and_json(page):
    assert _post(page, f"/{page.token}/api/move", b"x" * 5000)[0] == 413
    assert _post(page, f"/{page.token}/api/move", b"{not json")[0] == 400
    assert page.calls == []


def test_a_page_without_an_editor_only_reads(tmp_path):
    live = LivePage(LiveState(), lambda n: None).start()
    try:
        assert _post(live, f"/{live.token}/api/move")[0] == 405
    finally:
        live.stop()


def test_the_favicon_is_answered_under_the_token(page):
    connection = http.client.HTTPConnection("127.0.0.1", page.port, timeout=10)
    connection.request("GET", f"/{page.token}/favicon.ico")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "image/svg+xml"
    assert response.read().startswith(b"<svg")
    connection.close()
    assert '<link rel="icon" href="favicon.ico">' in PAGE   # relative: the browser asks under the token, not at /
