"""The terminal's lines after a job (results/terminal.py): each problem said once, the offline case in one line,
and the verdict last."""
from __future__ import annotations

from kometa_preview.results.outcomes import OutsideData
from kometa_preview.results.summary import Records, RunFacts, summarize
from kometa_preview.results.terminal import outcome_lines, outside_lines, verdict


def _summary(**changes):
    summary = summarize(Records([]), _config(), {}, RunFacts(kometa_exit_code=0))
    for name, value in changes.items():
        setattr(summary, name, value)
    return summary


def _config():
    import tempfile
    from pathlib import Path

    from kometa_preview.common.config import load
    folder = Path(tempfile.mkdtemp())
    (folder / "preview.yml").write_text("plex: {url: 'http://127.0.0.1:9', token: t}\n"
                                        "preview: {targets: [{id: m, type: movie, ratingKey: '1'}]}\n")
    return load(folder / "preview.yml")


RIBBON = [OutsideData("IMDb Top 250", ["www.imdb.com", "api.graphql.imdb.com"], "b'kometa-preview: refused'"),
          OutsideData("IMDb Top 250", ["www.imdb.com"], "Unknown Error: list index out of range"),
          OutsideData("Letterboxd Top 500", ["letterboxd.com"], "Letterboxd Error"),
          OutsideData("Rotten Tomatoes Verified Hot", ["api.mdblist.com"], "MDBList Error: 404"),
          OutsideData("Metacritic Must See", ["api.mdblist.com"], "MDBList Error: 404"),
          OutsideData(None, ["raw.githubusercontent.com"], "URL Error: No file found")]


def test_offline_missing_data_is_one_line_naming_the_services():
    summary = _summary(outside_data=RIBBON, outside_calls={"outside_refused_offline": 9})
    lines = outside_lines(summary)
    assert [line.text for line in lines] == [
        "! --offline: 5 overlays drawn without outside data (GitHub, IMDb, Letterboxd, MDBList); report.html names them"]


def test_online_missing_data_is_one_line_per_service_with_the_overlays_that_needed_it():
    summary = _summary(outside_data=RIBBON, outside_calls={"outside_pass": 3})
    texts = [line.text for line in outside_lines(summary)]
    assert texts == ["! IMDb could not be read: IMDb Top 250 drawn without its data",
                     "! Letterboxd could not be read: Letterboxd Top 500 drawn without its data",
                     "! MDBList could not be read: Rotten Tomatoes Verified Hot, Metacritic Must See drawn without "
                     "its data",
                     "! GitHub could not be read: an overlay file drawn without its data"]
    assert not any("b'" in text for text in texts)  # Kometa's reasons (a bytes repr among them) stay in the report


def test_the_verdict_is_the_last_line_and_says_why():
    failed = _summary(success=False, error="Kometa reported an error: File Error: Default does not exist x.yml")
    lines = outcome_lines(failed, ["summary: s", "report:  r"])
    assert lines[-1].text == "✗ failed (1 failed): Kometa reported an error: File Error: Default does not exist x.yml"
    assert lines[-1].bold and lines[-1].colour == "red"
    assert [line.text for line in outcome_lines(failed, [], quiet=True)] == [lines[-1].text]
    assert verdict(_summary(success=True, targets={})).text == "✓ done: no target"


def test_targets_name_their_overlays_by_their_own_names():
    from kometa_preview.results.outcomes import OverlayLabel
    from kometa_preview.results.summary import TargetResult
    from kometa_preview.results.terminal import target_lines
    entry = TargetResult("1001", "movie", "Cobalt River", overlays=["Overlay File (0) 480P-Dovetail"], after="m_after.jpg",
                         overlay_labels=[OverlayLabel("Overlay File (0) 480P-Dovetail", "480P-Dovetail",
                                                      "default: resolution")])
    summary = _summary(targets={"m": entry})
    assert [line.text for line in target_lines(summary)] == ["✓ m exported: m_after.jpg (480P-Dovetail)"]
