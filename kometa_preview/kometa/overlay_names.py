"""Kometa's names for overlays, read for people: `Overlay File (0) 480P-Dovetail` is the overlay `480P-Dovetail` of
the library's first `overlay_files` entry (`default: resolution`).

Kometa numbers a library's overlay files in the order of its `overlay_files` list and names each overlay it
gathers `Overlay File (<n>) <name>` (modules/overlays.py, `mapping_name`). summary.json keeps Kometa's names (they
are the contract with its log); pages and the terminal show `display_name`, with the file as a second label; the
editor finds the YAML that defines an overlay through `source`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .run_config import OverlaySource

_KOMETA_NAME = re.compile(r"^Overlay File \((?P<n>\d+)\) (?P<name>.+)$")
_ENTRY = re.compile(r"\.overlay_files\[(?P<n>\d+)\]\.")


@dataclass(frozen=True)
class OverlayName:
    #: As Kometa names it (`Overlay File (0) 480P-Dovetail`).
    kometa: str
    #: As people name it (`480P-Dovetail`).
    display: str
    #: The `overlay_files` entry it comes from (None: Kometa gave no number).
    file_index: int | None


def parse(kometa_name: str) -> OverlayName:
    match = _KOMETA_NAME.match(kometa_name)
    if match is None:
        return OverlayName(kometa_name, kometa_name, None)
    return OverlayName(kometa_name, match["name"], int(match["n"]))


def file_label(source: OverlaySource) -> str:
    """How the file is named for people: `default: resolution`, `file: my_overlays.yml`, `url: https://…`."""
    value = Path(source.value).name if source.kind in ("file", "folder") else source.value
    return f"{source.kind}: {value}"


def source(kometa_name: str, sources: list[OverlaySource]) -> OverlaySource | None:
    """The `overlay_files` entry an overlay comes from (`run_config.overlay_sources` of its library)."""
    index = parse(kometa_name).file_index
    for candidate in sources:
        match = _ENTRY.search(candidate.where)
        if match is not None and int(match["n"]) == index:
            return candidate
    return None


def labelled(kometa_name: str, sources: list[OverlaySource]) -> dict[str, str | None]:
    """`{overlay, display_name, file}`: Kometa's name, the overlay's own, and its file's label (None: unknown)."""
    found = source(kometa_name, sources)
    return {"overlay": kometa_name, "display_name": parse(kometa_name).display,
            "file": file_label(found) if found is not None else None}
