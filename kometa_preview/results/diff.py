"""`kometa-preview diff A B`: what changed between two previews — two iterations of `watch`, two configs, two
Kometa versions.

A and B are output folders (or job folders holding `output/`). Targets are matched by id (summary.json, else the
`<id>_after.<ext>` names). For each target: `identical`, or `changed` with the share of pixels that differ and a
heat map (the B image dimmed, changed pixels in red), `added` or `removed` when only one side has an after-image,
or `uncompared` ("could not compare") with the reason. A pixel counts as changed when a channel differs by more
than `TOLERANCE` (JPEG re-encoding noise is 1–2). Writes diff.html (self-contained) beside the heat maps, prints one
line per target.

A and B are read as data, never as paths to act on: target ids and `after` names pass `names`' grammar (an `after`
of `/etc/passwd`, `../../x` or `javascript:…` is never read or linked: that target could not be compared), no
symbolic link is followed, heat maps are written only inside `<out>/diff/`, and diff.html links relative names
only, percent-encoded, never `file://`.

Images are untrusted (`images`): a decompression bomb, a truncated file or one over `images.MAX_PIXELS` is
"could not compare" for its target, never a traceback. Memory bound: each image is compared at most at
`COMPARE_PIXELS` (a larger one is reduced by a whole factor, a JPEG while it is decoded; the share is then of the
reduced images), at most `WORKERS` targets at once, and only one image over that budget is decoded at a time
(≤ 160 MB): a diff peaks under about 600 MB whatever A and B hold.

Exit codes (`exit_code`): 0; 1 with `--fail-on-change` when a target changed, was added or removed; 3 when a target
could not be compared (the comparison is incomplete: 3 wins over 1); 2 (cli.py) when A or B is no preview output.
"""
from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from ..common import images, names
from ..common.files import write_atomic
from ..common.job import SUMMARY, JobLayout
from .summary import MAX_BYTES

if TYPE_CHECKING:
    from PIL.Image import Image

TOLERANCE = 8
HEATMAPS = "diff"
#: The most pixels an image is compared at (a 2000×2000 poster; Kometa's are 1–6 MP).
COMPARE_PIXELS = 4_000_000
#: Targets compared at once.
WORKERS = min(4, os.cpu_count() or 1)
#: `diff`'s exit codes beyond 0 (2, bad input, is cli.py's).
CHANGED_EXIT, UNCOMPARED_EXIT = 1, 3
UNCOMPARED = "uncompared"


class DiffError(Exception):
    """A or B is not a preview's output. One line for the user."""


@dataclass
class Change:
    target: str
    result: str                    # identical | changed | added | removed | uncompared
    changed_percent: float = 0.0
    before: str | None = None      # A's after-image (relative to the diff page)
    after: str | None = None       # B's after-image
    heatmap: str | None = None
    reason: str | None = None      # why it could not be compared

    @property
    def line(self) -> str:
        if self.result == UNCOMPARED:
            return f"{self.target} could not compare: {self.reason}"
        if self.result != "changed":
            return f"{self.target} {self.result}"
        share = f"{self.changed_percent:.1f}%" if self.changed_percent >= 0.1 else "<0.1%"
        return f"{self.target} changed {share}"


def exit_code(changes: list[Change], fail_on_change: bool) -> int:
    """3 when any target could not be compared; else 1 with `fail_on_change` when any changed (or was added or
    removed); else 0."""
    if any(c.result == UNCOMPARED for c in changes):
        return UNCOMPARED_EXIT
    return CHANGED_EXIT if fail_on_change and any(c.result != "identical" for c in changes) else 0


def _entry(folder: Path, name: str, kind: str) -> Path | None:
    try:
        return names.entry(folder, name, kind=kind)
    except names.UnsafeName as exc:
        raise DiffError(str(exc)) from None


def output_of(folder: Path) -> Path:
    """The output folder of a job, a watch iteration, or the folder itself."""
    for candidate in (JobLayout(folder).output, folder):
        if candidate != folder and _entry(folder, candidate.name, "dir") is None:
            continue
        if _entry(candidate, SUMMARY, "file") is not None or after_images(candidate):
            return candidate
    raise DiffError(f"{folder} holds no preview output (no summary.json, no <id>_after images)")


#: A side's after-image: its path, or why it is not read (a name outside the grammar, a symbolic link).
Side = Path | str


def after_images(output: Path) -> dict[str, Side]:
    """target id → its after-image in `output`, or the reason it is not read."""
    if _entry(output, SUMMARY, "file") is not None:
        return {target: _side(output, name) for target, name in _summary_afters(output / SUMMARY).items()}
    found: dict[str, Side] = {}
    for path in sorted(output.glob("*_after.*")):
        target = names.exported_target(path.name, "after")
        if target is not None:
            found[target] = _side(output, path.name)
    return found


def _summary_afters(path: Path) -> dict[str, str]:
    """target id → its `after` name, from a summary.json (exported targets only). Raises `DiffError`."""
    if path.stat().st_size > MAX_BYTES:
        raise DiffError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not a preview's summary.json")
    try:
        targets = json.loads(path.read_bytes()).get("targets")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise DiffError(f"{path}: not a preview's summary.json ({exc})") from None
    if not isinstance(targets, dict):
        raise DiffError(f"{path}: not a preview's summary.json (no targets object)")
    afters = {}
    for target, entry in targets.items():
        if not names.is_target_id(target):
            raise DiffError(f"{path}: targets[{target!r}]: not a target id (letters, digits, - and _)")
        after = entry.get("after") if isinstance(entry, dict) else None
        if after is not None and not isinstance(after, str):
            raise DiffError(f"{path}: targets.{target}.after: must be text or null")
        if after:
            afters[target] = after
    return afters


def _side(output: Path, name: str) -> Side:
    if names.exported_target(name, "after") is None:
        return f"its after-image name {name!r} is not an image name of {output}"
    try:
        found = names.entry(output, name, kind="file")
    except names.UnsafeName as exc:
        return str(exc)
    return found if found is not None else f"{output / name} does not exist"


class Decoded:
    """After-images decoded once and kept for the next comparison: `watch` compares each iteration with the one
    before, so without it every image would be decoded twice (a 1000×1500 WebP: ~20 ms). Thread-safe."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, int, int], Image] = {}
        self._lock = threading.Lock()

    def rgb(self, path: Path) -> Image:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        with self._lock:
            found = self._images.get(key)
        if found is None:
            found = _rgb(path)
            with self._lock:
                self._images[key] = found
        return found

    def keep_only(self, folder: Path) -> None:
        """Forget every image but those directly in `folder` (the iteration the next one is compared with)."""
        inside = str(folder.resolve())
        with self._lock:
            self._images = {k: v for k, v in self._images.items() if str(Path(k[0]).parent) == inside}


def _rgb(path: Path) -> Image:
    """The image in RGB, at most `COMPARE_PIXELS`. Raises `images.Unreadable`."""
    return images.decode(path, mode="RGB", budget=COMPARE_PIXELS)


def changed_share(a: Path, b: Path, heatmap: Path | None = None, decoded: Decoded | None = None) -> float:
    """The percentage of pixels that differ between two images (compared at B's size, both at most
    `COMPARE_PIXELS`; a pixel differs when any channel moves by more than `TOLERANCE`); with `heatmap`, also write
    the picture of where (a JPEG: it is looked at, not measured, and PNG cost ten times as long — this runs inside
    every watch iteration), in one step. Raises `images.Unreadable`."""
    from PIL import ImageChops
    read = decoded.rgb if decoded is not None else _rgb
    base, other = _read(read, b, "B"), _read(read, a, "A")
    if other.size != base.size:
        other = other.resize(base.size)
    red, green, blue = ImageChops.difference(base, other).split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(_OVER_TOLERANCE)
    changed = mask.histogram()[255]
    if heatmap is not None and changed:
        dim = base.convert("L").point(_DIM).convert("RGB")
        dim.paste((255, 0, 0), mask=mask)
        data = io.BytesIO()
        dim.save(data, format="JPEG", quality=85)
        write_atomic(heatmap, data.getvalue())
    return 100.0 * changed / (base.size[0] * base.size[1])


def _read(read: Callable[[Path], Image], path: Path, side: str) -> Image:
    try:
        return read(path)
    except images.Unreadable as exc:
        raise images.Unreadable(f"{side}'s after-image is {exc}") from None


_OVER_TOLERANCE = [255 if v > TOLERANCE else 0 for v in range(256)]
_DIM = [v * 2 // 5 for v in range(256)]


def _same_bytes(a: Path, b: Path) -> bool:
    """Are two files byte for byte the same? Read in pieces, never through a symbolic link."""
    if os.lstat(a).st_size != os.lstat(b).st_size:
        return False
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
    with open(os.open(a, flags), "rb") as left, open(os.open(b, flags), "rb") as right:
        while True:
            piece = left.read(1 << 20)
            if piece != right.read(1 << 20):
                return False
            if not piece:
                return True


def compare(a: Path, b: Path, out: Path | None = None, decoded: Decoded | None = None) -> list[Change]:
    """Compare two outputs. Heat maps go to `<out>/diff/` (out: B's output folder by default); `decoded` keeps
    the decoded images for the next comparison. Raises `DiffError` for an A or B that is no preview output."""
    a_out, b_out = output_of(a), output_of(b)
    out = out or b_out
    out.mkdir(parents=True, exist_ok=True)
    _entry(out, HEATMAPS, "dir")
    first, second = after_images(a_out), after_images(b_out)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:  # Pillow decodes and compares without holding the GIL
        return list(pool.map(lambda t: _one(t, first.get(t), second.get(t), out, decoded),
                             sorted(set(first) | set(second))))


def _one(target: str, left: Side | None, right: Side | None, out: Path, decoded: Decoded | None) -> Change:
    """One target's comparison: A's after-image `left`, B's `right` (a path, or why it is not read)."""
    rel = lambda p: _relative(p, out) if isinstance(p, Path) else None  # noqa: E731 - four uses, one line
    refused = [side for side in (left, right) if isinstance(side, str)]
    if refused:
        return Change(target, UNCOMPARED, 0.0, rel(left), rel(right), reason="; ".join(refused))
    if left is None or right is None:
        return Change(target, "added" if left is None else "removed", 100.0, rel(left), rel(right))
    try:
        if _same_bytes(left, right):
            return Change(target, "identical", 0.0, rel(left), rel(right))
        heat = names.folder(out, HEATMAPS) / f"{target}_heat.jpg"
        share = changed_share(left, right, heat, decoded)
    except (images.Unreadable, OSError, names.UnsafeName) as exc:
        return Change(target, UNCOMPARED, 0.0, rel(left), rel(right), reason=str(exc))
    result = "changed" if share > 0 else "identical"
    return Change(target, result, round(share, 2), rel(left), rel(right), rel(heat) if share > 0 else None)


def _relative(path: Path, base: Path) -> str:
    """`path` relative to the folder of the page (`base`), as the page links it: never absolute, never a URI."""
    return Path(os.path.relpath(path.absolute(), base.absolute())).as_posix()


def write_html(out: Path, a: Path, b: Path, changes: list[Change]) -> Path:
    rows = []
    uncompared = sum(c.result == UNCOMPARED for c in changes)
    for change in changes:
        images_html = "".join(
            f'<figure><a href="{escape(names.href(src))}"><img src="{escape(names.href(src))}" alt="{label}"></a>'
            f'<figcaption>{label}</figcaption></figure>'
            for src, label in ((change.before, "A"), (change.after, "B"), (change.heatmap, "changed")) if src)
        rows.append(f'<section class="{escape(change.result)}"><h2>{escape(change.line)}</h2>'
                    f'<div class="pair">{images_html}</div></section>')
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview diff</title>'
            f'<style>body{{font:15px/1.4 system-ui,sans-serif;margin:2rem;background:#111;color:#eee}}'
            f'.pair{{display:flex;gap:1rem;flex-wrap:wrap}}.pair img{{max-height:360px;max-width:30vw}}'
            f'figure{{margin:0}}figcaption{{color:#aaa}}.changed h2{{color:#ffab91}}.identical h2{{color:#a5d6a7}}'
            f'.uncompared h2{{color:#ff8a80}}'
            f'</style></head><body><h1>diff · A: {escape(str(a))} · B: {escape(str(b))}</h1>'
            f'<p>{sum(c.result == "changed" for c in changes)} changed, '
            f'{sum(c.result == "identical" for c in changes)} identical'
            f'{f", {uncompared} could not be compared" if uncompared else ""}</p>{"".join(rows)}</body></html>')
    path = out / "diff.html"
    write_atomic(path, page)
    write_atomic(out / "diff.json", json.dumps([asdict(c) for c in changes], indent=1))
    return path
