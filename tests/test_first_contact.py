"""First contact with a real setup: every row of the table in issue 12 ends with the right status and Kometa's own
reason in summary.json, the terminal and the report, and `check` catches the first five rows before a render.
Run through `kometa-preview render` and `check` as a user runs them, with the Kometa stand-in (which fails the way
Kometa fails: tests/kometa_standin/kometa.py) in front of the sample Plex server."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RESOLUTION_OVERLAYS, STANDIN, render_cli, standin_for, write_preview_yml
from PIL import Image, PngImagePlugin

pytestmark = pytest.mark.e2e
CLI = [sys.executable, "-m", "kometa_preview"]
HELLO = ("overlays:\n  Hello:\n    overlay:\n      name: text(Hello)\n      back_color: '#FF0000'\n"
         "      horizontal_offset: 30\n{vertical}    plex_all: true\n")
GOOD = {"vertical": "      vertical_offset: 30\n"}
#: Where the stand-in draws a text overlay's box with the default offsets (30, 30): see TextOverlay.draw.
HELLO_PIXEL = (180, 280)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})})


def summary_of(job: Path) -> dict:
    return json.loads((job / "output" / "summary.json").read_text())


def movies(overlay_files: list) -> dict:
    return {"Movies": {"overlay_files": overlay_files}}


def test_an_overlay_file_next_to_preview_yml_named_relatively_works(sample_plex, tmp_path):
    (tmp_path / "my_overlays.yml").write_text(HELLO.format(**GOOD))
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"file": "my_overlays.yml"}]))
    check = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    assert check.returncode == 0, check.stdout
    assert f"✓ overlays Movies: libraries.Movies.overlay_files[0].file: {tmp_path / 'my_overlays.yml'} parses" in \
        check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr + result.stdout
    entry = summary_of(tmp_path / "job")["targets"]["m"]
    assert (entry["status"], entry["overlays"]) == ("exported", ["Overlay File (0) Hello"])  # Kometa's own name
    after = Image.open(tmp_path / "job" / "output" / entry["after"]).convert("RGB")
    assert after.getpixel(HELLO_PIXEL)[0] > 200 and after.getpixel(HELLO_PIXEL)[1] < 60
    assert "✓ m exported: m_after.jpg (Hello)" in result.stdout  # the overlay by its own name


def test_paths_borrowed_from_kometa_config_resolve_in_kometas_folder(sample_plex, tmp_path):
    """The rule (docs/HOW-IT-WORKS.md): a relative path in the user's own Kometa config means what it means to
    their Kometa, which resolves it in its own folder (its working directory)."""
    kometa = tmp_path / "Kometa"
    shutil.copytree(STANDIN.parent, kometa)
    (kometa / "config" / "overlays").mkdir(parents=True)
    (kometa / "config" / "overlays" / "mine.yml").write_text(HELLO.format(**GOOD))
    (kometa / "config" / "config.yml").write_text(
        "libraries:\n  Movies:\n    overlay_files:\n      - file: config/overlays/mine.yml\n")
    (tmp_path / "elsewhere").mkdir()
    config = write_preview_yml(tmp_path / "elsewhere", sample_plex.url,
                               [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               kometa={"config": str(kometa / "config" / "config.yml")})
    check = cli("check", str(config), "--kometa", str(kometa / "kometa.py"), "--offline")
    assert f"{kometa / 'config' / 'overlays' / 'mine.yml'} parses" in check.stdout, check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"), "--kometa", str(kometa / "kometa.py"))
    assert result.returncode == 0, result.stderr + result.stdout
    assert summary_of(tmp_path / "job")["targets"]["m"]["overlays"] == ["Overlay File (0) Hello"]


def test_a_missing_overlay_file_fails_with_kometas_file_error(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"file": "not_there.yml"}]))
    missing = tmp_path / "not_there.yml"
    check = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    assert check.returncode == 1 and f"✗ overlays Movies: libraries.Movies.overlay_files[0].file: {missing} does not " \
                                      "exist" in check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    error = f"Kometa reported an error: File Error: File does not exist {missing}"
    assert summary["error"] == error and summary["targets"]["m"] == {**summary["targets"]["m"], "status": "failed",
                                                                       "error": error}
    assert f"✗ m failed: {error}" in result.stdout


def test_a_misspelled_default_is_caught_by_check_and_named_by_render(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"default": "resolutoin"}]))
    check = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    assert check.returncode == 1
    assert "✗ overlays Movies: libraries.Movies.overlay_files[0].default: default 'resolutoin' does not exist in " \
           "Kometa 2.4.4-standin" in check.stdout and "use one of: resolution" in check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["targets"]["m"]["status"] == "failed"
    assert summary["targets"]["m"]["error"] == "Kometa reported an error: File Error: Default does not exist " \
                                               "resolutoin.yml"
    assert summary["kometa_errors"] == [{"message": "File Error: Default does not exist resolutoin.yml", "count": 1}]
    html = (tmp_path / "job" / "output" / "report.html").read_text()
    assert "Default does not exist resolutoin.yml" in html and 'class="status failed"' in html


def test_an_invalid_overlay_attribute_is_caught_by_check_and_fails_the_render(sample_plex, tmp_path):
    (tmp_path / "bad.yml").write_text(HELLO.format(vertical=""))
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"file": "bad.yml"}, {"default": "resolution"}]))
    check = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    message = "Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' must be used together"
    assert check.returncode == 1 and f"bad.yml: overlay 'Hello': {message}" in check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"))
    summary = summary_of(tmp_path / "job")
    # the other overlay file still applied: the poster is exported, and the job fails on Kometa's error
    assert result.returncode == 1 and summary["targets"]["m"]["status"] == "exported"
    assert summary["error"] == f"Kometa reported an error: {message}" and summary["success"] is False
    # the last line printed is the verdict and its one reason, not a ✓ among warnings
    assert result.stdout.strip().splitlines()[-1] == f"✗ failed (1 exported): Kometa reported an error: {message}"


def test_kometa_without_its_requirements_is_never_run_with_this_tools_python(sample_plex, tmp_path):
    hooks = {"STANDIN_REQUIRE": "arrapi_not_installed_here"}
    kometa = standin_for(tmp_path, hooks)
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = cli("render", str(config), "--kometa", str(kometa), "--offline")
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert "Kometa cannot run with" in result.stderr and "Requirements Error: No module named " \
           "'arrapi_not_installed_here'" in result.stderr and "--kometa-python" in result.stderr
    check = cli("check", str(config), "--kometa", str(kometa), "--offline")
    assert check.returncode == 1 and "✗ kometa: " in check.stdout and "Requirements Error" in check.stdout
    # named explicitly, the interpreter is used; Kometa's own "Requirements Error" (exit 0) then fails the job
    explicit = cli("render", str(config), "--kometa", str(kometa), "--offline", "--job", str(tmp_path / "job"),
                   env={"KOMETA_PYTHON": sys.executable})
    summary = summary_of(tmp_path / "job")
    assert explicit.returncode == 1 and summary["kometa_exit_code"] == 0
    assert summary["error"] == "Kometa reported an error: Requirements Error: No module named 'arrapi_not_installed_here'"


def test_a_venv_beside_kometa_py_is_kometas_interpreter(sample_plex, tmp_path):
    kometa = tmp_path / "Kometa"
    shutil.copytree(STANDIN.parent, kometa)
    venv_python = kometa / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    venv_python.chmod(0o755)
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = cli("render", str(config), "--kometa", str(kometa), "--offline", "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stderr
    assert f"with {venv_python}" in result.stderr
    check = cli("check", str(config), "--kometa", str(kometa), "--offline")
    assert f"runs with {venv_python} (the venv beside kometa.py (venv/))" in check.stdout


def test_no_internet_without_offline_says_so_and_points_to_offline(sample_plex, tmp_path):
    hooks = {"STANDIN_OUTSIDE_BASE": "https://unreachable.invalid"}
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS, tmdb={"apikey": "0123456789abcdef"},
                               outside={"allow": ["unreachable.invalid"]})
    kometa = standin_for(tmp_path, hooks)
    result = cli("render", str(config), "--kometa", str(kometa), "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["error"].startswith("Kometa reported an error: TMDb Error: Failed to Connect to "
                                       "https://unreachable.invalid/3/configuration")
    assert summary["targets"]["m"]["status"] == "failed" and "unreachable.invalid" in summary["outside_unreachable"]
    assert summary["side_doors"]["total"] == 0  # no internet is not an attempt at a side door
    assert "! no internet? Kometa's outside calls could not reach unreachable.invalid; run with --offline" in \
        result.stderr


def test_check_says_when_kometas_start_up_hosts_cannot_be_reached():
    from kometa_preview.tools.check import _outside

    def no_network(address, timeout):
        raise OSError(-2, "Name or service not known")
    result = _outside(False, connect=no_network)
    assert not result.ok and "raw.githubusercontent.com (Name or service not known)" in result.message
    assert "--offline" in result.fix and _outside(True, connect=no_network).ok


def test_a_truncated_input_image_fails_that_target_with_kometas_exception(sample_plex, tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "x" * 100_000)
    buffer = io.BytesIO()
    Image.new("RGB", (400, 600), (30, 60, 90)).save(buffer, format="PNG", pnginfo=info)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(buffer.getvalue()[:50_000])
    config = write_preview_yml(tmp_path, sample_plex.url,
                               [{"id": "cut", "type": "movie", "ratingKey": "1001", "input": str(truncated)},
                                {"id": "fine", "type": "movie", "ratingKey": "1002"}], libraries=RESOLUTION_OVERLAYS)
    check = cli("check", str(config), "--kometa", str(STANDIN), "--offline")
    assert "✗ input cut: " in check.stdout and "Truncated File Read" in check.stdout
    result = render_cli(config, "--job", str(tmp_path / "job"))
    summary = summary_of(tmp_path / "job")
    assert result.returncode == 1 and summary["targets"]["fine"]["status"] == "exported"
    assert (summary["targets"]["cut"]["status"], summary["targets"]["cut"]["error"]) == \
        ("failed", "OSError: Truncated File Read")
    assert "✗ cut failed: OSError: Truncated File Read" in result.stdout


def test_an_item_no_overlay_applies_to_is_unchanged_not_a_failure(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"default": "direct_play"}]))
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 0, result.stdout + result.stderr
    summary = summary_of(tmp_path / "job")
    entry = summary["targets"]["m"]
    assert summary["success"] and (entry["status"], entry["error"], entry["after"]) == ("unchanged", None, None)
    assert entry["before"] == "m_before.jpg" and summary["missing_targets"] == []
    assert "– m unchanged: no overlay applies" in result.stdout
    html = (tmp_path / "job" / "output" / "report.html").read_text()
    assert "no overlay applies" in html and 'src="m_before.jpg"' in html
    assert "NO_OVERLAY_APPLIES target=m" in (tmp_path / "job" / "logs" / "render.log").read_text()


def test_overlays_needing_outside_data_offline_are_named_with_their_hosts(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=movies([{"default": "ribbon"}]))
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["outside_data"][0]["hosts"] == ["raw.githubusercontent.com"]
    assert summary["error"] is None and summary["targets"]["m"]["status"] == "failed"
    assert summary["targets"]["m"]["error"].startswith("OUTSIDE_DATA:")
    # offline, the missing data is one line naming the service; the host and Kometa's words are in the report
    assert "! --offline: 1 overlay drawn without outside data (GitHub); report.html names them" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.lstrip("• ").startswith("!")]) <= 3
    assert "raw.githubusercontent.com" in (tmp_path / "job" / "output" / "report.html").read_text()


def test_a_kometa_that_exits_0_after_a_critical_error_fails_the_job(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"),
                        env={"STANDIN_CRITICAL": "'NoneType' object is not subscriptable"})
    summary = summary_of(tmp_path / "job")
    assert result.returncode == 1 and summary["kometa_exit_code"] == 0
    assert summary["error"] == "Kometa reported an error: 'NoneType' object is not subscriptable"
    assert summary["kometa_version"] == "2.4.4-standin"


def test_a_target_given_by_title_previews_exactly_like_one_given_by_ratingkey(sample_plex, tmp_path):
    movie = sample_plex.library.items[1003]
    (tmp_path / "t").mkdir()
    (tmp_path / "k").mkdir()
    by_title = write_preview_yml(tmp_path / "t", sample_plex.url,
                                 [{"id": "m", "type": "movie", "title": f"{movie.title} ({movie.year})"}],
                                 libraries=RESOLUTION_OVERLAYS)
    by_key = write_preview_yml(tmp_path / "k", sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1003"}],
                               libraries=RESOLUTION_OVERLAYS)
    titled = render_cli(by_title, "--job", str(tmp_path / "jt"))
    keyed = render_cli(by_key, "--job", str(tmp_path / "jk"))
    assert titled.returncode == keyed.returncode == 0, titled.stderr
    a, b = summary_of(tmp_path / "jt")["targets"]["m"], summary_of(tmp_path / "jk")["targets"]["m"]
    assert a["rating_key"] == "1003" and (a["status"], a["overlays"]) == (b["status"], b["overlays"])
    assert (tmp_path / "jt" / "output" / a["after"]).read_bytes() == (tmp_path / "jk" / "output" / b["after"]).read_bytes()
    assert "RESOLVED_RATINGKEY target=m" in (tmp_path / "jt" / "logs" / "proxy.log").read_text()


def test_a_title_that_matches_nothing_is_missing_and_the_others_still_render(sample_plex, tmp_path):
    movie = sample_plex.library.items[1003]
    config = write_preview_yml(tmp_path, sample_plex.url,
                               [{"id": "wrong_year", "type": "movie", "title": f"{movie.title} (1900)"},
                                {"id": "ok", "type": "movie", "ratingKey": "1001"}], libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    entry = summary["targets"]["wrong_year"]
    assert entry["status"] == "missing" and entry["error"].startswith("MISSING_RATINGKEY")
    assert entry["candidates"] == [{"ratingKey": "1003", "type": "movie", "title": movie.title,
                                    "year": str(movie.year), "library": "Movies"}]
    assert summary["targets"]["ok"]["status"] == "exported"
    assert "MISSING_RATINGKEY target=wrong_year" in (tmp_path / "job" / "logs" / "proxy.log").read_text()
