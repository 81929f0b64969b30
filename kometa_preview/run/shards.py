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

A job folder read back (`merge JOB`, `render --resume JOB`) is data, never a path to act on: shard folders are
`<round>-<n>`, every summary.json is checked as it is read (`summary.load`), image names are `<id>_<side>.<ext>`,
and no symbolic link is followed (`names.entry`), so nothing outside the job folder is replaced, deleted, read or
linked. Everything is read and checked before anything is written; a folder that fails is one `JobFolderError`
line naming the file and the problem (exit 2).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from ..common import names
from ..common.config import PreviewConfig, Shard
from ..common.files import copy_atomic
from ..common.job import SHARDS, SUMMARY, CaptureName, JobLayout
from ..kometa.runner import KometaCommand
from ..results import pages
from ..results.export import Outcome, write_summary
from ..results.summary import MAX_BYTES, Summary, SummaryError, load, merge
from .request import Reporter


class JobFolderError(click.ClickException):
    """A job folder `merge` or `render --resume` cannot act on: the file and the problem, in one line. A click
    exception with exit code 2 (bad input), so both commands print it as such without a handler of their own."""

    exit_code = 2


@dataclass(frozen=True)
class Part:
    """One rendered shard of a job, read and checked: its output folder and its summary."""
    round: int
    output: Path
    summary: Summary


def _entry(folder: Path, name: str, kind: str) -> Path | None:
    try:
        return names.entry(folder, name, kind=kind)
    except names.UnsafeName as exc:
        raise JobFolderError(str(exc)) from None


def shard_folders(job: Path) -> list[tuple[int, Path]]:
    """(round, folder) of every shard of `job`, in the order they ran. `shards/` holds `<round>-<n>` folders only
    (names starting with `.` are ignored), none of them a symbolic link. Raises `JobFolderError`."""
    shards = _entry(job, SHARDS, "dir")
    if shards is None:
        return []
    found = []
    for path in shards.iterdir():
        if path.name.startswith("."):
            continue
        number = names.shard_folder(path.name)
        if number is None:
            raise JobFolderError(f"{path}: not a shard folder ({SHARDS}/ holds <round>-<n> folders, e.g. 1-2)")
        found.append((number, _entry(shards, path.name, "dir")))
    return [(number[0], folder) for number, folder in sorted(found)]


def _read_summary(path: Path) -> Summary:
    if path.stat().st_size > MAX_BYTES:
        raise JobFolderError(f"{path}: larger than {MAX_BYTES // (1 << 20)} MiB; not a summary.json")
    try:
        return load(json.loads(path.read_bytes()))
    except json.JSONDecodeError as exc:
        raise JobFolderError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise JobFolderError(f"{path}: not UTF-8 text") from None
    except SummaryError as exc:
        raise JobFolderError(f"{path}: {exc}") from None


def read_parts(job: Path) -> list[Part]:
    """Every rendered shard of `job` (a shard with no summary.json never finished: it has no part), each summary
    checked and each image it names a regular file of its output folder. Raises `JobFolderError`; reads only."""
    parts = []
    for round_number, folder in shard_folders(job):
        output = _entry(folder, "output", "dir")
        summary_path = _entry(output, SUMMARY, "file") if output is not None else None
        if output is None or summary_path is None:
            continue
        summary = _read_summary(summary_path)
        for entry in summary.targets.values():
            for name in (entry.before, entry.after):
                if name:
                    _entry(output, name, "file")
        parts.append(Part(round_number, output, summary))
    return parts


def captured_keys(job: Path) -> frozenset[str]:
    """Every ratingKey a dry run's rounds have captured a poster for (read from the capture file names)."""
    keys = set()
    for _, folder in shard_folders(job):
        output = _entry(folder, "output", "dir")
        captures = _entry(output, "by_ratingkey", "dir") if output is not None else None
        for path in captures.iterdir() if captures is not None else ():
            name = CaptureName.parse(path.name)
            if name is not None and name.ext != "bin" and name.kind == "poster":
                keys.add(name.rating_key)
    return frozenset(keys)


def next_round(job: Path) -> int:
    return max((round_number for round_number, _ in shard_folders(job)), default=0) + 1


@dataclass
class Progress:
    """Progress across shards: posters captured of the items known, and an ETA from how fast Kometa overlays."""
    reporter: Reporter
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

    def __init__(self, index: int, count: int, progress: Progress, reporter: Reporter) -> None:
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


def run(run_job, config: PreviewConfig, job: Path, reporter: Reporter, count: int, *, resume: bool) -> Outcome:
    """Render `count` shards at once with `run_job(shard, folder, reporter, cancel)` (render._run for one job),
    then merge every round of `job` into `<job>/output`. Ctrl-C stops every shard the Ctrl-C way and still merges
    what they captured. A job to resume is checked before anything runs (`JobFolderError`)."""
    if resume:
        _entry(job, "output", "dir")
        read_parts(job)
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


def _place(source: Path, output: Path, name: str) -> None:
    """A shard's image (a regular file, checked) in the merged output under its checked `name`: a hard link when the
    file system allows (no second copy), else a copy; either replaces what had that name in one step, a symbolic
    link included, never what it points to. A file with other names already (a crafted job folder's hard link to a
    file elsewhere, or a merge run again) is copied: the output never shares an inode with what may lie outside."""
    target = output / name
    temporary = output / f".partial-{os.getpid()}-{threading.get_ident()}-{name}"
    try:
        temporary.unlink(missing_ok=True)
        try:
            if os.lstat(source).st_nlink > 1:
                raise OSError("already linked elsewhere")
            os.link(source, temporary, follow_symlinks=False)
            os.replace(temporary, target)
        except OSError:
            temporary.unlink(missing_ok=True)
            copy_atomic(source, target)
    except OSError as exc:
        raise JobFolderError(f"{target}: cannot be replaced ({exc.strerror or exc})") from None


def merge_job(job: Path, *, interrupted: bool = False) -> Outcome:
    """Merge every round's shards of `job` (in the order they ran) into `<job>/output`: images, the pages of a dry
    run (pages.py) and summary.json. The whole job folder is read and checked before anything is written
    (`JobFolderError`)."""
    layout = JobLayout(job)
    parts = read_parts(job)
    if not parts:
        raise JobFolderError(f"{job}: holds no rendered shard ({SHARDS}/<round>-<n>/output/{SUMMARY})")
    output = checked_folder(job, "output")
    last_round = parts[-1].round
    for part in parts:
        summary = part.summary
        if part.round != last_round and summary.interrupted:
            # a later round (--resume) took over what this one left: its interruption is history
            summary.interrupted, summary.error = False, None if summary.error == "interrupted" else summary.error
        for entry in summary.targets.values():
            for name in (entry.before, entry.after):
                if name and (source := _entry(part.output, name, "file")) is not None:
                    _place(source, output, name)
    summary = merge([part.summary for part in parts], output_prefix=str(layout.output))
    summary.interrupted = summary.interrupted or interrupted
    summary.success = summary.success and not interrupted
    if interrupted and not summary.error:
        summary.error = "interrupted"
    pages.write(layout, summary, merged=True)
    return write_summary(layout, summary)


def checked_folder(parent: Path, name: str) -> Path:
    """`names.folder` for a job folder read back: `JobFolderError` for a link or a file in its place."""
    try:
        return names.folder(parent, name)
    except names.UnsafeName as exc:
        raise JobFolderError(str(exc)) from None
    except OSError as exc:
        raise JobFolderError(f"{parent / name}: cannot be made ({exc.strerror or exc})") from None
