"""`kometa-preview watch …` with boxes for the stand-in's text overlays put into the page's state, for the editor's
tests until summary.json carries the boxes of Kometa's own overlays (issue 23 item 1); a target that has boxes
already keeps them.

The stand-in draws a text overlay's back from (horizontal_offset, vertical_offset + 200) to 300 × 100 pixels further
(tests/kometa_standin/kometa.py, `TextOverlay.draw`), reading the offsets of `overlays.yml` beside preview.yml: so
does this, when the iteration's targets reach the page (the tests save nothing else while an iteration runs).

Run as `python tests/watch_with_boxes.py preview.yml --kometa …` (the same arguments as `kometa-preview watch`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from kometa_preview import cli
from kometa_preview.kometa import overlay_names
from kometa_preview.results.live_page import LiveState


def stand_in_boxes(entry: dict[str, Any], overlay_file: Path) -> list[dict[str, Any]]:
    """The boxes of the stand-in's text overlays Kometa applied to this target, from the overlay file."""
    overlays = (yaml.safe_load(overlay_file.read_text(encoding="utf-8")) or {}).get("overlays") or {}
    boxes = []
    for name in entry.get("overlays") or []:
        own = overlays.get(overlay_names.parse(name).display)
        attributes = own.get("overlay") if isinstance(own, dict) else None
        if isinstance(attributes, dict) and "horizontal_offset" in attributes:
            x, y = int(attributes["horizontal_offset"]), int(attributes["vertical_offset"]) + 200
            boxes.append({"overlay": name, "display_name": overlay_names.parse(name).display,
                          "file": f"file: {overlay_file.name}", "x": x, "y": y, "w": 301, "h": 101})
    return boxes


def with_boxes(update, overlay_file: Path):
    """LiveState.update, with the stand-in's boxes added to each target that has none."""
    def update_with_boxes(self: LiveState, **values: Any) -> None:
        if "targets" in values and overlay_file.is_file():
            values["targets"] = {target: {**entry, "boxes": entry.get("boxes") or stand_in_boxes(entry, overlay_file)}
                                 for target, entry in values["targets"].items()}
        update(self, **values)
    return update_with_boxes


if __name__ == "__main__":
    LiveState.update = with_boxes(LiveState.update, Path(sys.argv[1]).resolve().parent / "overlays.yml")
    sys.exit(cli.main(["watch", *sys.argv[1:]]))
