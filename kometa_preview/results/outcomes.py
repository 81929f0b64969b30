"""What happened to each target, and why not: the proxy's journal and Kometa's own log, read together.

A capture proves Kometa uploaded a poster; its absence proves nothing by itself. Kometa may have left the item
alone because no overlay applies (not a failure), failed on it (its log says why), never got to it (an overlay
file did not load, a critical error), or been unable to gather an overlay's items because an outside call was
refused (`--offline`, the allowlist) or unreachable (no internet). Pure functions: summary.py calls them with
records already read.

Where each applied overlay is and why each other one is not (`overlaid`): its box on Kometa's canvas
(kometa/overlay_boxes.py), every definition of the target's library and level with Kometa's verdict on it
(kometa/overlay_choice.py), each named for people (kometa/overlay_names.py), and one warning when two applied
overlays' boxes overlap.

The statuses (summary.json `targets.<id>.status`):
- `exported`: Kometa uploaded a new poster for it;
- `unchanged`: Kometa finished that library's overlays cleanly and applied none to it;
- `failed`: Kometa's own message for the item, or the job error that stopped it, is in `error`;
- `missing`: Plex has no such item, or no ratingKey could be resolved.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..common.events import OUTSIDE_DENIED, Refused, TargetSeen
from ..kometa import overlay_choice
from ..kometa.log import KometaRun, OverlayErrors
from ..kometa.overlay_boxes import Box
from ..kometa.overlay_names import labelled

EXPORTED, UNCHANGED, FAILED, MISSING = "exported", "unchanged", "failed", "missing"
#: Seconds around a gathering section in which a refused outside call is taken to be that overlay's.
WINDOW_SLACK = 1.0


@dataclass
class OutsideData:
    """An overlay (or, outside any overlay, a file Kometa loads) whose data came from an outside call that was
    refused or could not be made."""
    overlay: str | None
    hosts: list[str]
    error: str
    count: int = 1


@dataclass
class KometaOutcome:
    """What Kometa's log says about the whole job."""
    #: The error that stops the job from meaning what it should (Kometa's own, or the render's), or None.
    error: str | None = None
    #: Kometa's configuration and critical errors (not the ones caused by missing outside data).
    configuration_errors: list[str] = field(default_factory=list)
    outside_data: list[OutsideData] = field(default_factory=list)
    #: Whether Kometa got as far as finishing the overlays of each library it logged.
    finished_libraries: frozenset[str] = frozenset()
    found_log: bool = False


def _hosts_named(message: str, hosts: set[str]) -> set[str]:
    return {host for host in hosts if host in message}


def _hosts_in_window(section: OverlayErrors, refusals: list[Refused]) -> set[str]:
    if section.started is None:
        return set()
    end = (section.ended or section.started) + WINDOW_SLACK
    return {r.host for r in refusals if r.host and section.started - WINDOW_SLACK <= r.t <= end}


def judge_kometa(run: KometaRun, refusals: list[Refused], render_error: str | None) -> KometaOutcome:
    """Split Kometa's errors into configuration errors (the job fails) and missing outside data (the overlays
    that needed it are named, with the hosts), and decide the job's error."""
    denied_hosts = {r.host for r in refusals if r.host}
    outcome = KometaOutcome(finished_libraries=frozenset(run.finished_libraries), found_log=run.found)
    outside: dict[tuple[str | None, str], OutsideData] = {}

    def add_outside(overlay: str | None, hosts: set[str], message: str) -> None:
        key = (overlay, message)
        if key in outside:
            outside[key].count += 1
        else:
            outside[key] = OutsideData(overlay, sorted(hosts), message)

    for section in run.overlay_errors.values():
        window = _hosts_in_window(section, refusals)
        for message in section.errors:
            hosts = _hosts_named(message, denied_hosts) | window
            if hosts or "kometa-preview: OUTSIDE_" in message:
                add_outside(section.overlay, hosts or window, message)
            else:
                outcome.configuration_errors.append(message)
    for message in run.job_errors:
        hosts = _hosts_named(message, denied_hosts)
        if hosts or "kometa-preview: OUTSIDE_" in message:
            add_outside(None, hosts, message)
        else:
            outcome.configuration_errors.append(message)
    outcome.outside_data = list(outside.values())
    # A critical error stopped Kometa, whatever caused it (a start-up call that could not be made included).
    outcome.configuration_errors = list(dict.fromkeys(run.critical + outcome.configuration_errors))
    if render_error:
        first = outcome.configuration_errors[0] if outcome.configuration_errors else None
        outcome.error = f"{render_error}: {first}" if first and first not in render_error else render_error
    elif outcome.configuration_errors:
        outcome.error = f"Kometa reported an error: {outcome.configuration_errors[0]}"
    return outcome


def denied_calls(records_by_event) -> list[Refused]:
    """Every outside call that got no data (refused by the allowlist or --offline, or unreachable)."""
    return [r for event in sorted(OUTSIDE_DENIED) for r in records_by_event[event]]


def outside_data_reason(outside: list[OutsideData]) -> str:
    named = [o for o in outside if o.overlay] or outside
    hosts = sorted({h for o in outside for h in o.hosts})
    what = ", ".join(dict.fromkeys(o.overlay or "overlay files" for o in named))
    return (f"OUTSIDE_DATA: {what} need data from {', '.join(hosts) or 'outside services'} that the preview could "
            "not read (refused or unreachable), so Kometa could not decide this item's overlays")


@dataclass(frozen=True)
class TargetVerdict:
    status: str
    error: str | None = None
    overlays: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportResult:
    """What export made of a target's images, as far as its verdict goes."""
    #: Its after-image was exported.
    exported: bool = False
    #: The results could not be written (a full disk…): the target failed, whatever Kometa did.
    error: str | None = None
    #: An image was not exported because it is no image the preview opens (`images.probe`'s reason): the target
    #: failed, but Kometa's own reason for it, when it gave one, is the one named (it is what the user knows).
    refused: str | None = None


def judge_target(seen: TargetSeen | None, *, missing_reason: str | None, export: ExportResult,
                 overlaid_poster: bool, run: KometaRun, outcome: KometaOutcome) -> TargetVerdict:
    """One target's status and its first reason."""
    if missing_reason:
        return TargetVerdict(MISSING, missing_reason)
    item = run.item(seen.kometa_title) if seen is not None else None
    applied = tuple(item.applied) if item else ()
    if export.error:
        return TargetVerdict(FAILED, export.error, applied)
    if export.exported and not export.refused:
        return TargetVerdict(EXPORTED, None, applied)
    said = f" (Kometa: {item.errors[0]})" if item is not None and item.errors else ""
    if overlaid_poster:  # the proxy knows the cause and the fix, which Kometa's own words do not give
        return TargetVerdict(FAILED, "OVERLAID_POSTER: Plex's poster already carries a Kometa overlay and Kometa "
                                     "refused it; give the target an input: image or set kometa.config so the "
                                     f"stored original is used{said}", tuple(item.attempted) if item else ())
    if item is not None and item.errors:
        return TargetVerdict(FAILED, item.errors[0], tuple(item.attempted))
    if export.refused:
        return TargetVerdict(FAILED, export.refused, applied)
    return _without_capture(seen, item, outcome)


def _without_capture(seen: TargetSeen | None, item, outcome: KometaOutcome) -> TargetVerdict:
    """A target Kometa uploaded nothing for and gave no reason for: the job's reason, or what its log implies."""
    if outcome.error:
        return TargetVerdict(FAILED, outcome.error)
    if outcome.outside_data:
        return TargetVerdict(FAILED, outside_data_reason(outcome.outside_data))
    if item is not None and item.applied:
        return TargetVerdict(FAILED, "MISSING_CAPTURE: Kometa says it applied overlays, but no upload reached the "
                                     "proxy (see logs/kometa.log and proxy_journal.jsonl)", tuple(item.applied))
    if item is not None and not item.not_needed:
        return TargetVerdict(FAILED, "MISSING_CAPTURE: Kometa started overlaying this item but uploaded no poster "
                                     "and logged no reason (see logs/kometa.log)")
    library = seen.library if seen is not None else None
    if outcome.found_log and library in outcome.finished_libraries:
        return TargetVerdict(UNCHANGED, None)  # Kometa did not pick it for any overlay, or found it up to date
    return TargetVerdict(FAILED, "MISSING_CAPTURE: Kometa uploaded no poster for this item, and its log does not say "
                                 "it finished this library's overlays (see logs/kometa.log)")


def error_counts(run: KometaRun) -> list[dict[str, object]]:
    return [{"message": message, "count": count} for message, count in run.error_summary()]


def unreachable_hosts(refusals: list[Refused]) -> dict[str, int]:
    return dict(Counter(r.host for r in refusals if r.host and r.event.value == "OUTSIDE_UNREACHABLE"))


# --- where each overlay is, and why (not) ----------------------------------------------------------------------------

@dataclass
class OverlayLabel:
    """An overlay as summary.json names it: Kometa's name (the contract with its log), the overlay's own name, and the
    `overlay_files` entry it comes from (`default: resolution`; None: unknown)."""
    overlay: str
    display_name: str
    file: str | None


@dataclass
class OverlayBox:
    """Where Kometa drew an applied overlay, in its canvas pixels (1000×1500 posters, 1920×1080 title cards)."""
    overlay: str
    display_name: str
    file: str | None
    x: int
    y: int
    w: int
    h: int


@dataclass
class Consideration:
    """One overlay definition of the target's library and level: whether it matched the target, whether Kometa
    applied it, and why not (or, applied through a queue, its position)."""
    overlay: str
    display_name: str
    file: str | None
    matched: bool
    applied: bool
    reason: str | None


@dataclass
class Overlaid:
    """A target's overlays, placed and explained."""
    labels: list[OverlayLabel] = field(default_factory=list)
    boxes: list[OverlayBox] = field(default_factory=list)
    #: Applied overlays without a box, and why (a queue places them, their words come from the item…).
    unplaced: dict[str, str] = field(default_factory=dict)
    considered: list[Consideration] = field(default_factory=list)
    overlap_warning: str | None = None


def _label(name: str, files) -> OverlayLabel:
    return OverlayLabel(**labelled(name, files))  # type: ignore[arg-type]


def overlap_warning(boxes: list[OverlayBox]) -> str | None:
    """One warning naming every pair of boxes that intersect. Kometa's dovetail badges of one file are drawn to fit
    together (the resolution badge's back holds the edition's), so they are no overlap."""
    pairs = []
    for n, first in enumerate(boxes):
        for second in boxes[n + 1:]:
            dovetail = first.file == second.file and all(b.display_name.endswith("-Dovetail") for b in (first, second))
            if not dovetail and Box(first.x, first.y, first.w, first.h).intersects(
                    Box(second.x, second.y, second.w, second.h)):
                pairs.append(f"{_named(first)} and {_named(second)}")
    return f"Overlays overlap: {'; '.join(pairs)}" if pairs else None


def _named(label: OverlayBox | OverlayLabel) -> str:
    return f"{label.display_name} ({label.file})" if label.file else label.display_name


def overlaid(run: KometaRun, seen: TargetSeen | None, verdict: TargetVerdict) -> Overlaid:
    """The target's overlays as Kometa's log and placements tell them: labels for those it applied (or attempted),
    their boxes when it exported the target, and every definition of its library and level judged for it."""
    if seen is None or seen.library is None:
        return Overlaid(labels=[_label(name, []) for name in verdict.overlays])
    files = run.overlays.files.get(seen.library, [])
    result = Overlaid(labels=[_label(name, files) for name in verdict.overlays])
    for label in result.labels if verdict.status == EXPORTED else []:
        placed = run.placements.get((seen.library, label.overlay), "Kometa's log does not say where it draws it")
        if isinstance(placed, Box):
            result.boxes.append(OverlayBox(label.overlay, label.display_name, label.file, placed.x, placed.y,
                                           placed.w, placed.h))
        else:
            result.unplaced[label.overlay] = placed
    result.overlap_warning = overlap_warning(result.boxes)
    item = run.item(seen.kometa_title)
    chosen = (item.applied or item.attempted) if item is not None else []
    verdicts = overlay_choice.considered(run.overlays.of_library(seen.library), overlay_choice.Item(
        seen.type, seen.kometa_title, seen.rating_key or None, tuple(chosen) if chosen else None))
    for verdict_of in verdicts:
        label = _label(verdict_of.overlay, files)
        result.considered.append(Consideration(label.overlay, label.display_name, label.file, verdict_of.matched,
                                               verdict_of.applied, verdict_of.reason))
    return result
