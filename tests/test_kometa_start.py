"""kometa_start.py, the launcher Kometa's interpreter runs: Kometa started before the proxy listens never finds
its port closed (the gate holds its first connection, in its own process and in the worker it forks for its
run), the wait is not counted as Kometa's own time, and a plan the proxy did not keep stops that Kometa before
it connected (render falls back to the usual start)."""
from __future__ import annotations

import dataclasses
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import STANDIN, movie_targets, write_preview_yml

from kometa_preview.kometa import runner
from kometa_preview.kometa.box import Isolation
from kometa_preview.kometa.runner import KometaCommand
from kometa_preview.run import plan as run_plan

CONNECTS = """import socket, sys, json
from concurrent.futures import ProcessPoolExecutor

def connect(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.recv(5).decode()

if __name__ == "__main__":
    port = int(sys.argv[1])
    first = connect(port)                      # Kometa's own process
    with ProcessPoolExecutor(max_workers=1) as pool:
        second = pool.submit(connect, port).result()   # the worker Kometa forks for its run
    print(json.dumps([first, second]))
"""


def _listen_later(port: int, after: float, accepted: list[float]) -> threading.Thread:
    def serve() -> None:
        time.sleep(after)
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
            for _ in range(2):
                client, _ = server.accept()
                accepted.append(time.monotonic())
                client.sendall(b"hello")
                client.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _started(tmp_path: Path, script: Path, isolation: str):
    return KometaCommand(sys.executable, script).start(tmp_path / "handoff", secrets=[], home=tmp_path / "home",
                                                       isolation=Isolation(isolation))


@pytest.mark.parametrize("isolation", ["box", "none"])
def test_the_gate_holds_every_connection_until_the_proxy_is_open(tmp_path, isolation):
    """In the box the relay that carries Kometa's connections out is the gate; without it, the audit hook."""
    script = tmp_path / "kometa.py"
    script.write_text(CONNECTS)
    port = run_plan.choose().port
    accepted: list[float] = []
    server = _listen_later(port, 0.6, accepted)
    process = _started(tmp_path, script, isolation)
    assert process.isolation == isolation
    lines: list[str] = []
    process.on_line = lines.append
    kometa_port, _ = process.endpoints(port, None)
    process.go(tmp_path / "home" / "run.yml", "", [str(kometa_port)], {}, tmp_path / "kometa.log", gated=True)
    time.sleep(0.9)                      # the port listens now; the gate is still shut
    assert accepted == [] and process.process.poll() is None
    opened = time.monotonic()
    process.open()
    assert process.finish(timeout=30) == 0
    server.join(timeout=5)
    assert json.loads(lines[-1]) == ["hello", "hello"]    # neither connection was refused
    assert len(accepted) == 2 and min(accepted) >= opened
    # held from its first try (after its imports) until `open`, and that wait is not Kometa's own time
    cue_to_exit = process.exited_at - process.started_at
    assert process.gate_seconds >= 0.5
    assert 0 < process.own_seconds < cue_to_exit - 0.4


@pytest.mark.parametrize("isolation", ["box", "none"])
def test_without_the_cue_nothing_runs_and_a_gone_render_ends_it(tmp_path, isolation):
    script = tmp_path / "kometa.py"
    script.write_text("print('ran', flush=True)\n")
    process = _started(tmp_path, script, isolation)
    lines: list[str] = []
    process.on_line = lines.append
    deadline = time.monotonic() + 30
    while not (tmp_path / "handoff" / "warm.json").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)
    assert "ran" not in lines and process.usable
    process.cancel()
    assert process.process.poll() is not None


@pytest.mark.parametrize("isolation", ["box", "none"])
def test_a_plan_the_proxy_did_not_keep(sample_plex, tmp_path, monkeypatch, isolation):
    """The planned reverse port is taken before mitmdump binds it, so the proxy starts on another port. In the box
    Kometa's config names the box's own port and the relay follows the proxy: that Kometa runs. Without it, the
    Kometa told about the planned port is stopped before it connected and one runs the usual way (PLAN_CHANGED).
    Either way the render succeeds."""
    from kometa_preview.run import render as render_module
    from kometa_preview.run.request import RenderRequest
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real_choose = run_plan.choose
    monkeypatch.setattr(run_plan, "choose", lambda: dataclasses.replace(real_choose(), port=taken))
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001, 1002]),
                               libraries={"Movies": {"overlay_files": [{"default": "resolution"}]}})
    try:
        outcome = render_module.render(RenderRequest(config, kometa=STANDIN, offline=True, job=tmp_path / "job",
                                                     isolation=Isolation(isolation)), _Quiet())
    finally:
        blocker.close()
    assert outcome.exit_code == 0 and outcome.summary.success
    replanned = "PLAN_CHANGED" in (tmp_path / "job" / "logs" / "render.log").read_text()
    assert replanned is (isolation == "none")
    ready = json.loads((tmp_path / "job" / "proxy_ready.json").read_text())
    assert ready["modes"]["reverse"][0][1] != taken
    assert sample_plex.log.changes() == []


class _Quiet:
    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


@pytest.fixture(autouse=True)
def _restore_signals():
    """render() installs its SIGINT/SIGTERM handlers; put pytest's back."""
    import signal
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, saved[0])
    signal.signal(signal.SIGTERM, saved[1])


@pytest.mark.parametrize("name", ["start.py", "box_init.py"])
def test_what_runs_before_kometa_uses_only_the_standard_library(name):
    """start.py runs in Kometa's interpreter, which has none of this tool's packages; box_init.py runs with -I -S."""
    import ast
    source = (Path(runner.__file__).parent / name).read_text()
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Import | ast.ImportFrom) for alias in getattr(node, "names", [])}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= set(sys.stdlib_module_names)
