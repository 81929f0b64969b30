"""The files in examples/ stay valid and the sandbox one renders as its comment says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import render_cli

from kometa_preview.common.config import load
from kometa_preview.sandbox import SampleServer, generate

EXAMPLES = Path(__file__).parent.parent / "examples"


def test_docker_example_is_valid(monkeypatch):
    monkeypatch.setenv("PLEX_TOKEN", "from-the-environment")
    config = load(EXAMPLES / "docker-preview.yml")
    assert config.plex.token == "from-the-environment" and config.kometa.config == Path("/jobs/kometa/config.yml")
    assert [t.type for t in config.targets] == ["movie", "episode"]


@pytest.mark.e2e
def test_sandbox_example_renders_against_the_sample_server(tmp_path):
    text = (EXAMPLES / "sandbox-preview.yml").read_text()
    with SampleServer(generate(movies=40, shows=3), "sample-token") as server:
        config = tmp_path / "sandbox-preview.yml"
        config.write_text(text.replace("http://127.0.0.1:32400", server.url))
        result = render_cli(config, "--job", str(tmp_path / "job"))
        assert result.returncode == 0, result.stderr
        summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
        for target in load(config).targets:
            entry = summary["targets"][target.id]
            item = server.library.items[int(entry["rating_key"])]
            assert item.type == target.type and (not target.title or target.title.startswith(item.title))
            assert entry["status"] == "exported", entry
        assert server.log.changes() == []
