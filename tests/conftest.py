"""Shared fixtures: the sample Plex Media Server (a real HTTP server on an ephemeral port)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kometa_preview.common.events import STRICT_ENV, parse
from kometa_preview.common.events import read as read_journal
from kometa_preview.sandbox import SampleServer, generate

TOKEN = "sample-plex-token-0123456789"
#: Journal lines read strictly in every test and in every render a test starts (they inherit the environment): a
#: field the proxy writes that its record does not declare fails the test instead of being dropped unread.
os.environ[STRICT_ENV] = "1"


@pytest.fixture
def sample_plex_factory() -> Iterator[Callable[..., SampleServer]]:
    """Start sample servers of any size; all are stopped at the end of the test."""
    started: list[SampleServer] = []

    def start(movies: int = 40, shows: int = 3, seasons: int = 2, episodes: int = 3, seed: int = 1) -> SampleServer:
        library = generate(seed=seed, movies=movies, shows=shows, seasons=seasons, episodes=episodes)
        server = SampleServer(library, TOKEN).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sample_plex(sample_plex_factory) -> SampleServer:
    return sample_plex_factory()


@pytest.fixture
def plex(sample_plex):
    from plexapi.server import PlexServer
    return PlexServer(sample_plex.url, TOKEN)


def write_preview_yml(folder, plex_url: str, targets: list[dict], plex_timeout: int = 30, **extra) -> Path:
    """A preview.yml for the sample server, as a user would write it."""
    import yaml
    document = {"plex": {"url": plex_url, "token": TOKEN, "timeout": plex_timeout},
                "preview": {"mode": "write_blocked", "output": str(Path(folder) / "out"), "targets": targets},
                **extra}
    path = Path(folder) / "preview.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def movie_targets(keys) -> list[dict]:
    return [{"id": f"m{key}", "type": "movie", "ratingKey": str(key)} for key in keys]


@pytest.fixture
def proxy_factory(tmp_path):
    """Start real mitmdump children running the preview addons; all are stopped at the end."""
    from kometa_preview.common.config import load
    from kometa_preview.common.job import JobLayout
    from kometa_preview.run.proxy_child import ProxyOptions, start_proxy
    started = []

    def start(server: SampleServer, targets: list[dict], *, mock: bool = True, name: str = "job",
              plex_timeout: int = 30, **kwargs):
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        config = write_preview_yml(folder, server.url, targets, plex_timeout=plex_timeout)
        proxy = start_proxy(load(config).for_proxy(), JobLayout(folder / "job"), ProxyOptions(mock=mock, **kwargs))
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
    for proxy in started:  # every line each proxy wrote reads back as its record, field for field
        for line in read_journal(proxy.layout.journal):
            parse(line, strict=True)


STANDIN = Path(__file__).parent / "kometa_standin" / "kometa.py"


def gone(pid: int) -> bool:
    """Is no process with this pid left?"""
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
RESOLUTION_OVERLAYS = {"Movies": {"overlay_files": [{"default": "resolution"}]},
                       "TV Shows": {"overlay_files": [{"default": "resolution"}],
                                    "template_variables": {"builder_level": "episode"}}}


HOSTILE = Path(__file__).parent / "hostile_standin.py"


def standin_for(folder, env: dict | None = None, script: Path = STANDIN) -> Path:
    """A Kometa stand-in with its test hooks (STANDIN_*, HOSTILE_*) baked into a small kometa.py beside the
    test's files. Kometa's environment is an allowlist (nothing else the parent sets reaches it), so hooks
    cannot ride on it."""
    knobs = {k: v for k, v in (env or {}).items() if k.startswith(("STANDIN_", "HOSTILE_"))}
    if not knobs:
        return script
    wrapper = Path(folder) / f"{script.stem}_with_hooks.py"
    wrapper.write_text(f"import os, runpy\nos.environ.update({knobs!r})\n"
                       f"runpy.run_path({str(script)!r}, run_name='__main__')\n", encoding="utf-8")
    return wrapper


def render_cli(config, *args: str, env: dict | None = None, timeout: float = 180):
    """`kometa-preview render` as a user runs it, with the Kometa stand-in, offline."""
    import os
    import subprocess
    import sys
    kometa = standin_for(Path(config).parent, env)
    return subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                           "--offline", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


# --- reliability evidence: tests record what they tried; a run with RELIABILITY_REPORT=path writes the table ----
EVIDENCE: list[dict] = []


@pytest.fixture
def evidence(request):
    """Call after a test's assertions: record(area, what was tried, how many cases, what held)."""
    def record(area: str, tried: str, cases: int, held: str) -> None:
        EVIDENCE.append({"area": area, "tried": tried, "cases": cases, "held": held, "test": request.node.name})
    return record


def pytest_sessionfinish(session, exitstatus):
    import os
    import platform
    import time
    target = os.environ.get("RELIABILITY_REPORT")
    if not target or exitstatus != 0 or not EVIDENCE:
        return
    lines = ["# Reliability evidence", "",
             "Written by the test suite itself (`RELIABILITY_REPORT=docs/RELIABILITY.md bash scripts/test`) from the "
             "tests that passed in that run; every row is a test's own count of the cases it tried.", "",
             f"Run: {time.strftime('%Y-%m-%d %H:%M')} · Python {platform.python_version()} · "
             f"{sum(e['cases'] for e in EVIDENCE):,} cases in {len(EVIDENCE)} checks", ""]
    for area in dict.fromkeys(e["area"] for e in EVIDENCE):
        lines += [f"## {area}", "", "| what was tried | cases | what held | test |", "|---|---|---|---|"]
        lines += [f"| {e['tried']} | {e['cases']:,} | {e['held']} | `{e['test']}` |" for e in EVIDENCE if e["area"] == area]
        lines.append("")
    Path(target).write_text("\n".join(lines), encoding="utf-8")
