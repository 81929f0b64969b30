"""Where an overlay sits, written back into the YAML that defines it: the watch page's editor moves a badge by
(dx, dy) canvas pixels, and this module says which keys of which file change, and to what.

Kometa places an overlay with `horizontal_offset`/`horizontal_align` and `vertical_offset`/`vertical_align`
(modules/overlay.py, `get_coordinates`): `left`/`top` count from the near edge, `right`/`bottom` from the far edge
(a move right lowers the offset), `center` from the middle; `"n%"` is n percent of the canvas (whole percents
only), and an offset below 0 is refused unless the alignment is `center`. So a move is written as:

- for an overlay of a `default:` entry: that entry's `template_variables` `horizontal_offset`/`vertical_offset`
  (the defaults' templates add their own constants to them, e.g. +30 for a dovetail badge, so a shift of the
  variable is the same shift of the badge). A per-key variable (`horizontal_offset_4k`) is written only when the
  user set one for this overlay's key: it wins over the general one, which would then not move this overlay;
- for an overlay of the user's own `file:`: that overlay's own `overlay:` offsets.

The text is edited in place, not re-emitted: ruamel.yaml's round-trip parser (Kometa's own YAML library) says
where each key and value stands, and only those characters change (a new key is one new line, or one new
`key: value` inside a flow mapping), so comments, quoting, spacing and line widths stay the user's byte for byte.
Every edit is then parsed again and compared with what was meant: the new document must equal the old one with
exactly the planned keys set, and no key but offsets and alignments may differ (`WRITABLE`) — or nothing is
written. Pure: text in, text out; the caller reads and writes the files.
"""
from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

#: The only keys a move may write (a `template_variables` mapping may be added to hold them).
WRITABLE = re.compile(r"(horizontal|vertical)_(offset|align)(_[A-Za-z0-9_.+-]+)?")
CONTAINER = "template_variables"
AXES = ("horizontal", "vertical")
Path = tuple[str | int, ...]


class PlacementError(ValueError):
    """The move cannot be written (the offsets come from a template, the file does not parse…). One line."""


class NotWritable(PlacementError):
    """The edit would change a key other than offsets and alignments."""


@dataclass(frozen=True)
class Change:
    """One key written: where (`libraries.Movies.overlay_files[0].template_variables.horizontal_offset`)."""
    key: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Edit:
    """A planned write: the file's new text, the keys it changes, and what the user should know (a clamp…)."""
    text: str
    changes: tuple[Change, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """One axis of an overlay's placement as it stands: which variable holds its offset, its value, its alignment."""
    key: str
    value: int | str | None
    align: str | None


# --- Kometa's arithmetic ------------------------------------------------------------------------------------------


def shifted(value: int | str | None, align: str | None, delta: int, size: int) -> tuple[int | str, str | None]:
    """The offset that moves an overlay by `delta` pixels along a canvas side of `size` pixels, the way
    `get_coordinates` reads it back; and a note when Kometa's limits changed the move (0 or more, whole percents)."""
    far = align in ("right", "bottom")
    step = -delta if far else delta
    if isinstance(value, str) and value.strip().endswith("%"):
        percent = int(float(value.strip()[:-1]))
        low, high = (-50, 50) if align == "center" else (0, 100)
        wanted = percent + round(step * 100 / size)
        new: int | str = f"{min(max(wanted, low), high)}%"
        exact = (wanted - percent) * size / 100 == step and low <= wanted <= high
        return new, None if exact else f"{value} is a share of the canvas: written as {new} (whole percents only)"
    current = _number(value)
    wanted = current + step
    if align != "center" and wanted < 0:
        return 0, f"an offset below 0 is refused by Kometa unless centred: written as 0 ({wanted} asked)"
    return wanted, None


def _number(value: int | str | None) -> int:
    if value is None:
        return 0
    try:
        return int(float(str(value).strip()))
    except ValueError:
        raise PlacementError(f"the offset {value!r} is no number this editor can shift (a template variable?): "
                             "set it to a number first") from None


# --- the YAML, read with positions and edited in place ----------------------------------------------------------


def _round_trip(text: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise PlacementError(f"the file does not parse ({exc.__class__.__name__})") from None


def _plain(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _at(document: Any, path: Path) -> Any:
    node = document
    for step in path:
        if isinstance(step, int):
            node = node[step] if isinstance(node, list) and step < len(node) else None
        else:
            node = node.get(step) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def _lines(text: str) -> list[str]:
    """The lines as YAML counts them (`\n`, `\r\n`, `\r`), each with its own line break."""
    return [line for line in re.split(r"(?<=\r\n)|(?<=\n)|(?<=\r)(?!\n)", text) if line]


def _index(text: str, line: int, col: int) -> int:
    lines = _lines(text)
    return sum(len(lines[n]) for n in range(min(line, len(lines)))) + col


_FLOW_SCALAR = re.compile(r"""'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,}\]\n#]*[^,}\]\n#\s]""")
_BLOCK_SCALAR = re.compile(r"""'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|.*?(?=\s+#|\s*$)""", re.M)


def _scalar_text(value: Any, like: str = "") -> str:
    """A value as YAML text: a number bare, a percent or a word quoted the way the value it replaces was."""
    if isinstance(value, int):
        return str(value)
    quote = like[:1] if like[:1] in ("'", '"') else '"'
    return f"{quote}{value}{quote}"


def _set_existing(text: str, mapping: CommentedMap, key: str, value: Any) -> str:
    line, col = mapping.lc.value(key)
    start = _index(text, line, col)
    pattern = _FLOW_SCALAR if mapping.fa.flow_style() else _BLOCK_SCALAR
    match = pattern.match(text, start)
    if match is None or not match.group(0) or isinstance(mapping[key], (dict, list)):
        raise PlacementError(f"{key} is not a plain value here")
    return text[:start] + _scalar_text(value, match.group(0)) + text[match.end():]


def _flow(values: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_flow(v) if isinstance(v, dict) else _scalar_text(v)}"
                           for k, v in values.items()) + "}"


def _block(values: dict[str, Any], indent: int) -> str:
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(f"{' ' * indent}{key}:\n{_block(value, indent + 2)}")
        else:
            lines.append(f"{' ' * indent}{key}: {_scalar_text(value)}\n")
    return "".join(lines)


def _add(text: str, mapping: CommentedMap, start: tuple[int, int], values: dict[str, Any]) -> str:
    """`values` added at the end of `mapping` (which begins at `start`): one `key: value` inside a flow mapping,
    or new lines after the mapping's last line, at its keys' indentation."""
    if mapping.fa.flow_style():
        opening = _index(text, *start)
        closing = _closing(text, opening)
        inner = _flow(values)[1:-1]
        separator = ", " if text[opening + 1:closing].strip() else ""
        return text[:closing].rstrip() + separator + inner + text[closing:] if separator else \
            text[:opening + 1] + inner + text[closing:]
    first = next(iter(mapping))
    line, col = mapping.lc.key(first)
    lines = _lines(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    last = line
    for n in range(line + 1, len(lines)):
        stripped = lines[n].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[n]) - len(lines[n].lstrip(" ")) < col or stripped in ("---", "..."):
            break
        last = n
    if not lines[last].endswith(("\n", "\r")):
        lines[last] += newline
    lines.insert(last + 1, _block(values, col).replace("\n", newline))
    return "".join(lines)


def _closing(text: str, opening: int) -> int:
    """The `}` that closes the flow mapping opened at `opening` (quotes and nested brackets skipped)."""
    depth, n, quote = 0, opening, ""
    while n < len(text):
        char = text[n]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return n
        n += 1
    raise PlacementError("a flow mapping is not closed")


def _start(document: Any, path: Path) -> tuple[int, int]:
    parent = _at(document, path[:-1])
    if isinstance(parent, CommentedSeq):
        return parent.lc.item(path[-1])
    return parent.lc.value(path[-1])


def write(text: str, path: Path, values: dict[str, Any]) -> str:
    """`text` with `values` set in the mapping at `path` (made, with the mappings it needs, where missing); every
    other character as it was. Checked: the result parses to the old document with exactly these values set."""
    result = text
    for key, value in values.items():
        document = _round_trip(result)
        depth = len(path)
        while depth > 0 and not isinstance(_at(document, path[:depth]), CommentedMap):
            depth -= 1
        mapping = _at(document, path[:depth]) if depth else document
        if not isinstance(mapping, CommentedMap):
            raise PlacementError("the place to write is not a mapping")
        missing = path[depth:]
        if any(isinstance(step, int) for step in missing):
            raise PlacementError("the overlay's entry is not in the file")
        nested: dict[str, Any] = {key: value}
        for step in reversed(missing):
            nested = {str(step): nested}
        name = next(iter(nested))
        if name in mapping and missing:
            raise PlacementError(f"{name} is there but empty: give it a value or remove it first")
        if name in mapping:
            result = _set_existing(result, mapping, name, value)
        else:
            start = _start(document, path[:depth]) if depth else (0, 0)
            result = _add(result, mapping, start, nested)
    _check(text, result, path, values)
    return result


def _check(old: str, new: str, path: Path, values: dict[str, Any]) -> None:
    """The edit did what it meant and nothing else: else nothing is written."""
    try:
        before, after = _plain(old), _plain(new)
    except YAMLError:
        raise PlacementError("the edited file would not parse: nothing written") from None
    expected = copy.deepcopy(before)
    node = expected
    for step in path:
        if isinstance(step, str) and isinstance(node, dict) and not isinstance(node.get(step), (dict, list)):
            node[step] = {}
        node = node[step]
    node.update(values)
    if after != expected:
        raise PlacementError("the edit would change more than the offsets: nothing written")
    stray = [k for k in differing(before, after) if not WRITABLE.fullmatch(k.rpartition(".")[2])]
    if stray:
        raise NotWritable(f"only offsets and alignments are written, not {', '.join(stray)}")


def differing(before: Any, after: Any, where: str = "") -> list[str]:
    """The dotted keys whose values differ between two documents (a mapping added: each key inside it)."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = list(dict.fromkeys([*before, *after]))
        return [k for key in keys for k in differing(before.get(key), after.get(key), f"{where}.{key}".lstrip("."))]
    if before is None and isinstance(after, dict):
        return differing({}, after, where)
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [k for n, (b, a) in enumerate(zip(before, after)) for k in differing(b, a, f"{where}[{n}]")]
    return [] if before == after else [where]


def dotted(path: Path) -> str:
    """A place in a document as the answer to a move names it: `libraries.Movies.overlay_files[0]`."""
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(".")


def dump(document: Any) -> str:
    """A document as ruamel.yaml writes it (tests build files with it)."""
    stream = io.StringIO()
    YAML(typ="rt").dump(document, stream)
    return stream.getvalue()


# --- what Kometa's defaults make of template_variables ------------------------------------------------------------


def _replace(item: Any, variables: dict[str, Any]) -> Any:
    """Kometa's `replace_var`: `<<name>>` in a key or value replaced by the variable's value."""
    for name, value in variables.items():
        if str(item) == f"<<{name}>>":
            item = value
        elif f"<<{name}>>" in str(item):
            item = str(item).replace(f"<<{name}>>", str(value))
    return item


def _passes(condition: dict[str, Any], variables: dict[str, Any], default: dict[str, Any]) -> bool:
    """One condition of a Kometa `conditionals:` entry (meta.py's rules: `.exists`, `.not`, a value or a list)."""
    known = {**default, **variables}
    for raw_key, raw_value in condition.items():
        if raw_key == "value":
            continue
        key, wanted = _replace(raw_key, known), _replace(raw_value, known)
        if key.endswith(".exists"):
            present = variables.get(key[:-7]) is not None
            if present != (str(wanted).lower() in ("true", "yes", "1")):
                return False
        elif key.endswith(".not"):
            if key[:-4] in variables and (variables[key[:-4]] in wanted if isinstance(wanted, list)
                                          else str(variables[key[:-4]]) == str(wanted)):
                return False
        elif key in known:
            if (known[key] not in wanted) if isinstance(wanted, list) else str(known[key]) != str(wanted):
                return False
        else:
            return False
    return True


def resolved(default_document: dict[str, Any], call: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """The variables a default file's overlay ends with, as far as placement needs them: the overlay's own
    `variables:`, then the file's `external_templates.template_variables` (first wins), then the user's
    (`template_variables` of the entry, then of the library: they win); its `conditionals:` decide what none set,
    in order, and its `default:` what nothing else did."""
    external = ((default_document.get("external_templates") or {}).get("template_variables") or {})
    variables = dict(call)
    for key, value in external.items():
        if key not in ("default", "conditionals") and key not in variables:
            variables[key] = value
    variables.update({k: v for k, v in user.items() if v is not None})
    default = dict(external.get("default") or {})
    for name, spec in (external.get("conditionals") or {}).items():
        if name in variables or not isinstance(spec, dict):
            continue
        for condition in spec.get("conditions") or []:
            if isinstance(condition, dict) and "value" in condition and _passes(condition, variables, default):
                variables[name] = condition["value"]
                break
        else:
            if "default" in spec:
                variables[name] = spec["default"]
    return {**{k: v for k, v in default.items() if k not in variables}, **variables}


def default_axes(default_text: str, overlay: str, user: dict[str, Any]) -> tuple[Axis, Axis]:
    """Where the offsets of `overlay` (its name in the default file's `overlays:`) come from, and their values."""
    document = _plain(default_text) or {}
    definition = ((document.get("overlays") or {}).get(overlay)) or {}
    call = definition.get("variables") or {} if isinstance(definition, dict) else {}
    key = call.get("key")
    variables = resolved(document, call, user)
    axes = []
    for axis in AXES:
        own, general = f"{axis}_offset_{key}", f"{axis}_offset"
        align = user.get(f"{axis}_align_{key}") if key is not None else None
        align = align if align is not None else variables.get(f"{axis}_align")
        if key is not None and user.get(own) is not None:
            axes.append(Axis(own, user[own], align))
        else:
            axes.append(Axis(general, variables.get(general), align))
    return axes[0], axes[1]


def _planned(text: str, path: Path, axes: tuple[Axis, Axis], delta: tuple[int, int], canvas: tuple[int, int],
             both: bool = False) -> Edit:
    """The edit that shifts each axis moved (each axis when `both`: Kometa wants an overlay's offsets together)."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    changes: list[Change] = []
    for n, current in enumerate(axes):
        if not delta[n] and not both:
            continue
        new, note = shifted(current.value, current.align, delta[n], canvas[n])
        if note:
            notes.append(f"{current.key}: {note}")
        if new != current.value:
            values[current.key] = new
            changes.append(Change(f"{dotted(path)}.{current.key}", current.value, new))
    if not values:
        return Edit(text, (), tuple(notes))
    return Edit(write(text, path, values), tuple(changes), tuple(notes))


def move_default(text: str, entry: Path, default_text: str, overlay: str, delta: tuple[int, int],
                 canvas: tuple[int, int], library_variables: dict[str, Any] | None = None) -> Edit:
    """Move `overlay` of the `default:` entry at `entry` (`("libraries", "Movies", "overlay_files", 0)`) of the
    config `text` by `delta` pixels: its `template_variables` offsets, shifted the way Kometa reads them.
    `default_text` is Kometa's own `defaults/overlays/<name>.yml`."""
    node = _at(_plain(text), entry)
    if not isinstance(node, dict):
        raise PlacementError(f"{dotted(entry)} is not an overlay_files entry of this file")
    own = node.get(CONTAINER) if isinstance(node.get(CONTAINER), dict) else {}
    user = {**(library_variables or {}), **own}
    axes = default_axes(default_text, overlay, user)
    # the value to shift is the entry's own when it has one; else what the library or the default file gives
    return _planned(text, (*entry, CONTAINER), axes, delta, canvas)


def move_own(text: str, overlay: str, delta: tuple[int, int], canvas: tuple[int, int]) -> Edit:
    """Move `overlay` of a user's overlay file (`overlays: {<overlay>: {overlay: {…}}}`) by `delta` pixels: its own
    offsets (both written: Kometa wants them together)."""
    document = _plain(text) or {}
    definition = (document.get("overlays") or {}).get(overlay) if isinstance(document, dict) else None
    attributes = definition.get("overlay") if isinstance(definition, dict) else None
    if not isinstance(attributes, dict):
        raise PlacementError(f"no overlay {overlay!r} with an `overlay:` mapping in this file")
    axes = []
    for axis in AXES:
        value = attributes.get(f"{axis}_offset")
        if isinstance(value, str) and "<<" in value:
            raise PlacementError(f"{overlay}'s {axis}_offset comes from a template variable ({value}): "
                                 "move it where that variable is set")
        axes.append(Axis(f"{axis}_offset", value, attributes.get(f"{axis}_align")))
    both = any(axis.value is None for axis in axes)
    return _planned(text, ("overlays", overlay, "overlay"), (axes[0], axes[1]), delta, canvas, both)
