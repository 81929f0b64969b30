"""Images are untrusted input wherever the preview opens them — export, report, contact sheet, diff: a
decompression bomb (a PNG whose header says 30,000 × 30,000), a truncated JPEG, an image over the pixel bound, a
symbolic link or a FIFO where an image belongs. Only that image's target is marked, with the reason; summary.json
and the pages are always written; `diff` stays within its memory bound and says "could not compare"."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RESOLUTION_OVERLAYS, render_cli, write_preview_yml
from crafted import cli, png_bomb, poster, shard, target_entry, tree, truncated_jpeg

from kometa_preview.common import images
from kometa_preview.results.diff import Change, exit_code

# --- the one opener --------------------------------------------------------------------------------------------


@pytest.fixture
def odd(tmp_path) -> Path:
    """A folder of images nobody should decode."""
    (tmp_path / "bomb.png").write_bytes(png_bomb())                   # Pillow refuses it itself (> 179 MP)
    (tmp_path / "warned.png").write_bytes(png_bomb(10_000, 10_000))   # Pillow would only warn (> 89 MP)
    (tmp_path / "large.png").write_bytes(png_bomb(7_000, 7_000))      # legal for Pillow, over our bound
    truncated_jpeg(tmp_path / "truncated.jpg")
    (tmp_path / "text.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    poster(tmp_path / "fine.png")
    poster(tmp_path / "animated.gif", fmt="GIF")                      # not one of JPEG, PNG, WebP
    (tmp_path / "link.png").symlink_to(tmp_path / "fine.png")
    os.mkfifo(tmp_path / "fifo.png")                                  # would block a plain open()
    return tmp_path


@pytest.mark.parametrize("name, reason", [
    ("bomb.png", "a decompression bomb"),
    # Pillow's warning is an error where images.py set it so (a CLI); under pytest's own warning filters the
    # bound refuses it a step later
    ("warned.png", "a decompression bomb|10000×10000 pixels, over the preview's bound"),
    ("large.png", "7000×7000 pixels, over the preview's bound of 40,000,000"),
    ("truncated.jpg", "not a readable image \\(image file is truncated"), ("text.png", "not a readable image"),
    ("animated.gif", "not a readable image"), ("link.png", "cannot be opened"), ("fifo.png", "is not a regular file"),
    ("absent.png", "cannot be opened"),
])
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_nobody_should_decode_is_unreadable_with_the_reason(odd, name, reason):
    with pytest.raises(images.Unreadable) as raised:
        images.decode(odd / name)
    assert re.match(reason, str(raised.value)), str(raised.value)
    if name != "truncated.jpg":  # its header is whole: only decoding finds the cut
        with pytest.raises(images.Unreadable):
            images.probe(odd / name)


def test_a_large_image_is_reduced_to_the_budget_and_a_bomb_upload_is_no_image(odd):
    assert images.probe(odd / "fine.png") == (200, 300) and images.decode(odd / "fine.png").size == (200, 300)
    poster(odd / "big.jpg", size=(4000, 6000))
    reduced = images.decode(odd / "big.jpg", budget=1_000_000)
    assert reduced.mode == "RGB" and reduced.size[0] * reduced.size[1] <= 1_000_000 and reduced.size[0] >= 500
    assert not images.decodes(png_bomb(), images.PNG) and images.decodes((odd / "fine.png").read_bytes(), images.PNG)


# --- diff --------------------------------------------------------------------------------------------------------


def _side(folder: Path, **afters: bytes | Path) -> Path:
    """An output folder whose summary.json names `<id>_after.png` for each target, with these bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for target, body in afters.items():
        (folder / f"{target}_after.png").write_bytes(body if isinstance(body, bytes) else body.read_bytes())
    (folder / "summary.json").write_text(json.dumps(
        {"targets": {t: {"status": "exported", "after": f"{t}_after.png"} for t in afters}}))
    return folder


def test_diff_says_could_not_compare_for_a_bomb_a_truncated_and_an_oversized_image(tmp_path):
    plain = poster(tmp_path / "plain.png").read_bytes()
    marked = poster(tmp_path / "marked.png", box=(0, 0, 19, 29)).read_bytes()
    truncated = truncated_jpeg(tmp_path / "cut.jpg").read_bytes()
    a = _side(tmp_path / "a", bomb=plain, cut=truncated, huge=png_bomb(13_000, 13_000), fine=plain)
    b = _side(tmp_path / "b", bomb=png_bomb(), cut=plain, huge=png_bomb(13_000, 12_999), fine=marked)
    result = cli("diff", str(a), str(b), "--out", str(tmp_path / "d"))
    assert "Traceback" not in result.stderr, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()[:4])
    assert lines["bomb"].startswith("could not compare: B's after-image is a decompression bomb"), lines
    assert lines["cut"].startswith("could not compare: A's after-image is not a readable image (image file is "
                                   "truncated"), lines
    assert lines["huge"].startswith("could not compare: B's after-image is a decompression bomb"), lines
    assert lines["fine"] == "changed 1.0%"
    recorded = {c["target"]: c for c in json.loads((tmp_path / "d" / "diff.json").read_text())}
    assert recorded["bomb"]["result"] == "uncompared" and "decompression bomb" in recorded["bomb"]["reason"]
    assert "3 could not be compared" in (tmp_path / "d" / "diff.html").read_text()


def test_diff_has_an_exit_code_of_its_own_for_could_not_compare():
    changed, same = Change("a", "changed", 3.0), Change("b", "identical")
    uncompared = Change("c", "uncompared", reason="B's after-image is a decompression bomb")
    assert [exit_code(changes, fail) for changes, fail in (
        ([same], True), ([changed], False), ([changed], True), ([uncompared], False), ([changed, uncompared], True),
    )] == [0, 0, 1, 3, 3]


def test_diff_exits_3_when_a_target_could_not_be_compared(tmp_path):
    a = _side(tmp_path / "a", t=poster(tmp_path / "p.png").read_bytes())
    b = _side(tmp_path / "b", t=png_bomb())
    assert cli("diff", str(a), str(b), "--fail-on-change", "--out", str(tmp_path / "d")).returncode == 3
    assert cli("diff", str(a), str(b), "--out", str(tmp_path / "d")).returncode == 3


MEASURED = """import resource, runpy, sys
sys.argv = ["kometa-preview", *sys.argv[1:]]
try:
    runpy.run_module("kometa_preview", run_name="__main__")
finally:
    print("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def test_diff_stays_within_its_memory_bound(tmp_path):
    """Two legal 36-megapixel pairs and a 13,000² pair (legal for Pillow: 169 MP) peaked at 2.5 GB; the bound
    (diff.py's docstring) is about 600 MB."""
    a = _side(tmp_path / "a", big=poster(tmp_path / "1.png", size=(6000, 6000)), other=png_bomb(13_000, 13_000),
              second=poster(tmp_path / "3.png", size=(6000, 6000)))
    b = _side(tmp_path / "b", big=poster(tmp_path / "2.png", size=(6000, 6000), box=(0, 0, 2999, 2999)),
              other=png_bomb(13_000, 12_998), second=poster(tmp_path / "4.png", size=(6000, 6000), box=(0, 0, 5, 5)))
    result = subprocess.run([sys.executable, "-c", MEASURED, "diff", str(a), str(b), "--out", str(tmp_path / "d")],
                            capture_output=True, text=True, timeout=300)
    peak_mib = int(re.search(r"peak (\d+)", result.stderr)[1]) // 1024
    assert peak_mib < 600, peak_mib
    assert "big changed 25.0%" in result.stdout and "other could not compare" in result.stdout, result.stdout
    assert "second changed <0.1%" in result.stdout


def test_diff_reads_and_links_nothing_outside_its_folders(tmp_path):
    outside = tmp_path / "outside"
    secret = poster(outside / "secret_after.png")
    a = _side(tmp_path / "a", t1=poster(tmp_path / "1.png"), t2=poster(tmp_path / "2.png"),
              t3=poster(tmp_path / "3.png"), t4=poster(tmp_path / "6.png"))
    b = tmp_path / "javascript:b"          # a folder name that would read as a scheme if linked as it is
    _side(b, t1=poster(tmp_path / "4.png", box=(0, 0, 9, 9)), t2=poster(tmp_path / "5.png"),
          t4=poster(tmp_path / "7.png", box=(0, 0, 9, 9)))
    document = json.loads((b / "summary.json").read_text())
    document["targets"]["t2"]["after"] = str(secret)               # an absolute after
    document["targets"]["t3"] = {"status": "exported", "after": "javascript:alert(1)"}
    (b / "summary.json").write_text(json.dumps(document))
    (b / "t1_after.png").rename(b / "real.png")
    (b / "t1_after.png").symlink_to(secret)                         # a link out of B
    out = tmp_path                                                  # B's folder name starts every link to B
    result = cli("diff", str(a), str(b), "--out", str(out))
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr  # 3: could not compare some
    said = dict(line.split(" ", 1) for line in result.stdout.splitlines()[:4])
    assert said["t1"].startswith("could not compare: ") and "symbolic link" in said["t1"]
    assert said["t2"].startswith(f"could not compare: its after-image name '{secret}' is not an image name")
    assert said["t3"].startswith("could not compare: its after-image name 'javascript:alert(1)'")
    page = (out / "diff.html").read_text()
    links = re.findall(r'(?:href|src)="([^"]*)"', page)
    assert all(not re.match(r"[a-z]+:|/", link) for link in links), links
    assert said["t4"] == "changed 0.2%" and "javascript%3Ab/t4_after.png" in links and "a/t4_after.png" in links
    assert not any("secret" in link or "t1_after" in link and "javascript" in link for link in links), links


def test_diff_refuses_climbing_target_ids_and_writes_only_inside_out(tmp_path):
    a = _side(tmp_path / "a", t1=poster(tmp_path / "1.png"))
    b = _side(tmp_path / "b", t1=poster(tmp_path / "2.png", box=(0, 0, 9, 9)))
    document = json.loads((b / "summary.json").read_text())
    document["targets"]["../../../escaped"] = document["targets"].pop("t1")
    (b / "summary.json").write_text(json.dumps(document))
    around = tree(tmp_path)
    result = cli("diff", str(a), str(b), "--out", str(tmp_path / "out" / "d"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "targets['../../../escaped']: not a target id" in result.stderr
    assert tree(tmp_path) == around


def test_diff_writes_no_heat_map_through_a_symbolic_link(tmp_path):
    a = _side(tmp_path / "a", t1=poster(tmp_path / "1.png"))
    b = _side(tmp_path / "b", t1=poster(tmp_path / "2.png", box=(0, 0, 9, 9)))
    (tmp_path / "outside").mkdir()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "diff").symlink_to(tmp_path / "outside", target_is_directory=True)
    refused = cli("diff", str(a), str(b), "--out", str(tmp_path / "d"))
    assert refused.returncode == 2 and "symbolic link" in refused.stderr and "Traceback" not in refused.stderr
    assert not list((tmp_path / "outside").iterdir())


# --- report and contact sheet ------------------------------------------------------------------------------------


def test_a_bomb_in_a_merged_job_is_named_in_the_report_and_gets_no_thumbnail(tmp_path):
    job = tmp_path / "job"
    output = shard(job, "1-1", {"t1": target_entry("unchanged", before="t1_before.png"),
                                "t2": target_entry(before="t2_before.png", after="t2_after.png")})
    (output / "t1_before.png").write_bytes(png_bomb())
    result = cli("merge", str(job))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    report = (job / "output" / "report.html").read_text()
    assert "t1_before.png: not shown, a decompression bomb" in report
    assert 'src="t1_before.png"' not in report and 'src="t2_after.png"' in report
    contact = (job / "output" / "contact.html").read_text()
    items = {item["id"]: item for item in json.loads(re.search(r'id="items">(.*?)</script>', contact)[1])}
    assert items["t1"]["thumb"] is None and items["t2"]["thumb"] == "thumbs/t2_after.jpg"
    assert (job / "output" / "thumbs" / "t2_after.jpg").is_file()


# --- a bomb poster from Plex, end to end -------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_bomb_poster_from_plex_fails_only_its_target_and_summary_json_is_written(sample_plex, tmp_path):
    from kometa_preview.sandbox.library import Upload
    sample_plex.library.uploads[1002] = Upload(png_bomb(), "image/png")   # what Plex serves as 1002's poster
    config = write_preview_yml(tmp_path, sample_plex.url,
                               [{"id": f"m{key}", "type": "movie", "ratingKey": str(key)} for key in (1001, 1002, 1003)],
                               libraries=RESOLUTION_OVERLAYS)
    result = render_cli(config, "--job", str(tmp_path / "job"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    output = tmp_path / "job" / "output"
    targets = json.loads((output / "summary.json").read_text())["targets"]
    assert targets["m1001"]["status"] == targets["m1003"]["status"] == "exported"
    assert targets["m1002"]["status"] == "failed" and "decompression bomb" in targets["m1002"]["error"].lower()
    assert targets["m1002"]["before"] is None and not list(output.glob("m1002_*"))
    assert "decompression bomb" in (output / "report.html").read_text().lower()
    # Kometa's own reason is the one named; the preview's refusal is in render.log
    assert "✗ m1002 failed: DecompressionBombError: " in result.stdout
    assert "EXPORT_ERROR target=m1002: the poster served to Kometa (plex) is a decompression bomb" in \
        (tmp_path / "job" / "logs" / "render.log").read_text()


def test_the_proxy_s_poster_transcode_never_decodes_a_bomb(tmp_path):
    """Kometa's `/photo/:/transcode?width=&height=` of a target's poster: a bomb is served as it is (Kometa fails on
    it as on Plex's), never decoded; a real poster is scaled down."""
    from kometa_preview.plex.routes import classify
    from kometa_preview.proxy.poster_source import _resize
    route = classify("GET", "/photo/:/transcode?width=100&height=150&url=%2Flibrary%2Fmetadata%2F1001%2Fthumb%2F1")
    bomb = png_bomb()
    assert _resize(bomb, route) == (bomb, "image/png")
    scaled, content_type = _resize(poster(tmp_path / "p.png").read_bytes(), route)
    assert content_type == "image/jpeg" and images.probe(scaled)[0] <= 100


def test_check_names_a_bomb_input_as_unreadable(sample_plex, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb())
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001",
                                                             "input": str(bomb)}])
    result = cli("check", str(config), "--offline")
    assert "✗ input m: " in result.stdout and "is not a readable image" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
