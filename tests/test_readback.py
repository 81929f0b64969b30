"""What the preview reads back is data, never a path to act on: crafted job folders tried against `merge` and
`render --resume`, crafted names against the one grammar (`names`), a crafted summary.json against `summary.load`,
and a Plex whose ratingKeys climb out of the folder against a dry run. Nothing outside the job folder changes, and
every refusal is one line with exit code 2."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import STANDIN, TOKEN
from crafted import cli, poster, shard, summary_document, target_entry, tree

from kometa_preview.common import names
from kometa_preview.results.summary import SummaryError, load

# --- the grammar -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ok", [
    ("m1001", True), ("1001", True), ("a-b_c", True), ("x" * 64, True), ("x" * 65, False), ("", False),
    ("-x", False), ("_x", False), ("../x", False), ("/etc", False), ("a.b", False), ("javascript:alert(1);x", False),
    ("a b", False), ("é", False), ("a\nb", False), ("١٢", False), (5, False), (None, False),
])
def test_a_target_id_is_letters_digits_dash_and_underscore(text, ok):
    assert names.is_target_id(text) is ok


@pytest.mark.parametrize("name, side, target", [
    ("m1_after.jpg", "after", "m1"), ("m1_before.png", "before", "m1"), ("a_after_x_after.webp", "after", "a_after_x"),
    ("with_after_in_id_after.jpg", "after", "with_after_in_id"), ("m1_after.jpg", "before", None),
    ("m1_after.gif", "after", None), ("m1_after.JPG", "after", None), ("m1_after", "after", None),
    ("../../../.bashrc", "after", None), ("../m1_after.jpg", "after", None), ("/tmp/m1_after.jpg", "after", None),
    ("javascript:alert(1)", "after", None), ("javascript:x_after.jpg", "after", None),
    ("sub/m1_after.jpg", "after", None), ("m1_after.jpg\n", "after", None), ("m1_after.jpg/", "after", None), (None, "after", None), (7, "after", None),
])
def test_exported_image_names_are_an_id_a_side_and_an_image_extension(name, side, target):
    assert names.exported_target(name, side) == target


@pytest.mark.parametrize("name, number", [("1-1", (1, 1)), ("12-3", (12, 3)), ("x-y", None), ("1-2-3", None),
                                          ("01-1", None), ("0-1", None), ("1-", None), ("../1-1", None),
                                          ("1-1 ", None), ("²-1", None), ("9999999-1", None)])
def test_shard_folders_are_round_dash_number(name, number):
    assert names.shard_folder(name) == number


def test_a_folder_entry_is_used_only_when_it_is_itself(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "file")
    (tmp_path / "dirlink").symlink_to(tmp_path / "dir")
    os.mkfifo(tmp_path / "fifo")
    assert names.entry(tmp_path, "file", kind="file") == tmp_path / "file"
    assert names.entry(tmp_path, "dir", kind="dir") == tmp_path / "dir"
    assert names.entry(tmp_path, "absent", kind="file") is None
    for name, kind in (("link", "file"), ("dirlink", "dir"), ("fifo", "file"), ("dir", "file"), ("file", "dir"),
                       ("..", "dir"), ("a/b", "file"), ("", "file")):
        with pytest.raises(names.UnsafeName):
            names.entry(tmp_path, name, kind=kind)
    with pytest.raises(names.UnsafeName):
        names.folder(tmp_path, "dirlink")
    assert names.folder(tmp_path, "new").is_dir()


@pytest.mark.parametrize("relative, link", [("a_after.jpg", "a_after.jpg"), ("../b/x y#1?.jpg", "../b/x%20y%231%3F.jpg"),
                                            ("javascript:x/a_after.jpg", "javascript%3Ax/a_after.jpg")])
def test_links_are_relative_and_percent_encoded(relative, link):
    assert names.href(relative) == link


@pytest.mark.parametrize("relative", ["/etc/passwd", "\\\\host\\share", "", "a\\b"])
def test_absolute_links_are_refused(relative):
    with pytest.raises(names.UnsafeName):
        names.href(relative)


# --- summary.json, read back -------------------------------------------------------------------------------------


def _with(path: str, value, document: dict | None = None) -> dict:
    document = json.loads(json.dumps(document or summary_document({"t1": target_entry(after="t1_after.jpg")})))
    *parents, last = path.split(".")
    holder = document
    for part in parents:
        holder = holder[part]
    if value is KeyError:
        del holder[last]
    else:
        holder[last] = value
    return document


@pytest.mark.parametrize("path, value, said", [
    ("targets", KeyError, "targets: missing"),
    ("targets", [], "targets: must be an object"),
    ("targets.t1.after", 5, "targets.t1.after: must be text or null, not 5"),
    ("targets.t1.after", "../../../.bashrc", "targets.t1.after: '../../../.bashrc' is not an exported image's name"),
    ("targets.t1.after", "/etc/passwd", "targets.t1.after: '/etc/passwd' is not"),
    ("targets.t1.before", "javascript:alert(1)", "targets.t1.before: 'javascript:alert(1)' is not"),
    ("targets.t1.status", "pwned", "targets.t1.status: must be one of"),
    ("targets.t1.overlays", "4K", "targets.t1.overlays: must be a list, not '4K'"),
    ("targets.t1.surprise", 1, "targets.t1.surprise: unknown field"),
    ("captured_uploads_count", "3", "captured_uploads_count: must be a whole number, not '3'"),
    ("success", 1, "success: must be true or false, not 1"),
    ("proxy.requests", None, "proxy.requests: must be a whole number, not None"),
    ("timings_seconds", {"kometa": "slow"}, "timings_seconds.kometa: must be a number, not 'slow'"),
    ("side_doors", "none", "side_doors: must be an object, not 'none'"),
])
def test_a_summary_json_is_checked_as_it_is_read(path, value, said):
    with pytest.raises(SummaryError) as raised:
        load(_with(path, value))
    assert str(raised.value).startswith(said), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_target_id_that_climbs_out_is_refused_by_name():
    document = summary_document({"../../x": target_entry(), "javascript:alert(1);x": target_entry()})
    with pytest.raises(SummaryError, match=re.escape("targets['../../x']: not a target id")):
        load(document)


def test_a_summary_json_as_render_writes_it_loads():
    summary = load(summary_document({"m1": target_entry(before="m1_before.jpg", after="m1_after.png"),
                                     "1002": target_entry("unchanged", before="1002_before.webp")}))
    assert summary.targets["m1"].after == "m1_after.png" and summary.proxy.cpu_seconds is None
    assert load(summary.to_json()) == summary


# --- merge JOB ---------------------------------------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    """Files outside the job folder a crafted job aims at."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("keep me")
    poster(folder / "t1_after.png", (1, 2, 3))
    return folder


def _refused_in_one_line(result, *said: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(part in lines[0] for part in said), lines[0]
    return lines[0]


def _climbing(job: Path, outside: Path) -> dict:
    return {"t1": target_entry(after=os.path.relpath(outside / "victim.txt", job / "shards" / "1-1" / "output"))}


CRAFTED = {
    "a relative after that climbs out": lambda job, outside: shard(job, "1-1", _climbing(job, outside)),
    "an absolute after": lambda job, outside: shard(job, "1-1", {"t1": target_entry(after=str(outside / "victim.txt"))}),
    "a javascript: after": lambda job, outside: shard(job, "1-1", {"t1": target_entry(after="javascript:alert(1)")}),
    "a target id that climbs out": lambda job, outside: shard(job, "1-1", {"../../victim": target_entry()}),
    "malformed JSON": lambda job, outside: shard(job, "1-1", {}, document='{"targets": {'),
    "a missing key": lambda job, outside: shard(job, "1-1", {}, document={
        k: v for k, v in summary_document({}).items() if k != "targets"}),
    "a wrong type": lambda job, outside: shard(job, "1-1", {}, document=summary_document({}, proxy_errors="many")),
    "a JSON list": lambda job, outside: shard(job, "1-1", {}, document="[1, 2]"),
    "a shard folder named x-y": lambda job, outside: shard(job, "x-y", {"t1": target_entry(after="t1_after.png")}),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_merge_refuses_a_crafted_job_in_one_line_and_changes_nothing(case, tmp_path, outside):
    job = tmp_path / "job"
    shard(job, "1-2", {"t2": target_entry(after="t2_after.png")})  # a good shard beside the crafted one
    CRAFTED[case](job, outside)
    before, job_before = tree(outside), tree(job)
    line = _refused_in_one_line(cli("merge", str(job)), "Error: ", str(job / "shards"))
    assert tree(outside) == before and tree(job) == job_before, line  # not even job/output was made
    assert not (job / "output").exists()


@pytest.mark.parametrize("link", ["shard folder", "output folder", "after image", "summary.json", "shards folder"])
def test_merge_follows_no_symbolic_link_out_of_the_job(link, tmp_path, outside):
    job = tmp_path / "job"
    elsewhere = tmp_path / "elsewhere"
    real = shard(elsewhere, "1-1", {"t1": target_entry(after="t1_after.png")})
    if link == "shard folder":
        (job / "shards").mkdir(parents=True)
        (job / "shards" / "1-1").symlink_to(real.parent)
    elif link == "shards folder":
        job.mkdir()
        (job / "shards").symlink_to(elsewhere / "shards")
    else:
        output = shard(job, "1-1", {"t1": target_entry(after="t1_after.png")})
        name = {"output folder": None, "after image": "t1_after.png", "summary.json": "summary.json"}[link]
        if name is None:
            (job / "output").symlink_to(outside)   # the merged output would land outside
        else:
            (output / name).unlink()
            (output / name).symlink_to(real / name)
    before, elsewhere_before = tree(outside), tree(elsewhere)
    _refused_in_one_line(cli("merge", str(job)), "Error: ", "symbolic link")
    assert tree(outside) == before and tree(elsewhere) == elsewhere_before


def test_merge_of_good_shards_links_only_their_own_names(tmp_path, outside):
    job = tmp_path / "job"
    shard(job, "1-1", {"t1": target_entry(before="t1_before.png", after="t1_after.png", title="<b>First</b>")})
    shard(job, "1-2", {"t2": target_entry("unchanged", before="t2_before.png")})
    (job / "output").mkdir()
    (job / "output" / "t1_after.png").symlink_to(outside / "t1_after.png")  # replaced, never written through
    result = cli("merge", str(job))
    assert result.returncode == 0, result.stderr
    output = job / "output"
    assert not (output / "t1_after.png").is_symlink() and (output / "t1_after.png").read_bytes() == \
        (job / "shards" / "1-1" / "output" / "t1_after.png").read_bytes()
    assert tree(outside)["t1_after.png"] != (output / "t1_after.png").read_bytes()
    report = (output / "report.html").read_text()
    links = set(re.findall(r'(?:href|src)="([^"]*)"', report))
    assert {"t1_before.png", "t1_after.png", "t2_before.png"} <= links
    assert all(not link.startswith(("/", "file:", "javascript:")) for link in links), links
    assert "<b>First</b>" not in report and "&lt;b&gt;First&lt;/b&gt;" in report


def test_merge_never_shares_an_inode_with_a_file_outside_the_job(tmp_path, outside):
    """A shard image that is a hard link to a file elsewhere is copied into the merged output, never linked: writing
    the output can then never reach that file."""
    job = tmp_path / "job"
    output = shard(job, "1-1", {"t1": target_entry(after="t1_after.png")})
    (output / "t1_after.png").unlink()
    os.link(outside / "t1_after.png", output / "t1_after.png")
    result = cli("merge", str(job))
    assert result.returncode == 0, result.stderr
    merged = job / "output" / "t1_after.png"
    assert merged.read_bytes() == (outside / "t1_after.png").read_bytes()
    assert merged.stat().st_ino != (outside / "t1_after.png").stat().st_ino
    assert (outside / "t1_after.png").stat().st_nlink == 2  # its own name and the shard's: none added by merge


# --- render --resume JOB -----------------------------------------------------------------------------------------


def _dry_run_config(tmp_path: Path, server) -> Path:
    path = tmp_path / "preview.yml"
    path.write_text(yaml.safe_dump({"plex": {"url": server.url, "token": TOKEN},
                                    "libraries": {"Movies": {"overlay_files": [{"default": "resolution"}]}},
                                    "preview": {"output": str(tmp_path / "out"), "libraries": ["Movies"]}}))
    return path


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["a relative after that climbs out", "malformed JSON", "a shard folder named x-y",
                                  "output folder"])
def test_resume_refuses_a_crafted_job_before_anything_runs(case, sample_plex, tmp_path, outside):
    job = tmp_path / "job"
    if case == "output folder":
        shard(job, "1-1", {"t1": target_entry(after="t1_after.png")})
        (job / "output").symlink_to(outside)
    else:
        CRAFTED[case](job, outside)
    before = tree(outside)
    sample_plex.log.clear()
    result = cli("render", str(_dry_run_config(tmp_path, sample_plex)), "--kometa", str(STANDIN), "--offline",
                 "--quiet", "--resume", str(job), timeout=180)
    line = _refused_in_one_line(result, "Error: ")
    assert str(job) in line and tree(outside) == before
    assert not [p for p in (job / "shards").iterdir() if p.name.startswith("2-")]  # no new round started
    assert sample_plex.log.snapshot() == [], "Plex was asked for something"


# --- Plex's ratingKeys in a dry run ------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_dry_run_takes_no_file_name_or_link_from_a_ratingkey_plex_makes_up(sample_plex, tmp_path, monkeypatch):
    """A Plex (broken or hostile) listing items whose ratingKeys climb out of the folder or are scripts: those
    items are no targets — nothing is written for them, no page links them — and the others are previewed."""
    from kometa_preview.sandbox import views
    hostile = {b'ratingKey="1003"': b'ratingKey="../../x"', b'ratingKey="1004"': b'ratingKey="javascript:alert(1);x"'}
    serialize = views.serialize

    def lying(element):
        body = serialize(element)
        for real, made_up in hostile.items():
            body = body.replace(real, made_up)
        return body
    monkeypatch.setattr(views, "serialize", lying)
    config = _dry_run_config(tmp_path, sample_plex)
    job = tmp_path / "deep" / "job"
    job.parent.mkdir()
    around = tree(tmp_path)
    result = cli("render", str(config), "--kometa", str(STANDIN), "--offline", "--job", str(job), timeout=300)
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((job / "output" / "summary.json").read_text())
    assert summary["targets"] and all(names.is_target_id(t) for t in summary["targets"])
    assert "1001" in summary["targets"] and summary["targets"]["1001"]["before"]
    made = set(tree(tmp_path)) - set(around)
    assert all(path.startswith(("deep/job", "out")) for path in made), sorted(p for p in made
                                                                           if not p.startswith("deep/job"))
    pages = (job / "output" / "report.html").read_text() + (job / "output" / "contact.html").read_text()
    assert "javascript:" not in pages and "../../x" not in pages
    said = "".join(log.read_text() for log in job.glob("shards/*/logs/proxy.log"))
    assert "2 items refused, their ratingKeys are no target ids: '../../x', 'javascript:alert(1);x'" in said
