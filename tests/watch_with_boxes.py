"""`kometa-preview watch …` with boxes for the stand-in's text overlays put into the page's state, for the editor's
tests until summary.json carries the boxes of Kometa's own overlays (issue 23 item 1); a target that has boxes
already keeps them.

The stand-in draws a text overlay's back from (horizontal_offset, vertical_offset + 200) to 300 × 100 pixels further
(tests/kometa_standin/kometa.py, `TextOverlay.draw`), reading the offsets of the user's own overlay file: so does
this, from the file the iteration read (the tests save nothing else while an iteration runs).

Run as `python tests/watch_with_boxes.py preview.yml --kometa …` (the same arguments as `kometa-preview watch`).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from kometa_preview import cli
from kometa_preview.kometa import overlay_names
from kometa_preview.run import watch


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


def with_boxes(publish):
    def publish_with_boxes(self: watch.Watch, iteration: watch.Iteration, exited_wall: float | None) -> None:
        if iteration.outcome is not None and self.config is not None:
            overlay_file = self.config.source.parent / "overlays.yml"
            for entry in iteration.outcome.summary.targets.values():
                if not getattr(entry, "boxes", None) and overlay_file.is_file():
                    entry.boxes = stand_in_boxes(vars(entry), overlay_file)
        publish(self, iteration, exited_wall)
    return publish_with_boxes


if __name__ == "__main__":
    watch.Watch.publish = with_boxes(watch.Watch.publish)
    sys.exit(cli.main(["watch", *sys.argv[1:]]))
