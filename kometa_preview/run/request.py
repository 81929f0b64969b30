"""The run seam: what a render is asked to do (`RenderRequest`), whom it tells (`Reporter`), how it refuses
(`RenderError`: bad input or environment, one line, exit code 2). watch and shards import these, not render."""
from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..kometa.box import Isolation
from ..kometa.runner import KometaCommand
from ..results.summary import Summary


class RenderError(Exception):
    """Bad input or environment: one line, exit code 2."""


class Reporter(Protocol):
    def stage(self, text: str) -> None: ...
    def progress(self, captured: int, total: int) -> None: ...
    def kometa_line(self, line: str) -> None: ...
    def kometa_progress(self, doing: str) -> None: ...
    def progress_line(self, text: str) -> None: ...
    def kometa_found(self, kometa: KometaCommand) -> None: ...
    def results(self, summary: Summary) -> None: ...


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


#: Set by Ctrl-C or SIGTERM. The KeyboardInterrupt the handler raises can be lost: CPython drops one that arrives
#: while a C extension module is being imported (seen: `_elementtree`, 1 render in 15 ran on to exit 0), so the
#: loops that wait also look at this flag (`raise_if_interrupted`).
INTERRUPTED = threading.Event()


def interrupt_on_sigterm() -> None:
    """SIGTERM and SIGINT both end a render the Ctrl-C way (children stopped, summary written). SIGINT is set
    explicitly: a render started from a background job or `nohup` inherits it ignored, and would run on."""
    def handler(*_):
        INTERRUPTED.set()
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def raise_if_interrupted() -> None:
    """A Ctrl-C whose KeyboardInterrupt was lost is raised again here."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt
