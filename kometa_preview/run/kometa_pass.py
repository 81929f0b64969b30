"""One run of Kometa through a proxy that is up: Kometa chosen, started (in its box), cued with its run config,
followed, and its end told (`KometaPass`)."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from ..common.config import PreviewConfig
from ..common.events import Event, Follower, RenderEvent
from ..common.events import read as read_journal
from ..common.files import write_atomic
from ..common.job import EDITS, JobLayout
from ..common.redaction import redact_document
from ..kometa import log as kometa_log
from ..kometa import run_config
from ..kometa.box import WITHOUT_BOX
from ..kometa.runner import (
    OWN_INTERPRETER,
    KometaCommand,
    KometaNotFound,
    KometaProcess,
    find_kometa,
    kometa_proxy_environment,
    proxy_url,
    requirements_problem,
)
from ..results.summary import IsolationUsed, RunFacts
from .proxy_child import LaunchError, ProxyProcess
from .request import RenderError, RenderRequest, Reporter, raise_if_interrupted

log = logging.getLogger("kometa_preview.run")

if TYPE_CHECKING:
    pass


class KometaLines:
    """Each line of Kometa's output: to the reporter as it is (for --verbose), and, when it says Kometa moved on to
    something new (`kometa_log.progress`), as a KOMETA_PROGRESS line in render.log and on the terminal."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.last: str | None = None

    def __call__(self, line: str) -> None:
        self.reporter.kometa_line(line)
        doing = kometa_log.progress(line)
        if doing is not None and doing != self.last:
            self.last = doing
            log.info("%s %s", RenderEvent.KOMETA_PROGRESS, doing)
            self.reporter.kometa_progress(doing)


def choose_kometa(config: PreviewConfig, request: RenderRequest) -> KometaCommand:
    """Kometa and its interpreter (`kometa_runner.find_kometa`). An interpreter nobody chose (this tool's own) is
    used only when Kometa starts with it (a Kometa start, ~0.2 s, on every render: naming the interpreter saves
    it): otherwise a RenderError says which one to set, before anything is written."""
    try:
        kometa = find_kometa(request.kometa, config.kometa.path, request.kometa_python, config.kometa.python,
                             request.kometa_python_from)
        problem = None if kometa.python_source != OWN_INTERPRETER else \
            requirements_problem(kometa, config.secret_values(), hidden=config.secret_files(),
                                 isolation=request.isolation)
    except KometaNotFound as exc:
        raise RenderError(str(exc)) from None
    if problem:
        raise RenderError(_cannot_run(kometa, problem))
    return kometa


def _cannot_run(kometa: KometaCommand, problem: str) -> str:
    return (f"Kometa cannot run with {kometa.python} ({OWN_INTERPRETER}): {problem}; point --kometa-python, "
            f"KOMETA_PYTHON or kometa.python at the interpreter that has Kometa's requirements (or make a venv in "
            f"{kometa.folder / 'venv'})")


@dataclass
class KometaPass:
    """One run of Kometa through a proxy that is already up: how it ended."""
    exit_code: int | None = None
    error: str | None = None
    seconds: float | None = None
    #: Which isolation Kometa ran with (`box`, `none`), and why not the box when it was wanted.
    isolation: str | None = None
    isolation_problem: str | None = None
    #: When Kometa got its cue and when it exited (wall clock).
    started_wall: float | None = None
    exited_wall: float | None = None
    #: Kometa's meta.log, parsed while it ran (for export.collect).
    meta_log: kometa_log.MetaLogFollower | None = None

    def facts(self, kometa: KometaCommand, request: RenderRequest, *, started: float | None,
              timings: dict[str, float], interrupted: bool = False, error: str | None = None) -> RunFacts:
        """This pass as its summary tells it (`error`: the run's own, when it has one)."""
        mode = self.isolation
        return RunFacts(kometa_exit_code=self.exit_code, error=error or self.error, interrupted=interrupted,
                        started=started, timings=timings, kometa_version=kometa.version,
                        isolation=IsolationUsed(request.isolation.value, mode, self.isolation_problem))


def start_kometa(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, handoff: Path,
                 layout: JobLayout, veiled: tuple[Path, ...] = ()) -> KometaProcess:
    """Kometa started now, waiting for its cue, its config folder `layout.kometa`; in its box as
    `request.isolation` asks, with preview.yml and the user's Kometa config (they hold the Plex token) hidden, and
    the watches' copies of edited files (`<output>/*/edits/`, and `veiled`) out of its sight."""
    veiled = (*veiled, *sorted(config.output.glob(f"*/{EDITS}")))  # every earlier watch's copies too
    try:
        return kometa.start(handoff, config.secret_values(), home=layout.kometa,
                            isolation=request.isolation, hidden=config.secret_files(), veiled=veiled)
    except KometaNotFound as exc:
        raise RenderError(str(exc)) from None


def isolation_warning(process: KometaProcess) -> str | None:
    """The one line `--isolation auto` prints where the box could not be built (None: nothing to say). Logged as
    KOMETA_ISOLATION either way."""
    log.info("%s mode=%s requested=%s problem=%s", RenderEvent.KOMETA_ISOLATION, process.isolation,
             process.requested.value, process.isolation_problem)
    if process.isolation_problem is None:
        return None
    return f"! no box for Kometa ({process.isolation_problem}): {WITHOUT_BOX}"


def cue_kometa(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, process: KometaProcess,
               layout: JobLayout, reporter: Reporter, *, port: int, token: str, libraries: list[str],
               outside_port: int | None, proxy_layout: JobLayout, gated: bool = False) -> dict:
    """Write Kometa's config for the proxy on `port` (a fresh config folder `layout.kometa`) and give `process` its
    cue, its output going to `layout.kometa_log`. `gated`: the proxy is not listening yet. Returns the run config
    (for its redacted copy). Raises `RenderError` for a configuration that cannot work."""
    kometa_port, kometa_outside = process.endpoints(port, outside_port)
    try:
        document = run_config.build(config, proxy_url(kometa_port), token, libraries, offline=request.offline,
                                       kometa_folder=kometa.folder)
    except run_config.KometaConfigError as exc:
        raise RenderError(str(exc)) from None
    reporter.stage(f"Running Kometa on {' | '.join(libraries)} ({kometa.script})")
    process.on_line = KometaLines(reporter)
    process.go(layout.run_config, run_config.text(document), kometa.arguments(layout.run_config, libraries),
               kometa_proxy_environment(kometa_port, kometa_outside, proxy_layout.ca_cert),
               layout.kometa_log, gated=gated, shown=run_config.overlay_files(document))
    return document


def kometa_pass(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, proxy: ProxyProcess,
                layout: JobLayout, reporter: Reporter, cancel: threading.Event | None = None,
                started: KometaProcess | None = None, wanted: set[str] | None = None,
                cued: dict | None = None) -> KometaPass:
    """Kometa once, against `proxy`, with a fresh config folder `layout.kometa` and its output in
    `layout.kometa_log`: `started` when it was started early (its imports done while the proxy started),
    else started now; `cued`: the run config `started` was cued with already (`cue_kometa`, gated, for this very
    proxy): only its gate is opened. `wanted`: the targets' ratingKeys, when the caller follows the journal already
    (else read from it). Raises `RenderError` for a configuration that cannot work (before Kometa runs),
    `KometaTimeout`, `LaunchError` (the proxy died) and KeyboardInterrupt (Ctrl-C, or `cancel`)."""
    proxy_layout = proxy.layout
    libraries = list(proxy.libraries)
    if not libraries:
        if started is not None:
            started.cancel()
        reporter.stage("No target was found in Plex: Kometa is not run")
        return KometaPass()
    wanted = set(wanted) if wanted is not None else \
        {r.get("rating_key") for r in read_journal(proxy_layout.journal) if r.get("event") == Event.TARGET}
    follower = Follower(proxy_layout.journal, start_at_end=True)
    meta_log = kometa_log.MetaLogFollower(layout.kometa_meta_log)
    captured: set[str] = set()

    def tick() -> None:
        raise_if_interrupted()
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        meta_log.poll()
        lines = follower.new_lines()
        wanted.update(r.get("rating_key") for r in lines if r.get("event") == Event.TARGET)
        fresh = {r.get("rating_key") for r in lines if r.get("event") == Event.CAPTURED_UPLOAD}
        if fresh & wanted - captured:
            captured.update(fresh & wanted)
            reporter.progress(len(captured), len(wanted))
        if not proxy.alive():
            raise LaunchError("the proxy exited while Kometa was running")

    process, document = _cued(request, config, kometa, proxy, layout, reporter, started, cued)
    outcome = KometaPass(meta_log=meta_log, isolation=process.isolation, isolation_problem=process.isolation_problem)
    try:
        process.endpoints(proxy.port, proxy.outside_port)  # the proxy's real ports, whatever was planned
        process.open()
        outcome.exit_code = process.finish(request.timeout or config.kometa.timeout, on_tick=tick)
        tick()
    finally:
        outcome.seconds = process.own_seconds
        outcome.started_wall, outcome.exited_wall = process.started_wall, process.exited_wall
        _keep_redacted_copy(layout, document)
    if outcome.exit_code != 0:
        outcome.error = f"Kometa exited with code {outcome.exit_code} (see logs/kometa.log)"
    return outcome


def _cued(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, proxy: ProxyProcess, layout: JobLayout,
          reporter: Reporter, started: KometaProcess | None, cued: dict | None) -> tuple[KometaProcess, dict]:
    """The Kometa of this pass, cued: `started` as it was cued already, or `started` (else a new one) cued now."""
    if cued is not None and started is not None:
        return started, cued
    if started is not None and not started.usable:
        started.cancel()  # it died while it waited: start another
        started = None
    process = started or start_kometa(request, config, kometa, layout.kometa_start, layout)
    if (warning := isolation_warning(process)) is not None and started is None:
        reporter.stage(warning)
    try:
        document = cue_kometa(request, config, kometa, process, layout, reporter, port=proxy.port,
                              token=proxy.client_token, libraries=list(proxy.libraries),
                              outside_port=proxy.outside_port, proxy_layout=proxy.layout)
    except BaseException:
        process.cancel()
        raise
    return process, document


def _keep_redacted_copy(layout: JobLayout, document: dict | None) -> None:
    """kometa_run.yml holds service keys: after the run it is deleted (in the box, only an empty placeholder was ever
    on disk), and a copy redacted by the one policy (`redaction.redact_document`) kept, 0600, if the disk allows."""
    layout.run_config.unlink(missing_ok=True)
    if document is None:
        return
    try:
        write_atomic(layout.redacted_run_config, yaml.safe_dump(redact_document(document), sort_keys=False),
                     private=True)
    except OSError as exc:
        log.warning("could not keep kometa_run.redacted.yml: %s", exc.strerror)
