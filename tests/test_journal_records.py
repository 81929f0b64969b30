"""The journal's two sides name each field once: the proxy writes `events.Record`s, the render reads the same
dataclasses back, and a line carrying a field its record does not declare fails a strict read (the tests read
strictly; tests/conftest.py)."""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing

import pytest

from kometa_preview.common import events
from kometa_preview.common.events import (
    RECORD_TYPES,
    STRICT_ENV,
    Event,
    ItemEvent,
    Record,
    TargetSeen,
    UnknownField,
    parse,
)
from kometa_preview.proxy.journal import Journal

SAMPLES: dict[type, object] = {str: "text", int: 7, float: 1.5, bool: True, list: [{"title": "x"}],
                               dict: {"MOCK_LIST": 2}}


def _sample(hint: object) -> object:
    """A value of the field's type that is not its default."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return SAMPLES[typing.get_origin(hint) or hint]


def _filled(kind: type[Record], event: Event) -> Record:
    hints = typing.get_type_hints(kind)
    return kind(event=event, **{f.name: _sample(hints[f.name]) for f in dataclasses.fields(kind)
                                if f.name not in ("t", "event")})


def _round_trip(tmp_path, record: Record) -> Record:
    journal = Journal(tmp_path / "journal.jsonl")
    journal.write(record)
    journal.close()
    (line,) = events.read(tmp_path / "journal.jsonl")
    (tmp_path / "journal.jsonl").unlink()
    return parse(line, strict=True)


@pytest.mark.parametrize("event", sorted(RECORD_TYPES))
def test_every_record_reads_back_as_written(event, tmp_path):
    kind = RECORD_TYPES[event]
    for record in (_filled(kind, event), kind(event=event)):
        read = _round_trip(tmp_path, record)
        assert type(read) is kind and read.t > 0
        assert dataclasses.replace(read, t=0.0) == record


def test_a_field_no_record_declares_fails_a_strict_read_only():
    line = {"t": 1, "event": "TARGET", "target": "m", "ratingkey": "1001"}  # a typo on the writing side
    with pytest.raises(UnknownField, match="ratingkey"):
        parse(line, strict=True)
    tolerant = parse(line, strict=False)  # the render, reading a newer proxy's journal
    assert isinstance(tolerant, TargetSeen) and tolerant.target == "m" and tolerant.rating_key == ""
    assert os.environ[STRICT_ENV] == "1"
    with pytest.raises(UnknownField):
        parse(line)  # the tests' default
    diagnostic = parse({"t": 1, "event": "PREFETCH", "targets": 3, "anything": "goes"})
    assert type(diagnostic) is Record and diagnostic.event is Event.PREFETCH


def test_the_writer_takes_its_events_record_and_free_form_fields_only_for_diagnostics(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(TypeError):
        journal.write(ItemEvent(event=Event.TARGET, rating_key="1"))  # TARGET's record is TargetSeen
    with pytest.raises(TypeError):
        journal.write(Event.TARGET)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        journal.note(Event.TARGET, target="m")  # an event with a record is never written free-form
    with pytest.raises(TypeError):
        journal.note("PREFETCH", targets=1)  # type: ignore[arg-type]
    journal.write(TargetSeen(target="m", rating_key="1001", year=None))
    journal.note(Event.PREFETCH, targets=1)
    journal.close()
    lines = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in line.items() if k != "t"} for line in lines] == [
        {"event": "TARGET", "target": "m", "rating_key": "1001", "type": "", "title": ""},  # None is left out
        {"event": "PREFETCH", "targets": 1}]
