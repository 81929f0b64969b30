"""How the sample server answers a listing query: Plex advanced filters, `type`, `sort`.

This is the tests' oracle of what Plex answers, so it is written on its own, over the sample
library's Python objects, and never shares code with the proxy's evaluator (`kometa_preview.plex.filters`).
A query it cannot answer faithfully raises `UnsupportedQuery` (the server answers 400) instead of
guessing.

Where each rule comes from:
- operators in the parameter name (`''` contains/is, `!` not, `=` exact, `!=` exact-not, `>>` greater,
  `<<` less, `<` begins-with, `>` ends-with), comma lists and repeated parameters: plexapi 4.18
  `LibrarySection._validateFilterField` / `_manualFilters` docstrings and the Meta `<FieldType>`/`<Operator>`
  lists of a real server (docs/PLEX-PROTOCOL.md);
- `push=1`/`pop=1` groups joined by `or=1`/`and=1`: plexapi `_manualFilters` (it always brackets an
  `or` list in push/pop) and the listings real Kometa sends (docs/KOMETA-TRAFFIC.md);
- AND binds tighter than OR when a group mixes them without brackets: the server turns the terms
  into one SQL condition, and SQL's precedence is that (an assumption: clients always bracket);
- a comma list is OR for positive operators and "none of" for negative ones: Plex Web's
  "is not A, B" means neither (plexapi docs: "genre!=Action,Comedy");
- a tag matches by id or by title (case-insensitive): plexapi sends ids after looking titles up in
  the filter choices and passes an unknown title through unchanged, and Kometa sends
  `label=Overlay` by title (docs/KOMETA-TRAFFIC.md);
- `show.`/`season.`/`episode.` prefixes: the libtype being listed is the item itself, an ancestor's
  type means "the item's ancestor matches" (Plex's episode search by `show.title`), a descendant's type
  means "one of its descendants matches" (Kometa's TV overlays list shows by `episode.resolution` and
  `episode.hdr`); see `Evaluator`.
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote_plus

from .library import GENRES, Item, Library

#: Parameters that shape the answer but are not filters.
NOT_FILTERS = {"type", "sort", "limit", "group", "query", "sectionId", "checkFiles", "asyncCheckFiles",
               "asyncAugmentMetadata", "asyncRefreshLocalMediaAgent", "asyncRefreshAnalysis", "contentDirectoryID",
               "pinnedContentDirectoryID", "unwatchedLeaves", "X-Plex-Container-Start", "X-Plex-Container-Size"}
ANCESTORS = {"season": ("show",), "episode": ("season", "show")}


class UnsupportedQuery(ValueError):
    """A query this server does not evaluate; answered with 400 so no test trusts a guess."""


@dataclass(frozen=True)
class Term:
    field: str
    op: str
    values: tuple[str, ...]


def split_query(raw_query: str) -> list[tuple[str, str]]:
    """Split a raw query string into (name, value), keeping the operator that a name carries.

    `title==x` (unencoded exact match) arrives as name `title`, value `=x`; plexapi sends `title%3D=x`.
    Both mean the same, so a leading `=` in the value moves into the name.
    """
    pairs = []
    for chunk in raw_query.split("&"):
        if not chunk:
            continue
        name, _, value = chunk.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        if value.startswith("=") and re.fullmatch(r"[\w.]+!?", name):
            name, value = name + "=", value[1:]
        pairs.append((name, value))
    return pairs


def _is_filter(name: str) -> bool:
    return not (name in NOT_FILTERS or name.startswith(("include", "exclude", "X-Plex-")))


_NAME = re.compile(r"^(?P<field>[A-Za-z][\w.]*?)(?P<op>!=|!|=|>>|<<|<|>)?$")


def _term(name: str, value: str) -> Term:
    match = _NAME.match(name)
    if not match:
        raise UnsupportedQuery(f"cannot read filter parameter {name!r}")
    return Term(match["field"], match["op"] or "", tuple(value.split(",")))


def _tokens(pairs: list[tuple[str, str]]) -> list[object]:
    tokens: list[object] = []
    for name, value in pairs:
        if name in ("push", "pop", "or", "and"):
            if value != "1":
                raise UnsupportedQuery(f"{name}={value} (only {name}=1 is defined)")
            tokens.append(name)
        elif _is_filter(name):
            tokens.append(_term(name, value))
    return tokens


class _Parser:
    """Recursive descent: expr := conj ('or' conj)* ; conj := atom (['and'] atom)* ; atom := term | push expr pop."""

    def __init__(self, tokens: list[object]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> object:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> object:
        token = self.peek()
        self.pos += 1
        return token

    def expr(self) -> tuple:
        parts = [self.conj()]
        while self.peek() == "or":
            self.take()
            parts.append(self.conj())
        return ("or", parts) if len(parts) > 1 else parts[0]

    def conj(self) -> tuple:
        parts = [self.atom()]
        while self.peek() not in (None, "or", "pop"):
            if self.peek() == "and":
                self.take()
            parts.append(self.atom())
        return ("and", parts) if len(parts) > 1 else parts[0]

    def atom(self) -> tuple:
        token = self.take()
        if token == "push":
            inner = self.expr()
            if self.take() != "pop":
                raise UnsupportedQuery("push=1 without a matching pop=1")
            return inner
        if isinstance(token, Term):
            return ("term", token)
        raise UnsupportedQuery(f"unexpected {token!r} in the filter expression")


def parse_filters(pairs: list[tuple[str, str]]) -> tuple | None:
    """The filter expression of a query, or None when it has no filters."""
    tokens = _tokens(pairs)
    if not tokens:
        return None
    parser = _Parser(tokens)
    tree = parser.expr()
    if parser.pos != len(tokens):
        raise UnsupportedQuery("pop=1 without a matching push=1")
    return tree


# --- field values -----------------------------------------------------------------------------

def _tags(titles: list[str], ids: Callable[[str], int]) -> list[tuple[str, str]]:
    return [(str(ids(title)), title.lower()) for title in titles]


def _relative_time(value: str) -> float:
    """Plex date filters take epoch seconds or a relative span such as `-30d` (s, m, h, d, w, mon, y)."""
    match = re.fullmatch(r"-?(\d+)(s|m|h|d|w|mon|y)", value)
    if match:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mon": 2592000, "y": 31536000}[match[2]]
        return time.time() - int(match[1]) * unit
    if value.lstrip("-").isdigit():
        return float(value)
    raise UnsupportedQuery(f"cannot read date {value!r}")


class _Fields:
    """Reads one field of an item, typed the way Plex types it in `<Meta>`."""

    def __init__(self, library: Library) -> None:
        self.library = library

    def kind_and_values(self, item: Item, field: str) -> tuple[str, list]:
        lib = self.library
        match field:
            case "title":
                return "string", [item.title.lower()]
            case "studio":
                return "string", [item.studio.lower()]
            case "editionTitle":
                return "string", [item.edition.lower()]
            case "year":
                return "integer", [item.year]
            case "decade":
                return "integer", [item.year // 10 * 10]
            case "addedAt":
                return "date", [item.added_at]
            case "contentRating":
                return "tag", [(item.content_rating.lower(), item.content_rating.lower())]
            case "label":
                return "tag", _tags(item.labels, lib.label_id)
            case "genre":
                return "tag", [(str(GENRES[g]), g.lower()) for g in item.genres]
            case "resolution":
                return "tag", [(m.resolution, m.resolution) for m in item.media]
            case "audioCodec":
                return "tag", [(m.audio_codec, m.audio_codec) for m in item.media]
            case "hdr":
                return "boolean", [any(m.hdr for m in item.media)]
            case "dovi":
                return "boolean", [any(m.dovi for m in item.media)]
            case "unwatched":
                return "boolean", [item.view_count == 0]
        raise UnsupportedQuery(f"filter field {field!r} is not supported by the sample server")


def _match_one(kind: str, op: str, have: list, want: str) -> bool:
    """Does one wanted value match, for a positive operator (negation is applied by the caller)?"""
    if kind == "tag":
        wanted = want.lower()
        return any(wanted in (tag_id, title) for tag_id, title in have)
    if kind == "string":
        wanted = want.lower()
        tests = {"": lambda h: wanted in h, "=": lambda h: h == wanted,
                 "<": lambda h: h.startswith(wanted), ">": lambda h: h.endswith(wanted)}
        return any(tests[op](h) for h in have)
    if kind == "integer":
        try:
            number = int(want)
        except ValueError as exc:
            raise UnsupportedQuery(f"{want!r} is not an integer") from exc
        tests = {"": lambda h: h == number, "=": lambda h: h == number,
                 ">>": lambda h: h > number, "<<": lambda h: h < number}
        return any(tests[op](h) for h in have)
    if kind == "date":
        moment = _relative_time(want)
        return any((h > moment) if op == ">>" else (h < moment) for h in have)
    if kind == "boolean":
        return any(bool(h) == (want not in ("0", "false")) for h in have)
    raise AssertionError(kind)


_ALLOWED_OPS = {
    "tag": {"": False, "!": True, "=": False, "!=": True},
    "string": {"": False, "!": True, "=": False, "!=": True, "<": False, ">": False},
    "integer": {"": False, "=": False, "!": True, "!=": True, ">>": False, "<<": False},
    "date": {">>": False, "<<": False},
    "boolean": {"": False, "=": False, "!": True, "!=": True},
}
#: A negative string operator means "does not contain" (`!`) or "is not" (`!=`).
_POSITIVE_OF = {"!": "", "!=": "="}


class Evaluator:
    """Evaluates a parsed filter tree for one listed libtype.

    A prefix naming a level above the listed type (`show.title` on episodes) reads that ancestor. A prefix
    naming a level below it (`episode.resolution` on shows, as Kometa's TV overlays ask) makes the listing a
    search over descendants: an item matches when at least one of its descendants of that level makes the
    whole expression true, ancestors' fields read from that descendant's line — the way a SQL join of the item
    with its episodes answers it (docs/PLEX-PROTOCOL.md, "Filters across levels").
    """

    def __init__(self, library: Library, libtype: str) -> None:
        self.library = library
        self.libtype = libtype
        self.fields = _Fields(library)

    def _subject(self, item: Item, field: str, descendant: Item | None) -> tuple[Item | None, str]:
        if "." not in field:
            return item, field
        prefix, _, bare = field.partition(".")
        if prefix == self.libtype:
            return item, bare
        if prefix in ANCESTORS.get(self.libtype, ()):
            return self._ancestor(item, prefix), bare
        if self.libtype in ANCESTORS.get(prefix, ()):
            if descendant is None:
                return None, bare
            return (descendant if descendant.type == prefix else self._ancestor(descendant, prefix)), bare
        raise UnsupportedQuery(f"filter {field!r} on a {self.libtype} listing is not supported")

    def _ancestor(self, item: Item, libtype: str) -> Item | None:
        ancestor: Item | None = item
        while ancestor is not None and ancestor.type != libtype:
            ancestor = self.library.items.get(ancestor.parent_key) if ancestor.parent_key else None
        return ancestor

    def _descendants(self, item: Item, libtype: str) -> list[Item]:
        found, frontier = [], [item]
        while frontier:
            children = [self.library.items[k] for node in frontier for k in node.children if k in self.library.items]
            found += [child for child in children if child.type == libtype]
            frontier = [child for child in children if child.type != libtype]
        return found

    def term(self, item: Item, term: Term, descendant: Item | None = None) -> bool:
        subject, field = self._subject(item, term.field, descendant)
        if subject is None:
            return False
        kind, have = self.fields.kind_and_values(subject, field)
        negated = _ALLOWED_OPS[kind].get(term.op)
        if negated is None:
            raise UnsupportedQuery(f"operator {term.op!r} does not apply to {kind} field {field!r}")
        op = _POSITIVE_OF.get(term.op, term.op) if negated else term.op
        if kind != "string":
            op = "" if op == "=" else op
        hits = [_match_one(kind, op, have, want) for want in term.values]
        return not any(hits) if negated else any(hits)

    def _deepest_level(self, tree: tuple | None) -> str | None:
        """The lowest level below the listed type that the expression names (`episode` for `episode.hdr`)."""
        if tree is None:
            return None
        kind, body = tree
        if kind == "term":
            prefix = body.field.partition(".")[0] if "." in body.field else None
            return prefix if prefix and self.libtype in ANCESTORS.get(prefix, ()) else None
        levels = [level for sub in body if (level := self._deepest_level(sub))]
        return max(levels, key=lambda level: len(ANCESTORS.get(level, ()))) if levels else None

    def _holds(self, item: Item, tree: tuple, descendant: Item | None) -> bool:
        kind, body = tree
        if kind == "term":
            return self.term(item, body, descendant)
        if kind == "and":
            return all(self._holds(item, sub, descendant) for sub in body)
        return any(self._holds(item, sub, descendant) for sub in body)

    def matches(self, item: Item, tree: tuple | None) -> bool:
        if tree is None:
            return True
        level = self._deepest_level(tree)
        if level is None:
            return self._holds(item, tree, None)
        return any(self._holds(item, tree, d) for d in self._descendants(item, level))


_SORTS: dict[str, Callable[[Item], object]] = {
    "titleSort": lambda i: i.title_sort, "title": lambda i: i.title.lower(), "addedAt": lambda i: i.added_at,
    "year": lambda i: i.year, "originallyAvailableAt": lambda i: i.year, "index": lambda i: i.index,
    "ratingKey": lambda i: i.rating_key, "random": lambda i: i.rating_key,
}


def sort_items(items: list[Item], sort: str | None) -> list[Item]:
    """Plex's default order is titleSort; ties fall back to ratingKey so paging is stable."""
    ordered = sorted(items, key=lambda i: (i.title_sort, i.rating_key))
    if not sort:
        return ordered
    for spec in reversed(sort.split(",")):
        field, _, direction = spec.partition(":")
        prefix, dot, bare = field.partition(".")
        if dot and prefix in ("movie", "show", "season", "episode"):
            field = bare
        if field not in _SORTS:
            raise UnsupportedQuery(f"sort field {field!r} is not supported by the sample server")
        ordered.sort(key=_SORTS[field], reverse=direction == "desc")
    return ordered
