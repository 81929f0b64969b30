"""Faults during a render, and secrets: every ending has the right exit code, both children gone, and a
summary saying what happened; no token or service key in any file; the proxy listens on 127.0.0.1 only."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from conftest import (
    RESOLUTION_OVERLAYS,
    TOKEN,
    gone,
    movie_targets,
    render_cli,
    standin_for,
    write_preview_yml,
)
from PIL import Image

pytestmark = pytest.mark.e2e
TMDB_KEY = "tmdb-key-that-must-not-leak-0123"


def children_gone(job: Path, tmp_path: Path) -> bool:
    ready = job / "proxy_ready.json"
    proxy_gone = not ready.exists() or gone(json.loads(ready.read_text()).get("pid", 0) or 0)
    kometa = subprocess.run(["pgrep", "-f", f"kometa_standin.*{tmp_path}"], capture_output=True).returncode == 1
    mitm = subprocess.run(["pgrep", "-f", f"preview_job={job}"], capture_output=True).returncode == 1
    return proxy_gone and kometa and mitm


def start_render(config, job, env=None):
    kometa = standin_for(Path(config).parent, env)
    return subprocess.Popen([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                             "--offline", "--job", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kometa_started(job):
    log = job / "logs" / "kometa.log"
    return lambda: log.exists() and b"Loading All" in log.read_bytes()


def config_for(tmp_path, server, keys=(1001, 1002)):
    return write_preview_yml(tmp_path, server.url, movie_targets(keys), libraries=RESOLUTION_OVERLAYS,
                             tmdb={"apikey": TMDB_KEY})


def test_plex_going_away_mid_run(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=0)
    job = tmp_path / "job"
    process = start_render(config_for(tmp_path, server), job, {"STANDIN_HANG": "2"})
    wait_for(kometa_started(job))
    server.stop()
    assert process.wait(timeout=120) == 1
    summary = json.loads((job / "output" / "summary.json").read_text())
    assert summary["success"] is False and summary["kometa_exit_code"] not in (0, None)
    assert children_gone(job, tmp_path)
    evidence("Faults during a render", "Plex stops while Kometa runs", 1,
             "Kometa fails on the proxy's 502s; exit 1; summary.json says so; both children gone")


def test_mitmdump_dying_mid_run(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=0)
    job = tmp_path / "job"
    process = start_render(config_for(tmp_path, server), job, {"STANDIN_HANG": "60"})
    wait_for(kometa_started(job))
    os.kill(json.loads((job / "proxy_ready.json").read_text())["pid"], signal.SIGKILL)
    assert process.wait(timeout=60) == 1
    summary = json.loads((job / "output" / "summary.json").read_text())
    assert summary["error"] == "the proxy exited while Kometa was running"
    assert children_gone(job, tmp_path) and server.log.changes() == []
    evidence("Faults during a render", "mitmdump killed (SIGKILL) while Kometa runs", 1,
             "noticed within a tick; Kometa stopped; exit 1; summary.json error says what happened")


def test_ctrl_c_while_the_proxy_starts(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=0)
    job = tmp_path / "job"
    process = start_render(config_for(tmp_path, server), job)
    wait_for(lambda: (job / "logs" / "proxy.log").exists(), 30)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    assert code == 130
    assert json.loads((job / "output" / "summary.json").read_text())["interrupted"] is True
    time.sleep(0.5)
    assert children_gone(job, tmp_path)
    evidence("Faults during a render", "Ctrl-C while mitmdump starts (and, in test_render_failures, while Kometa runs)",
             1, "exit 130; summary.json written with interrupted: true; no child left running")


def test_two_renders_at_once(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=30, shows=0)
    configs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        configs.append(config_for(tmp_path / name, server))
    results = {}

    def run(name, config):
        results[name] = render_cli(config, "--job", str(tmp_path / name / "job"))
    threads = [threading.Thread(target=run, args=(n, c)) for n, c in zip(("one", "two"), configs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["one"].returncode == 0 and results["two"].returncode == 0
    ports = {json.loads((tmp_path / n / "job" / "proxy_ready.json").read_text())["modes"]["reverse"][0][1] for n in ("one", "two")}
    assert len(ports) == 2 and server.log.changes() == []
    evidence("Faults during a render", "two renders at once on one machine", 2,
             "separate ports and job folders; both exit 0; 0 writes")


@contextmanager
def tmpfs(path: Path, size: str, readonly: bool = False):
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_read_only_output_folder(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=0)
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as folder:
        config = write_preview_yml(tmp_path, server.url, movie_targets([1001]), libraries=RESOLUTION_OVERLAYS)
        document = yaml.safe_load(config.read_text())
        document["preview"]["output"] = str(folder / "out")
        config.write_text(yaml.safe_dump(document))
        result = render_cli(config)
    assert result.returncode == 2 and "is not writable (Read-only file system)" in result.stderr
    evidence("Faults during a render", "a read-only output folder (read-only tmpfs)", 1,
             "exit 2 with a one-line error naming the folder; nothing started")


def test_disk_full_keeps_complete_captures_and_still_writes_the_summary(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=40, shows=0)
    with tmpfs(tmp_path / "small", "3m") as folder:
        keys = list(range(1001, 1041))
        config = write_preview_yml(tmp_path, server.url, movie_targets(keys), libraries=RESOLUTION_OVERLAYS)
        result = render_cli(config, "--job", str(folder / "job"), timeout=300)
        job = folder / "job"
        summary = json.loads((job / "output" / "summary.json").read_text())
        captures = list((job / "output" / "by_ratingkey").glob("*"))
        for capture in captures:
            Image.open(capture).load()  # every capture on disk is a complete image
        leftovers = [p for p in job.rglob(".partial-*")]
    assert result.returncode == 1 and summary["success"] is False
    assert 0 < len(captures) < len(keys) and leftovers == []
    listed = {Path(c["saved_path"]).name for c in summary["captured_uploads"]}
    assert {c.name for c in captures} <= listed  # none forgotten, even if the journal could not be appended
    evidence("Faults during a render", "disk full mid-run (a 3 MiB tmpfs, 40 targets)", 1,
             f"{len(captures)} captures on disk, every one a complete image, no partial files; exit 1; "
             "summary.json written (space reserved at start)")


def test_no_secret_in_any_file_after_success_or_failure(sample_plex_factory, tmp_path, evidence):
    server = sample_plex_factory(movies=20, shows=0)
    scanned = 0
    for name, env in (("ok", {}), ("crash", {"STANDIN_CRASH": "1"}), ("missing", {"STANDIN_SKIP_UPLOAD": "1002"})):
        (tmp_path / name).mkdir()
        result = render_cli(config_for(tmp_path / name, server), "--job", str(tmp_path / name / "job"), env=env)
        assert result.returncode in (0, 1)
        for text in (result.stdout, result.stderr):
            assert TOKEN not in text and TMDB_KEY not in text
        for path in (tmp_path / name / "job").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data and TMDB_KEY.encode() not in data, path
                scanned += 1
    evidence("Secrets", "Plex token and TMDb key searched in every file of the job folder (logs, journal, "
             "kometa config, flows, images, summary, report) and in the terminal output, after a success, a "
             "Kometa crash and a missing capture", scanned, "found nowhere")


def test_proxy_listens_on_127_0_0_1_only(sample_plex_factory, proxy_factory, evidence):
    server = sample_plex_factory(movies=10, shows=0)
    proxy = proxy_factory(server, movie_targets([1001]))
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5):
        pass
    for other in ("127.0.0.2", "127.1.2.3"):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, proxy.port), timeout=5)
    evidence("Secrets", "connecting to the proxy's port through other local addresses (127.0.0.2, 127.1.2.3)", 2,
             "refused: the proxy is bound to 127.0.0.1 only (and refuses to start on any other address)")


def test_an_outside_port_taken_between_picking_and_binding_is_retried(sample_plex, tmp_path, monkeypatch, evidence):
    """The start-up flake under load: mitmdump binds the outside-calls port a moment after it was picked free, and
    another process may take it in between; mitmdump then exits with only "Error logged during startup". The launcher
    now names the cause, and starts again on a new port."""
    from kometa_preview.common.config import load
    from kometa_preview.common.job import JobLayout
    from kometa_preview.run import proxy_child as launcher
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    ports = iter([busy])
    picked = launcher.free_port
    monkeypatch.setattr(launcher, "free_port", lambda: next(ports, None) or picked())
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    try:
        proxy = launcher.start_proxy(load(config).for_proxy(), JobLayout(tmp_path / "job"),
                                       launcher.ProxyOptions(outside=True, offline=True))
    finally:
        taken.close()
    try:
        assert proxy.outside_port not in (None, busy)
        log = proxy.log_path.read_text()
        assert "address already in use" in log and "failed to listen" in log
    finally:
        proxy.stop()
    evidence("Faults during a render", "the outside-calls port taken by another process between being picked and "
             "being bound", 1, "the proxy started again on a new port; proxy.log keeps the first attempt's cause")


def test_a_proxy_that_cannot_start_says_why_not_error_logged_during_startup(tmp_path):
    from kometa_preview.run.proxy_child import _last_error
    log = tmp_path / "proxy.log"
    log.write_text("[00:24:14.853] reverse proxy listening at 127.0.0.1:56709.\n"
                   "[00:24:14.853] [Errno 98] HTTP(S) proxy failed to listen on 127.0.0.1:40435 with [Errno 98] error "
                   "while attempting to bind on address ('127.0.0.1', 40435): address already in use\n\n"
                   "Error logged during startup, exiting...\n")
    assert _last_error(log).startswith("[00:24:14.853] [Errno 98] HTTP(S) proxy failed to listen")
