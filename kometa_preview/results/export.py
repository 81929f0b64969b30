"""After Kometa: copy each target's captures to `output/`, then write the pages (pages.py) and summary.json.

Mapping is by ratingKey (docs/PREVIEW-MODE.md): for each target, its captures, `poster` preferred over other
kinds, the newest winning (`summary.choose_capture`); copied to `output/<id>_after.<ext>` (and the target's
`output:`). The poster the proxy served to Kometa becomes `output/<id>_before.<ext>`. What the job did is
`summary.summarize`'s (pure); this module only does the file work around it.

Every image is untrusted input (it came from Plex or from Kometa): one that `images.probe` refuses — a
decompression bomb, over `images.MAX_PIXELS`, not a JPEG/PNG/WebP, a symbolic link — is not copied, and its target
fails (with Kometa's own reason when it gave one, else this one: EXPORT_ERROR); the other targets are exported and
summary.json is written all the same.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common import images
from ..common.config import PreviewConfig, Target
from ..common.events import STATE_EVENTS, Captured, Event, Follower, PosterServed, RenderEvent, TargetSeen
from ..common.files import copy_atomic, write_atomic, write_json
from ..common.job import CaptureName, JobLayout
from ..common.posters import Poster, from_bytes, local_original
from ..kometa import log as kometa_log
from ..plex.client import Upstream, UpstreamError
from . import pages
from .outcomes import EXPORTED, UNCHANGED
from .summary import Exported, Records, RunFacts, Summary, choose_capture, preview_targets, summarize

log = logging.getLogger("kometa_preview.results.export")


@dataclass(frozen=True)
class Outcome:
    summary: Summary
    exit_code: int
    summary_path: Path


def output_path(requested: Path, ext: str) -> Path:
    """A target's `output:` path, with the extension of the image Kometa really made."""
    same = requested.suffix.lower().lstrip(".") in ({"jpg", "jpeg"} if ext == "jpg" else {ext})
    return requested if same else requested.with_suffix(f".{ext}")


def captures_on_disk(folder: Path, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Captures the journal `lines` missed (it could not be appended, e.g. on a full disk), read from their
    names, as journal lines."""
    known = {Path(line.get("saved") or "").name for line in lines if line.get("event") == Event.CAPTURED_UPLOAD}
    found = []
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        name = CaptureName.parse(path.name)
        if name is not None and name.ext != "bin" and path.name not in known:
            found.append({"t": name.timestamp, "event": Event.CAPTURED_UPLOAD.value, "rating_key": name.rating_key,
                          "kind": name.kind, "ext": name.ext, "bytes": path.stat().st_size, "saved": str(path),
                          "recovered_from_disk": True})
    return found


class BeforeImages:
    """The poster of a target Kometa never downloaded (it picked no overlay for it): the same clean original the
    proxy would have served (`posters.local_original`, else Plex's own), read with the GET-only Plex client."""

    def __init__(self, config: PreviewConfig) -> None:
        self.config = config
        self._upstream: Upstream | None = None

    def poster(self, target: Target, seen: TargetSeen) -> Poster | None:
        try:
            poster = local_original(target.input, self.config.kometa.config, seen.library or "", seen.rating_key)
            if poster is not None or not seen.thumb:
                return poster
            if self._upstream is None:
                plex = self.config.plex
                self._upstream = Upstream(plex.url, plex.token, min(plex.timeout, 30), plex.verify_ssl)
            response = self._upstream.get(seen.thumb)
        except (OSError, UpstreamError) as exc:
            log.warning("%s target=%s: no before image (%s)", RenderEvent.EXPORT_ERROR, target.id, exc)
            return None
        return from_bytes(response.body, "plex") if response.status == 200 else None

    def close(self) -> None:
        if self._upstream is not None:
            self._upstream.close()


def _refused(image: Path | bytes) -> str | None:
    """Why an image is not exported (`images.probe`'s reason), or None when it may be."""
    try:
        images.probe(image)
    except images.Unreadable as exc:
        return str(exc)
    return None


def _export_target(target: Target, layout: JobLayout, source: PosterServed | None, chosen: Captured | None,
                   fallback: Callable[[], Poster | None]) -> Exported:
    """Copy the before image and the chosen capture to `<id>_before`/`<id>_after` (and `output:`). A target whose
    poster the proxy never served gets `fallback()`'s as its before image. An image `images.probe` refuses is not
    copied, and `refused` says which and why (the target fails: outcomes.ExportResult)."""
    result = Exported()
    refused: list[str] = []
    try:
        if source is not None and Path(source.saved).is_file():
            if problem := _refused(Path(source.saved)):
                refused.append(f"the poster served to Kometa ({source.source}) is {problem}")
            else:
                before = copy_atomic(Path(source.saved),
                                     layout.exported(target.id, "before", Path(source.saved).suffix))
                result.before, result.poster_source = before.name, source.source
        elif (poster := fallback()) is not None:
            if problem := _refused(poster.data):
                refused.append(f"the poster from {poster.source} is {problem}")
            else:
                before = write_atomic(layout.exported(target.id, "before", poster.ext), poster.data)
                result.before, result.poster_source = before.name, poster.source
        if chosen is not None and (problem := _refused(Path(chosen.saved))):
            refused.append(f"the poster Kometa uploaded is {problem}")
        elif chosen is not None and not refused:  # no after-image beside a refused before-image
            after = copy_atomic(Path(chosen.saved), layout.exported(target.id, "after", chosen.ext))
            result.after, result.kind, result.bytes = after.name, chosen.kind, chosen.bytes
            if target.output is not None:
                result.output = str(copy_atomic(after, output_path(target.output, chosen.ext)))
    except OSError as exc:
        result.error = f"{RenderEvent.EXPORT_ERROR}: could not write the results ({exc.strerror or exc})"
        log.error("%s target=%s: %s", RenderEvent.EXPORT_ERROR, target.id, exc)
    if refused:
        result.refused = f"{RenderEvent.EXPORT_ERROR}: {'; '.join(refused)}: not exported"
        log.error("%s target=%s: %s", RenderEvent.EXPORT_ERROR, target.id, "; ".join(refused))
    return result


def iteration_lines(lines: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """One run's lines of a journal a proxy kept writing across runs (`watch`): what it learned at start-up, and
    what happened from `since` on."""
    return [line for line in lines if float(line.get("t", 0)) >= since or line.get("event") in STATE_EVENTS]


def export_targets(config: PreviewConfig, layout: JobLayout, journal: Records) -> dict[str, Exported]:
    """Each target's before and after images copied out of the captures (`<id>_before/_after.<ext>`)."""
    captures = [c for c in journal[Event.CAPTURED_UPLOAD] if Path(c.saved).is_file()]
    sources: dict[str, PosterServed] = {r.rating_key: r for r in journal[Event.POSTER_SOURCE] if r.saved}
    seen: dict[str, TargetSeen] = {r.target: r for r in journal[Event.TARGET]}
    befores = BeforeImages(config)
    exported = {}
    for target in preview_targets(config, journal):
        known = seen.get(target.id)
        key = known.rating_key if known is not None else target.rating_key
        exported[target.id] = _export_target(target, layout, sources.get(key),
                                             choose_capture([c for c in captures if c.rating_key == key]),
                                             lambda t=target, k=known: befores.poster(t, k) if k else None)
    befores.close()
    return exported


@dataclass
class JournalSource:
    """Where a run's journal lines are. `layout`: the proxy's job folder (a `watch` proxy serves several runs, so it
    is not the run's own); `lines`: what the caller followed already (not read again); `since`: when this run began
    (older lines are another run's, but what the proxy learned at start-up); `stopping(seconds)`: waits that long
    for a proxy still stopping and says whether it has exited — the images are exported meanwhile, then only its
    figures (the `done` hook's PROXY_DONE line) are waited for, not the rest of mitmproxy's shutdown."""
    layout: JobLayout
    lines: list[dict[str, Any]] | None = None
    since: float | None = None
    stopping: Callable[[float], bool] | None = None

    def read(self) -> tuple[list[dict[str, Any]], Follower]:
        follower = Follower(self.layout.journal)
        lines = list(self.lines) if self.lines is not None else follower.new_lines()
        lines += captures_on_disk(self.layout.by_ratingkey, lines)
        return (iteration_lines(lines, self.since) if self.since is not None else lines), follower

    def finish(self, lines: list[dict[str, Any]], follower: Follower) -> list[dict[str, Any]]:
        """The lines, with the proxy's PROXY_DONE once it is written (when the proxy is still stopping)."""
        if self.stopping is None:
            return lines
        tail = follower.new_lines()
        while not any(line.get("event") == Event.PROXY_DONE for line in tail) and not self.stopping(0.01):
            tail += follower.new_lines()
        return lines + tail + follower.new_lines()


def collect(config: PreviewConfig, layout: JobLayout, facts: RunFacts, source: JournalSource,
            kometa_followed: kometa_log.MetaLogFollower | None = None) -> Outcome:
    """Map captures to targets and write the results: `<id>_after/_before`, the pages, summary.json (last, once
    the space reserve is released, so a full disk still gets its summary). `kometa_followed`: Kometa's meta.log as
    it was parsed while Kometa ran."""
    lines, follower = source.read()
    layout.output.mkdir(parents=True, exist_ok=True)
    journal = Records(lines)
    exported = export_targets(config, layout, journal)
    kometa_run = kometa_log.read(layout.kometa_meta_log, layout.kometa_log, kometa_followed)
    journal = Records(source.finish(lines, follower))
    summary = summarize(journal, config, exported, facts, kometa=kometa_run, output_prefix=str(layout.output))
    for target_id, result in summary.targets.items():
        if result.status == UNCHANGED:
            log.info("%s target=%s: Kometa applied no overlay to it", RenderEvent.NO_OVERLAY_APPLIES, target_id)
        elif result.status != EXPORTED:
            log.error("%s ratingKey=%s target=%s status=%s: %s", RenderEvent.MISSING_CAPTURE, result.rating_key,
                      target_id, result.status, result.error)
    if summary.error:
        log.error("%s %s", RenderEvent.JOB_FAILED, summary.error)
    if summary.unknown_events:
        log.warning(f"{RenderEvent.UNKNOWN_EVENT} the journal holds events this version does not know: %s",
                    ", ".join(summary.unknown_events))
    layout.reserve.unlink(missing_ok=True)
    pages.write(layout, summary)
    return write_summary(layout, summary)


def write_summary(layout: JobLayout, summary: Summary) -> Outcome:
    """summary.json, last: it lists every file of the output folder (itself included), so it is written once
    the images and pages are there."""
    files = sorted(p.name for p in layout.output.iterdir() if p.is_file() and not p.name.startswith("."))
    summary.output_files = files + ([] if layout.summary.name in files else [layout.summary.name])
    try:
        write_json(layout.summary, summary.to_json())
    except OSError as exc:
        if not any(entry.considered for entry in summary.targets.values()):
            raise
        # the targets' "why not" lists are most of a summary: a disk filled by captures still gets the rest
        log.error("%s summary.json could not be written whole (%s): written without the targets' considered lists",
                  RenderEvent.REPORT_ERROR, exc.strerror or exc)
        write_json(layout.summary, summary.to_json(considered=False))
    return Outcome(summary, summary.exit_code, layout.summary)
