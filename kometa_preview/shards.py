"""A dry run split into shards: N self-contained mock-mode jobs (each its own proxy and its own Kometa) that run at
once, merged into one job.

A shard is just another job folder (`<job>/shards/<round>-<n>/`, the layout of `job.JobLayout`): it can be rendered
anywhere the Docker image runs (docs/SHARDS.md shows a Kubernetes Indexed Job) and merged here. Shard `n` of `N`
takes the top-level items (movies, shows with their seasons and episodes) at positions `n mod N` in Plex's order;
a resumed run (`--resume JOB`) is one more round that skips every item the job has captured already. The merge
keeps, for each target, its exported result if any round exported it, else the last round's.

Each item's overlays depend on that item only for the overlays the preview has been checked against (resolution,
HDR, editions, text…), so `--shards N` gives the same images as `--shards 1`; an overlay that ranks items across
the whole library (a `limit` on a search, "top N") would see only its shard.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import contact, report
from .config import PreviewConfig, Shard
from .export import Outcome, write_summary
from .job import SHARDS, CaptureName, JobLayout
from .kometa_runner import KometaCommand
from .summary import Summary, load, merge

log = logging.getLogger("kometa_preview.shards")


def captured_keys(job: Path) -> frozenset[str]:
    """Every ratingKey a dry run's rounds have captured a poster for (read from the capture file names)."""
    keys = set()
    for folder in job.glob(f"{SHARDS}/*/output/by_ratingkey"):
        for path in folder.iterdir():
            name = CaptureName.parse(path.name)
            if name is not None and name.ext != "bin" and name.kind == "poster":
                keys.add(name.rating_key)
    return frozenset(keys)


def next_round(job: Path) -> int:
    rounds = [int(p.name.split("-", 1)[0]) for p in job.glob(f"{SHARDS}/*-*") if p.name.split("-", 1)[0].isdigit()]
    return max(rounds, default=0) + 1


@dataclass
class Progress:
    """Progress across shards: posters captured of the items known, and an ETA from how fast Kometa overlays."""
    reporter: object
    count: int
    captured: dict[int, int] = field(default_factory=dict)
    totals: dict[int, int] = field(default_factory=dict)
    overlaying: dict[int, tuple[int, int]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shown_at: float = 0.0

    def update(self, shard: int, captured: int | None = None, total: int | None = None,
               overlaying: tuple[int, int] | None = None) -> None:
        with self.lock:
            if captured is not None:
                self.captured[shard], self.totals[shard] = captured, total or 0
            if overlaying is not None:
                self.overlaying[shard] = overlaying
            now = time.monotonic()
            if now - self.shown_at < 2.0:
                return
            self.shown_at = now
            done, of = sum(n for n, _ in self.overlaying.values()), sum(m for _, m in self.overlaying.values())
            eta = ""
            if done and of > done and len(self.overlaying) == self.count:
                left = (now - self.started) / done * (of - done)
                eta = f" · ETA {int(left // 60)}:{int(left % 60):02d}"
            self.reporter.progress_line(f"captured {sum(self.captured.values())} of {sum(self.totals.values())} items "
                                        f"across {self.count} shards · overlaying {done}/{of}{eta}")


class ShardReporter:
    """What one shard says, routed to the run's reporter (stages prefixed, progress combined)."""

    def __init__(self, index: int, count: int, progress: Progress, reporter) -> None:
        self.index, self.count, self.progress_all, self.reporter = index, count, progress, reporter

    def stage(self, text: str) -> None:
        self.reporter.stage(f"[shard {self.index + 1}/{self.count}] {text}")

    def kometa_found(self, kometa: KometaCommand) -> None:
        pass

    def progress(self, captured: int, total: int) -> None:
        self.progress_all.update(self.index, captured=captured, total=total)

    def kometa_line(self, line: str) -> None:
        self.reporter.kometa_line(f"[{self.index + 1}] {line}")

    def kometa_progress(self, doing: str) -> None:
        if doing.startswith("overlaying ") and "/" in doing:
            done, _, of = doing.split(" ", 2)[1].rstrip(":").partition("/")
            if done.isdigit() and of.isdigit():
                self.progress_all.update(self.index, overlaying=(int(done), int(of)))


def run(run_job, config: PreviewConfig, job: Path, reporter, count: int, *, resume: bool) -> Outcome:
    """Render `count` shards at once with `run_job(shard, folder, reporter, cancel)` (render._run for one job),
    then merge every round of `job` into `<job>/output`. Ctrl-C stops every shard the Ctrl-C way and still merges
    what they captured."""
    skip = captured_keys(job) if resume else frozenset()
    round_number = next_round(job)
    progress = Progress(reporter, count)
    cancel = threading.Event()
    failures: list[BaseException] = []

    # Each shard says when it has finished (its summary written). Not Thread.join: a join that Ctrl-C interrupts
    # can leave the thread looking finished while it still runs (CPython gh-90882), and the merge then missed it.
    finished = [threading.Event() for _ in range(count)]

    def one(index: int) -> None:
        folder = job / SHARDS / f"{round_number}-{index + 1}"
        try:
            run_job(Shard(index, count, skip), folder, ShardReporter(index, count, progress, reporter), cancel)
        except BaseException as exc:  # noqa: BLE001 - a shard's failure stops the others; the main thread re-raises
            failures.append(exc)
            cancel.set()
        finally:
            finished[index].set()

    if skip:
        reporter.stage(f"Resuming {job}: {len(skip)} items already captured are skipped")
    threads = [threading.Thread(target=one, args=(n,), name=f"shard-{n + 1}", daemon=True) for n in range(count)]
    interrupted = False
    for thread in threads:
        thread.start()
    try:
        while not all(done.is_set() for done in finished):
            for done in finished:
                done.wait(timeout=0.2)
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()
        for done in finished:
            while not done.wait(timeout=0.5):
                pass
    if failures and not interrupted:
        raise failures[0]
    reporter.stage(f"Merging {count} shard{'s' if count > 1 else ''} into {job / 'output'}")
    return merge_job(job, interrupted=interrupted)


def _place(source: Path, target: Path) -> None:
    """A shard's image in the merged output: a hard link when the file system allows (no second copy), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def merge_job(job: Path, *, interrupted: bool = False) -> Outcome:
    """Merge every round's shards of `job` (in the order they ran) into `<job>/output`: images, summary.json,
    report.html and contact.html."""
    layout = JobLayout(job)
    layout.output.mkdir(parents=True, exist_ok=True)
    folders = sorted((p for p in job.glob(f"{SHARDS}/*") if (JobLayout(p).summary).is_file()),
                     key=lambda p: [int(part) for part in p.name.split("-")])
    last_round = folders[-1].name.split("-")[0] if folders else ""
    parts: list[Summary] = []
    for folder in folders:
        part = load(json.loads(JobLayout(folder).summary.read_text(encoding="utf-8")))
        if folder.name.split("-")[0] != last_round and part.interrupted:
            # a later round (--resume) took over what this one left: its interruption is history
            part.interrupted, part.error = False, None if part.error == "interrupted" else part.error
        for entry in part.targets.values():
            for name in (entry.before, entry.after):
                if name and (JobLayout(folder).output / name).is_file():
                    _place(JobLayout(folder).output / name, layout.output / name)
        parts.append(part)
    summary = merge(parts, output_prefix=str(layout.output))
    summary.interrupted = summary.interrupted or interrupted
    summary.success = summary.success and not interrupted
    if interrupted and not summary.error:
        summary.error = "interrupted"
    for writer in (report.write, contact.write):
        try:
            writer(layout.output, summary)
        except OSError as exc:
            log.error("could not write %s: %s", writer.__module__, exc.strerror or exc)
    return write_summary(layout, summary)
