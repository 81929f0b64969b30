"""A dry run keeps each item compactly (proxy/state.compact): only what the filter fields declare they read
(plex/filters.FIELDS) and what the proxy itself reads (state.PROXY_READS). Every filter field — on the item, its
show or season, or its episodes — every sort, view and filter-choice list answers the same on the compact items as
on the full ones, so a field that reads what it did not declare fails here, not silently in a dry run."""
from __future__ import annotations

import copy
import xml.etree.ElementTree as ET

import pytest

from kometa_preview.plex import filters
from kometa_preview.proxy import state
from kometa_preview.proxy.mock_library import LOCAL_CHOICES, SORTS, choice_values, in_view, sort_elements
from kometa_preview.sandbox import generate
from kometa_preview.sandbox.views import item_element

LABELS = ("Overlay", "Favourite", "4K Remaster")
MISSING = {"string": "zz-nothing", "integer": "1234", "tag": "zz-nothing", "boolean": "1"}


def _library() -> dict[str, ET.Element]:
    """Every item of a sample library as `/library/metadata/{rk}` returns it (streams, Guids, locations…), with the
    attributes the sample server leaves out varied too: labels, views, resume points, durations."""
    library = generate(seed=3, movies=30, shows=2, seasons=2, episodes=3)
    for number, item in enumerate(library.items.values()):
        item.labels = [LABELS[n] for n in range(len(LABELS)) if (number >> n) & 1]
        item.view_count = number % 3
    full = {}
    for number, item in enumerate(library.items.values()):
        element = item_element(library, item, full=True, guids=True)
        if item.view_count:
            element.set("lastViewedAt", str(1_700_000_000 + number * 60))
        if number % 4 == 1:
            element.set("viewOffset", str(number * 1000))
        element.set("duration", str(5_400_000 - number * 7_000))
        full[element.get("ratingKey")] = element
    return full


FULL = _library()
COMPACT = {key: state.compact(copy.deepcopy(element)) for key, element in FULL.items()}


def _descendants(pool: dict[str, ET.Element]):
    def descendants(element: ET.Element, libtype: str) -> list[ET.Element]:
        key = element.get("ratingKey")
        return [e for e in pool.values() if e.get("type") == libtype
                and key in (e.get("parentRatingKey"), e.get("grandparentRatingKey"))]
    return descendants


ITEMS = {"full": filters.Items(FULL.get, _descendants(FULL)), "compact": filters.Items(COMPACT.get,
                                                                                      _descendants(COMPACT))}


def _outcome(condition: filters.Condition, key: str, world: str) -> bool | str:
    element = (FULL if world == "full" else COMPACT)[key]
    try:
        return filters.matches([condition], element, ITEMS[world])
    except filters.Unsupported:
        return "unsupported"


def _values(name: str) -> list[str]:
    """Values of the field some item has (ids and titles of tags), a prefix of one, and one no item has."""
    field = filters.FIELDS[name]
    found: list[str] = []
    for element in FULL.values():
        try:
            read = field.read(element)
        except filters.Unsupported:
            continue
        found += [str(part) for value in read for part in (value if isinstance(value, tuple) else (value,))]
    distinct = list(dict.fromkeys(found))[:4]
    if field.kind == "boolean":
        return ["1", "0"]
    return distinct + [v[:2] for v in distinct[:1] if field.kind == "string"] + [MISSING[field.kind]]


def test_a_compact_item_keeps_only_what_is_read():
    full, small = FULL["1001"], COMPACT["1001"]
    assert set(small.attrib) == set(full.attrib) & state.COMPACT_READS.attributes
    assert "summary" in full.attrib and "summary" not in small.attrib
    assert full.find("Guid") is not None and small.find("Guid") is None and small.find("Location") is None
    assert full.find("Media/Part").get("file") and small.find("Media/Part").get("file") is None


@pytest.mark.parametrize("name", sorted(filters.FIELDS))
def test_every_filter_field_answers_the_same_on_a_compact_item(name):
    kind = filters.FIELDS[name].kind
    answers = []
    for prefix in ("", "show.", "season.", "episode."):
        for op in filters.OPERATORS[kind]:
            for value in _values(name):
                condition = filters.Condition(prefix + name, op, (value,))
                for key in FULL:
                    full = _outcome(condition, key, "full")
                    assert _outcome(condition, key, "compact") == full, (condition, key)
                    answers.append(full)
    assert {True, False} <= set(answers), name  # the field was really told apart on these items


@pytest.mark.parametrize("name", sorted(SORTS))
def test_every_local_sort_orders_compact_items_the_same(name):
    assert len({SORTS[name](element) for element in FULL.values()}) > 1, name  # the items really differ
    for direction in ("asc", "desc"):
        order = [e.get("ratingKey") for e in sort_elements(list(FULL.values()), f"{name}:{direction}")]
        assert [e.get("ratingKey") for e in sort_elements(list(COMPACT.values()), f"{name}:{direction}")] == order


@pytest.mark.parametrize("view", ["unwatched", "recentlyViewed", "onDeck"])
def test_every_section_view_holds_the_same_compact_items(view):
    held = {key: in_view(view, element) for key, element in FULL.items()}
    assert {key: in_view(view, element) for key, element in COMPACT.items()} == held
    assert set(held.values()) == {True, False}


@pytest.mark.parametrize("field", LOCAL_CHOICES)
def test_every_local_choice_list_is_the_same_from_compact_items(field):
    for libtype in ("movie", "show", "season", "episode"):
        keys = [key for key, element in FULL.items() if element.get("type") == libtype]
        full = choice_values(field, [FULL[key] for key in keys])
        assert choice_values(field, [COMPACT[key] for key in keys]) == full
    assert choice_values(field, FULL.values()), field
