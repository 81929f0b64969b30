"""A corpus of broken preview.yml files (tests/bad_configs/, each naming its expected error on its first line)
plus generated ones (huge, alias bomb, non-UTF-8): each gives one line naming the file and field, exit 2,
and no job folder."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kometa_preview.cli import main

CORPUS = sorted((Path(__file__).parent / "bad_configs").glob("*.yml"))


def generated(folder: Path) -> dict[str, tuple[Path, str]]:
    huge = folder / "huge.yml"
    huge.write_text("plex: {url: 'http://x', token: t}\n# " + "x" * (2 << 20) + "\n")
    bomb = folder / "alias_bomb.yml"
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 40)]
    bomb.write_text("\n".join(lines) + "\n")
    latin = folder / "latin1.yml"
    latin.write_bytes(b"plex:\n  url: http://x\n  token: caf\xe9\n")
    binary = folder / "binary.yml"
    binary.write_bytes(b"\x00\x01\x02\xff\xfe")
    return {"huge": (huge, f"is {huge.stat().st_size} bytes; a preview.yml larger than 1048576 is refused"),
            "alias bomb": (bomb, "YAML error: more than 200 aliases"),
            "latin-1": (latin, "is not UTF-8 text (byte 34)"),
            "binary": (binary, "is not UTF-8 text (byte 3)")}


def run(path: Path, tmp_path: Path):
    return CliRunner().invoke(main, ["render", str(path), "--kometa", str(tmp_path / "kometa.py"),
                                     "--job", str(tmp_path / "job")])


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_broken_config_gives_its_one_line_error(path, tmp_path):
    expect = path.read_text(encoding="utf-8").splitlines()[0].removeprefix("# expect: ")
    result = run(path, tmp_path)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path.name}: {expect}"), result.output
    assert not (tmp_path / "job").exists()


def test_generated_hostile_configs_and_the_corpus(tmp_path, evidence):
    checked = 0
    for name, (path, expect) in generated(tmp_path).items():
        result = run(path, tmp_path)
        assert result.exit_code == 2 and result.output.strip() == f"Error: {path.name}: {expect}", (name, result.output)
        checked += 1
    for path in CORPUS:
        result = run(path, tmp_path)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
        checked += 1
    assert not (tmp_path / "job").exists()
    evidence("Bad preview.yml", "every field wrong in turn, YAML syntax errors, tabs, a top-level list, an empty file, "
             "unknown keys, ids that would escape the output folder, a 2 MB file, an alias bomb, Latin-1 and binary "
             "files (tests/bad_configs/ + generated)", checked,
             "each: exit 2, one line naming the file and the field, no job folder")
