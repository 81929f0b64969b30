"""`Summary`: what one job did, built by the pure `summarize` from the proxy's journal, the configuration and
what export copied, or by the pure `merge` from the summaries of a dry run's shards. summary.json
(`Summary.to_json`, schema in docs/summary.schema.json) and the pages (pages.py) are views of it; cli.py and
scripts/bench.py read it.

A summary is made of sections, and each section is defined once: the class that holds it builds it from the
journal (`of`) and merges shards' instances of it (`merged`), so a new figure is added in one place and
cannot be built one way and merged another. `summarize` and `merge` only compose the sections. The sections
summary.json nests (`mock_mode`, `filtering`, `proxy`, `side_doors`, `isolation`) are `Summary` fields; the
older ones it keeps at its top level (`Ending`, `Outside`, `Writes`, `Targets`: `Flat`) lend `Summary` their
fields, so the JSON keeps its shape.

Definitions that exist once, here:
- a flow was *answered with Plex's help* when the proxy read Plex to answer it (`FLOW.upstream` > 0): a
  poster served from an `input:` image or a stored original was not (`answered_with_plex`);
- filter mode lets through every target's ratingKey (`Filtering`), and a job's failing targets are those
  failed or missing (`Targets`);
- `proxy_errors` counts `PROXY_ERROR` events (an addon raised; the flow was answered 502 locally).
"""
from __future__ import annotations

import dataclasses
import types
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

from ..common import names
from ..common.config import PreviewConfig, Target
from ..common.events import (
    OUTSIDE,
    SIDE_DOORS,
    Blocked,
    Captured,
    Event,
    FilterFallback,
    FilterList,
    Flow,
    MockList,
    ProxyDone,
    ProxyStart,
    Record,
    Refused,
    Resolved,
    TargetSeen,
    UnknownEvent,
    parse,
)
from ..kometa.log import KometaRun
from .outcomes import (
    EXPORTED,
    FAILED,
    MISSING,
    UNCHANGED,
    Consideration,
    ExportResult,
    KometaOutcome,
    OutsideData,
    OverlayBox,
    OverlayLabel,
    denied_calls,
    error_counts,
    judge_kometa,
    judge_target,
    overlaid,
    unreachable_hosts,
)

#: A summary.json larger than this is refused unread (a dry run of 100,000 targets writes about 60 MB).
MAX_BYTES = 512 * 1024 * 1024
KIND_PREFERENCE = ("poster", "thumb", "art", "square_art", "logo", "unknown")


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _joined[T](lists: Iterable[list[T]]) -> list[T]:
    """Shards' lists, one after another (a merge keeps every part's entries, in order)."""
    return list(chain.from_iterable(lists))


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Shards' counts by name, added up."""
    total: Counter[str] = Counter()
    for counted in counts:
        total.update(counted)
    return dict(total)


@dataclass
class TargetResult:
    rating_key: str | None
    type: str
    title: str
    status: str = "exported"             # exported | unchanged | failed | missing (outcomes.py)
    overlays: list[str] = field(default_factory=list)  # as Kometa's "Overlays Applied" line names them
    kometa_title: str | None = None      # how Kometa's log names the item
    candidates: list[dict[str, str]] = field(default_factory=list)  # a title that matched none or several
    before: str | None = None            # file name in output/
    after: str | None = None
    error: str | None = None
    poster_source: str | None = None     # input | kometa_original | plex
    kind: str | None = None              # the upload kind exported (poster…)
    bytes: int | None = None
    output: str | None = None            # the target's own `output:` copy
    #: `overlays`, each also by its own name and file (pages show these; `overlays` keeps Kometa's names).
    overlay_labels: list[OverlayLabel] = field(default_factory=list)
    #: Where each applied overlay is on Kometa's canvas (docs/BOXES.md), and the applied ones without a box, and why.
    boxes: list[OverlayBox] = field(default_factory=list)
    unplaced: dict[str, str] = field(default_factory=dict)
    #: Every overlay definition of the target's library and level, matched or not, applied or not, and why.
    considered: list[Consideration] = field(default_factory=list)
    #: One warning naming the applied overlays whose boxes intersect.
    overlap_warning: str | None = None


@dataclass
class Exported:
    """What export copied for one target (the only impure input to `summarize`)."""
    before: str | None = None
    poster_source: str | None = None
    after: str | None = None
    kind: str | None = None
    bytes: int | None = None
    output: str | None = None
    error: str | None = None
    #: An image not exported because it is no image the preview opens (outcomes.ExportResult.refused).
    refused: str | None = None


class Records:
    """The journal's records grouped by event, each parsed into its record type."""

    def __init__(self, lines: Iterable[dict[str, Any]]) -> None:
        self.by_event: dict[Event, list[Record]] = {}
        self.unknown: list[str] = []
        self.first_t: float | None = None
        for line in lines:
            try:
                record = parse(line)
            except UnknownEvent:
                self.unknown.append(str(line.get("event")))
                continue
            self.first_t = record.t if self.first_t is None else self.first_t
            self.by_event.setdefault(record.event, []).append(record)

    def __getitem__(self, event: Event) -> list[Any]:
        return self.by_event.get(event, [])

    def count(self, event: Event) -> int:
        return len(self[event])


def answered_with_plex(journal: Records) -> int:
    """Flows the proxy read Plex to answer (the module's definition)."""
    flows: list[Flow] = journal[Event.FLOW]
    return sum(1 for flow in flows if flow.upstream)


# --- the sections summary.json nests --------------------------------------------------------------------------------

@dataclass
class MockMode:
    enabled: bool
    mock_list_requests: list[dict[str, Any]]
    mock_list_requests_count: int
    forward_requests_count: int          # = proxy.answered_with_plex
    blocked_metadata_count: int
    learned_parent_keys: list[str]
    filter_fallbacks: list[dict[str, Any]]

    @classmethod
    def of(cls, journal: Records) -> MockMode:
        """Whether the proxy answered library listings itself (PROXY_START; a journal without it: the default,
        mock mode), and what it answered that way."""
        start: ProxyStart | None = next(iter(journal[Event.PROXY_START]), None)
        mock_lists: list[MockList] = journal[Event.MOCK_LIST]
        fallbacks: list[FilterFallback] = journal[Event.FILTER_FALLBACK]
        return cls(enabled=start.mock_library if start is not None else True,
                   mock_list_requests=[{"path": r.path, "type": "listing", "returned_items": r.returned_items,
                                        "timestamp": iso(r.t)} for r in mock_lists],
                   mock_list_requests_count=len(mock_lists), forward_requests_count=answered_with_plex(journal),
                   blocked_metadata_count=journal.count(Event.BLOCK_METADATA),
                   learned_parent_keys=sorted({r.rating_key for r in journal[Event.LEARNED_PARENT]}),
                   filter_fallbacks=[{"path": r.path, "reason": r.reason, "timestamp": iso(r.t)} for r in fallbacks])

    @classmethod
    def merged(cls, parts: list[MockMode]) -> MockMode:
        """Shards run in one mode (the first's); their requests follow one another and their counts add up."""
        return cls(enabled=parts[0].enabled, mock_list_requests=_joined(p.mock_list_requests for p in parts),
                   mock_list_requests_count=sum(p.mock_list_requests_count for p in parts),
                   forward_requests_count=sum(p.forward_requests_count for p in parts),
                   blocked_metadata_count=sum(p.blocked_metadata_count for p in parts),
                   learned_parent_keys=sorted({key for p in parts for key in p.learned_parent_keys}),
                   filter_fallbacks=_joined(p.filter_fallbacks for p in parts))


@dataclass
class Filtering:
    enabled: bool
    allowed_rating_keys: list[str]
    allowed_count: int
    filtered_requests: list[dict[str, Any]]
    filtered_requests_count: int

    @classmethod
    def of(cls, journal: Records, *, enabled: bool, targets: dict[str, TargetResult]) -> Filtering:
        """Filter mode (`enabled`: not mock mode): the listings the proxy stripped to the targets."""
        filtered: list[FilterList] = journal[Event.FILTER_LIST]
        return cls.allowing(targets, enabled, [{"path": r.path, "items_before": r.items_before,
                                                "items_after": r.items_after, "removed": r.removed,
                                                "timestamp": iso(r.t)} for r in filtered], len(filtered))

    @classmethod
    def merged(cls, parts: list[Filtering], targets: dict[str, TargetResult]) -> Filtering:
        """Shards' stripped listings one after another, what is allowed from the merged targets."""
        return cls.allowing(targets, parts[0].enabled, _joined(p.filtered_requests for p in parts),
                            sum(p.filtered_requests_count for p in parts))

    @classmethod
    def allowing(cls, targets: dict[str, TargetResult], enabled: bool, filtered_requests: list[dict[str, Any]],
                 filtered_requests_count: int) -> Filtering:
        """The one definition of what filter mode lets through: every target's ratingKey."""
        return cls(enabled, [entry.rating_key for entry in targets.values() if entry.rating_key], len(targets),
                   filtered_requests, filtered_requests_count)


@dataclass
class ProxyFigures:
    cpu_seconds: float | None
    peak_rss_mib: float | None
    upstream_requests: int | None
    upstream_bytes: int | None
    requests: int
    answered_with_plex: int
    answered_locally: int

    @classmethod
    def of(cls, journal: Records) -> ProxyFigures:
        """The proxy's flows, and its own figures from PROXY_DONE (None when it did not stop cleanly)."""
        done: ProxyDone | None = next(iter(journal[Event.PROXY_DONE]), None)
        flows, with_plex = journal.count(Event.FLOW), answered_with_plex(journal)
        return cls(cpu_seconds=done.cpu_seconds if done else None, peak_rss_mib=done.peak_rss_mib if done else None,
                   upstream_requests=done.upstream_requests if done else None,
                   upstream_bytes=done.upstream_bytes if done else None,
                   requests=flows, answered_with_plex=with_plex, answered_locally=flows - with_plex)

    @classmethod
    def merged(cls, parts: list[ProxyFigures]) -> ProxyFigures:
        """Flows add up; the proxies' own figures come from those that reported them (None when none did), the
        peak memory being the largest."""
        known = [part for part in parts if part.cpu_seconds is not None]
        return cls(cpu_seconds=round(sum(f.cpu_seconds for f in known), 3) if known else None,
                   peak_rss_mib=max((f.peak_rss_mib for f in known if f.peak_rss_mib), default=None),
                   upstream_requests=sum(f.upstream_requests or 0 for f in known) if known else None,
                   upstream_bytes=sum(f.upstream_bytes or 0 for f in known) if known else None,
                   requests=sum(f.requests for f in parts), answered_with_plex=sum(f.answered_with_plex for f in parts),
                   answered_locally=sum(f.answered_locally for f in parts))


@dataclass
class SideDoors:
    total: int
    by_kind: dict[str, int]
    hosts: dict[str, int]

    @classmethod
    def of(cls, journal: Records) -> SideDoors:
        """How many side-door attempts were refused, by kind, and the outside hosts they were aimed at."""
        by_kind = {event.value: journal.count(event) for event in sorted(SIDE_DOORS) if journal.count(event)}
        hosts: Counter[str] = Counter()
        for event in SIDE_DOORS:
            hosts.update(r.host for r in journal[event] if getattr(r, "host", None))
        return cls(sum(by_kind.values()), by_kind, dict(hosts))

    @classmethod
    def merged(cls, parts: list[SideDoors]) -> SideDoors:
        return cls(sum(p.total for p in parts), _summed(p.by_kind for p in parts), _summed(p.hosts for p in parts))


@dataclass
class IsolationUsed:
    """Which isolation Kometa ran with (README, "Why it is safe"): `mode` is `box` or `none` (None: Kometa did not
    start), `problem` why not the box when it was asked for."""
    requested: str = "auto"
    mode: str | None = None
    problem: str | None = None

    @classmethod
    def merged(cls, parts: list[IsolationUsed]) -> IsolationUsed:
        """Shards: the box only if every shard that ran Kometa had it."""
        modes = {part.mode for part in parts if part.mode}
        mode = None if not modes else ("box" if modes == {"box"} else "none")
        return cls(parts[0].requested if parts else "auto", mode,
                   next((part.problem for part in parts if part.problem), None))


@dataclass(frozen=True)
class RunFacts:
    """What a run says of itself, beside the proxy's journal and Kometa's log: how Kometa ended, in what box, and
    the run's own figures."""
    kometa_exit_code: int | None = None
    error: str | None = None
    interrupted: bool = False
    started: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    kometa_version: str | None = None
    isolation: IsolationUsed = field(default_factory=IsolationUsed)


# --- the sections summary.json keeps at its top level --------------------------------------------------------------

class Flat:
    """A section whose fields are `Summary`'s own (summary.json had them at its top level before it had sections,
    and its readers find them there): read out of a summary, and spliced into one. test_contracts holds each
    one's fields to `Summary`'s, names and types."""

    @classmethod
    def read(cls, summary: Summary) -> Self:
        return cls(**{f.name: getattr(summary, f.name) for f in dataclasses.fields(cls)})  # type: ignore[arg-type]

    def spliced(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


@dataclass
class Ending(Flat):
    """How the job ended, and whether it did what it should."""
    success: bool
    interrupted: bool
    error: str | None
    kometa_exit_code: int | None
    kometa_version: str | None
    kometa_errors: list[dict[str, Any]]

    @classmethod
    def of(cls, facts: RunFacts, run: KometaRun, outcome: KometaOutcome, failing: list[str]) -> Ending:
        """A job succeeds when Kometa exited 0, uninterrupted, with no error the job must stop at, and no target
        `failing`."""
        return cls(success=facts.kometa_exit_code == 0 and not outcome.error and not facts.interrupted and not failing,
                   interrupted=facts.interrupted, error=outcome.error, kometa_exit_code=facts.kometa_exit_code,
                   kometa_version=run.version or facts.kometa_version, kometa_errors=error_counts(run))

    @classmethod
    def merged(cls, parts: list[Ending], failing: list[str]) -> Ending:
        """The first error and Kometa's first non-zero exit code stand; Kometa's errors are counted across parts;
        the job succeeds only if every part did and no merged target is `failing`."""
        interrupted = any(part.interrupted for part in parts)
        error = next((part.error for part in parts if part.error), None)
        exit_codes = [part.kometa_exit_code for part in parts if part.kometa_exit_code is not None]
        errors: Counter[str] = Counter()
        for part in parts:
            errors.update({e["message"]: e["count"] for e in part.kometa_errors})
        return cls(success=not interrupted and not error and not failing and all(code == 0 for code in exit_codes),
                   interrupted=interrupted, error=error,
                   kometa_exit_code=next((code for code in exit_codes if code != 0),
                                         exit_codes[0] if exit_codes else None),
                   kometa_version=next((part.kometa_version for part in parts if part.kometa_version), None),
                   kometa_errors=[{"message": message, "count": count} for message, count in errors.items()])


@dataclass
class Outside(Flat):
    """Kometa's outside calls: each door decision counted, and what the refused or unreachable ones cost."""
    outside_data: list[OutsideData]
    outside_unreachable: dict[str, int]
    outside_calls: dict[str, int]

    @classmethod
    def of(cls, journal: Records, outcome: KometaOutcome, denied: list[Refused]) -> Outside:
        """`denied`: the calls that got no data (`outcomes.denied_calls`), which `outcome` was judged with."""
        return cls(outcome.outside_data, unreachable_hosts(denied),
                   {event.value.lower(): journal.count(event) for event in OUTSIDE})

    @classmethod
    def merged(cls, parts: list[Outside]) -> Outside:
        return cls(_joined(p.outside_data for p in parts), _summed(p.outside_unreachable for p in parts),
                   _summed(p.outside_calls for p in parts))


@dataclass
class Writes(Flat):
    """What Kometa tried to change in Plex: the writes refused, and the uploads captured in their place."""
    blocked_write_attempts: list[dict[str, Any]]
    blocked_side_effects_count: int
    blocked_unknown_count: int
    captured_uploads: list[dict[str, Any]]
    captured_uploads_count: int
    unparsed_uploads_count: int

    @classmethod
    def of(cls, journal: Records, output_prefix: str) -> Writes:
        """Captures are named relative to the output folder (`output_prefix`) when they are in it."""
        blocked: list[Blocked] = journal[Event.BLOCKED_WRITE] + journal[Event.UPLOAD_TOO_LARGE]
        captures: list[Captured] = journal[Event.CAPTURED_UPLOAD]
        return cls(blocked_write_attempts=[{"method": r.method, "path": r.path, "timestamp": iso(r.t),
                                            "rating_key": r.rating_key, "kind": r.kind,
                                            "content_length": r.content_length, **({"url": r.url} if r.url else {})}
                                           for r in blocked],
                   blocked_side_effects_count=journal.count(Event.BLOCKED_SIDE_EFFECT),
                   blocked_unknown_count=journal.count(Event.BLOCKED_UNKNOWN),
                   captured_uploads=[{"rating_key": c.rating_key, "kind": c.kind, "bytes": c.bytes,
                                      "saved_path": _relative(c.saved, output_prefix), "timestamp": iso(c.t)}
                                     for c in captures],
                   captured_uploads_count=len(captures),
                   unparsed_uploads_count=journal.count(Event.CAPTURE_PARSE_ERROR))

    @classmethod
    def merged(cls, parts: list[Writes]) -> Writes:
        return cls(_joined(p.blocked_write_attempts for p in parts), sum(p.blocked_side_effects_count for p in parts),
                   sum(p.blocked_unknown_count for p in parts), _joined(p.captured_uploads for p in parts),
                   sum(p.captured_uploads_count for p in parts), sum(p.unparsed_uploads_count for p in parts))


def _relative(saved: str, output_prefix: str) -> str:
    return saved[len(output_prefix):].lstrip("/") if output_prefix and saved.startswith(output_prefix) else saved


@dataclass
class Targets(Flat):
    """Every target's result, and the figures that follow from them."""
    successful_captures_count: int
    exported_files: dict[str, str]
    missing_targets: list[str]
    targets: dict[str, TargetResult]

    @classmethod
    def listing(cls, targets: dict[str, TargetResult], output_prefix: str) -> Targets:
        """The one definition of what follows from the results: the failing targets (failed or missing), and each
        exported after-image's path (under `output_prefix` when given)."""
        return cls(successful_captures_count=sum(1 for entry in targets.values() if entry.after),
                   exported_files={tid: f"{output_prefix.rstrip('/')}/{entry.after}" if output_prefix else entry.after
                                   for tid, entry in targets.items() if entry.after},
                   missing_targets=[tid for tid, entry in targets.items() if entry.status in (MISSING, FAILED)],
                   targets=targets)

    @classmethod
    def of(cls, journal: Records, config: PreviewConfig, exported: dict[str, Exported], run: KometaRun,
           outcome: KometaOutcome, output_prefix: str) -> Targets:
        """Each target (`preview_targets`) judged from what the proxy saw, what Kometa said and what export made."""
        seen: dict[str, TargetSeen] = {r.target: r for r in journal[Event.TARGET]}
        targets = {t.id: _target(t, exported.get(t.id, Exported()), journal, seen.get(t.id), run, outcome)
                   for t in preview_targets(config, journal)}
        if config.dry_run_libraries:
            for entry in targets.values():
                entry.considered = dry_run_considered(entry)
        return cls.listing(targets, output_prefix)

    @classmethod
    def merged(cls, parts: list[Targets], output_prefix: str) -> Targets:
        """A target's entry is its exported one if any part exported it (a resumed run skips those), else the last
        part's."""
        targets: dict[str, TargetResult] = {}
        for part in parts:
            for target_id, entry in part.targets.items():
                if targets.get(target_id) is None or targets[target_id].status != EXPORTED:
                    targets[target_id] = entry
        return cls.listing(targets, output_prefix)


@dataclass
class Summary:
    timestamp: str
    #: The preview.yml this job ran.
    preview_yml: str
    success: bool
    interrupted: bool
    error: str | None
    kometa_exit_code: int | None
    kometa_version: str | None
    #: Kometa's own errors, de-duplicated and counted ({"message", "count"}).
    kometa_errors: list[dict[str, Any]]
    #: Overlays whose data came from an outside call that was refused (offline, allowlist) or unreachable.
    outside_data: list[OutsideData]
    #: Outside hosts Kometa's calls could not reach (no internet?) and how often.
    outside_unreachable: dict[str, int]
    blocked_write_attempts: list[dict[str, Any]]
    blocked_side_effects_count: int
    blocked_unknown_count: int
    captured_uploads: list[dict[str, Any]]
    captured_uploads_count: int
    successful_captures_count: int
    unparsed_uploads_count: int
    exported_files: dict[str, str]
    missing_targets: list[str]
    targets: dict[str, TargetResult]
    mock_mode: MockMode
    filtering: Filtering
    outside_calls: dict[str, int]
    side_doors: SideDoors
    unauthorized_client_requests: int
    timings_seconds: dict[str, float]
    proxy: ProxyFigures
    proxy_errors: int
    #: Kometa's box, or why not (README, "Why it is safe").
    isolation: IsolationUsed = field(default_factory=IsolationUsed)
    #: Journal lines this version does not know (a newer proxy, a corrupt line): named, never dropped silently.
    unknown_events: list[str] = field(default_factory=list)
    output_files: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (0 if self.success else 1)

    def to_json(self, *, considered: bool = True) -> dict[str, Any]:
        """summary.json's document; `considered=False`: without the targets' `considered` lists (about 25 KB a target
        of `default: resolution`), for a disk too full to hold them."""
        document = asdict(self)
        if not considered:
            for entry in document["targets"].values():
                entry["considered"] = []
        return document


#: The sections `Summary` takes its top-level fields from.
FLAT_SECTIONS: tuple[type[Flat], ...] = (Ending, Outside, Writes, Targets)


def choose_capture(captures: list[Captured]) -> Captured | None:
    """Poster before any other kind; among equals the newest (journal time, then file name)."""
    if not captures:
        return None
    rank = {kind: n for n, kind in enumerate(KIND_PREFERENCE)}
    best = min(rank.get(c.kind, len(rank)) for c in captures)
    same_kind = [c for c in captures if rank.get(c.kind, len(rank)) == best]
    return max(same_kind, key=lambda c: (c.t, c.saved.rsplit("/", 1)[-1]))


def dry_run_considered(entry: TargetResult) -> list[Consideration]:
    """In a dry run, an item's `considered` keeps the definitions that matched it (applied or not, with why not): the
    full list, about 25 KB an item for `default: resolution`, would make a 100,000-item library's summary.json
    gigabytes. An item no overlay applies to keeps every definition, so why none matched stays answerable; one
    item's whole list is a preview of that item away (docs/BOXES.md)."""
    if entry.status == UNCHANGED:
        return entry.considered
    return [c for c in entry.considered if c.matched]


def _target(target: Target, exported: Exported, journal: Records, seen: TargetSeen | None, run: KometaRun,
            outcome: KometaOutcome) -> TargetResult:
    rating_key = seen.rating_key if seen is not None else target.rating_key
    missing = None
    unresolved: Resolved | None = next((r for r in journal[Event.MISSING_RATINGKEY] if r.target == target.id), None)
    if unresolved is not None:
        named = "; ".join(f"{c.get('title')} ({c.get('year') or c.get('type')}) ratingKey {c.get('ratingKey')} in "
                          f"{c.get('library')}" for c in unresolved.candidates)
        missing = (f"MISSING_RATINGKEY: {target.title!r}: {unresolved.reason}"
                   + (f" — candidates: {named}; set ratingKey to the one you mean" if named else ""))
    elif rating_key and rating_key in {r.rating_key for r in journal[Event.MISSING_ITEM]}:
        missing = f"MISSING_ITEM: Plex has no item with ratingKey {rating_key}"
    verdict = judge_target(seen, missing_reason=missing,
                           export=ExportResult(bool(exported.after), exported.error, exported.refused),
                           overlaid_poster=rating_key in {r.rating_key for r in journal[Event.OVERLAID_POSTER]},
                           run=run, outcome=outcome)
    placed = overlaid(run, seen, verdict)
    return TargetResult(rating_key, target.type, target.title, status=verdict.status, overlays=list(verdict.overlays),
                        candidates=list(unresolved.candidates) if unresolved is not None else [],
                        kometa_title=seen.kometa_title if seen is not None else None, before=exported.before,
                        poster_source=exported.poster_source,
                        after=exported.after if verdict.status == EXPORTED else None, error=verdict.error,
                        kind=exported.kind, bytes=exported.bytes, output=exported.output,
                        overlay_labels=placed.labels, boxes=placed.boxes, unplaced=placed.unplaced,
                        considered=placed.considered, overlap_warning=placed.overlap_warning)


def preview_targets(config: PreviewConfig, journal: Records) -> list[Target]:
    """preview.yml's targets, then every item a whole-library dry run made a target (journaled as TARGET, with
    the ratingKey as id). A journaled id that is not a target id (`names`) is no target: it would become a file
    name (the proxy refuses such ratingKeys before they are journaled; this holds for any journal)."""
    given = {t.id for t in config.targets}
    return [*config.targets, *(Target(id=r.target, type=r.type, rating_key=r.rating_key, title=r.title)
                               for r in journal[Event.TARGET]
                               if r.target not in given and names.is_target_id(r.target))]


def summarize(journal: Records, config: PreviewConfig, exported: dict[str, Exported], facts: RunFacts, *,
              kometa: KometaRun | None = None, output_prefix: str = "", now: float | None = None) -> Summary:
    """The job's summary from the journal (parsed once, by the caller), Kometa's log (`kometa`, read by the
    caller), the configuration and what export copied. Pure: the same inputs give the same summary, and
    nothing is read from or written to disk."""
    run = kometa or KometaRun()
    denied = denied_calls(journal)
    outcome = judge_kometa(run, denied, facts.error)
    targets = Targets.of(journal, config, exported, run, outcome, output_prefix)
    mock_mode = MockMode.of(journal)
    return Summary(
        timestamp=iso(facts.started or journal.first_t or now or datetime.now().timestamp()),
        preview_yml=str(config.source),
        **Ending.of(facts, run, outcome, targets.missing_targets).spliced(),
        **Outside.of(journal, outcome, denied).spliced(), **Writes.of(journal, output_prefix).spliced(),
        **targets.spliced(),
        mock_mode=mock_mode, filtering=Filtering.of(journal, enabled=not mock_mode.enabled, targets=targets.targets),
        side_doors=SideDoors.of(journal), proxy=ProxyFigures.of(journal), isolation=facts.isolation,
        unauthorized_client_requests=journal.count(Event.UNAUTHORIZED_CLIENT),
        timings_seconds=dict(facts.timings),
        proxy_errors=journal.count(Event.PROXY_ERROR),
        unknown_events=sorted(set(journal.unknown)),
    )


#: Every event, and what the summary makes of it: a field, or "diagnostic" (kept in the journal for
#: docs/DEBUGGING.md, and counted in PROXY_DONE's `counters`). A test fails when an event is added without
#: deciding this, and when a path here names no field of `Summary` (`*`: any target).
READS: dict[Event, str] = {
    Event.PROXY_START: "mock_mode.enabled", Event.PROXY_DONE: "proxy",
    Event.MISSING_ITEM: "targets.*.status", Event.OVERLAID_POSTER: "targets.*.status",
    Event.TARGET: "targets.*.kometa_title", Event.IDLE_CLIENT_CLOSED: "diagnostic",
    Event.RESOLVED_RATINGKEY: "targets.*.rating_key", Event.MISSING_RATINGKEY: "targets.*.candidates",
    Event.LEARNED_PARENT: "mock_mode.learned_parent_keys", Event.POSTER_SOURCE: "targets.*.before",
    Event.CAPTURED_UPLOAD: "captured_uploads", Event.CAPTURE_PARSE_ERROR: "unparsed_uploads_count",
    Event.FLOW: "proxy.requests", Event.PROXY_ERROR: "proxy_errors",
    Event.BLOCKED_WRITE: "blocked_write_attempts", Event.UPLOAD_TOO_LARGE: "blocked_write_attempts",
    Event.BLOCKED_SIDE_EFFECT: "blocked_side_effects_count", Event.BLOCKED_UNKNOWN: "blocked_unknown_count",
    Event.MOCK_LIST: "mock_mode.mock_list_requests", Event.FILTER_LIST: "filtering.filtered_requests",
    Event.FILTER_FALLBACK: "mock_mode.filter_fallbacks", Event.BLOCK_METADATA: "mock_mode.blocked_metadata_count",
    Event.UNAUTHORIZED_CLIENT: "unauthorized_client_requests",
    **{event: "outside_calls" for event in OUTSIDE},
    **{event: "side_doors" for event in SIDE_DOORS},
    **{event: "diagnostic" for event in (
        Event.PREFETCH, Event.STARTUP_ERROR, Event.PROXY_READY, Event.NOT_CONFIGURED, Event.TYPE_MISMATCH,
        Event.STRIPPED_OVERLAY_LABEL, Event.FLOW_ERROR, Event.MOCK_LIBRARY, Event.MOCK_SECTIONS, Event.MOCK_SECTION,
        Event.MOCK_COLLECTIONS, Event.MOCK_CHOICES, Event.MOCK_CHILDREN, Event.MOCK_BAD_TYPE, Event.META_FETCHED,
        Event.ALLOW_FORWARD, Event.PASS_THROUGH, Event.FILTER_CHILDREN, Event.FILTER_LOCAL_OVERLAY_LABEL,
        Event.FILTER_PARSE_ERROR, Event.UPSTREAM_ERROR, Event.UPSTREAM_STATUS, Event.UNSAFE_UPSTREAM,
        Event.FORWARD_UNPARSED, Event.UNCLAIMED)},
}


def merge(parts: list[Summary], *, output_prefix: str = "") -> Summary:
    """One summary from the summaries of a sharded (or resumed) dry run's jobs, in order. Pure. Each section merges
    its parts (`merged`: counters add up, lists follow one another, the first error stands); each stage's timing is
    its longest part's (the shards of a round run at once)."""
    assert parts, "nothing to merge"
    targets = Targets.merged([Targets.read(part) for part in parts], output_prefix)
    return Summary(
        timestamp=parts[0].timestamp, preview_yml=parts[0].preview_yml,
        **Ending.merged([Ending.read(part) for part in parts], targets.missing_targets).spliced(),
        **Outside.merged([Outside.read(part) for part in parts]).spliced(),
        **Writes.merged([Writes.read(part) for part in parts]).spliced(),
        **targets.spliced(),
        mock_mode=MockMode.merged([part.mock_mode for part in parts]),
        filtering=Filtering.merged([part.filtering for part in parts], targets.targets),
        side_doors=SideDoors.merged([part.side_doors for part in parts]),
        proxy=ProxyFigures.merged([part.proxy for part in parts]),
        isolation=IsolationUsed.merged([part.isolation for part in parts]),
        unauthorized_client_requests=sum(part.unauthorized_client_requests for part in parts),
        timings_seconds={name: max(part.timings_seconds.get(name, 0.0) for part in parts)
                         for name in dict.fromkeys(key for part in parts for key in part.timings_seconds)},
        proxy_errors=sum(part.proxy_errors for part in parts),
        unknown_events=sorted({event for part in parts for event in part.unknown_events}),
    )


class SummaryError(ValueError):
    """A summary.json that does not hold what `Summary.to_json` writes. Its text names the field and the problem
    (`targets.t1.after: must be text or null, not 5`), on one line."""


STATUSES = (EXPORTED, "unchanged", FAILED, MISSING)


def load(document: Any) -> Summary:
    """A Summary from its summary.json (a shard's, to merge), checked as it is read, since it may come from
    another machine or have been edited: exactly the fields `Summary` declares (none unknown, none missing but those
    with a default) with their declared types, target ids of the id rule and `before`/`after` names of the form
    `<id>_<side>.<ext>` (`names`): plain names of the output folder. Raises `SummaryError`."""
    summary = _build(Summary, document, "")
    for target_id, entry in summary.targets.items():
        where = _at("targets", target_id)
        if not names.is_target_id(target_id):
            raise SummaryError(f"{where}: not a target id (letters, digits, - and _)")
        if entry.status not in STATUSES:
            raise SummaryError(f"{where}.status: must be one of {', '.join(STATUSES)}, not {_shown(entry.status)}")
        for side in names.SIDES:
            name = getattr(entry, side)
            if name is not None and names.exported_target(name, side) is None:
                raise SummaryError(f"{where}.{side}: {_shown(name)} is not an exported image's name "
                                   f"(<id>_{side}.<jpg|png|webp>, in the output folder)")
    return summary


def _at(where: str, key: str) -> str:
    """A field's path for a message: `a.b`, or `a['odd key']` when the key is not a plain name."""
    plain = names.is_target_id(key)
    return (f"{where}.{key}" if where else key) if plain else f"{where}[{key!r}]"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _build(kind: type, value: Any, where: str) -> Any:
    """An instance of dataclass `kind` from a JSON object, every field checked against its declared type."""
    if not isinstance(value, dict):
        raise SummaryError(f"{where or 'the document'}: must be an object, not {_shown(value)}")
    declared = {f.name: f for f in dataclasses.fields(kind)}
    unknown = sorted(set(value) - set(declared))
    if unknown:
        raise SummaryError(f"{_at(where, unknown[0])}: unknown field")
    hints = get_type_hints(kind)
    values = {}
    for name, declared_field in declared.items():
        if name in value:
            values[name] = _typed(hints[name], value[name], _at(where, name))
        elif declared_field.default is dataclasses.MISSING and declared_field.default_factory is dataclasses.MISSING:
            raise SummaryError(f"{_at(where, name)}: missing")
    return kind(**values)


_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false", type(None): "null"}


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` as `hint` declares it (dataclasses, unions, lists, dicts with text keys, scalars), else SummaryError."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _typed(option, value, where)
            except SummaryError:
                continue
        raise SummaryError(f"{where}: must be {' or '.join(_WORDS.get(a, 'an object') for a in args)}, "
                           f"not {_shown(value)}")
    if origin is list and isinstance(value, list):
        return [_typed(args[0], item, f"{where}[{n}]") for n, item in enumerate(value)]
    if origin is dict and isinstance(value, dict):
        return {key: _typed(args[1], item, _at(where, key)) for key, item in value.items()}
    if origin is None and _scalar(hint, value):
        return value
    raise SummaryError(f"{where}: must be {_WORDS.get(hint, 'a list' if origin is list else 'an object')}, "
                       f"not {_shown(value)}")


def _scalar(hint: Any, value: Any) -> bool:
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return hint in _WORDS and isinstance(value, hint)
