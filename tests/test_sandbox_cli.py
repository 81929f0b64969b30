"""`kometa-preview sandbox` as a user runs it: a real process that prints its URL and token."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from plexapi.server import PlexServer

CLI = [sys.executable, "-m", "kometa_preview"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, message", [
    (("--movies", "-1"), "sandbox: movies must be 0 or more, not -1"),
    (("--shows", "-3"), "sandbox: shows must be 0 or more, not -3"),
    (("--port", "70000"), "sandbox: --port must be between 0 and 65535, not 70000"),
])
def test_bad_sizes_give_one_line_and_exit_2(args, message):
    result = run("sandbox", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]


def test_port_in_use_gives_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("sandbox", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"Error: sandbox: port {port} on 127.0.0.1 is in use"]


def test_sandbox_prints_url_and_token_that_plexapi_accepts():
    process = subprocess.Popen([*CLI, "sandbox", "--port", "0", "--movies", "5", "--shows", "1"],
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        url = lines[1].split()[1]
        token = lines[2].split()[1]
        plex = PlexServer(url, token)
        assert len(plex.library.section("Movies").all()) == 5
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
