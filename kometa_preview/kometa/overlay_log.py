"""Each overlay definition as Kometa's own log states it: its final attributes, how it looked for items, which
items it kept, and why it stopped — the evidence for where an overlay is drawn (overlay_boxes.py) and why it was or
was not applied to an item (overlay_choice.py).

Kometa (2.0 to nightly) builds each definition of a library's overlay files in order (modules/overlays.py,
`compile_overlays`), and meta.log says, per definition:
- `<key> Overlay in <Library>` (a separator), then `Validating Method: builder_level` / `Value: episode` (TV and
  music libraries), `Validating Method: suppress_overlays` / `Value: …`, `Validating Method: overlay` / `Value: {…}`
  (the overlay's attributes after templates and conditionals: offsets, alignments, back_*, font, image…), or
  `Skipped because …` when its run_definition ruled it out, or an error that stopped it;
- `Collection Filter <filter>: <value>` for each filter, `Processing Plex Movie Search` with the search on
  continuation lines, `N IDs Found` (DEBUG) and, with Kometa's `--trace`, `IDs: [(1081, 'ratingKey'), …]` (what the
  search returned) and, after `N Items found for Overlay File (n) <key>`, `Titles Found: [...]` (what the filters
  kept, by the title Kometa gives items in its log);
- `Loading Overlay File <n> <Kind>: <value>` after `Connecting to <Library> Library...`: which file is `(n)`.
Pure: `Line`s in (log_line.py, made by log.py), definitions out.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from .log_line import Line
from .run_config import OverlaySource

_DEFINITION = re.compile(r"^(?P<key>.+) Overlay in (?P<library>.+)$")
_LIBRARY_OVERLAYS = re.compile(r"^(?P<library>.+) Library Overlays$")
_CONNECTING = re.compile(r"^Connecting to (?P<library>.+) Library\.\.\.$")
_LOADING = re.compile(r"^Loading Overlay File (?P<n>\d+) (?P<kind>[A-Za-z]+): (?P<value>.+)$")
_FOUND = re.compile(r"^(?:(?P<count>\d+)|No) Items found for (?P<name>Overlay File \((?P<n>\d+)\) (?P<key>.+))$")
_METHOD = re.compile(r"^Validating Method: (?P<method>\w+)$")
_FILTER = re.compile(r"^Collection Filter (?P<filter>.+)$")
_IDS_FOUND = re.compile(r"^(?P<count>\d+) IDs Found$")
_SEARCH_NOISE = re.compile(r"^(Sort By:.*|Filter:|Match (all|any) of the following:)$")
_OPERATION = re.compile(r"^Overlay Operation for the (?P<library>.+) Library$")
#: The methods whose `Value:` line is kept.
_KEPT = ("overlay", "suppress_overlays", "builder_level")
#: How every line read here starts: a default overlay file logs ~50,000 lines, most of them its templates'
#: conditionals, and these tests keep them from the other expressions.
_STARTS = ("Connecting to ", "Loading Overlay File ", "Validating Method: ", "Value: ", "Skipped because ",
           "Collection Filter ", "Processing Plex ", "IDs: ", "Titles Found: ", "Overlay Operation for the ", "=",
           "Run Command: ")


@dataclass
class OverlayDefinition:
    """One definition of an overlay file, as Kometa built it for one library."""
    key: str
    library: str
    #: Kometa's name (`Overlay File (0) 4K-DV`); None when its log never gave it (a definition it skipped or stopped).
    kometa_name: str | None = None
    #: `builder_level` when the definition set one (None: the library's own level: movie, show, artist).
    level: str | None = None
    #: The overlay's attributes after templates (`Value: {…}` of `Validating Method: overlay`), None if not logged.
    attributes: dict[str, Any] | None = None
    #: The overlays it suppresses, as Kometa names them within its file (without `Overlay File (n) `).
    suppress: list[str] = field(default_factory=list)
    #: Its Plex searches in words (`Resolution is 4K`) and its filters (`filepath.regex: ['(?i)…']`).
    searches: list[str] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    #: What its searches returned (ratingKeys; `--trace`), None when Kometa did not log it.
    ids: set[str] | None = None
    #: How many ids its builders gave before filters (`N IDs Found`).
    id_count: int = 0
    #: The items it kept, as Kometa titles them (`--trace`: `Titles Found`), None when not logged.
    titles: list[str] | None = None
    #: `N Items found` (0: `No Items found`), None when Kometa never got that far.
    found: int | None = None
    #: Kometa's `Skipped because …` (its run_definition ruled it out for this library).
    skipped: str | None = None
    #: The first error Kometa logged for it.
    error: str | None = None

    @property
    def gathered(self) -> bool:
        """Whether Kometa finished gathering its items (only such definitions take part in its choice per item)."""
        return self.found is not None


@dataclass
class OverlayLog:
    """Every definition Kometa built, per library in order, and each library's overlay files by Kometa's number."""
    definitions: list[OverlayDefinition] = field(default_factory=list)
    files: dict[str, list[OverlaySource]] = field(default_factory=dict)
    #: Kometa's folder, from its `Run Command:` line (its defaults' images and its fonts are there).
    kometa_folder: str | None = None

    def of_library(self, library: str | None) -> list[OverlayDefinition]:
        return [d for d in self.definitions if d.library == library]

    def named(self, library: str | None) -> dict[str, OverlayDefinition]:
        """A library's definitions by Kometa's name."""
        return {d.kometa_name: d for d in self.of_library(library) if d.kometa_name}


def _value(text: str) -> Any:
    """A Python literal Kometa logged with `Value: …` (a dict, list or scalar), else the text itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _listed(value: Any) -> list[str]:
    """Kometa's `util.get_list`: a list as it is, text split at commas."""
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).split(",") if part.strip()]


class _Reader:
    """meta.log walked once: which library's files load, which definition is being built, what it says."""

    def __init__(self) -> None:
        self.log = OverlayLog()
        self.library: str | None = None        # the library whose files load, or whose overlays are compiled
        self.current: OverlayDefinition | None = None
        self.method: str | None = None         # the `Validating Method:` whose `Value:` comes next
        self.search: list[str] | None = None   # the search being described on continuation lines

    def feed(self, line: Line) -> None:
        text = line.text
        if line.continued and self.search is not None:
            if text and not _SEARCH_NOISE.match(text):
                self.search.append(text)
            return
        self._close_search()
        if not (line.is_error or text.startswith(_STARTS) or " Overlay in " in text or "Items found for " in text
                or text.endswith((" Library Overlays", " IDs Found"))):
            return
        text = text.strip("= ")
        if self._library_line(text):
            return
        if (match := _DEFINITION.match(text)) and match["library"] == self.library:
            self.current = OverlayDefinition(match["key"], match["library"])
            self.log.definitions.append(self.current)
        elif self.current is not None:
            self._definition_line(line, text)

    def _library_line(self, text: str) -> bool:
        """The lines that say which library Kometa is on (and where Kometa is); True when `text` was one."""
        if text.startswith("Run Command: ") and self.log.kometa_folder is None:
            command = text[len("Run Command: "):].split(" --", 1)[0].strip()
            self.log.kometa_folder = command.rsplit("/", 1)[0] if command.startswith("/") else None
        elif (match := _CONNECTING.match(text)) is not None:
            self.library = match["library"]
        elif (match := _LOADING.match(text)) is not None and self.library is not None:
            files = self.log.files.setdefault(self.library, [])
            kind = match["kind"].lower()
            files.append(OverlaySource(self.library, "default" if kind == "pmm" else kind, match["value"],
                                       f"libraries.{self.library}.overlay_files[{match['n']}].{kind}"))
        elif (match := _LIBRARY_OVERLAYS.match(text)) is not None and not text.startswith("Finished "):
            self.library, self.current = match["library"], None
        elif _OPERATION.match(text) is not None:
            self.current = None
        else:
            return False
        return True

    def _definition_line(self, line: Line, text: str) -> None:
        definition = self.current
        assert definition is not None
        if (match := _METHOD.match(text)) is not None:
            self.method = match["method"] if match["method"] in _KEPT else None
        elif text.startswith("Value: ") and self.method is not None:
            self._value(definition, self.method, _value(text[len("Value: "):]))
            self.method = None
        elif text.startswith("Skipped because "):
            definition.skipped = definition.skipped or text
        elif (match := _FILTER.match(text)) is not None:
            definition.filters.append(match["filter"])
        elif text.startswith("Processing Plex "):
            self.search = []
        elif (match := _IDS_FOUND.match(text)) is not None:
            definition.id_count += int(match["count"])
        elif text.startswith("IDs: "):
            ids = _value(text[len("IDs: "):])
            found = {str(i[0]) for i in ids if isinstance(i, tuple) and len(i) == 2 and i[1] == "ratingKey"} \
                if isinstance(ids, list) else set()
            definition.ids = (definition.ids or set()) | found
        elif (match := _FOUND.match(text)) is not None and match["key"] == definition.key:
            definition.kometa_name, definition.found = match["name"], int(match["count"] or 0)
            definition.titles = [] if definition.found == 0 else definition.titles
        elif text.startswith("Titles Found: "):
            titles = _value(text[len("Titles Found: "):])
            definition.titles = [str(t) for t in titles] if isinstance(titles, list) else definition.titles
        elif line.is_error and not line.continued:
            definition.error = definition.error or text

    def _value(self, definition: OverlayDefinition, method: str, value: Any) -> None:
        if method == "overlay":
            definition.attributes = value if isinstance(value, dict) else {"name": str(value)}
        elif method == "suppress_overlays":
            definition.suppress = _listed(value)
        elif isinstance(value, str) and value:
            definition.level = value.lower()

    def _close_search(self) -> None:
        if self.search is not None and self.current is not None:
            self.current.searches.append("; ".join(self.search) or "every item")
        self.search = None


def read(lines: list[Line]) -> OverlayLog:
    """The overlay definitions of a run's log (`log.file_lines` of meta.log), with the names Kometa never logged
    worked out from their neighbours (`_name_the_rest`)."""
    reader = _Reader()
    for line in lines:
        reader.feed(line)
    reader._close_search()
    for library in dict.fromkeys(d.library for d in reader.log.definitions):
        _name_the_rest(reader.log.of_library(library), len(reader.log.files.get(library, [])))
        _level_the_skipped(reader.log.of_library(library))
    return reader.log


_NUMBER = re.compile(r"^Overlay File \((\d+)\) ")


def _name_the_rest(definitions: list[OverlayDefinition], files: int) -> None:
    """A definition Kometa skipped or stopped is never named in its log; its file is the one of the named definitions
    around it when they agree (definitions are built file by file), or the only file there is. Otherwise it keeps
    its key alone, which overlay_names reads as a name without a file."""
    numbers = [int(m[1]) if d.kometa_name and (m := _NUMBER.match(d.kometa_name)) else None for d in definitions]
    for n, definition in enumerate(definitions):
        if definition.kometa_name:
            continue
        before = next((x for x in reversed(numbers[:n]) if x is not None), 0)
        after = next((x for x in numbers[n + 1:] if x is not None), files - 1 if files else None)
        if files == 1 or before == after:
            definition.kometa_name = f"Overlay File ({before}) {definition.key}"
        else:
            definition.kometa_name = definition.key


def _level_the_skipped(definitions: list[OverlayDefinition]) -> None:
    """A definition Kometa skipped never logged its `builder_level` (Kometa reads it after `run_definition`): it takes
    the level the other definitions of its file logged, when they agree (a default file's level is its template
    variable, the same for all of them)."""
    levels: dict[str, set[str | None]] = {}
    for definition in definitions:
        if not definition.skipped and definition.kometa_name and (match := _NUMBER.match(definition.kometa_name)):
            levels.setdefault(match[1], set()).add(definition.level)
    for definition in definitions:
        match = _NUMBER.match(definition.kometa_name or "") if definition.skipped else None
        if match is not None and len(known := levels.get(match[1], set())) == 1:
            definition.level = next(iter(known))
