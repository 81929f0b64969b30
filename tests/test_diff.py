"""`kometa-preview diff A B` on output folders made here, pixel by pixel: the shares it reports are exact."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from kometa_preview.results.diff import TOLERANCE, compare


def _poster(path: Path, box: tuple[int, int, int, int] | None = None, colour=(255, 0, 0), fmt: str = "PNG",
            base=(40, 60, 80)) -> Path:
    image = Image.new("RGB", (200, 300), base)
    if box:
        ImageDraw.Draw(image).rectangle(box, fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def _output(folder: Path, **posters: dict) -> Path:
    """An output folder as render leaves it: <id>_after.<ext> and summary.json naming them."""
    targets = {}
    for target, spec in posters.items():
        name = f"{target}_after.{spec.get('ext', 'png')}"
        _poster(folder / name, spec.get("box"), spec.get("colour", (255, 0, 0)),
                "JPEG" if spec.get("ext") == "jpg" else "PNG", spec.get("base", (40, 60, 80)))
        targets[target] = {"status": "exported", "after": name}
    (folder / "summary.json").write_text(json.dumps({"targets": targets}))
    return folder


def _diff(a: Path, b: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kometa_preview", "diff", str(a), str(b), *args],
                          capture_output=True, text=True, timeout=60)


def test_diff_reports_the_exact_share_of_changed_pixels_and_draws_where(tmp_path):
    a = _output(tmp_path / "a", t101={"box": (0, 0, 19, 29)}, t102={"box": (0, 0, 19, 29)})
    b = _output(tmp_path / "b", t101={"box": (0, 0, 39, 29)}, t102={"box": (0, 0, 19, 29)})  # 20×30 more pixels
    result = _diff(a, b, "--out", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["t101 changed 1.0%", "t102 identical"]
    heat = Image.open(tmp_path / "d" / "diff" / "t101_heat.jpg").convert("RGB")
    assert heat.getpixel((30, 15))[0] > 200 > heat.getpixel((30, 15))[1]      # changed: red
    assert max(heat.getpixel((100, 200))) < 100                                # unchanged: dimmed
    page = (tmp_path / "d" / "diff.html").read_text()
    assert "t101 changed 1.0%" in page and "diff/t101_heat.jpg" in page
    assert json.loads((tmp_path / "d" / "diff.json").read_text())[0]["changed_percent"] == 1.0
    assert _diff(a, b, "--fail-on-change", "--out", str(tmp_path / "d")).returncode == 1
    assert _diff(a, a, "--fail-on-change", "--out", str(tmp_path / "d")).returncode == 0


def test_a_change_of_one_channel_counts_and_re_encoding_noise_does_not(tmp_path):
    a = _output(tmp_path / "a", blue={"box": (0, 0, 99, 149), "colour": (40, 60, 80)},
                noise={"base": (40, 60, 80)})
    # Blue up by 3×TOLERANCE over a quarter of the poster: small for the eye's luminance, a change all the same.
    b = _output(tmp_path / "b", blue={"box": (0, 0, 99, 149), "colour": (40, 60, 80 + 3 * TOLERANCE)},
                noise={"base": (40, 60, 80 + TOLERANCE // 2)})
    changes = {c.target: c for c in compare(a, b, tmp_path / "d")}
    assert changes["blue"].result == "changed" and changes["blue"].changed_percent == 25.0
    assert changes["noise"].result == "identical" and changes["noise"].changed_percent == 0.0


def test_targets_on_one_side_only_are_added_or_removed_and_folders_without_output_are_refused(tmp_path):
    a = _output(tmp_path / "a", kept={}, gone={})
    b = _output(tmp_path / "b", kept={}, new={})
    assert _diff(a, b).stdout.splitlines()[:3] == ["gone removed", "kept identical", "new added"]
    # A job folder works as well as its output/ folder.
    job = tmp_path / "job"
    _output(job / "output", kept={})
    assert _diff(job, b).stdout.splitlines()[0] == "kept identical"
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _diff(empty, b)
    assert refused.returncode == 2 and "holds no preview output" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_without_summary_json_targets_come_from_the_after_image_names(tmp_path):
    folder = tmp_path / "bare"
    for name in ("t101_after.png", "with_after_in_id_after.jpg", "t101_before.png"):
        _poster(folder / name)
    from kometa_preview.results.diff import after_images
    assert sorted(after_images(folder)) == ["t101", "with_after_in_id"]
