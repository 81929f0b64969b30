"""One preview job: proxy up, Kometa through it, proxy down, export — and a summary whatever happens.

Bad input or environment (config, Kometa not found, Plex unreachable, ports, job folder) raises
`RenderError` before anything is left half written: a job folder this run created is removed.
Once Kometa has started, every ending — success, missing targets, Kometa failing or timing out,
Ctrl-C — ends with both children stopped and summary.json written.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from ..common.config import ConfigError, PreviewConfig, Shard, Target, load
from ..common.events import RenderEvent
from ..common.job import SHARDS, JobLayout
from ..kometa.runner import (
    KometaCommand,
    KometaProcess,
    KometaTimeout,
)
from . import plan as run_plan
from .job_folder import Job, abandon, file_logging, prepare_job
from .kometa_pass import KometaPass, choose_kometa, cue_kometa, isolation_warning, kometa_pass, start_kometa
from .proxy_child import LaunchError, ProxyOptions, start_proxy
from .request import RenderError, RenderRequest, Reporter, interrupt_on_sigterm, raise_if_interrupted

if TYPE_CHECKING:
    from ..results import export


#: What the export step imports (Pillow, the report, the Plex client: ~0.15 s), kept off the path from the command
#: to Kometa's start, and imported while Kometa runs (`_import_export_step`) instead of after it.
EXPORT_MODULES = ("kometa_preview.results.export",)


log = logging.getLogger("kometa_preview.run.render")


def render(request: RenderRequest, reporter: Reporter) -> export.Outcome:
    try:
        config = load(request.config_path, also_dry_run=request.libraries)
    except ConfigError as exc:
        raise RenderError(str(exc)) from None
    if request.sample is not None:
        config = sampled(config, config.dry_run_libraries, request.sample)
    if (request.shards > 1 or request.resume) and not config.dry_run_libraries:
        raise RenderError("--shards and --resume split a dry run: give --library NAME or preview.libraries")
    if config.dry_run_libraries and config.targets:
        # A dry run previews its libraries' items, each once (id = ratingKey): a listed target would be a second
        # copy of one of them, or an item of another library.
        reporter.stage(f"! preview.targets are left out: a dry run of {', '.join(config.dry_run_libraries)} "
                       "previews every item of it once")
        config = dataclasses.replace(config, targets=())
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
        job = resumed(request.resume)
    else:
        job = prepare_job(config, request.job, request.force)
    handler = file_logging(job.layout)
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
        outcome = shards.run(one, config, job.layout.root, reporter, request.shards,
                             resume=request.resume is not None)
        job.layout.reserve.unlink(missing_ok=True)
        log.info("%s exit_code=%d success=%s", RenderEvent.RENDER_DONE, outcome.exit_code, outcome.summary.success)
        return outcome
    finally:
        logging.getLogger("kometa_preview").removeHandler(handler)
        handler.close()


def resumed(folder: Path) -> Job:
    """An interrupted dry run's job folder, read as data before anything is written into it (its logs/ and shards/
    are its own folders, never links out of it): `JobFolderError` otherwise."""
    from . import shards
    if not (folder / SHARDS).is_dir():
        raise RenderError(f"--resume {folder}: not a dry run's job folder (it has no shards/)")
    shards.read_parts(folder)
    shards.checked_folder(folder, "logs")
    return Job(JobLayout(folder.resolve()), created=False)


def sampled(config: PreviewConfig, libraries: tuple[str, ...], count: int) -> PreviewConfig:
    """preview.yml's targets and, from each library, a sample of at most `count` items showing every badge, instead
    of a whole-library dry run."""
    from ..plex.client import Upstream, UpstreamError
    from ..tools import sample
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
    layout = job.layout
    plan = run_plan.choose()
    proxy_config = dataclasses.replace(config.for_proxy(shard), client_token=plan.client_token)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="proxy-start")
    starting = pool.submit(start_proxy, proxy_config, layout,
                           ProxyOptions(mock=request.mock, outside=True, offline=request.offline,
                                        planned_ports=(plan.port, plan.outside_port)),
                           secrets=config.secret_values())
    early: KometaProcess | None = None
    cued: dict | None = None
    try:
        early = start_kometa(request, config, kometa, layout.kometa_start, layout)
        if (warning := isolation_warning(early)) is not None:
            reporter.stage(warning)
        planned = run_plan.with_libraries(plan, proxy_config)
        if planned is not None:
            # Kometa's requests check that its CA bundle exists before they connect (and wait at the gate):
            # mitmproxy writes its CA over this empty file while it starts, long before the gate opens.
            layout.confdir.mkdir(parents=True, exist_ok=True)
            layout.ca_cert.touch(exist_ok=True)
            try:
                cued = cue_kometa(request, config, kometa, early, layout, reporter, port=planned.port,
                                  token=planned.client_token, libraries=list(planned.libraries),
                                  outside_port=planned.outside_port, proxy_layout=layout, gated=True)
            except RenderError:
                pass  # said again, and properly, once the proxy is up
        job.proxy = starting.result()
        raise_if_interrupted()
    except LaunchError as exc:
        if early is not None:
            early.cancel()
        raise abandon(job, f"proxy: {exc}") from None
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
            result = kometa_pass(request, config, kometa, job.proxy, job.layout, reporter, cancel, early,
                                 cued=cued)
        except RenderError as exc:
            raise abandon(job, str(exc)) from None
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
    export = import_module("kometa_preview.results.export")
    try:
        facts = result.facts(kometa, request, interrupted=interrupted, started=job.started, timings=timings)
        source = export.JournalSource(job.layout, stopping=_waiter(stopper) if stopper is not None else None)
        outcome = export.collect(config, job.layout, facts, source, result.meta_log)
    finally:
        if stopper is not None:
            stopper.join()
    log.info("%s exit_code=%d success=%s", RenderEvent.RENDER_DONE, outcome.exit_code, outcome.summary.success)
    return outcome
