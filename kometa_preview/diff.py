"""`kometa-preview diff A B`: what changed between two previews — two iterations of `watch`, two configs, two
Kometa versions.

A and B are output folders (or job folders holding `output/`). Targets are matched by id (summary.json, else the
`<id>_after.<ext>` names). For each target: `identical`, or `changed` with the share of pixels that differ and a
heat map (the B image dimmed, changed pixels in red), `added` or `removed` when only one side has an after-image.
A pixel counts as changed when a channel differs by more than `TOLERANCE` (JPEG re-encoding noise is 1–2).
Writes diff.html (self-contained) beside the heat maps, prints one line per target.
"""
from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

from PIL import Image, ImageChops

from .files import write_atomic
from .job import SUMMARY, JobLayout, exported_target

TOLERANCE = 8
HEATMAPS = "diff"


class DiffError(Exception):
    """A or B is not a preview's output. One line for the user."""


@dataclass
class Change:
    target: str
    result: str                    # identical | changed | added | removed
    changed_percent: float = 0.0
    before: str | None = None      # A's after-image (relative to the diff page)
    after: str | None = None       # B's after-image
    heatmap: str | None = None

    @property
    def line(self) -> str:
        if self.result != "changed":
            return f"{self.target} {self.result}"
        share = f"{self.changed_percent:.1f}%" if self.changed_percent >= 0.1 else "<0.1%"
        return f"{self.target} changed {share}"


def output_of(folder: Path) -> Path:
    """The output folder of a job, a watch iteration, or the folder itself."""
    for candidate in (JobLayout(folder).output, folder):
        if (candidate / SUMMARY).is_file() or after_images(candidate):
            return candidate
    raise DiffError(f"{folder} holds no preview output (no summary.json, no <id>_after images)")


def after_images(output: Path) -> dict[str, Path]:
    """target id → its after-image."""
    summary = output / SUMMARY
    if summary.is_file():
        targets = json.loads(summary.read_text(encoding="utf-8")).get("targets", {})
        return {tid: output / entry["after"] for tid, entry in targets.items()
                if entry.get("after") and (output / entry["after"]).is_file()}
    named = ((exported_target(p.name, "after"), p) for p in sorted(output.glob("*_after.*")))
    return {target: path for target, path in named if target}


class Decoded:
    """After-images decoded once and kept for the next comparison: `watch` compares each iteration with the one
    before, so without it every image would be decoded twice (a 1000×1500 WebP: ~20 ms). Thread-safe."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, int, int], Image.Image] = {}
        self._lock = threading.Lock()

    def rgb(self, path: Path) -> Image.Image:
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


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def changed_share(a: Path, b: Path, heatmap: Path | None = None, decoded: Decoded | None = None) -> float:
    """The percentage of pixels that differ between two images (compared at B's size; a pixel differs when any
    channel moves by more than `TOLERANCE`); with `heatmap`, also write the picture of where (a JPEG: it is looked
    at, not measured, and PNG cost ten times as long — this runs inside every watch iteration)."""
    read = decoded.rgb if decoded is not None else _rgb
    base, other = read(b), read(a)
    if other.size != base.size:
        other = other.resize(base.size)
    red, green, blue = ImageChops.difference(base, other).split()
    mask = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(_OVER_TOLERANCE)
    changed = mask.histogram()[255]
    if heatmap is not None and changed:
        heatmap.parent.mkdir(parents=True, exist_ok=True)
        dim = base.convert("L").point(_DIM).convert("RGB")
        dim.paste((255, 0, 0), mask=mask)
        dim.save(heatmap, format="JPEG", quality=85)
    return 100.0 * changed / (base.size[0] * base.size[1])


_OVER_TOLERANCE = [255 if v > TOLERANCE else 0 for v in range(256)]
_DIM = [v * 2 // 5 for v in range(256)]


def compare(a: Path, b: Path, out: Path | None = None, decoded: Decoded | None = None) -> list[Change]:
    """Compare two outputs. Heat maps go to `<out>/diff/` (out: B's output folder by default); `decoded` keeps
    the decoded images for the next comparison."""
    a_out, b_out = output_of(a), output_of(b)
    out = out or b_out
    first, second = after_images(a_out), after_images(b_out)
    def one(target: str) -> Change:
        left, right = first.get(target), second.get(target)
        rel = lambda p: None if p is None else _relative(p, out)  # noqa: E731 - four uses, one line
        if left is None or right is None:
            return Change(target, "added" if left is None else "removed", 100.0, rel(left), rel(right))
        if left.read_bytes() == right.read_bytes():
            return Change(target, "identical", 0.0, rel(left), rel(right))
        heat = out / HEATMAPS / f"{target}_heat.jpg"
        share = changed_share(left, right, heat, decoded)
        result = "changed" if share > 0 else "identical"
        return Change(target, result, round(share, 2), rel(left), rel(right), rel(heat) if share > 0 else None)

    # Pillow decodes and compares without holding the GIL: the targets are compared side by side.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, sorted(set(first) | set(second))))


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def write_html(out: Path, a: Path, b: Path, changes: list[Change]) -> Path:
    rows = []
    for change in changes:
        images = "".join(f'<figure><a href="{escape(src)}"><img src="{escape(src)}" alt="{label}"></a>'
                         f'<figcaption>{label}</figcaption></figure>'
                         for src, label in ((change.before, "A"), (change.after, "B"), (change.heatmap, "changed"))
                         if src)
        rows.append(f'<section class="{escape(change.result)}"><h2>{escape(change.line)}</h2>'
                    f'<div class="pair">{images}</div></section>')
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>kometa-preview diff</title>'
            f'<style>body{{font:15px/1.4 system-ui,sans-serif;margin:2rem;background:#111;color:#eee}}'
            f'.pair{{display:flex;gap:1rem;flex-wrap:wrap}}.pair img{{max-height:360px;max-width:30vw}}'
            f'figure{{margin:0}}figcaption{{color:#aaa}}.changed h2{{color:#ffab91}}.identical h2{{color:#a5d6a7}}'
            f'</style></head><body><h1>diff · A: {escape(str(a))} · B: {escape(str(b))}</h1>'
            f'<p>{sum(c.result == "changed" for c in changes)} changed, '
            f'{sum(c.result == "identical" for c in changes)} identical</p>{"".join(rows)}</body></html>')
    path = out / "diff.html"
    write_atomic(path, page)
    write_atomic(out / "diff.json", json.dumps([asdict(c) for c in changes], indent=1))
    return path
