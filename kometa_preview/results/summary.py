"""`Summary`: what one job did, built by the pure `summarize` from the proxy's journal, the configuration and
what export copied. summary.json (`Summary.to_json`, schema in docs/summary.schema.json) and report.html are
views of it; cli.py and scripts/bench.py read it.

Definitions that exist once, here:
- a flow was *answered with Plex's help* when the proxy read Plex to answer it (`FLOW.upstream` > 0): a
  poster served from an `input:` image or a stored original was not;
- `proxy_errors` counts `PROXY_ERROR` events (an addon raised; the flow was answered 502 locally).
"""
from __future__ import annotations

import dataclasses
import types
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Union, get_args, get_origin, get_type_hints

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
    ItemEvent,
    MockList,
    ProxyDone,
    ProxyStart,
    Record,
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
    ExportResult,
    KometaOutcome,
    OutsideData,
    denied_calls,
    error_counts,
    judge_kometa,
    judge_target,
    unreachable_hosts,
)

#: A summary.json larger than this is refused unread (a dry run of 100,000 targets writes about 60 MB).
MAX_BYTES = 512 * 1024 * 1024
KIND_PREFERENCE = ("poster", "thumb", "art", "square_art", "logo", "unknown")


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


@dataclass
class MockMode:
    enabled: bool
    mock_list_requests: list[dict[str, Any]]
    mock_list_requests_count: int
    forward_requests_count: int          # = proxy.answered_with_plex
    blocked_metadata_count: int
    learned_parent_keys: list[str]
    filter_fallbacks: list[dict[str, Any]]


@dataclass
class Filtering:
    enabled: bool
    allowed_rating_keys: list[str]
    allowed_count: int
    filtered_requests: list[dict[str, Any]]
    filtered_requests_count: int


@dataclass
class ProxyFigures:
    cpu_seconds: float | None
    peak_rss_mib: float | None
    upstream_requests: int | None
    upstream_bytes: int | None
    requests: int
    answered_with_plex: int
    answered_locally: int


@dataclass
class SideDoors:
    total: int
    by_kind: dict[str, int]
    hosts: dict[str, int]


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


def choose_capture(captures: list[Captured]) -> Captured | None:
    """Poster before any other kind; among equals the newest (journal time, then file name)."""
    if not captures:
        return None
    rank = {kind: n for n, kind in enumerate(KIND_PREFERENCE)}
    best = min(rank.get(c.kind, len(rank)) for c in captures)
    same_kind = [c for c in captures if rank.get(c.kind, len(rank)) == best]
    return max(same_kind, key=lambda c: (c.t, c.saved.rsplit("/", 1)[-1]))


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
    return TargetResult(rating_key, target.type, target.title, status=verdict.status, overlays=list(verdict.overlays),
                        candidates=list(unresolved.candidates) if unresolved is not None else [],
                        kometa_title=seen.kometa_title if seen is not None else None, before=exported.before,
                        poster_source=exported.poster_source,
                        after=exported.after if verdict.status == EXPORTED else None, error=verdict.error,
                        kind=exported.kind, bytes=exported.bytes, output=exported.output)


def side_doors(journal: Records) -> SideDoors:
    """How many side-door attempts were refused, by kind, and the outside hosts they were aimed at."""
    by_kind = {event.value: journal.count(event) for event in sorted(SIDE_DOORS) if journal.count(event)}
    hosts: Counter[str] = Counter()
    for event in SIDE_DOORS:
        hosts.update(r.host for r in journal[event] if getattr(r, "host", None))
    return SideDoors(sum(by_kind.values()), by_kind, dict(hosts))


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
    start: ProxyStart | None = next(iter(journal[Event.PROXY_START]), None)
    done: ProxyDone | None = next(iter(journal[Event.PROXY_DONE]), None)
    flows: list[Flow] = journal[Event.FLOW]
    captures: list[Captured] = journal[Event.CAPTURED_UPLOAD]
    denied = denied_calls(journal)
    outcome = judge_kometa(run, denied, facts.error)
    seen: dict[str, TargetSeen] = {r.target: r for r in journal[Event.TARGET]}
    targets = {t.id: _target(t, exported.get(t.id, Exported()), journal, seen.get(t.id), run, outcome)
               for t in preview_targets(config, journal)}
    missing = [target_id for target_id, result in targets.items() if result.status in (MISSING, FAILED)]
    success = facts.kometa_exit_code == 0 and not outcome.error and not facts.interrupted and not missing
    blocked: list[Blocked] = journal[Event.BLOCKED_WRITE] + journal[Event.UPLOAD_TOO_LARGE]
    mock_lists: list[MockList] = journal[Event.MOCK_LIST]
    filtered: list[FilterList] = journal[Event.FILTER_LIST]
    fallbacks: list[FilterFallback] = journal[Event.FILTER_FALLBACK]
    learned: list[ItemEvent] = journal[Event.LEARNED_PARENT]
    with_plex = sum(1 for f in flows if f.upstream)
    mock = start.mock_library if start is not None else True

    def relative(saved: str) -> str:
        return saved[len(output_prefix):].lstrip("/") if output_prefix and saved.startswith(output_prefix) else saved

    return Summary(
        timestamp=iso(facts.started or journal.first_t or now or datetime.now().timestamp()),
        preview_yml=str(config.source),
        success=success, interrupted=facts.interrupted, error=outcome.error,
        kometa_exit_code=facts.kometa_exit_code,
        kometa_version=run.version or facts.kometa_version, kometa_errors=error_counts(run),
        outside_data=outcome.outside_data, outside_unreachable=unreachable_hosts(denied),
        blocked_write_attempts=[{"method": r.method, "path": r.path, "timestamp": iso(r.t), "rating_key": r.rating_key,
                                 "kind": r.kind, "content_length": r.content_length,
                                 **({"url": r.url} if r.url else {})} for r in blocked],
        blocked_side_effects_count=journal.count(Event.BLOCKED_SIDE_EFFECT),
        blocked_unknown_count=journal.count(Event.BLOCKED_UNKNOWN),
        captured_uploads=[{"rating_key": c.rating_key, "kind": c.kind, "bytes": c.bytes,
                           "saved_path": relative(c.saved), "timestamp": iso(c.t)} for c in captures],
        captured_uploads_count=len(captures),
        successful_captures_count=sum(1 for r in targets.values() if r.after),
        unparsed_uploads_count=journal.count(Event.CAPTURE_PARSE_ERROR),
        exported_files={tid: f"{output_prefix.rstrip('/')}/{r.after}" if output_prefix else r.after
                        for tid, r in targets.items() if r.after},
        missing_targets=missing,
        targets=targets,
        mock_mode=MockMode(enabled=mock,
                           mock_list_requests=[{"path": r.path, "type": "listing", "returned_items": r.returned_items,
                                                "timestamp": iso(r.t)} for r in mock_lists],
                           mock_list_requests_count=len(mock_lists), forward_requests_count=with_plex,
                           blocked_metadata_count=journal.count(Event.BLOCK_METADATA),
                           learned_parent_keys=sorted({r.rating_key for r in learned}),
                           filter_fallbacks=[{"path": r.path, "reason": r.reason, "timestamp": iso(r.t)}
                                             for r in fallbacks]),
        filtering=Filtering(enabled=not mock, allowed_rating_keys=[r.rating_key for r in targets.values()
                                                                   if r.rating_key],
                            allowed_count=len(targets),
                            filtered_requests=[{"path": r.path, "items_before": r.items_before,
                                                "items_after": r.items_after, "removed": r.removed,
                                                "timestamp": iso(r.t)} for r in filtered],
                            filtered_requests_count=len(filtered)),
        outside_calls={event.value.lower(): journal.count(event) for event in OUTSIDE},
        side_doors=side_doors(journal),
        unauthorized_client_requests=journal.count(Event.UNAUTHORIZED_CLIENT),
        timings_seconds=dict(facts.timings), isolation=facts.isolation,
        proxy=ProxyFigures(cpu_seconds=done.cpu_seconds if done else None,
                           peak_rss_mib=done.peak_rss_mib if done else None,
                           upstream_requests=done.upstream_requests if done else None,
                           upstream_bytes=done.upstream_bytes if done else None,
                           requests=len(flows), answered_with_plex=with_plex, answered_locally=len(flows) - with_plex),
        proxy_errors=journal.count(Event.PROXY_ERROR),
        unknown_events=sorted(set(journal.unknown)),
    )


#: Every event, and what the summary makes of it: a field, or "diagnostic" (kept in the journal for
#: docs/DEBUGGING.md, and counted in PROXY_DONE's `counters`). A test fails when an event is added without
#: deciding this.
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
    """One summary from the summaries of a sharded (or resumed) dry run's jobs, in order. Pure. A target's entry is
    its exported one if any part exported it (a resumed run skips those), else the last part's; counters add up,
    lists follow one another, the first error stands, and the job succeeds only if every part did."""
    assert parts, "nothing to merge"
    targets: dict[str, TargetResult] = {}
    for part in parts:
        for target_id, entry in part.targets.items():
            if targets.get(target_id) is None or targets[target_id].status != EXPORTED:
                targets[target_id] = entry
    failing = [tid for tid, entry in targets.items() if entry.status in (MISSING, FAILED)]
    errors: Counter[str] = Counter()
    for part in parts:
        errors.update({e["message"]: e["count"] for e in part.kometa_errors})
    first = parts[0]

    def total(attribute: str) -> int:
        return sum(getattr(part, attribute) for part in parts)

    def joined(read) -> list:
        return [item for part in parts for item in read(part)]

    def summed(read) -> dict[str, int]:
        counted: Counter[str] = Counter()
        for part in parts:
            counted.update(read(part))
        return dict(counted)

    figures = [part.proxy for part in parts]
    known = [f for f in figures if f.cpu_seconds is not None]
    interrupted = any(part.interrupted for part in parts)
    error = next((part.error for part in parts if part.error), None)
    exit_codes = [part.kometa_exit_code for part in parts if part.kometa_exit_code is not None]
    return Summary(
        timestamp=first.timestamp, preview_yml=first.preview_yml,
        success=not interrupted and not error and not failing and all(code == 0 for code in exit_codes),
        interrupted=interrupted, error=error,
        kometa_exit_code=next((code for code in exit_codes if code != 0), exit_codes[0] if exit_codes else None),
        kometa_version=next((part.kometa_version for part in parts if part.kometa_version), None),
        kometa_errors=[{"message": message, "count": count} for message, count in errors.items()],
        outside_data=joined(lambda p: p.outside_data),
        outside_unreachable=summed(lambda p: p.outside_unreachable),
        blocked_write_attempts=joined(lambda p: p.blocked_write_attempts),
        blocked_side_effects_count=total("blocked_side_effects_count"),
        blocked_unknown_count=total("blocked_unknown_count"),
        captured_uploads=joined(lambda p: p.captured_uploads), captured_uploads_count=total("captured_uploads_count"),
        successful_captures_count=sum(1 for entry in targets.values() if entry.after),
        unparsed_uploads_count=total("unparsed_uploads_count"),
        exported_files={tid: f"{output_prefix.rstrip('/')}/{entry.after}" if output_prefix else entry.after
                        for tid, entry in targets.items() if entry.after},
        missing_targets=failing, targets=targets,
        mock_mode=MockMode(enabled=first.mock_mode.enabled,
                           mock_list_requests=joined(lambda p: p.mock_mode.mock_list_requests),
                           mock_list_requests_count=sum(p.mock_mode.mock_list_requests_count for p in parts),
                           forward_requests_count=sum(p.mock_mode.forward_requests_count for p in parts),
                           blocked_metadata_count=sum(p.mock_mode.blocked_metadata_count for p in parts),
                           learned_parent_keys=sorted({k for p in parts for k in p.mock_mode.learned_parent_keys}),
                           filter_fallbacks=joined(lambda p: p.mock_mode.filter_fallbacks)),
        filtering=Filtering(enabled=first.filtering.enabled,
                            allowed_rating_keys=[entry.rating_key for entry in targets.values() if entry.rating_key],
                            allowed_count=len(targets),
                            filtered_requests=joined(lambda p: p.filtering.filtered_requests),
                            filtered_requests_count=sum(p.filtering.filtered_requests_count for p in parts)),
        outside_calls=summed(lambda p: p.outside_calls),
        side_doors=SideDoors(sum(p.side_doors.total for p in parts), summed(lambda p: p.side_doors.by_kind),
                             summed(lambda p: p.side_doors.hosts)),
        unauthorized_client_requests=total("unauthorized_client_requests"),
        isolation=IsolationUsed.merged([p.isolation for p in parts]),
        timings_seconds={name: max(p.timings_seconds.get(name, 0.0) for p in parts)
                         for name in dict.fromkeys(k for p in parts for k in p.timings_seconds)},
        proxy=ProxyFigures(cpu_seconds=round(sum(f.cpu_seconds for f in known), 3) if known else None,
                           peak_rss_mib=max((f.peak_rss_mib for f in known if f.peak_rss_mib), default=None),
                           upstream_requests=sum(f.upstream_requests or 0 for f in known) if known else None,
                           upstream_bytes=sum(f.upstream_bytes or 0 for f in known) if known else None,
                           requests=sum(f.requests for f in figures),
                           answered_with_plex=sum(f.answered_with_plex for f in figures),
                           answered_locally=sum(f.answered_locally for f in figures)),
        proxy_errors=total("proxy_errors"),
        unknown_events=sorted({e for p in parts for e in p.unknown_events}),
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
