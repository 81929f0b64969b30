"""`kometa-preview watch` as a user runs it, for the watch tests (stand-in and real Kometa): the process, its one
`page:` line, and the page's /api/state."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

PAGE_LINE = re.compile(r"^page: (http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+))$")
HELLO = {"overlay": {"name": "text(Hello)", "back_color": "#FF0000", "font_color": "#FFFFFF",
                     "horizontal_offset": 30, "vertical_offset": 30, "horizontal_align": "left",
                     "vertical_align": "top"}, "plex_all": True}


def write_overlays(path: Path, colour: str) -> None:
    """An overlay file both Kometa and the stand-in draw: a text box of this back colour."""
    import yaml
    overlay = json.loads(json.dumps(HELLO))
    overlay["overlay"]["back_color"] = colour
    path.write_text(yaml.safe_dump({"overlays": {"Hello": overlay}}, sort_keys=False), encoding="utf-8")


class Watching:
    """A running `kometa-preview watch`; stopped with Ctrl-C (SIGINT) by `interrupt`."""

    def __init__(self, config: Path, kometa: Path, *args: str, python: str | None = None,
                 startup_timeout: float = 120, boxes: bool = False) -> None:
        """`boxes`: with the stand-in's overlay boxes in the page's state (watch_with_boxes.py)."""
        extra = ["--kometa-python", python] if python else []
        command = [str(Path(__file__).parent / "watch_with_boxes.py")] if boxes else ["-m", "kometa_preview", "watch"]
        self.process = subprocess.Popen(
            [sys.executable, *command, str(config), "--kometa", str(kometa), "--offline", *extra, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.stdout), daemon=True),
                         threading.Thread(target=self._read, args=(self.process.stderr, self.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()
        deadline = time.monotonic() + startup_timeout
        while not any(PAGE_LINE.match(line) for line in self.stdout):
            assert self.process.poll() is None, f"watch exited: {''.join(self.stderr)}"
            assert time.monotonic() < deadline, "no page: line"
            time.sleep(0.02)
        match = next(m for line in self.stdout if (m := PAGE_LINE.match(line)))
        self.url, self.port, self.token = match[1], int(match[2]), match[3]

    @staticmethod
    def _read(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def get(self, path: str, token: str | None = "", headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
        token = self.token if token == "" else token
        query = "" if token is None else ("&" if "?" in path else "?") + f"token={token}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}{query}", headers=headers or {},
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def post(self, path: str, body: dict[str, Any], origin: str | None = "") -> tuple[int, dict[str, Any]]:
        """A POST as the page sends it (its Origin, JSON), with the token in the path like the page's own."""
        origin = f"http://127.0.0.1:{self.port}" if origin == "" else origin
        headers = {"Content-Type": "application/json", **({"Origin": origin} if origin else {})}
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/{self.token}{path}", method="POST",
                                         data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def state(self) -> dict[str, Any]:
        status, body, _ = self.get("/api/state")
        assert status == 200
        return json.loads(body)

    def wait_for(self, iteration: int, timeout: float = 120) -> dict[str, Any]:
        """/api/state once iteration `iteration` has ended (done or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state["iteration"] == iteration and state["status"] in ("done", "failed"):
                return state
            assert state["iteration"] <= iteration, state
            assert self.process.poll() is None, f"watch exited: {''.join(self.stderr)}"
            assert time.monotonic() < deadline, f"iteration {iteration} did not end: {state}"
            time.sleep(0.02)

    def interrupt(self, timeout: float = 30) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def one_shot(config: Path, kometa: Path, job: Path, python: str | None = None,
             timeout: float = 1200) -> subprocess.CompletedProcess:
    extra = ["--kometa-python", python] if python else []
    return subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                           "--offline", "--job", str(job), *extra], capture_output=True, text=True, timeout=timeout)


def diff_cli(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kometa_preview", "diff", str(a), str(b), *args],
                          capture_output=True, text=True, timeout=120)


def assert_same_as_one_shot(config: Path, kometa: Path, scratch: Path, iteration: dict[str, Any],
                            targets: list[str], python: str | None = None) -> Path:
    """What a watch iteration showed for `targets` is what a one-shot render of the same preview.yml gives:
    `diff --fail-on-change` finds each identical. Returns the one-shot job's output folder."""
    result = one_shot(config, kometa, scratch / "oneshot", python=python)
    assert result.returncode == 0, result.stdout + result.stderr
    same = diff_cli(scratch / "oneshot", Path(iteration["output_dir"]), "--fail-on-change", "--out",
                    str(scratch / "diff"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert same.stdout.splitlines()[:len(targets)] == [f"{target} identical" for target in targets], same.stdout
    return scratch / "oneshot" / "output"
