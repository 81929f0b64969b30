"""Plex advanced filters evaluated over the items the proxy holds (the targets' real metadata XML).

The grammar is Plex's (plexapi 4.18 `_validateFilterField`/`_manualFilters`, docs/KOMETA-TRAFFIC.md):
- a filter is `field[operator]=v1,v2`; the operator lives at the end of the parameter name:
  `''` is/contains, `!` is-not/does-not-contain, `=` exact, `!=` exact-not, `>>` greater/after,
  `<<` less/before, `<` begins-with, `>` ends-with; an unencoded `title==x` means `title=` + `x`;
- values in one parameter are alternatives: any may match, or for a negative operator none may;
- terms are joined by `and=1` / `or=1` (AND when nothing is said), `push=1`/`pop=1` bracket;
  AND binds tighter than OR;
- tags (label, genre, contentRating, resolution, audioCodec) match by id or title, case-insensitive,
  because plexapi sends ids and Kometa sends titles (`label=Overlay`).

Anything outside the supported fields raises `Unsupported`, and the caller asks Plex instead:
this module never guesses.
"""
from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Query parameters that shape a listing but do not filter it.
SHAPING = frozenset({"type", "sort", "limit", "group", "query", "sectionId", "checkFiles", "asyncCheckFiles",
                     "asyncAugmentMetadata", "contentDirectoryID", "pinnedContentDirectoryID",
                     "unwatchedLeaves", "X-Plex-Container-Start", "X-Plex-Container-Size"})
_NAME = re.compile(r"(?P<field>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)?)(?P<op>!=|!|=|>>|<<|<|>)?")
_HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}
_LIBTYPE_ORDER = ("show", "season", "episode")


class Unsupported(ValueError):
    """The evaluator cannot answer this faithfully; ask Plex."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    values: tuple[str, ...]


def is_filter_parameter(name: str) -> bool:
    return not (name in SHAPING or name.lower().startswith(("include", "exclude", "x-plex-")))


def _condition(name: str, value: str) -> Condition:
    if value.startswith("=") and not name.endswith(("=", ">", "<")):
        name, value = name + "=", value[1:]
    match = _NAME.fullmatch(name)
    if match is None:
        raise Unsupported(f"cannot read filter parameter {name!r}")
    return Condition(match["field"], match["op"] or "", tuple(value.split(",")))


def to_rpn(params: Sequence[tuple[str, str]]) -> list[object]:
    """Shunting-yard: the query's filters in reverse Polish notation (`and`/`or` as operators)."""
    output: list[object] = []
    stack: list[str] = []
    expect_operand = True
    precedence = {"or": 1, "and": 2}

    def push_operator(op: str) -> None:
        while stack and stack[-1] != "(" and precedence[stack[-1]] >= precedence[op]:
            output.append(stack.pop())
        stack.append(op)

    for name, value in params:
        if name in ("push", "pop", "and", "or") and value != "1":
            raise Unsupported(f"{name}={value}")
        if name == "push":
            if not expect_operand:
                push_operator("and")
            stack.append("(")
            expect_operand = True
        elif name == "pop":
            while stack and stack[-1] != "(":
                output.append(stack.pop())
            if not stack:
                raise Unsupported("pop=1 without push=1")
            stack.pop()
            expect_operand = False
        elif name in ("and", "or"):
            if expect_operand:
                raise Unsupported(f"{name}=1 without a term before it")
            push_operator(name)
            expect_operand = True
        elif is_filter_parameter(name):
            if not expect_operand:
                push_operator("and")
            output.append(_condition(name, value))
            expect_operand = False
    if "(" in stack:
        raise Unsupported("push=1 without pop=1")
    if output and expect_operand:
        raise Unsupported("a filter expression cannot end with and/or")
    output.extend(reversed(stack))
    return output


# --- reading fields off Plex XML ---------------------------------------------------------------

def _attr(element: ET.Element, name: str) -> list[str]:
    value = element.get(name)
    return [value.lower()] if value else []


#: What a tag child (`<Label id="7" tag="Overlay"/>`) is matched by: its id (plexapi) or its title (Kometa).
TAG_ATTRIBUTES = frozenset({"id", "tag"})


def _tags(element: ET.Element, tag: str) -> list[tuple[str, str]]:
    return [(child.get("id", "").lower(), child.get("tag", "").lower()) for child in element.findall(tag)]


def _media(element: ET.Element, name: str) -> list[tuple[str, str]]:
    return [(m.get(name, "").lower(),) * 2 for m in element.findall("Media") if m.get(name)]


def _video_streams(element: ET.Element) -> list[ET.Element]:
    return [s for s in element.iterfind("Media/Part/Stream") if s.get("streamType") == "1"]


def _hdr(element: ET.Element) -> list[bool]:
    streams = _video_streams(element)
    if not streams:
        raise Unsupported("HDR needs the item's streams, which this metadata does not carry")
    return [any(s.get("colorTrc") in _HDR_TRANSFERS or s.get("DOVIPresent") == "1" for s in streams)]


def _dovi(element: ET.Element) -> list[bool]:
    streams = _video_streams(element)
    if not streams:
        raise Unsupported("Dolby Vision needs the item's streams, which this metadata does not carry")
    return [any(s.get("DOVIPresent") == "1" for s in streams)]


def _integer(element: ET.Element, name: str) -> list[int]:
    value = element.get(name)
    return [int(value)] if value and value.lstrip("-").isdigit() else []


@dataclass(frozen=True)
class Reads:
    """What of an item's XML something reads: the item's own attributes, its tag children (by `TAG_ATTRIBUTES`), the
    attributes of its `<Media>`, and those of its `<Stream>`s (`Media/Part/Stream`). A dry run keeps only what is
    declared (proxy/state.compact), so a reader that reads more than it declares finds nothing there."""
    attributes: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    media: frozenset[str] = frozenset()
    streams: frozenset[str] = frozenset()

    def __or__(self, other: Reads) -> Reads:
        return Reads(self.attributes | other.attributes, self.tags | other.tags, self.media | other.media,
                     self.streams | other.streams)


@dataclass(frozen=True)
class Field:
    """A filter field: its Plex field type, how it reads an item, and what it reads (`Reads`)."""
    kind: str
    read: Callable[[ET.Element], list]
    reads: Reads


def _on(*attributes: str) -> Reads:
    return Reads(attributes=frozenset(attributes))


def _string(name: str) -> Field:
    return Field("string", lambda e: _attr(e, name), _on(name))


def _tag(tag: str) -> Field:
    return Field("tag", lambda e: _tags(e, tag), Reads(tags=frozenset({tag})))


def _media_tag(name: str) -> Field:
    return Field("tag", lambda e: _media(e, name), Reads(media=frozenset({name})))


#: Only what the metadata XML answers exactly. Each field reads only what it declares: a dry run's items keep
#: exactly that (tests/test_compact_items.py proves each field answers the same on them).
FIELDS: dict[str, Field] = {
    "title": _string("title"),
    "editionTitle": _string("editionTitle"),
    "year": Field("integer", lambda e: _integer(e, "year"), _on("year")),
    "decade": Field("integer", lambda e: [y // 10 * 10 for y in _integer(e, "year")], _on("year")),
    "label": _tag("Label"),
    "genre": _tag("Genre"),
    "contentRating": Field("tag", lambda e: [(v, v) for v in _attr(e, "contentRating")], _on("contentRating")),
    "resolution": _media_tag("videoResolution"),
    "audioCodec": _media_tag("audioCodec"),
    "hdr": Field("boolean", _hdr, Reads(streams=frozenset({"streamType", "colorTrc", "DOVIPresent"}))),
    "dovi": Field("boolean", _dovi, Reads(streams=frozenset({"streamType", "DOVIPresent"}))),
    "unwatched": Field("boolean", lambda e: [int(e.get("viewCount") or 0) == 0], _on("viewCount")),
}
#: Everything the filter fields read of an item.
FIELD_READS = functools.reduce(Reads.__or__, (f.reads for f in FIELDS.values()), Reads())
#: Each field type's operators (the end of the parameter name) and what they mean.
OPERATORS = {
    "string": {"": "contains", "!": "not contains", "=": "is", "!=": "is not", "<": "begins", ">": "ends"},
    "integer": {"": "is", "=": "is", "!": "is not", "!=": "is not", ">>": "greater", "<<": "less"},
    "tag": {"": "is", "=": "is", "!": "is not", "!=": "is not"},
    "boolean": {"": "is", "=": "is", "!": "is not", "!=": "is not"},
}


def _test(kind: str, meaning: str, have: list, want: str) -> bool:
    negative = meaning.startswith(("not ", "is not"))
    if kind == "tag":
        hit = want.lower() in {part for pair in have for part in pair}
    elif kind == "string":
        w = want.lower()
        hit = any({"contains": w in h, "not contains": w in h, "is": h == w, "is not": h == w,
                   "begins": h.startswith(w), "ends": h.endswith(w)}[meaning] for h in have)
        if meaning == "is" or meaning == "is not":
            hit = hit or (not have and w == "")
    elif kind == "integer":
        if not want.lstrip("-").isdigit():
            raise Unsupported(f"{want!r} is not an integer")
        n = int(want)
        hit = any(h > n if meaning == "greater" else h < n if meaning == "less" else h == n for h in have)
    else:
        hit = any(h == (want not in ("0", "false")) for h in have)
    return not hit if negative else hit


class Items:
    """How to reach an item's relatives: its ancestors (for `show.title` on an episode listing), and the
    descendants of a show or season (for `episode.resolution` on a show listing). `descendants` answers None
    when it does not hold them, and the evaluator then asks Plex instead."""

    def __init__(self, lookup: Callable[[str], ET.Element | None],
                 descendants: Callable[[ET.Element, str], list[ET.Element] | None] = lambda element, libtype: None
                 ) -> None:
        self.lookup = lookup
        self.descendants = descendants

    def ancestor(self, element: ET.Element, libtype: str) -> ET.Element | None:
        own = element.get("type")
        if own == libtype:
            return element
        if own == "episode" and libtype == "season":
            return self.lookup(element.get("parentRatingKey", ""))
        if own in ("episode", "season") and libtype == "show":
            key = element.get("grandparentRatingKey") if own == "episode" else element.get("parentRatingKey")
            return self.lookup(key or "")
        return None


def _deeper(prefix: str, own: str) -> bool:
    return prefix in _LIBTYPE_ORDER and own in _LIBTYPE_ORDER and _LIBTYPE_ORDER.index(prefix) > \
        _LIBTYPE_ORDER.index(own)


def condition_holds(condition: Condition, element: ET.Element, items: Items,
                    descendant: ET.Element | None = None) -> bool:
    """One condition on one listed item. A prefix below the item's own level (`episode.` on a show) reads
    `descendant`, the one of the item's descendants being tried (see `matches`)."""
    field = condition.field
    subject: ET.Element | None = element
    if "." in field:
        prefix, field = field.split(".", 1)
        own = element.get("type", "movie")
        if _deeper(prefix, own):
            subject = None if descendant is None else items.ancestor(descendant, prefix)
            if subject is None:
                return False
        elif prefix != own and not (prefix in _LIBTYPE_ORDER and own in _LIBTYPE_ORDER):
            raise Unsupported(f"{condition.field} on a {own}")
        else:
            subject = items.ancestor(element, prefix)
            if subject is None:
                raise Unsupported(f"{condition.field}: the {prefix} of item {element.get('ratingKey')} is unknown")
    if field not in FIELDS:
        raise Unsupported(f"filter field {field!r}")
    kind = FIELDS[field].kind
    meaning = OPERATORS[kind].get(condition.op)
    if meaning is None:
        raise Unsupported(f"operator {condition.op!r} on {kind} field {field!r}")
    have = FIELDS[field].read(subject)
    results = [_test(kind, meaning, have, want) for want in condition.values]
    negative = meaning.startswith(("not ", "is not"))
    return all(results) if negative else any(results)


def evaluate(rpn: list[object], element: ET.Element, items: Items, descendant: ET.Element | None = None) -> bool:
    """Run the RPN program for one item (and one of its descendants). An empty program matches everything."""
    stack: list[bool] = []
    for token in rpn:
        if isinstance(token, Condition):
            stack.append(condition_holds(token, element, items, descendant))
        else:
            right, left = stack.pop(), stack.pop()
            stack.append(left and right if token == "and" else left or right)
    return stack[0] if stack else True


def matches(rpn: list[object], element: ET.Element, items: Items) -> bool:
    """Does a listed item match? When the filter names a level below the item (`episode.resolution` on a show),
    the item matches when one of its descendants of the deepest level named makes the whole expression true,
    the way a join of the item with its episodes answers it (docs/PLEX-PROTOCOL.md, "Filters across levels")."""
    own = element.get("type", "movie")
    levels = [c.field.split(".", 1)[0] for c in rpn if isinstance(c, Condition) and "." in c.field]
    deeper = [level for level in levels if _deeper(level, own)]
    if not deeper:
        return evaluate(rpn, element, items)
    level = max(deeper, key=_LIBTYPE_ORDER.index)
    descendants = items.descendants(element, level)
    if descendants is None:
        raise Unsupported(f"{level} filters on a {own} whose {level}s this proxy does not hold")
    return any(evaluate(rpn, element, items, descendant) for descendant in descendants)


def select(params: Sequence[tuple[str, str]], elements: list[ET.Element], items: Items) -> list[ET.Element]:
    """The elements a Plex listing with these parameters would return. Raises `Unsupported`."""
    rpn = to_rpn(params)
    return [e for e in elements if matches(rpn, e, items)]
