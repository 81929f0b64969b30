"""A job folder made for one run: a new timestamped folder or `--job`, its space reserve, its render.log, and
leaving nothing half written when the environment is bad before Kometa ran."""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..common.config import PreviewConfig
from ..common.job import JobLayout
from ..common.limits import RESERVE_BYTES
from .proxy_child import ProxyProcess
from .request import RenderError


@dataclass
class Job:
    layout: JobLayout
    #: Made by this run (so removed again when the environment turns out bad before Kometa ran).
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
        layout = JobLayout(folder.resolve())
        layout.reserve.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError as exc:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise RenderError(f"output folder {folder} is not writable ({exc.strerror})") from None
    return Job(layout, created=not existed)


def file_logging(layout: JobLayout) -> logging.Handler:
    """The render's own log lines (RenderEvent) in `<job>/logs/render.log`."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(layout.render_log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-8s | %(message)s"))
    root = logging.getLogger("kometa_preview")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def abandon(job: Job, message: str) -> RenderError:
    """Bad environment found before Kometa ran: leave no results half written. The logs stay (a proxy that could
    not start says why in logs/proxy.log), and the message points at them."""
    if job.proxy is not None:
        job.proxy.stop()
    layout = job.layout
    if job.created:
        for path in layout.root.iterdir():
            if path != layout.logs:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if layout.logs.is_dir():
            return RenderError(f"{message} (logs kept in {layout.logs})")
        shutil.rmtree(layout.root, ignore_errors=True)
    return RenderError(message)
