"""Why (not): for one item, every overlay definition Kometa built for its library and level, whether it matched the
item, whether Kometa applied it, and why not — Kometa's own choice replayed from its log.

Whether a definition matched an item is what Kometa logged while gathering it (overlay_log.py): the items its
filters kept (`Titles Found`, logged with `--trace`, which the preview always passes), and the items Plex's search
returned (`IDs: […]`) to tell a search that missed the item from a filter that removed it. Which of the matched
overlays Kometa applied is `Overlays.compile_overlays` (modules/overlays.py, the same in 2.0 to nightly), replayed
here on the item's matched overlays in Kometa's order:
1. each overlay removes the overlays it suppresses (`suppress_overlays`, named within its own file) — over the
   list it is iterating, as Kometa does, so an overlay removed before its turn suppresses nothing;
2. in each `group`, the overlay of the highest `weight` stays (the first of equal weights), the others go;
3. an overlay of a `queue` stays in the list and is drawn at its queue's n-th position by weight (a queue draws as
   many overlays as it has positions, which Kometa does not log).
Kometa's own `Overlays Applied`/`Overlays Attempted` line is the last word: an overlay the replay and the line
disagree on is said to be unexplained rather than explained wrongly. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass

from .overlay_log import OverlayDefinition
from .overlay_names import parse

#: A library's own level per item type: Kometa builds a movie library's overlays for movies and a TV library's for
#: shows unless a definition says `builder_level`.
LIBRARY_LEVEL = {"movie": "movie", "show": "show", "season": "show", "episode": "show"}


@dataclass(frozen=True)
class Considered:
    """One definition's verdict for one item (`reason`: why it did not match, or why a match was not applied;
    for an applied overlay of a queue, its position)."""
    overlay: str
    matched: bool
    applied: bool
    reason: str | None = None


@dataclass(frozen=True)
class Item:
    """The item as Kometa's log knows it: its type, its title there, its ratingKey, and the overlays its line
    `Overlays Applied`/`Overlays Attempted` names (None: Kometa overlaid nothing on it)."""
    type: str
    title: str
    rating_key: str | None
    chosen: tuple[str, ...] | None


def _shown(name: str) -> str:
    return f"`{parse(name).display}`"


def relevant(definitions: list[OverlayDefinition], item_type: str) -> list[OverlayDefinition]:
    """The definitions of the item's level: their `builder_level`, else the library's own level."""
    own = LIBRARY_LEVEL.get(item_type, item_type)
    return [d for d in definitions if (d.level or own) == item_type]


def match(definition: OverlayDefinition, item: Item) -> tuple[bool, str | None]:
    """Whether the definition kept the item, and if not, the search or filter (or Kometa's own reason) that left it
    out."""
    if definition.skipped:
        return False, f"Kometa skipped it ({definition.skipped.removeprefix('Skipped because ')})"
    if not definition.gathered:
        return False, f"Kometa could not gather its items: {definition.error or 'its log stops before it finished'}"
    if definition.titles is not None:
        kept = item.title in definition.titles
    elif definition.found == 0:
        kept = False
    elif item.chosen and definition.kometa_name in item.chosen:
        kept = True
    else:
        return False, "Kometa's log does not list the items it found (its --trace lines are missing)"
    if kept:
        return True, None
    searched = "; ".join(definition.searches)
    if definition.ids is not None and item.rating_key is not None and item.rating_key not in definition.ids:
        return False, f"Plex's search did not return it ({searched})" if searched else "its builder did not return it"
    if definition.filters and (definition.ids is None or item.rating_key in definition.ids or not definition.searches):
        return False, f"Kometa's filters removed it ({'; '.join(definition.filters)})"
    return False, f"Plex's search did not return it ({searched})" if searched else "Kometa did not find it"


def _replay(matched: list[OverlayDefinition], everything: list[OverlayDefinition]) -> tuple[list[str], dict[str, str]]:
    """`compile_overlays` for one item: the names it keeps, and why each other matched name went."""
    by_name = {d.kometa_name: d for d in everything if d.kometa_name}
    weights: dict[str, dict[str, int]] = {}
    for definition in everything:
        group, weight = _group(definition)
        if group is not None and definition.gathered and definition.kometa_name:
            weights.setdefault(group, {})[definition.kometa_name] = weight
    names = [d.kometa_name for d in matched if d.kometa_name]
    gone: dict[str, str] = {}
    for name in names:  # Kometa removes from the list it iterates (modules/overlays.py)
        prefix = name[:len(name) - len(by_name[name].key)]
        for suppressed in (prefix + s for s in by_name[name].suppress):
            if suppressed in names:
                names.remove(suppressed)
                gone[suppressed] = f"suppressed by {_shown(name)}"
    status: dict[str, list[str]] = {}
    for name in names:
        for group, members in weights.items():
            if name in members:
                status.setdefault(group, []).append(name)
    for group, members in status.items():
        winner = members[0]
        for name in members:
            winner = name if weights[group][name] > weights[group][winner] else winner
        for name in (n for n in members if n != winner):
            names.remove(name)
            win, lose = weights[group][winner], weights[group][name]
            gone[name] = (f"lost group `{group}` to {_shown(winner)} (weight {win} > {lose})" if win > lose else
                          f"lost group `{group}` to {_shown(winner)} (the same weight {win}, and it comes first)")
    return names, gone


def _group(definition: OverlayDefinition) -> tuple[str | None, int]:
    attributes = definition.attributes or {}
    try:
        weight = int(str(attributes.get("weight")))
    except ValueError:
        return None, 0
    group = attributes.get("group")
    return (str(group) if group else None), weight


def _queued(kept: list[str], by_name: dict[str, OverlayDefinition]) -> dict[str, str]:
    """The position by weight of each kept overlay that a queue places."""
    queues: dict[str, list[tuple[int, str]]] = {}
    for name in kept:
        attributes = by_name[name].attributes or {}
        if attributes.get("queue"):
            queues.setdefault(str(attributes["queue"]), []).append((_group(by_name[name])[1], name))
    return {name: f"queue `{queue}` position {n}" for queue, members in queues.items()
            for n, (_, name) in enumerate(sorted(members, reverse=True), 1)}


def considered(definitions: list[OverlayDefinition], item: Item) -> list[Considered]:
    """Every definition of the item's library (`definitions`, in Kometa's order) and level, judged for the item."""
    mine = relevant(definitions, item.type)
    verdicts = {id(d): match(d, item) for d in mine}
    matched = [d for d in mine if verdicts[id(d)][0]]
    kept, gone = _replay(matched, definitions)
    by_name = {d.kometa_name: d for d in definitions if d.kometa_name}
    queued = _queued(kept, by_name)
    chosen = set(item.chosen) if item.chosen is not None else set()
    result = []
    for definition in mine:
        name = definition.kometa_name or definition.key
        is_match, reason = verdicts[id(definition)]
        if name in chosen:
            result.append(Considered(name, True, True, queued.get(name)))
        elif is_match:
            why = gone.get(name) or ("Kometa's log does not say why it was not applied" if item.chosen is not None
                                     else "Kometa did not overlay this item")
            result.append(Considered(name, True, False, why))
        else:
            result.append(Considered(name, False, False, reason))
    listed = {c.overlay for c in result}
    result += [Considered(name, True, True, None) for name in item.chosen or () if name not in listed]
    return result
