"""The failure-modes table and exit codes of docs/PREVIEW-MODE.md, through `kometa-preview render`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import RESOLUTION_OVERLAYS, gone, movie_targets, render_cli, standin_for, write_preview_yml
from PIL import Image

pytestmark = pytest.mark.e2e


def summary_of(job) -> dict:
    return json.loads((job / "output" / "summary.json").read_text())


def proxy_pid(job) -> int:
    return json.loads((job / "proxy_ready.json").read_text())["pid"]


def config_for(tmp_path, server, targets, **extra):
    return write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS, **extra)


def test_no_capture_for_a_target_is_missing_capture_and_exit_1(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([1001, 1002]))
    result = render_cli(config, "--job", str(tmp_path / "job"), env={"STANDIN_SKIP_UPLOAD": "1002"})
    assert result.returncode == 1, result.stderr
    summary = summary_of(tmp_path / "job")
    assert summary["missing_targets"] == ["m1002"] and summary["exported_files"].keys() == {"m1001"}
    assert summary["targets"]["m1002"]["status"] == "failed"
    assert summary["targets"]["m1002"]["error"].startswith("MISSING_CAPTURE: Kometa started overlaying this item")
    assert "MISSING_CAPTURE ratingKey=1002 target=m1002 status=failed" in \
        (tmp_path / "job" / "logs" / "render.log").read_text()
    assert "✗ m1002 failed: MISSING_CAPTURE" in result.stdout
    html = (tmp_path / "job" / "output" / "report.html").read_text()
    assert 'class="status failed"' in html and "MISSING_CAPTURE: Kometa started overlaying" in html


def test_some_targets_missing_from_plex(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([1001, 987654]))
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["kometa_exit_code"] == 0 and summary["missing_targets"] == ["m987654"]
    assert summary["targets"]["m987654"]["error"].startswith("MISSING_ITEM")


def test_all_targets_missing_fails_without_running_kometa(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([987654, 987655]))
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["kometa_exit_code"] is None and summary["success"] is False
    assert summary["missing_targets"] == ["m987654", "m987655"]


def test_kometa_crash_fails_the_job(sample_plex, tmp_path, evidence):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    result = render_cli(config, "--job", str(tmp_path / "job"), env={"STANDIN_CRASH": "1"})
    assert result.returncode == 1
    summary = summary_of(tmp_path / "job")
    assert summary["kometa_exit_code"] not in (0, None) and summary["success"] is False
    assert "Kometa exited with code" in summary["error"]
    assert gone(proxy_pid(tmp_path / "job"))
    evidence("Faults during a render", "Kometa crashes", 1, "exit 1; kometa_exit_code in summary.json; proxy stopped")


def test_kometa_timeout_stops_it_and_fails(sample_plex, tmp_path, evidence):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    started = time.monotonic()
    result = render_cli(config, "--job", str(tmp_path / "job"), "--timeout", "3", env={"STANDIN_HANG": "120"})
    assert result.returncode == 1 and time.monotonic() - started < 60
    summary = summary_of(tmp_path / "job")
    assert "stopped after 3s" in summary["error"] and summary["success"] is False
    assert gone(proxy_pid(tmp_path / "job"))
    assert subprocess.run(["pgrep", "-f", f"kometa_standin.*{tmp_path}"], capture_output=True).returncode == 1
    evidence("Faults during a render", "Kometa hangs past kometa.timeout (3 s)", 1, "Kometa and its process group stopped; exit 1; summary.json error says it timed out; proxy stopped")


def test_ctrl_c_stops_both_children_and_still_writes_the_summary(sample_plex, tmp_path, evidence):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    job = tmp_path / "job"
    kometa = standin_for(tmp_path, {"STANDIN_HANG": "120"})
    process = subprocess.Popen([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa", str(kometa),
                                "--offline", "--job", str(job)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=os.environ)
    deadline = time.monotonic() + 60
    while b"Loading All" not in ((job / "logs" / "kometa.log").read_bytes() if (job / "logs" / "kometa.log").exists()
                            else b""):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    summary = summary_of(job)
    assert summary["success"] is False and summary["interrupted"] is True
    assert gone(proxy_pid(job))
    assert subprocess.run(["pgrep", "-f", f"kometa_standin.*{tmp_path}"], capture_output=True).returncode == 1
    evidence("Faults during a render", "Ctrl-C while Kometa runs", 1, "exit 130; summary.json with interrupted: true; both children gone")


def test_overlaid_poster_in_plex_fails_that_target_with_a_fix(sample_plex, tmp_path):
    from io import BytesIO
    image = Image.new("RGB", (400, 600), (1, 1, 1))
    exif = image.getexif()
    exif[0x04BC] = "overlay"
    buffer = BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    from kometa_preview.sandbox.library import Upload
    sample_plex.library.uploads[1001] = Upload(buffer.getvalue(), "image/jpeg")   # Kometa ran here before
    config = config_for(tmp_path, sample_plex, movie_targets([1001, 1002]))
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1
    entry = summary_of(tmp_path / "job")["targets"]["m1001"]
    assert entry["status"] == "failed" and entry["error"].startswith("OVERLAID_POSTER") and "input:" in entry["error"]


def test_kometa_environment_overrides_are_removed(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    result = render_cli(config, "--job", str(tmp_path / "job"),
                        env={"KOMETA_CONFIG": "/elsewhere.yml", "KOMETA_RUN": "false", "PMM_CONFIG": "x"})
    assert result.returncode == 0, result.stderr


def test_existing_job_folder_is_not_overwritten_without_force(sample_plex, tmp_path, evidence):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    job = tmp_path / "job"
    job.mkdir()
    (job / "earlier.txt").write_text("keep me")
    result = render_cli(config, "--job", str(job))
    assert result.returncode == 2 and "already exists; use --force" in result.stderr
    assert (job / "earlier.txt").read_text() == "keep me"
    assert render_cli(config, "--job", str(job), "--force").returncode == 0
    assert not (job / "earlier.txt").exists()
    evidence("Faults during a render", "a job folder that already exists", 2, "exit 2 and the earlier job untouched; with --force it is replaced")


def test_default_job_folders_are_new_each_run(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    assert render_cli(config).returncode == 0
    assert render_cli(config).returncode == 0
    assert len(list((tmp_path / "out").iterdir())) == 2


def one_line_error(result) -> str:
    """The one error line (stage lines may come before it; a traceback may not)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.parametrize("change, message", [
    (lambda d: d["preview"]["targets"][0].pop("ratingKey"),
     "preview.yml: preview.targets[0].ratingKey: MISSING_RATINGKEY target=m1001"),
    (lambda d: d["preview"]["targets"].append(dict(d["preview"]["targets"][0])),
     "preview.yml: preview.targets[1].id: 'm1001' is already used by preview.targets[0]"),
    (lambda d: d["preview"]["targets"][0].update(id="../x"),
     "preview.yml: preview.targets[0].id: '../x' must be letters, digits, - and _ only"),
    (lambda d: d["preview"]["targets"][0].update(ratingKey="abc"),
     "preview.yml: preview.targets[0].ratingKey: must be a number, not 'abc'"),
    (lambda d: d["preview"]["targets"][0].update(type="film"),
     "preview.yml: preview.targets[0].type: 'film' must be one of movie, show, season, episode"),
    (lambda d: d["preview"]["targets"][0].update(colour="red"),
     "preview.yml: preview.targets[0].colour: unknown key"),
    (lambda d: d.update(extra=1), "preview.yml: extra: unknown key"),
    (lambda d: d["plex"].update(timeout="soon"), "preview.yml: plex.timeout: must be a whole number of at least 1"),
    (lambda d: d["preview"].update(targets=[]), "preview.yml: preview.targets: must be a non-empty list"),
    (lambda d: d["preview"].update(mode="write_allowed"), "preview.yml: preview.mode: 'write_allowed': write_blocked"),
    (lambda d: d["preview"]["targets"][0].update(input="/nonexistent/poster.jpg"),
     "preview.yml: preview.targets[0].input: cannot read /nonexistent/poster.jpg"),
    (lambda d: d["plex"].update(token="${NOT_SET_ANYWHERE}"),
     "preview.yml: plex.token: environment variable NOT_SET_ANYWHERE is not set"),
])
def test_bad_preview_yml_gives_one_line_and_exit_2_and_no_job(sample_plex, tmp_path, change, message):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    document = yaml.safe_load(config.read_text())
    change(document)
    config.write_text(yaml.safe_dump(document))
    result = render_cli(config)
    assert result.returncode == 2
    assert one_line_error(result).startswith(f"Error: {message}")
    assert not (tmp_path / "out").exists()


def test_input_that_is_not_an_image_is_refused(sample_plex, tmp_path):
    fake = tmp_path / "poster.jpg"
    fake.write_text("not an image")
    config = config_for(tmp_path, sample_plex, [{"id": "m", "type": "movie", "ratingKey": "1001", "input": str(fake)}])
    result = render_cli(config)
    assert result.returncode == 2 and "is not a JPEG, PNG or WebP image" in one_line_error(result)


def test_yaml_syntax_error_names_the_line(sample_plex, tmp_path):
    config = tmp_path / "preview.yml"
    config.write_text("plex:\n  url: http://x\n\ttoken: y\n")
    result = render_cli(config)
    assert result.returncode == 2 and one_line_error(result).startswith("Error: preview.yml: line 3, column 1: YAML")


def test_kometa_not_found(sample_plex, tmp_path):
    config = config_for(tmp_path, sample_plex, movie_targets([1001]))
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--kometa",
                             str(tmp_path / "nowhere" / "kometa.py")], capture_output=True, text=True)
    assert result.returncode == 2
    assert one_line_error(result) == (f"Error: Kometa not found (tried --kometa/KOMETA_PATH {tmp_path / 'nowhere' / 'kometa.py'}); "
                                      "point --kometa or KOMETA_PATH at kometa.py")
    assert not (tmp_path / "out").exists()


def test_plex_unreachable_leaves_only_the_logs_that_say_why(tmp_path, evidence):
    config = write_preview_yml(tmp_path, "http://127.0.0.1:9", movie_targets([1001]), libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 2
    logs = tmp_path / "job" / "logs"
    assert one_line_error(result) == ("Error: proxy: Plex at http://127.0.0.1:9 is unreachable: connection refused "
                                      f"(logs kept in {logs})")
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["logs"]
    assert "connection refused" in (logs / "proxy.log").read_text()
    evidence("Faults during a render", "Plex down at start", 1, "exit 2 with one line (connection refused); the job folder keeps only logs/, whose proxy.log says why")


def test_library_without_overlay_definitions_is_bad_input(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    result = render_cli(config)
    assert result.returncode == 2 and "libraries.Movies: no overlay_files" in one_line_error(result)
