"""The same job with real, unmodified Kometa — runs only when KOMETA_PATH points at a Kometa checkout
(KOMETA_PYTHON: the interpreter with Kometa's requirements; default this one). Offline, so no internet."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RESOLUTION_OVERLAYS, TOKEN, write_preview_yml
from PIL import Image

CHECKOUT = Path(os.environ.get("KOMETA_PATH", "/nonexistent"))
CHECKOUT = CHECKOUT.parent if CHECKOUT.name == "kometa.py" else CHECKOUT
pytestmark = [pytest.mark.real_kometa, pytest.mark.e2e,
              pytest.mark.skipif(not (CHECKOUT / "kometa.py").is_file() or not (CHECKOUT / "modules").is_dir(),
                                 reason="KOMETA_PATH does not point at a real Kometa checkout")]


def test_real_kometa_renders_movies_and_episodes_without_writing(sample_plex_factory, tmp_path):
    server = sample_plex_factory(movies=60, shows=2)
    targets = [{"id": "m1", "type": "movie", "ratingKey": "1001"}, {"id": "m2", "type": "movie", "ratingKey": "1002"},
               {"id": "e1", "type": "episode", "ratingKey": "500004"}]
    config = write_preview_yml(tmp_path, server.url, targets, libraries=RESOLUTION_OVERLAYS,
                               kometa={"path": str(CHECKOUT / "kometa.py"),
                                       "python": os.environ.get("KOMETA_PYTHON", sys.executable), "timeout": 900})
    server.log.clear()
    result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline", "--job",
                             str(tmp_path / "job")], capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / "job" / "output" / "summary.json").read_text())
    assert summary["success"] and summary["missing_targets"] == []
    for target in targets:
        after = tmp_path / "job" / "output" / summary["targets"][target["id"]]["after"]
        assert Image.open(after).getexif().get(0x04BC) == "overlay"
    assert server.log.changes() == []
    assert not any(TOKEN.encode() in p.read_bytes() for p in (tmp_path / "job").rglob("*") if p.is_file())


def test_real_kometa_s_start_up_calls_go_through_the_user_s_proxy(sample_plex, tmp_path):
    """Online, behind a TLS-inspecting HTTPS_PROXY with its own CA: real Kometa's start-up calls leave through it."""
    from corporate_proxy import CorporateProxy
    corp = CorporateProxy(tmp_path / "corp").start()
    targets = [{"id": "m1", "type": "movie", "ratingKey": "1001"}]
    config = write_preview_yml(tmp_path, sample_plex.url, targets, libraries=RESOLUTION_OVERLAYS,
                               tmdb={"apikey": "0123456789abcdef0123456789abcdef"},
                               kometa={"path": str(CHECKOUT / "kometa.py"),
                                       "python": os.environ.get("KOMETA_PYTHON", sys.executable), "timeout": 900})
    try:
        result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--job",
                                 str(tmp_path / "job")], capture_output=True, text=True, timeout=1200,
                                env={**os.environ, "HTTPS_PROXY": corp.url, "REQUESTS_CA_BUNDLE": str(corp.ca_file)})
    finally:
        corp.stop()
    assert result.returncode == 0, result.stderr + result.stdout
    assert "api.themoviedb.org/3/configuration" in corp.requests
    assert any(r.endswith("/VERSION") for r in corp.requests)
    assert sample_plex.log.changes() == []
