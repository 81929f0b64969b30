"""`kometa-preview proxy` as a user runs it: mitmdump or mitmweb, and one-line errors."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests
from conftest import movie_targets, write_preview_yml
from plexapi.server import PlexServer

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "kometa_preview"]


def start(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    process = subprocess.Popen([*CLI, "proxy", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    shown: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("Press Ctrl-C"):
            break
        if ":" in line and not line.startswith("kometa-preview"):
            name, _, value = line.partition(":")
            shown[name.strip()] = value.strip()
    return process, shown


@pytest.mark.parametrize("web", [False, True])
def test_proxy_command_serves_plexapi_and_mitmweb(sample_plex, tmp_path, web):
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001, 1002]))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    process, shown = start(str(config), *(["--web", "--web-port", str(web_port)] if web else []))
    try:
        plex = PlexServer(shown["url"], shown["token"])
        assert len(plex.library.section("Movies").all()) == 2
        if web:
            assert requests.get(shown["web"], timeout=10).status_code == 200
            assert requests.get(f"http://127.0.0.1:{web_port}/flows", timeout=10).status_code == 403
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def test_proxy_command_errors(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    missing = subprocess.run([*CLI, "proxy", str(tmp_path / "nope.yml")], capture_output=True, text=True)
    assert (missing.returncode, missing.stderr.strip()) == (2, f"Error: nope.yml: file not found ({tmp_path / 'nope.yml'})")
    (tmp_path / "down").mkdir()
    unreachable = write_preview_yml(tmp_path / "down", "http://127.0.0.1:9", movie_targets([1001]))
    result = subprocess.run([*CLI, "proxy", str(unreachable)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: proxy: Plex at http://127.0.0.1:9 is unreachable: connection refused"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*CLI, "proxy", str(config), "--port", str(port)], capture_output=True, text=True)
    assert (result.returncode, result.stderr.strip()) == (2, f"Error: --port: port {port} on 127.0.0.1 is in use")
