"""Plex MediaContainer XML: parse safely, build synthetic containers, filter large listings as a stream.

Plex never sends a DTD, so any `<!DOCTYPE`/`<!ENTITY` is refused outright: that closes entity
expansion ("billion laughs") and external entities without depending on the expat version.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from xml.sax.saxutils import quoteattr

XML_CONTENT_TYPE = "text/xml;charset=utf-8"
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")
ITEM_TAGS = frozenset({"Video", "Directory", "Track", "Photo", "Playlist", "Hub"})


class UnsafeXML(ValueError):
    """The body is not XML we are willing to parse."""


def _check_chunk(chunk: bytes) -> None:
    if any(marker in chunk for marker in _FORBIDDEN):
        raise UnsafeXML("document type declarations are not accepted")


def has_dtd(body: bytes) -> bool:
    """Does an XML answer carry a DTD (entity expansion, external entities)? Plex never sends one."""
    return any(marker in body for marker in _FORBIDDEN)


def parse(body: bytes) -> ET.Element:
    """Parse a whole (small) Plex response."""
    _check_chunk(body)
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise UnsafeXML(f"not XML: {exc}") from None


def serialize(element: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="utf-8")


def container(attrs: dict[str, str] | None = None, children: Iterable[ET.Element] = ()) -> ET.Element:
    root = ET.Element("MediaContainer", {k: str(v) for k, v in (attrs or {}).items()})
    root.extend(children)
    root.set("size", str(sum(1 for child in root if child.tag in ITEM_TAGS)))
    return root


def container_bytes(attrs: dict[str, str], children: Iterable[bytes], size: int) -> bytes:
    """A MediaContainer around already-serialized children: the hot path of mock listings, where
    re-serializing the same few target elements on every request cost half the time."""
    head = "".join(f" {name}={quoteattr(str(value))}" for name, value in attrs.items() if name != "size")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<MediaContainer size="{size}"{head}>'.encode()
            + b"".join(children) + b"</MediaContainer>")


def empty_container() -> bytes:
    """What plexapi accepts as 'nothing here' for reads and as success for writes."""
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<MediaContainer size="0"/>'


def strip_label(element: ET.Element, label: str) -> int:
    """Remove `<Label tag=label>` from an item and its descendants; returns how many were removed."""
    removed = 0
    for parent in element.iter():
        for child in [c for c in parent if c.tag == "Label" and c.get("tag", "").lower() == label.lower()]:
            parent.remove(child)
            removed += 1
    return removed


def page(items: list[ET.Element], start: int, size: int | None) -> tuple[list[ET.Element], dict[str, str]]:
    """One page of a listing and the container attributes plexapi's paging arithmetic needs."""
    chosen = items[start:] if size is None else items[start:start + size]
    attrs = {"offset": str(start), "totalSize": str(len(items))} if size is not None or start else {}
    return chosen, attrs


class StreamFilter:
    """Filter a listing as it arrives: keep only the items `keep` accepts, one item in memory at a time.

    Memory stays bounded by the largest single item plus the kept items, whatever the listing size.
    """

    def __init__(self, keep: Callable[[ET.Element], bool]) -> None:
        self._keep = keep
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._tail = b""
        self.root: ET.Element | None = None
        self.kept: list[ET.Element] = []
        self.before = 0

    def feed(self, chunk: bytes) -> None:
        _check_chunk(self._tail + chunk)
        self._tail = chunk[-16:]
        try:
            self._parser.feed(chunk)
            self._drain()
        except ET.ParseError as exc:
            raise UnsafeXML(f"not XML: {exc}") from None

    def _drain(self) -> None:
        for event, element in self._parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self.root = element
                continue
            self._depth -= 1
            if self._depth != 1 or self.root is None:
                continue
            self.root.remove(element)
            if element.tag == "Hub":
                self._filter_hub(element)
            elif element.tag in ITEM_TAGS and element.get("ratingKey") is not None:
                self.before += 1
                if self._keep(element):
                    self.kept.append(element)
            elif element.tag not in ITEM_TAGS:
                self.kept.append(element)  # <Meta> and other non-item children pass through

    def _filter_hub(self, hub: ET.Element) -> None:
        """Hub search nests items one level down; a hub is small (bounded by the query's limit)."""
        for child in [c for c in hub if c.get("ratingKey") is not None]:
            self.before += 1
            if not self._keep(child):
                hub.remove(child)
        hub.set("size", str(sum(1 for c in hub if c.get("ratingKey") is not None)))
        self.kept.append(hub)

    def close(self) -> ET.Element:
        try:
            self._parser.close()
            self._drain()
        except ET.ParseError as exc:
            raise UnsafeXML(f"not XML: {exc}") from None
        if self.root is None:
            raise UnsafeXML("empty document")
        if self.root.tag != "MediaContainer":
            raise UnsafeXML(f"<{self.root.tag}> is not a Plex MediaContainer")
        self.root.extend(self.kept)
        kept_items = sum(1 for child in self.kept if child.tag in ITEM_TAGS)
        self.root.set("size", str(kept_items))
        if "totalSize" in self.root.attrib:
            self.root.set("totalSize", str(kept_items))
        return self.root
