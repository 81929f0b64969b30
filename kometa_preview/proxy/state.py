"""`PreviewState`: what every addon reads — targets, allowlist, learned parents, the targets' metadata.

Built once when the proxy starts, by a read-only prefetch of each target's `/library/metadata/{rk}`
(and its season and show), so that mock listings can be answered from real metadata.
"""
from __future__ import annotations

import copy
import secrets
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..config import PreviewConfig, Target
from ..plex import xml as plexml
from .journal import Journal, log
from .upstream import Upstream, UpstreamError

OVERLAY_LABEL = "Overlay"


class StartupError(Exception):
    """The proxy cannot serve this preview (Plex unreachable, token refused). One line, no secrets."""


@dataclass
class Section:
    id: str
    title: str
    type: str
    uuid: str
    directory: ET.Element


@dataclass
class PreviewState:
    config: PreviewConfig
    job: Path
    mock: bool
    upstream: Upstream
    journal: Journal
    client_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    max_upload: int = 64 << 20
    targets: dict[str, Target] = field(default_factory=dict)
    items: dict[str, ET.Element] = field(default_factory=dict)
    sections: dict[str, Section] = field(default_factory=dict)
    learned_parents: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    meta_cache: dict[str, bytes] = field(default_factory=dict)
    overlay_label_ids: set[str] = field(default_factory=set)
    _listing_bytes: dict[tuple[str, bool], bytes] = field(default_factory=dict, repr=False)
    counters: Counter = field(default_factory=Counter)

    @property
    def output(self) -> Path:
        return self.job / "output"

    @property
    def allowed(self) -> set[str]:
        """ratingKeys whose metadata may be forwarded: live targets and their learned parents."""
        return {k for k in self.targets if k not in self.missing} | set(self.learned_parents)

    def is_target(self, rating_key: str | None) -> bool:
        return rating_key in self.targets and rating_key not in self.missing

    def is_allowed(self, rating_key: str | None) -> bool:
        return rating_key is not None and rating_key in self.allowed

    def asks_about_overlay_label(self, params) -> bool:
        """Does a listing filter on the Overlay label (which the proxy hides from Kometa)?"""
        names = {OVERLAY_LABEL.lower(), *self.overlay_label_ids}
        for name, value in params:
            field = name.rstrip("!=<>").rsplit(".", 1)[-1]
            if field == "label" and names & {v.strip().lower() for v in value.split(",")}:
                return True
        return False

    def target_items(self) -> list[ET.Element]:
        return [self.items[k] for k in self.targets if k in self.items and k not in self.missing]

    def listing_copy(self, rating_key: str, *, guids: bool) -> ET.Element:
        """A target's element as a listing shows it: no streams, `<Guid>`s only when asked for."""
        element = copy.deepcopy(self.items[rating_key])
        for part in element.iterfind("Media/Part"):
            for stream in part.findall("Stream"):
                part.remove(stream)
        if not guids:
            for guid in element.findall("Guid"):
                element.remove(guid)
        return element

    def listing_bytes(self, rating_key: str, *, guids: bool) -> bytes:
        """`listing_copy` serialized, cached: targets do not change after start-up."""
        key = (rating_key, guids)
        if key not in self._listing_bytes:
            self._listing_bytes[key] = ET.tostring(self.listing_copy(rating_key, guids=guids), encoding="utf-8")
        return self._listing_bytes[key]

    def learn(self, element: ET.Element, child: str) -> None:
        """Remember the season and show of an allowed item: Kometa asks for them (`item.show()`)."""
        for attr in ("parentRatingKey", "grandparentRatingKey"):
            parent = element.get(attr)
            if parent and parent not in self.learned_parents and parent not in self.targets:
                self.learned_parents[parent] = child
                self.journal.write("LEARNED_PARENT", rating_key=parent, child=child)
                log.info("LEARNED_PARENT ratingKey=%s child=%s", parent, child)

    def remember(self, element: ET.Element) -> None:
        """Keep an allowed item's metadata, without the label that would make Kometa skip it."""
        self.overlay_label_ids.update(label.get("id", "").lower() for label in element.iter("Label")
                                      if label.get("tag", "").lower() == OVERLAY_LABEL.lower() and label.get("id"))
        removed = plexml.strip_label(element, OVERLAY_LABEL)
        if removed:
            self.journal.write("STRIPPED_OVERLAY_LABEL", rating_key=element.get("ratingKey"))
        self.items[element.get("ratingKey", "")] = element
        self._listing_bytes.clear()


def _fetch_item(upstream: Upstream, rating_key: str) -> ET.Element | None:
    response = upstream.get(f"/library/metadata/{rating_key}")
    if response.status == 401:
        raise StartupError(f"Plex at {upstream.base_url} refused the token in plex.token (401)")
    if response.status == 404:
        return None
    if response.status != 200:
        raise StartupError(f"Plex answered {response.status} to /library/metadata/{rating_key}")
    try:
        root = plexml.parse(response.body)
    except plexml.UnsafeXML as exc:
        raise StartupError(f"Plex's answer to /library/metadata/{rating_key} is not usable: {exc}") from None
    element = next((child for child in root if child.get("ratingKey") == rating_key), None)
    if element is not None and element.get("librarySectionID") is None and root.get("librarySectionID"):
        element.set("librarySectionID", root.get("librarySectionID"))
    return element


def prefetch(state: PreviewState) -> None:
    """Read sections and every target's metadata (read-only). Raises `StartupError`."""
    upstream = state.upstream
    try:
        response = upstream.get("/library/sections")
        if response.status == 401:
            raise StartupError(f"Plex at {upstream.base_url} refused the token in plex.token (401)")
        if response.status != 200:
            raise StartupError(f"Plex at {upstream.base_url} answered {response.status} to /library/sections")
        sections = plexml.parse(response.body)
        for directory in sections.iter("Directory"):
            key = directory.get("key", "")
            state.sections[key] = Section(key, directory.get("title", ""), directory.get("type", ""),
                                          directory.get("uuid", ""), directory)
        for target in state.config.targets:
            state.targets[target.rating_key] = target
            element = _fetch_item(upstream, target.rating_key)
            if element is None:
                state.missing[target.rating_key] = "not found in Plex"
                state.journal.write("MISSING_ITEM", rating_key=target.rating_key, target=target.id)
                # WARNING, not ERROR: mitmdump exits when anything is logged at ERROR during start-up.
                log.warning("MISSING_ITEM ratingKey=%s target=%s: Plex has no such item", target.rating_key,
                            target.id)
                continue
            if element.get("type") != target.type:
                state.journal.write("TYPE_MISMATCH", rating_key=target.rating_key, target=target.id,
                                    expected=target.type, actual=element.get("type"))
                log.warning("TYPE_MISMATCH target=%s ratingKey=%s is a %s, not a %s", target.id,
                            target.rating_key, element.get("type"), target.type)
            state.remember(element)
            state.learn(element, target.rating_key)
        for parent in list(state.learned_parents):
            if parent not in state.items and (element := _fetch_item(upstream, parent)) is not None:
                state.remember(element)
    except plexml.UnsafeXML as exc:
        raise StartupError(f"Plex's answer to /library/sections is not usable: {exc}") from None
    except UpstreamError as exc:
        raise StartupError(str(exc)) from None
    holding = {state.items[k].get("librarySectionID") for k in state.targets if k in state.items}
    state.journal.write("PREFETCH", targets=len(state.targets), missing=sorted(state.missing),
                        sections=sorted(s for s in holding if s), learned_parents=sorted(state.learned_parents),
                        upstream_requests=upstream.requests)
