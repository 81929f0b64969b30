"""The pages a job's output folder gets, listed once (`PAGES`) and written by one function (`write`), which export
(a job, or one shard of a dry run) and the shards' merge (a dry run's own output) both call.

Each page is a self-contained view of the job's `Summary`, beside summary.json, at its `JobLayout` path:
- report.html (report.py): every output folder;
- contact.html (contact.py): a dry run's merged output only, the whole library at a glance (a shard's own output
  folder is the merge's input: it gets the report alone).

Pages that are no view of one job's summary, so not listed here: the live page of `watch` (live_page.py) is served
from memory while watch runs, never written; diff.html (diff.py) compares two jobs' images, written by `diff` where
it is told (B's output folder by default) and by `watch` into each iteration's output.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..common.events import RenderEvent
from ..common.files import write_atomic
from ..common.job import JobLayout
from . import contact, report
from .summary import Summary

log = logging.getLogger("kometa_preview.results.pages")


@dataclass(frozen=True)
class Page:
    #: Where it goes in a job folder.
    path: Callable[[JobLayout], Path]
    #: Its HTML, from the output folder (the images it shows are read there) and the summary.
    render: Callable[[Path, Summary], str]
    #: Written for a dry run's merged output only.
    merged_only: bool = False


PAGES = (Page(lambda layout: layout.report, report.render_html),
         Page(lambda layout: layout.contact, contact.render_html, merged_only=True))


def write(layout: JobLayout, summary: Summary, *, merged: bool = False) -> None:
    """Every page `layout`'s output gets (`merged`: a dry run's merged output). A page that cannot be written (a full
    disk) is logged, and the others are still written: summary.json, written after them, must not be lost to it."""
    for page in PAGES:
        if page.merged_only and not merged:
            continue
        path = page.path(layout)
        try:
            write_atomic(path, page.render(layout.output, summary))
        except OSError as exc:
            log.error("%s could not write %s: %s", RenderEvent.REPORT_ERROR, path.name, exc.strerror or exc)
