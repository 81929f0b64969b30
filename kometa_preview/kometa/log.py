"""What Kometa itself said it did: its log, read back into per-item outcomes and errors.

Kometa exits 0 after most failures (a requirements error, a critical error, an overlay file that did not load),
and an item it left alone looks the same on the wire as one it failed on. Its own log tells them apart, so the
render reads `<job>/kometa/logs/meta.log` (Kometa writes it under its config folder) and, for what happens
before that file exists, Kometa's standard output.

The shapes read here were taken from real runs of Kometa 2.0.2, 2.2.2, 2.3.1, 2.4.4 and nightly (excerpts
in tests/fixtures/kometa_logs/, docs/KOMETA-TRAFFIC.md "Kometa's log"):
- a file line is `[time] [file:line]  [LEVEL]  | message |`; a message of several lines continues on lines
  that start with spaces instead of the time, file and level;
- each item Kometa overlays opens with `(i/n) <title>` (2.1 and later) or `<title>` after a blank line
  (2.0), then says `  Overlays Applied: a, b`, `  Overlay Update Not Needed…`, or fails with an error and
  `Overlays Attempted on <title>: a, b` (for an unexpected exception: its text and `<class '…'>` at INFO
  first);
- sections are separators whose text is `Applying Overlays for the <Library> Library`,
  `Finished <Library> Library Overlays`, `Gathering Items for <Overlay> Overlay`;
- `Requirements Error: …` is printed (not logged) when Kometa's own requirements are missing, and Kometa
  exits 0 after it.
No mitmproxy import; pure functions over lines, so every version's excerpt is a unit test.
"""
from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..common.files import Tail, open_plain
from . import overlay_boxes, overlay_log
from .log_line import Line

_FILE_LINE = re.compile(r"^\[(?P<when>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[[^\]]*\]\s+\[(?P<level>[A-Z]+)\]\s*"
                        r"\|(?P<body>.*)\|\s*$")
_CONTINUATION = re.compile(r"^ {8,}\|(?P<body>.*)\|\s*$")
_SCREEN_LINE = re.compile(r"^\|(?P<body>.*)\|\s*$")
_ITEM = re.compile(r"^\((?P<n>\d+)/(?P<of>\d+)\) (?P<title>.+)$")
_APPLYING = re.compile(r"^(?:Re-)?Applying Overlays for the (?P<library>.+) Library$")
_FINISHED = re.compile(r"^Finished (?P<library>.+) Library Overlays$")
_GATHERING = re.compile(r"^Gathering Items for (?P<overlay>.+) Overlay$")
_LOADING_FILE = re.compile(r"^Loading Overlay File \d+ (?P<file>(?:Default|File|URL|Git|Repo): .+)$")
_ATTEMPTED = re.compile(r"^Overlays Attempted on (?P<title>.+?): (?P<overlays>.*)$")
_VERSION = re.compile(r"^Version: (?P<version>\S+)")
_CLASS = re.compile(r"^<class '(?:[\w.]+\.)?(?P<name>\w+)'>$")
#: Errors Kometa raises for an overlay that simply matches nothing (it hides their stack traces itself:
#: SUPPRESS_STACKTRACE_PATTERNS in modules/logs.py). Not failures.
NOTHING_MATCHED = (re.compile(r"No matches found with regex pattern"), re.compile(r"No Items found"),
                   re.compile(r"Plex Error: .* not found"))


@dataclass
class ItemOutcome:
    """One item of Kometa's "Applying Overlays" section."""
    title: str
    library: str = ""
    applied: list[str] = field(default_factory=list)
    not_needed: bool = False
    errors: list[str] = field(default_factory=list)
    attempted: list[str] = field(default_factory=list)


@dataclass
class OverlayErrors:
    """Errors while Kometa gathered the items of one overlay (an outside list it could not read…)."""
    overlay: str
    errors: list[str] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None


@dataclass
class KometaRun:
    version: str | None = None
    items: dict[str, ItemOutcome] = field(default_factory=dict)
    #: Errors outside any item or overlay: a file that did not load, a configuration error.
    job_errors: list[str] = field(default_factory=list)
    #: Which overlay file Kometa was loading when it logged a job error (`Default: ribbon`, `File: my.yml`).
    error_files: dict[str, str] = field(default_factory=dict)
    #: Critical errors: Kometa stopped (it may still exit 0).
    critical: list[str] = field(default_factory=list)
    overlay_errors: dict[str, OverlayErrors] = field(default_factory=dict)
    #: Libraries whose overlay run reached "Finished <Library> Library Overlays".
    finished_libraries: list[str] = field(default_factory=list)
    #: Every error and critical message, in order (de-duplicated and counted by `error_summary`).
    errors: list[str] = field(default_factory=list)
    #: Whether a log was found at all (no log: Kometa did not get as far as starting its logger).
    found: bool = False
    #: Every overlay definition Kometa built, with its attributes and what it found (overlay_log.py).
    overlays: overlay_log.OverlayLog = field(default_factory=overlay_log.OverlayLog)
    #: Where each overlay that found items is drawn, by (library, Kometa's name): its box, or why it has none
    #: (overlay_boxes.py; measured by `read`, which can read Kometa's images and fonts).
    placements: dict[tuple[str, str], overlay_boxes.Box | str] = field(default_factory=dict)

    def error_summary(self) -> list[tuple[str, int]]:
        """Kometa's own errors, de-duplicated and counted, in the order first seen (like Kometa's "Error Summary",
        without the lines of overlays that just matched nothing)."""
        counted = Counter(e for e in self.errors if not nothing_matched(e))
        return list(counted.items())

    def item(self, title: str) -> ItemOutcome | None:
        return self.items.get(title)


def nothing_matched(message: str) -> bool:
    return any(pattern.search(message) for pattern in NOTHING_MATCHED)


def _strip(body: str) -> str:
    return body.strip()


def _section(text: str) -> tuple[str, re.Match[str]] | None:
    """A section heading Kometa prints with `logger.separator` (centred between borders, or inside `=== … ===`):
    which one, and its match."""
    heading = text.strip("= ")
    for name, pattern in (("applying", _APPLYING), ("finished", _FINISHED), ("gathering", _GATHERING),
                          ("loading", _LOADING_FILE)):
        if match := pattern.match(heading):
            return name, match
    return None


def _border(text: str) -> bool:
    return bool(text) and not text.strip("=")


def _timestamp(text: str, seconds: dict[str, float]) -> float:
    """`2026-12-07 01:47:30,228` as a timestamp. A run logs thousands of lines a second: strptime once per
    second, not once per line (strptime was most of the time of reading a run's log)."""
    whole, _, millis = text.partition(",")
    if (base := seconds.get(whole)) is None:
        base = seconds[whole] = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").timestamp()
    return base + int(millis or 0) / 1000


class FileLineParser:
    """meta.log's lines as (level, text, time), fed one at a time; continuation lines take the level and time of
    the line they continue. Lines of neither shape (a traceback printed by Python itself) are kept at level ''."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self._level, self._when = "", None
        self._seconds: dict[str, float] = {}

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        if match := _FILE_LINE.match(line):
            self._level = match["level"]
            self._when = _timestamp(match["when"], self._seconds)
            self.lines.append(Line(self._level, _strip(match["body"]), self._when))
        elif match := _CONTINUATION.match(line):
            self.lines.append(Line(self._level, _strip(match["body"]), self._when, continued=True))
        elif line.strip():
            self.lines.append(Line("", line.strip(), self._when))

    def peek(self, line: str) -> list[Line]:
        """The lines so far and `line` parsed after them, without keeping `line` (one still being written)."""
        kept, level, when = len(self.lines), self._level, self._when
        self.feed(line)
        lines = self.lines[:]
        del self.lines[kept:]
        self._level, self._when = level, when
        return lines


def file_lines(raw: Iterable[str]) -> list[Line]:
    """meta.log's lines (`FileLineParser`)."""
    parser = FileLineParser()
    for line in raw:
        parser.feed(line)
    return parser.lines


class MetaLogFollower:
    """meta.log parsed while Kometa writes it (`poll`, from the render's wait loop), so that reading its outcome
    once Kometa exits costs only its last lines (a default overlay run logs ~17,000 lines: 0.1 s to parse)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tail = Tail(path)
        self._parser = FileLineParser()

    def poll(self) -> None:
        fresh = self._tail.lines()
        if self._tail.restarted:  # a new file (Kometa rolled it over)
            self._parser = FileLineParser()
        for raw in fresh:
            self._parser.feed(raw.decode("utf-8", "replace"))

    def lines(self) -> list[Line] | None:
        """Every line so far (a last line without its newline included); None when there is no meta.log."""
        self.poll()
        if not self._tail.found:
            return None
        if not self._tail.pending:
            return list(self._parser.lines)
        return self._parser.peek(self._tail.pending.decode("utf-8", "replace"))


def screen_lines(raw: Iterable[str]) -> list[Line]:
    """Kometa's standard output (`| message |`, and the carriage-return progress lines): no levels."""
    lines = []
    for chunk in raw:
        for line in chunk.replace("\r", "\n").splitlines():
            match = _SCREEN_LINE.match(line.rstrip())
            text = _strip(match["body"]) if match else line.strip()
            if text:
                lines.append(Line("", text))
    return lines


def _exception_text(details: list[str]) -> str | None:
    """`Truncated File Read` + `<class 'OSError'>` (Kometa's INFO lines for an unexpected exception) →
    `OSError: Truncated File Read`."""
    for n, text in enumerate(details):
        if (match := _CLASS.match(text)) and n > 0:
            return f"{match['name']}: {details[n - 1]}"
    return None


def _whole_errors(lines: list[Line]) -> list[Line]:
    """An error logged over several lines as one: `YAML Error: while parsing a flow sequence` goes on with the file,
    line and column on continuation lines, and the reason a user needs is all of it."""
    merged: list[Line] = []
    for line in lines:
        if line.continued and line.is_error and merged and merged[-1].is_error and line.text:
            merged[-1] = Line(merged[-1].level, f"{merged[-1].text} {line.text}", merged[-1].when)
        else:
            merged.append(line)
    return merged


class _Reader:
    """meta.log's lines walked once, in order: which section Kometa is in (applying a library's overlays, gathering
    an overlay's items, loading an overlay file), which item it is on, and where each error belongs."""

    def __init__(self, lines: list[Line]) -> None:
        self.run = KometaRun(found=bool(lines))
        self.library = ""
        self.applying = False
        self.gathering: OverlayErrors | None = None
        self.loading: str | None = None           # the overlay file being loaded ("Default: ribbon")
        self.current: ItemOutcome | None = None
        self.details: list[str] = []             # unindented INFO and ERROR lines of the current item
        self.legacy = not any(_ITEM.match(line.text) for line in lines)   # 2.0: items named after a blank line
        self.previous_blank = False

    def feed(self, line: Line) -> None:
        text = line.text
        if self.run.version is None and (match := _VERSION.match(text)):
            self.run.version = match["version"]
        if line.is_error:
            self.run.errors.append(text)
        if (section := _section(text)) is not None:
            self.section(*section, line)
        elif _border(text):
            self.gathering = None  # a gathering section ends where the next bordered heading starts
        elif not self.item_started(line):
            self.previous_blank = not text
            if not (self.applying and self.item_line(line)):
                self.stray_error(line)

    def section(self, kind: str, match: re.Match[str], line: Line) -> None:
        self.gathering, self.previous_blank = None, False
        if kind == "applying":
            self.applying, self.library, self.current, self.loading = True, match["library"], None, None
        elif kind == "finished":
            self.applying, self.current = False, None
            self.run.finished_libraries.append(match["library"])
        elif kind == "loading":
            self.loading = match["file"]
        else:
            self.gathering = self.run.overlay_errors.setdefault(match["overlay"], OverlayErrors(match["overlay"]))
            self.gathering.started = self.gathering.started or line.when

    def item_started(self, line: Line) -> bool:
        """`(i/n) Title` (or, in 2.0, a title after a blank line) opens an item of the applying section."""
        if self.gathering is not None and line.when is not None:
            self.gathering.ended = line.when
        if not self.applying or line.level not in ("INFO", ""):
            return False
        title = None
        if match := _ITEM.match(line.text):
            title = match["title"]
        elif self.legacy and self.previous_blank and line.text and not line.text.startswith(" ") \
                and line.level == "INFO":
            title = line.text
        if title is None:
            return False
        self.current = self.run.items.setdefault(title, ItemOutcome(title, self.library))
        self.details, self.previous_blank = [], False
        return True

    def item_line(self, line: Line) -> bool:
        """A line of the applying section: what happened to the current item. False when it is not one."""
        text = line.text
        if match := _ATTEMPTED.match(text):
            item = self.run.items.setdefault(match["title"], ItemOutcome(match["title"], self.library))
            item.attempted = [name.strip() for name in match["overlays"].split(",") if name.strip()]
            if not item.errors:
                item.errors.append(_exception_text(self.details) or next(iter(self.details), None)
                                   or "Kometa could not apply its overlays")
            self.current, self.details = None, []
            return True
        if self.current is None:
            return False
        if text.startswith("Overlays Applied:"):
            self.current.applied = [name.strip() for name in text.split(":", 1)[1].split(",") if name.strip()]
        elif text.startswith("Overlay Update Not Needed"):
            self.current.not_needed = True
        elif line.is_error:
            self.current.errors.append(text)
        elif line.level == "INFO" and text:
            self.details.append(text)
        return True

    def stray_error(self, line: Line) -> None:
        """An error outside any item: critical, while gathering an overlay's items, or the job's own (named with the
        overlay file Kometa was loading, when it was loading one)."""
        text = line.text
        if not line.is_error or line.continued or nothing_matched(text):
            return
        if line.level == "CRITICAL":
            if text not in self.run.critical:
                self.run.critical.append(text)
        elif self.gathering is not None:
            self.gathering.errors.append(text)
        else:
            self.run.job_errors.append(text)
            if self.loading is not None:
                self.run.error_files.setdefault(text, self.loading)


def read_lines(lines: list[Line]) -> KometaRun:
    """Kometa's run as these log lines tell it (`file_lines` of meta.log, or `screen_lines`)."""
    lines = _whole_errors(lines)
    reader = _Reader(lines)
    for line in lines:
        reader.feed(line)
    run = reader.run
    run.overlay_errors = {name: e for name, e in run.overlay_errors.items() if e.errors}
    run.overlays = overlay_log.read(lines)
    return run


def requirements_error(screen: list[Line]) -> str | None:
    """`Requirements Error: …` as Kometa prints it before its logger exists, joined with the line naming the
    missing module."""
    for n, line in enumerate(screen):
        if line.text.startswith("Requirements Error"):
            module = next((later.text for later in screen[n + 1:n + 3] if "No module named" in later.text), "")
            found = re.search(r"\((No module named [^)]*)\)", module or line.text)
            return f"Requirements Error: {found[1]}" if found else line.text
    return None


def python_crash(screen: list[Line]) -> str | None:
    """The last line of a Python traceback on Kometa's output (it died before logging anything)."""
    if not any(line.text.startswith("Traceback (most recent call last)") for line in screen):
        return None
    for line in reversed(screen):
        if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line.text):
            return line.text
    return None


#: How much of Kometa's screen output is read when its meta.log exists.
SCREEN_HEAD_CHARS = 64 * 1024


def read(meta_log: Path, screen_log: Path | None = None, followed: MetaLogFollower | None = None) -> KometaRun:
    """Kometa's run as its log tells it (`followed`: meta.log as it was parsed while Kometa ran). Without a
    meta.log (Kometa stopped before its logger started), the requirements error or crash on its screen output
    becomes a job error."""
    lines = followed.lines() if followed is not None and followed.path == meta_log else None
    if lines is not None:
        run = read_lines(lines)
    else:
        try:
            with io.TextIOWrapper(open_plain(meta_log), encoding="utf-8", errors="replace") as handle:
                run = read_lines(file_lines(handle))
        except OSError:
            run = KometaRun()
    screen: list[Line] = []
    if screen_log is not None:
        try:
            with io.TextIOWrapper(open_plain(screen_log), encoding="utf-8", errors="replace") as handle:
                # With a meta.log, the screen output is read only for a requirements error, which Kometa prints
                # first (before its logger starts): its head is enough, and reading all of it doubled the cost.
                screen = screen_lines(handle if not run.found else [handle.read(SCREEN_HEAD_CHARS)])
        except OSError:
            screen = []
    if not run.found and screen:
        fallback = read_lines(screen)
        fallback.found = False
        run = fallback
    for problem in (requirements_error(screen), None if run.found else python_crash(screen)):
        if problem and problem not in run.critical:
            run.critical.insert(0, problem)
            run.errors.insert(0, problem)
    if run.found and run.overlays.kometa_folder:
        # Kometa's config folder holds meta.log in logs/ and the images it downloads in overlays/
        files = overlay_boxes.KometaFiles(Path(run.overlays.kometa_folder), meta_log.parent.parent / "overlays")
        run.placements = overlay_boxes.placements(run.overlays, files, run.version)
    return run


_GHOST = re.compile(r"^(?:Overlaying: )?\((?P<n>\d+)/(?P<of>\d+)\) (?P<title>.+)$")
_LOADING = re.compile(r"^Loading All (?P<what>\w+) from Library: (?P<library>.+)$")


def progress(raw: str) -> str | None:
    """What one line of Kometa's screen output says it is doing, for a progress line (None: nothing to show).
    Kometa is silent for long stretches while it gathers each overlay's items; these are the lines that say
    where it is."""
    text = raw.strip().strip("|").strip().strip("=").strip()  # `| … |`, a ghost line `| …`, or `|=== … ===|`
    if found := _GATHERING.match(text):
        return f"gathering items for the {found['overlay']} overlay"
    if found := _APPLYING.match(text):
        return f"applying overlays in {found['library']}"
    if found := _GHOST.match(text):
        return f"overlaying {found['n']}/{found['of']}: {found['title']}"
    if found := _LOADING.match(text):
        return f"reading {found['what'].lower()} of {found['library']}"
    return None
