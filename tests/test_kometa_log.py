"""Kometa's own log, read back: real excerpts of Kometa 2.0.2, 2.2.2, 2.4.4 and nightly (tests/fixtures/kometa_logs)
give each case of the first-contact table its outcome, and `outcomes` turns them into a status and a reason."""
from __future__ import annotations

from pathlib import Path

import pytest

from kometa_preview.common.events import Event, Refused, TargetSeen
from kometa_preview.kometa import log as kometa_log
from kometa_preview.results.outcomes import (
    EXPORTED,
    FAILED,
    MISSING,
    UNCHANGED,
    ExportResult,
    judge_kometa,
    judge_target,
)

LOGS = Path(__file__).parent / "fixtures" / "kometa_logs"
APPLIED = {"Cobalt River": ["Overlay File (0) 1080P-DV-Dovetail", "Overlay File (0) Theatrical-Cut-Dovetail"],
           "The Winter": ["Overlay File (0) 480P"]}
TRUNCATED = "OSError: Truncated File Read"
VERSIONS = {"2.0.2": "2.0.2", "2.2.2": "2.2.2", "2.4.4": "2.4.4", "nightly": "2.4.4-build33"}


def read(version: str, case: str) -> kometa_log.KometaRun:
    return kometa_log.read(LOGS / version / f"{case}.meta.log")


@pytest.mark.parametrize("version", ["2.0.2", "2.2.2", "2.4.4", "nightly"])
def test_a_clean_run_names_each_item_and_the_overlays_applied(version):
    run = read(version, "success")
    assert run.version == VERSIONS[version] and run.finished_libraries == ["Movies"]
    assert {title: item.applied for title, item in run.items.items()} == APPLIED
    assert run.job_errors == [] and run.critical == [] and run.overlay_errors == {}
    # Kometa logs "No matches found with regex pattern" as errors for overlays that match nothing: not failures
    assert run.errors and run.error_summary() == []


@pytest.mark.parametrize("version", ["2.0.2", "2.2.2", "2.4.4", "nightly"])
def test_an_unreadable_poster_fails_that_item_with_kometas_exception(version):
    run = read(version, "truncated_input")
    assert run.items["Cobalt River"].errors == [TRUNCATED] and run.items["Cobalt River"].applied == []
    assert run.items["The Winter"].applied == ["Overlay File (0) 480P"]
    assert run.item("Cobalt River").attempted == APPLIED["Cobalt River"]


@pytest.mark.parametrize("version, case, error", [
    ("2.0.2", "relative_file", "File Error: File does not exist /tmp/kometa-2.0.2/my_overlays.yml"),
    ("2.4.4", "relative_file", "File Error: File does not exist /tmp/kometa-2.4.4/my_overlays.yml"),
    ("2.4.4", "misspelled_default", "File Error: Default does not exist resolutoin.yml"),
    ("nightly", "misspelled_default", "File Error: Default does not exist resolutoin.yml"),
    ("2.0.2", "bad_attribute", "Overlay Error: overlay attribute's horizontal_offset and vertical_offset must be "
                               "used together"),
    ("2.4.4", "bad_attribute", "Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' must be "
                               "used together"),
    # logged over four lines: the reason is all of them, with the file, line and column
    ("2.4.4", "yaml_error", "YAML Error: while parsing a flow sequence in \"/tmp/kometa-2.4.4/my_text.yml\", line 5, "
                            "column 8 expected ',' or ']', but got '<stream end>' in \"/tmp/kometa-2.4.4/my_text.yml\", "
                            "line 6, column 1"),
])
def test_configuration_errors_stop_the_job_with_kometas_words(version, case, error):
    run = read(version, case)
    assert run.job_errors == [error] and run.items == {}
    outcome = judge_kometa(run, [], None)
    assert outcome.error == f"Kometa reported an error: {error}"
    seen = TargetSeen(t=0, event=Event.TARGET, target="m", rating_key="1001", type="movie", title="Cobalt River",
                      library="Movies")
    verdict = judge_target(seen, missing_reason=None, export=ExportResult(), overlaid_poster=False, run=run,
                           outcome=outcome)
    assert (verdict.status, verdict.error) == (FAILED, outcome.error)


@pytest.mark.parametrize("version, case, critical", [
    ("2.0.2", "critical", "'NoneType' object is not subscriptable"),
    # Kometa's whole message: it goes on, on a continuation line, with the request's parameters
    ("2.0.2", "no_internet", "TMDb Error: Failed to Connect to https://api.themoviedb.org/3/configuration: "
                             "Expecting value: line 1 column 1 (char 0) Params: {'api_key': '(redacted)', "
                             "'append_to_response': 'countries,jobs,languages,primary_translations,timezones'}"),
    ("2.4.4", "no_internet", "TMDb Error: Failed to Connect to https://api.themoviedb.org/3/configuration: "
                             "Expecting value: line 1 column 1 (char 0) Params: {'api_key': '(redacted)', "
                             "'append_to_response': 'countries,jobs,languages,primary_translations,timezones'}"),
])
def test_a_critical_error_fails_the_job_even_after_exit_code_0(version, case, critical):
    run = read(version, case)
    assert run.critical == [critical] and run.finished_libraries == []
    # refused or unreachable, TMDb's start-up call is still a critical error: Kometa stopped
    unreachable = [Refused(t=0, event=Event.OUTSIDE_UNREACHABLE, host="api.themoviedb.org")]
    assert judge_kometa(run, unreachable, None).error == f"Kometa reported an error: {critical}"


def test_missing_requirements_are_read_from_kometas_screen_output():
    run = kometa_log.read(LOGS / "2.4.4" / "no_meta.log", LOGS / "2.4.4" / "no_python.screen.log")
    assert run.found is False and run.critical == ["Requirements Error: No module named 'arrapi'"]
    assert judge_kometa(run, [], None).error == "Kometa reported an error: Requirements Error: No module named 'arrapi'"


@pytest.mark.parametrize("version", ["2.2.2", "2.4.4"])
def test_an_item_no_overlay_applies_to_is_unchanged(version):
    run = read(version, "not_applicable")
    outcome = judge_kometa(run, [], None)
    seen = TargetSeen(t=0, event=Event.TARGET, target="m", rating_key="1001", type="movie", title="Cobalt River",
                      library="Movies")
    verdict = judge_target(seen, missing_reason=None, export=ExportResult(), overlaid_poster=False, run=run,
                           outcome=outcome)
    assert outcome.error is None and (verdict.status, verdict.error) == (UNCHANGED, None)


@pytest.mark.parametrize("version", ["2.4.4", "nightly"])
def test_overlays_whose_outside_data_was_refused_are_named_with_their_hosts(version):
    run = read(version, "ribbon_offline")
    gathered = run.overlay_errors["IMDb Top 250"]
    refusals = [Refused(t=t, event=Event.OUTSIDE_REFUSED_OFFLINE, host=host) for t, host in (
        (gathered.started + 0.01, "www.imdb.com"),
        (0.0, "raw.githubusercontent.com"))]
    outcome = judge_kometa(run, refusals, None)
    assert outcome.error is None and outcome.configuration_errors == []
    named = {item.overlay: item for item in outcome.outside_data}
    assert "www.imdb.com" in named["IMDb Top 250"].hosts
    assert named[None].hosts == ["raw.githubusercontent.com"] and named[None].error.startswith("URL Error")
    # that job error happened while Kometa loaded the ribbon default: the file it belongs to is named
    assert run.error_files[named[None].error] == "Default: ribbon"
    assert {"Rotten Tomatoes Certified Fresh", "Metacritic Must See", "Commonsense Selection"} <= set(named)
    verdict = judge_target(None, missing_reason=None, export=ExportResult(), overlaid_poster=False, run=run,
                           outcome=outcome)
    assert verdict.status == FAILED and verdict.error.startswith("OUTSIDE_DATA: IMDb Top 250")


def test_kometa_display_titles_name_targets_as_its_log_does():
    def seen(**fields) -> TargetSeen:
        return TargetSeen(t=0, event=Event.TARGET, **fields)
    assert seen(type="movie", title="The Matrix").kometa_title == "The Matrix"
    assert seen(type="season", title="Season 1", parent_title="Breaking Bad", index="1").kometa_title == \
        "Breaking Bad Season 1"
    assert seen(type="episode", title="Pilot", grandparent_title="Breaking Bad", parent_index="1", index="2"
                ).kometa_title == "Breaking Bad S01E02"


def test_exported_and_missing_outrank_what_the_log_says():
    run = read("2.4.4", "truncated_input")
    outcome = judge_kometa(run, [], None)
    seen = TargetSeen(t=0, event=Event.TARGET, target="m", rating_key="1001", type="movie", title="Cobalt River",
                      library="Movies")
    common = {"overlaid_poster": False, "run": run, "outcome": outcome}
    assert judge_target(seen, missing_reason=None, export=ExportResult(), **common) == \
        judge_target(seen, missing_reason=None, export=ExportResult(), **common)
    assert judge_target(seen, missing_reason=None, export=ExportResult(), **common).error == TRUNCATED
    assert judge_target(seen, missing_reason="MISSING_ITEM: x", export=ExportResult(), **common).status == MISSING
    assert judge_target(seen, missing_reason=None, export=ExportResult(exported=True), **common).status == EXPORTED


@pytest.mark.parametrize("export, status, error", [
    (ExportResult(refused="EXPORT_ERROR: a bomb"), FAILED, TRUNCATED),        # Kometa's own reason comes first
    (ExportResult(exported=True, refused="EXPORT_ERROR: a bomb"), FAILED, TRUNCATED),
    (ExportResult(exported=True, error="EXPORT_ERROR: disk full"), FAILED, "EXPORT_ERROR: disk full"),
])
def test_a_refused_image_fails_its_target_under_kometas_own_reason(export, status, error):
    run = read("2.4.4", "truncated_input")
    seen = TargetSeen(t=0, event=Event.TARGET, target="m", rating_key="1001", type="movie", title="Cobalt River",
                      library="Movies")
    verdict = judge_target(seen, missing_reason=None, export=export, overlaid_poster=False, run=run,
                           outcome=judge_kometa(run, [], None))
    assert (verdict.status, verdict.error) == (status, error)


def test_a_refused_image_is_the_reason_when_kometa_gave_none():
    run = read("2.4.4", "truncated_input")
    seen = TargetSeen(t=0, event=Event.TARGET, target="other", rating_key="9", type="movie", title="Not In The Log",
                      library="Movies")
    verdict = judge_target(seen, missing_reason=None, export=ExportResult(exported=True, refused="EXPORT_ERROR: x"),
                           overlaid_poster=False, run=run, outcome=judge_kometa(run, [], None))
    assert (verdict.status, verdict.error) == (FAILED, "EXPORT_ERROR: x")


@pytest.mark.parametrize("line, says", [
    ("|====================== Gathering Items for 4K-HDR Overlay ======================|",
     "gathering items for the 4K-HDR overlay"),
    ("| Overlaying: (3/40) The Winter", "overlaying 3/40: The Winter"),
    ("| Loading All Movies from Library: Movies                            |", "reading movies of Movies"),
    ("|    Applying Overlays for the TV Shows Library   |", "applying overlays in TV Shows"),
    ("| Config Warning: settings sub-attribute cache_expiration not found |", None),
])
def test_progress_names_what_kometa_is_doing(line, says):
    assert kometa_log.progress(line) == says


def test_meta_log_read_while_kometa_writes_it_is_the_same_as_read_at_the_end(tmp_path):
    """The render parses meta.log as Kometa appends to it (a line at a time, sometimes half a line); what it has
    once Kometa exits is what reading the whole file gives, and a rolled-over file is read from its start."""
    whole = (LOGS / "2.4.4" / "truncated_input.meta.log").read_bytes()
    meta = tmp_path / "meta.log"
    followed = kometa_log.MetaLogFollower(meta)
    assert followed.lines() is None                                  # no meta.log yet
    for start in range(0, len(whole), 997):                          # chunks that cut lines in two
        with meta.open("ab") as handle:
            handle.write(whole[start:start + 997])
        followed.poll()
    expected = kometa_log.read(LOGS / "2.4.4" / "truncated_input.meta.log")
    assert kometa_log.read(meta, followed=followed) == expected
    assert followed.lines() == kometa_log.file_lines(whole.decode().splitlines(keepends=True))
    meta.write_bytes(whole[:whole.index(b"\n") + 1] + whole[:40])   # rolled over; its last line unfinished
    lines = followed.lines()
    assert len(lines) == 2 and lines[0] == kometa_log.file_lines([whole.decode().splitlines()[0]])[0]
