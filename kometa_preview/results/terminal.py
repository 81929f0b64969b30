"""The terminal's view of a job's Summary: one line per target, the problems a user must notice (each said once,
in words), and the verdict last — so the last line printed says whether the job worked and why not.

`render`, `merge` and each `watch` iteration print the same lines. Colour is the caller's (click.secho).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..common.job import REPORT
from ..common.outside_policy import SERVICES
from .summary import Summary, TargetResult

#: status → (mark, colour)
STATUS_MARKS = {"exported": ("✓", "green"), "unchanged": ("–", None), "failed": ("✗", "red"), "missing": ("?", "red")}
#: Above this many targets (a dry run), targets are counted by status and only the failures named.
LISTED_TARGETS = 20
SERVICE_NAMES = {"tmdb": "TMDb", "github": "GitHub", "mdblist": "MDBList", "omdb": "OMDb", "trakt": "Trakt",
                 "myanimelist": "MyAnimeList", "anidb": "AniDB", "imdb": "IMDb", "imdb-graphql": "IMDb",
                 "letterboxd": "Letterboxd"}


@dataclass(frozen=True)
class Line:
    text: str
    colour: str | None = None
    #: A problem (stderr), not a result.
    problem: bool = False
    bold: bool = False


def service(host: str) -> str:
    """The service a host belongs to, as people name it (`api.mdblist.com` → MDBList)."""
    for known in SERVICES:
        if host in known.hosts:
            return SERVICE_NAMES.get(known.name, known.name)
    return host


def target_lines(summary: Summary) -> list[Line]:
    entries = list(summary.targets.items())
    lines: list[Line] = []
    if len(entries) > LISTED_TARGETS:
        counts = Counter(entry.status for _, entry in entries)
        lines.append(Line(" · ".join(f"{counts[s]} {s}" for s in STATUS_MARKS if counts[s]) + f" (of {len(entries)})"))
        overlays = Counter(name for _, entry in entries if entry.status == "exported" for name in shown_names(entry))
        if overlays:
            lines.append(Line("overlays: " + ", ".join(f"{name} {n}" for name, n in overlays.most_common(12))))
        failures = [(target_id, entry) for target_id, entry in entries if entry.status in ("failed", "missing")]
        if len(failures) > LISTED_TARGETS:
            lines.append(Line(f"… and {len(failures) - LISTED_TARGETS} more failed or missing: see summary.json"))
        entries = failures[:LISTED_TARGETS]
    for target_id, entry in entries:
        mark, colour = STATUS_MARKS.get(entry.status, ("?", "red"))
        if entry.status == "exported":
            applied = f" ({', '.join(shown_names(entry))})" if entry.overlays else ""
            text = f"{mark} {target_id} exported: {entry.after}{applied}"
        elif entry.status == "unchanged":
            text = f"{mark} {target_id} unchanged: no overlay applies (before image: {entry.before or 'none'})"
        else:
            text = f"{mark} {target_id} {entry.status}: {entry.error}"
        lines.append(Line(text, colour))
    return lines


def shown_names(entry: TargetResult) -> list[str]:
    """The target's applied overlays by their own names (`480P-Dovetail`), not Kometa's (`Overlay File (0) …`)."""
    labels = {label.overlay: label.display_name for label in entry.overlay_labels}
    return [labels.get(name, name) for name in entry.overlays]


def offline(summary: Summary) -> bool:
    return any(count for name, count in summary.outside_calls.items()
               if name.startswith("offline_") or name == "outside_refused_offline")


def outside_lines(summary: Summary) -> list[Line]:
    """Overlays drawn without their outside data. Offline that is expected: one line. Online, one line per service
    that could not be read, with the overlays that needed it."""
    needed: dict[str, list[str]] = {}
    for item in summary.outside_data:
        for name in dict.fromkeys(service(host) for host in item.hosts or ["an outside service"]):
            needed.setdefault(name, [])
            overlay = item.overlay or "an overlay file"
            if overlay not in needed[name]:
                needed[name].append(overlay)
    if not needed:
        return []
    if offline(summary):
        overlays = {overlay for names in needed.values() for overlay in names}
        return [Line(f"! --offline: {len(overlays)} overlay{'s' * (len(overlays) != 1)} drawn without outside data "
                     f"({', '.join(sorted(needed))}); {REPORT} names them", "yellow", problem=True)]
    return [Line(f"! {name} could not be read: {', '.join(overlays)} drawn without its data", "yellow", problem=True)
            for name, overlays in needed.items()]


def problem_lines(summary: Summary) -> list[Line]:
    lines: list[Line] = []
    if summary.outside_unreachable:
        lines.append(Line(f"! no internet? Kometa's outside calls could not reach "
                          f"{', '.join(summary.outside_unreachable)}; run with --offline to preview without it",
                          "yellow", problem=True))
    lines += outside_lines(summary)
    if summary.proxy_errors:
        lines.append(Line(f"! the proxy answered {summary.proxy_errors} requests with 502 after an internal error; "
                          "see logs/proxy.log", "yellow", problem=True))
    doors = summary.side_doors
    if doors.total:
        kinds = ", ".join(f"{kind} {count}" for kind, count in doors.by_kind.items())
        lines.append(Line(f"! {doors.total} attempt{'s' * (doors.total != 1)} to reach past the preview "
                          f"{'were' if doors.total != 1 else 'was'} refused ({kinds}); see side_doors in summary.json",
                          "yellow", problem=True))
    return lines


def verdict(summary: Summary) -> Line:
    """The last line: what the job came to, and the one reason when it failed."""
    counts = Counter(entry.status for entry in summary.targets.values())
    told = " · ".join(f"{counts[s]} {s}" for s in STATUS_MARKS if counts[s]) or "no target"
    if summary.interrupted:
        return Line(f"✗ interrupted ({told})", "red", bold=True)
    if summary.success:
        return Line(f"✓ done: {told}", "green", bold=True)
    failing = [entry.error for entry in summary.targets.values() if entry.status in ("failed", "missing")]
    reason = summary.error or next(iter(failing), None) or "see summary.json"
    return Line(f"✗ failed ({told}): {reason}", "red", bold=True)


def outcome_lines(summary: Summary, where: list[str], *, quiet: bool = False) -> list[Line]:
    """Everything printed after a job: targets, problems, where the results are, and the verdict last (with
    `quiet`, the verdict alone)."""
    if quiet:
        return [verdict(summary)]
    boxed = {"box": ", in its box", "none": ", not isolated"}.get(summary.isolation.mode or "", "")
    return [*target_lines(summary), *problem_lines(summary),
            Line(f"Kometa:  {summary.kometa_version or 'version unknown'}{boxed}"), *(Line(w) for w in where),
            verdict(summary)]


def show(lines: list[Line], echo: Callable[..., None]) -> None:
    """Each line through `echo` (click.secho's signature): problems on stderr."""
    for line in lines:
        echo(line.text, fg=line.colour, bold=line.bold or None, err=line.problem)
