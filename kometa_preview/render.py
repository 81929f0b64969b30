"""One preview job: proxy up, Kometa through it, proxy down, export — and a summary whatever happens.

Bad input or environment (config, Kometa not found, Plex unreachable, ports, job folder) raises
`RenderError` before anything is left half written: a job folder this run created is removed.
Once Kometa has started, every ending — success, missing targets, Kometa failing or timing out,
Ctrl-C — ends with both children stopped and summary.json written.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml

from . import kometa_config, kometa_log, run_plan
from .box import WITHOUT_BOX, Isolation
from .config import ConfigError, PreviewConfig, Shard, Target, load
from .events import Event, Follower, RenderEvent
from .events import read as read_journal
from .files import write_atomic
from .job import SHARDS, JobLayout
from .kometa_runner import (
    OWN_INTERPRETER,
    KometaCommand,
    KometaNotFound,
    KometaProcess,
    KometaTimeout,
    find_kometa,
    kometa_proxy_environment,
    proxy_url,
    requirements_problem,
)
from .launcher import LaunchError, ProxyOptions, ProxyProcess, start_proxy
from .limits import RESERVE_BYTES
from .redaction import redact_document

if TYPE_CHECKING:
    from . import export

#: What the export step imports (Pillow, the report, the Plex client: ~0.15 s), kept off the path from the command
#: to Kometa's start, and imported while Kometa runs (`_import_export_step`) instead of after it.
EXPORT_MODULES = ("kometa_preview.export",)

log = logging.getLogger("kometa_preview.render")




class RenderError(Exception):
    """Bad input or environment: one line, exit code 2."""


class Reporter(Protocol):
    def stage(self, text: str) -> None: ...
    def progress(self, captured: int, total: int) -> None: ...
    def kometa_line(self, line: str) -> None: ...
    def kometa_progress(self, doing: str) -> None: ...
    def progress_line(self, text: str) -> None: ...
    def kometa_found(self, kometa: KometaCommand) -> None: ...


@dataclass(frozen=True)
class RenderRequest:
    config_path: Path
    kometa: Path | None = None
    kometa_python: str | None = None
    #: Where `kometa_python` came from, as the user wrote it (`--kometa-python` or `KOMETA_PYTHON`).
    kometa_python_from: str = "--kometa-python"
    #: `--library`: whole libraries to dry-run, besides preview.libraries.
    libraries: tuple[str, ...] = ()
    #: A dry run split into this many jobs that run at once (shards.py).
    shards: int = 1
    #: `--resume JOB`: finish an interrupted dry run, skipping what it captured.
    resume: Path | None = None
    #: `--sample N`: instead of every item of `libraries`, at most N of each that show every badge (sample.py).
    sample: int | None = None
    #: `--shard K` (1-based, with --shards N): render only that shard of the dry run into `<job>/shards/1-K`, for
    #: running shards on several machines and merging them after (`kometa-preview merge JOB`).
    shard: int | None = None
    offline: bool = False
    mock: bool = True
    job: Path | None = None
    force: bool = False
    timeout: int | None = None
    #: `--isolation`: Kometa in its box (box.py).
    isolation: Isolation = Isolation.AUTO


@dataclass
class Job:
    folder: Path
    created: bool
    proxy: ProxyProcess | None = None
    started: float = field(default_factory=time.time)


def prepare_job(config: PreviewConfig, requested: Path | None, force: bool) -> Job:
    """A new job folder: a fresh timestamped one, or `--job` (refused if it exists, unless --force)."""
    if requested is not None:
        folder = requested
        if folder.exists() and any(folder.iterdir()):
            if not force:
                raise RenderError(f"job folder {folder} already exists; use --force to replace it or pick another "
                                  "--job")
            shutil.rmtree(folder)
    else:
        stamp = time.strftime("%Y%m%d_%H%M%S")
        folder = config.output / stamp
        number = 1
        while folder.exists():
            number += 1
            folder = config.output / f"{stamp}_{number}"
    existed = folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Space kept back so that a disk filled by captures still leaves room for summary.json and the
        # exported copies: export releases it first.
        JobLayout(folder).reserve.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError as exc:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise RenderError(f"output folder {folder} is not writable ({exc.strerror})") from None
    return Job(folder.resolve(), created=not existed)


def _file_logging(job: Path) -> logging.Handler:
    layout = JobLayout(job)
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(layout.render_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-8s | %(message)s"))
    root = logging.getLogger("kometa_preview")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


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


def interrupt_on_sigterm() -> None:
    """SIGTERM and SIGINT both end a render the Ctrl-C way (children stopped, summary written). SIGINT is set
    explicitly: a render started from a background job or `nohup` inherits it ignored, and would run on."""
    def handler(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def render(request: RenderRequest, reporter: Reporter) -> export.Outcome:
    try:
        config = load(request.config_path, also_dry_run=request.libraries)
    except ConfigError as exc:
        raise RenderError(str(exc)) from None
    if request.sample is not None:
        config = sampled(config, config.dry_run_libraries, request.sample)
    if (request.shards > 1 or request.resume) and not config.dry_run_libraries:
        raise RenderError("--shards and --resume split a dry run: give --library NAME or preview.libraries")
    one_shot = not config.dry_run_libraries
    kometa = choose_kometa(config, request)
    reporter.kometa_found(kometa)
    if request.shard is not None:
        if not 1 <= request.shard <= request.shards or request.job is None:
            raise RenderError(f"--shard K needs --shards N with 1 ≤ K ≤ N and --job (the folder every shard of the "
                              f"run writes into), not --shard {request.shard} --shards {request.shards}")
        request.job.mkdir(parents=True, exist_ok=True)
        job = prepare_job(config, request.job / SHARDS / f"1-{request.shard}", request.force)
    elif request.resume is not None:
        if not (request.resume / SHARDS).is_dir():
            raise RenderError(f"--resume {request.resume}: not a dry run's job folder (it has no shards/)")
        job = Job(request.resume.resolve(), created=False)
    else:
        job = prepare_job(config, request.job, request.force)
    handler = _file_logging(job.folder)
    interrupt_on_sigterm()
    try:
        if one_shot:
            return _run(request, config, kometa, job, reporter)
        if request.shard is not None:
            return _run(request, config, kometa, job, reporter, Shard(request.shard - 1, request.shards))

        def one(shard: Shard, folder: Path, shard_reporter: Reporter, cancel: threading.Event) -> export.Outcome:
            return _run(request, config, kometa, prepare_job(config, folder, force=False), shard_reporter, shard,
                        cancel)

        from . import shards
        outcome = shards.run(one, config, job.folder, reporter, request.shards, resume=request.resume is not None)
        JobLayout(job.folder).reserve.unlink(missing_ok=True)
        log.info("%s exit_code=%d success=%s", RenderEvent.RENDER_DONE, outcome.exit_code, outcome.summary.success)
        return outcome
    finally:
        logging.getLogger("kometa_preview").removeHandler(handler)
        handler.close()


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


def sampled(config: PreviewConfig, libraries: tuple[str, ...], count: int) -> PreviewConfig:
    """preview.yml's targets and, from each library, a sample of at most `count` items showing every badge, instead
    of a whole-library dry run."""
    from . import sample
    from .plex.client import Upstream, UpstreamError
    if not libraries:
        raise RenderError("--sample N needs --library NAME (the library to sample)")
    upstream = Upstream(config.plex.url, config.plex.token, min(config.plex.timeout, 30), config.plex.verify_ssl)
    targets = list(config.targets)
    try:
        for library in libraries:
            entries, _ = sample.pick(upstream, library, count)
            targets += [Target(id=e.id, type=e.type, rating_key=e.rating_key, title=e.title) for e in entries]
    except (sample.SampleError, UpstreamError) as exc:
        raise RenderError(f"--sample: {exc}") from None
    finally:
        upstream.close()
    taken: set[str] = set()
    unique = []
    for target in targets:
        if target.id not in taken:
            taken.add(target.id)
            unique.append(target)
    return dataclasses.replace(config, targets=tuple(unique), dry_run_libraries=())


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


def _abandon(job: Job, message: str) -> RenderError:
    """Bad environment found before Kometa ran: leave no results half written. The logs stay (a proxy that could
    not start says why in logs/proxy.log), and the message points at them."""
    if job.proxy is not None:
        job.proxy.stop()
    layout = JobLayout(job.folder)
    if job.created:
        for path in job.folder.iterdir():
            if path != layout.logs:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if layout.logs.is_dir():
            return RenderError(f"{message} (logs kept in {layout.logs})")
        shutil.rmtree(job.folder, ignore_errors=True)
    return RenderError(message)


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


def start_kometa(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, handoff: Path,
                 folder: Path) -> KometaProcess:
    """Kometa started now, waiting for its cue, its config folder `<folder>/kometa/`; in its box as
    `request.isolation` asks, with preview.yml and the user's Kometa config (they hold the Plex token) hidden."""
    try:
        return kometa.start(handoff, config.secret_values(), home=JobLayout(folder).kometa,
                            isolation=request.isolation, hidden=config.secret_files())
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
               folder: Path, reporter: Reporter, *, port: int, token: str, libraries: list[str],
               outside_port: int | None, proxy_job: Path, gated: bool = False) -> dict:
    """Write Kometa's config for the proxy on `port` (a fresh config folder `<folder>/kometa/`) and give `process`
    its cue, its output going to `<folder>/logs/kometa.log`. `gated`: the proxy is not listening yet. Returns the
    run config (for its redacted copy). Raises `RenderError` for a configuration that cannot work."""
    layout = JobLayout(folder)
    kometa_port, kometa_outside = process.endpoints(port, outside_port)
    try:
        document = kometa_config.build(config, proxy_url(kometa_port), token, libraries, offline=request.offline,
                                       kometa_folder=kometa.folder)
    except kometa_config.KometaConfigError as exc:
        raise RenderError(str(exc)) from None
    reporter.stage(f"Running Kometa on {' | '.join(libraries)} ({kometa.script})")
    process.on_line = KometaLines(reporter)
    process.go(layout.run_config, kometa_config.text(document), kometa.arguments(layout.run_config, libraries),
               kometa_proxy_environment(kometa_port, kometa_outside, JobLayout(proxy_job).ca_cert),
               layout.kometa_log, gated=gated)
    return document


def kometa_pass(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, proxy: ProxyProcess,
                folder: Path, reporter: Reporter, cancel: threading.Event | None = None,
                started: KometaProcess | None = None, wanted: set[str] | None = None,
                cued: dict | None = None) -> KometaPass:
    """Kometa once, against `proxy`, with a fresh config folder `<folder>/kometa/` and its output in
    `<folder>/logs/kometa.log`: `started` when it was started early (its imports done while the proxy started),
    else started now; `cued`: the run config `started` was cued with already (`cue_kometa`, gated, for this very
    proxy): only its gate is opened. `wanted`: the targets' ratingKeys, when the caller follows the journal already
    (else read from it). Raises `RenderError` for a configuration that cannot work (before Kometa runs),
    `KometaTimeout`, `LaunchError` (the proxy died) and KeyboardInterrupt (Ctrl-C, or `cancel`)."""
    layout, proxy_layout = JobLayout(folder), JobLayout(proxy.job)
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

    process, document = _cued(request, config, kometa, proxy, folder, reporter, started, cued)
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


def _cued(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, proxy: ProxyProcess, folder: Path,
          reporter: Reporter, started: KometaProcess | None, cued: dict | None) -> tuple[KometaProcess, dict]:
    """The Kometa of this pass, cued: `started` as it was cued already, or `started` (else a new one) cued now."""
    if cued is not None and started is not None:
        return started, cued
    if started is not None and not started.usable:
        started.cancel()  # it died while it waited: start another
        started = None
    process = started or start_kometa(request, config, kometa, JobLayout(folder).kometa_start, folder)
    if (warning := isolation_warning(process)) is not None and started is None:
        reporter.stage(warning)
    try:
        document = cue_kometa(request, config, kometa, process, folder, reporter, port=proxy.port,
                              token=proxy.client_token, libraries=list(proxy.libraries),
                              outside_port=proxy.outside_port, proxy_job=proxy.job)
    except BaseException:
        process.cancel()
        raise
    return process, document


def _import_export_step() -> None:
    for name in EXPORT_MODULES:
        import_module(name)
    from PIL import Image
    Image.init()  # the image plugins the report opens the posters with


def _waiter(thread: threading.Thread) -> Callable[[float], bool]:
    """Wait up to that many seconds for `thread` to end; whether it has."""
    def wait(seconds: float) -> bool:
        thread.join(seconds)
        return not thread.is_alive()
    return wait


def _start_together(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, job: Job,
                    reporter: Reporter, shard: Shard | None) -> tuple[KometaProcess | None, dict | None]:
    """The proxy and Kometa, started at the same time (run_plan.py): Kometa's imports and, when the plan can be
    made, its own start-up run while mitmproxy starts; its first connection waits at the gate until the proxy
    is ready. Sets `job.proxy`. Returns Kometa (None: started later, the usual way) and the run config it was cued
    with (None: not cued yet). Raises what `start_proxy` raises, after stopping Kometa."""
    layout = JobLayout(job.folder)
    plan = run_plan.choose()
    proxy_config = dataclasses.replace(config.for_proxy(shard), client_token=plan.client_token)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proxy-start")
    starting = pool.submit(start_proxy, proxy_config, job.folder,
                           ProxyOptions(mock=request.mock, outside=True, offline=request.offline,
                                        planned_ports=(plan.port, plan.outside_port)),
                           secrets=config.secret_values())
    early: KometaProcess | None = None
    cued: dict | None = None
    try:
        early = start_kometa(request, config, kometa, layout.kometa_start, job.folder)
        if (warning := isolation_warning(early)) is not None:
            reporter.stage(warning)
        planned = run_plan.with_libraries(plan, proxy_config)
        if planned is not None:
            # Kometa's requests check that its CA bundle exists before they connect (and wait at the gate):
            # mitmproxy writes its CA over this empty file while it starts, long before the gate opens.
            layout.confdir.mkdir(parents=True, exist_ok=True)
            layout.ca_cert.touch(exist_ok=True)
            try:
                cued = cue_kometa(request, config, kometa, early, job.folder, reporter, port=planned.port,
                                  token=planned.client_token, libraries=list(planned.libraries),
                                  outside_port=planned.outside_port, proxy_job=job.folder, gated=True)
            except RenderError:
                pass  # said again, and properly, once the proxy is up
        job.proxy = starting.result()
    except LaunchError as exc:
        if early is not None:
            early.cancel()
        raise _abandon(job, f"proxy: {exc}") from None
    except BaseException:
        if early is not None:
            early.cancel()
        _stop_once_started(starting)
        raise
    finally:
        pool.shutdown(wait=False)
    if cued is not None and (differences := planned.differences(job.proxy, ports=early.box is None)):
        log.info("%s the proxy is not the one Kometa was told about (%s): Kometa runs again once it listens",
                 RenderEvent.PLAN_CHANGED, ", ".join(differences))
        early.cancel()
        return None, None
    return early, cued


def _stop_once_started(starting: Future) -> None:
    """A proxy start interrupted from outside: wait for it, and stop the proxy if it came up."""
    try:
        proxy = starting.result()
    except BaseException:  # noqa: BLE001 - it failed to start: nothing to stop
        return
    proxy.stop()


def _run(request: RenderRequest, config: PreviewConfig, kometa: KometaCommand, job: Job,
         reporter: Reporter, shard: Shard | None = None, cancel: threading.Event | None = None) -> export.Outcome:
    """One job: proxy, Kometa, export. `cancel` (a sharded run's Ctrl-C) ends it the way Ctrl-C ends a render."""
    total = len(config.targets)
    timings: dict[str, float] = {}
    clock = time.monotonic()
    result = KometaPass()
    interrupted = False
    try:
        what = f"{total} targets" if not config.dry_run_libraries else \
            f"every item of {', '.join(config.dry_run_libraries)}" + (f" and {total} targets" if total else "")
        reporter.stage(f"Starting the proxy ({'mock library' if request.mock else 'filter'} mode, "
                       f"{'offline' if request.offline else 'online'}) for {what}")
        early, cued = _start_together(request, config, kometa, job, reporter, shard)
        timings["proxy_start"] = round(time.monotonic() - clock, 3)
        threading.Thread(target=_import_export_step, name="import-export", daemon=True).start()
        try:
            result = kometa_pass(request, config, kometa, job.proxy, job.folder, reporter, cancel, early,
                                 cued=cued)
        except RenderError as exc:
            raise _abandon(job, str(exc)) from None
        except (KometaTimeout, LaunchError) as exc:
            result.error = str(exc)
    except OSError as exc:  # e.g. the disk filled up while Kometa ran
        result.error = f"{exc.strerror or exc} while running Kometa ({exc.filename or 'job folder'})"
        log.error("%s %s", RenderEvent.RENDER_ERROR, result.error)
    except KeyboardInterrupt:
        interrupted = True
        result.error = "interrupted"
    except BaseException:
        if job.proxy is not None:
            job.proxy.stop()
        raise
    # The proxy stops (mitmproxy's shutdown, ~0.3 s) while the posters are exported; the summary waits only for
    # its figures (the `done` hook's journal line), the render for its exit.
    stopper = threading.Thread(target=job.proxy.stop, name="proxy-stop") if job.proxy is not None else None
    if stopper is not None:
        stopper.start()
    if result.seconds is not None:
        timings["kometa"] = result.seconds
    reporter.stage("Exporting the captured posters")
    timings["total_before_export"] = round(time.monotonic() - clock, 3)
    export = import_module("kometa_preview.export")
    try:
        outcome = export.collect(config, job.folder, kometa_exit_code=result.exit_code, error=result.error,
                                 interrupted=interrupted, started=job.started, timings=timings,
                                 reserve=JobLayout(job.folder).reserve, kometa_version=kometa.version,
                                 proxy_stopping=_waiter(stopper) if stopper is not None else None,
                                 kometa_log_followed=result.meta_log)
    finally:
        if stopper is not None:
            stopper.join()
    log.info("%s exit_code=%d success=%s", RenderEvent.RENDER_DONE, outcome.exit_code, outcome.summary.success)
    return outcome
