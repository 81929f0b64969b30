"""A pip-installed kometa-preview, not only a checkout: the wheel, installed into a fresh venv, renders the demo and
carries the mitmproxy script that `kometa-preview addon-path` names (the README's live-inspection command)."""
from __future__ import annotations

import json
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RESOLUTION_OVERLAYS, STANDIN, write_preview_yml

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[1]
MITMDUMP = "import sys; from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (its dependencies reused from this venv, without this checkout)."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(folder.glob("kometa_preview-*.whl"))
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    # this venv's dependencies, as a plain path: its .pth files (the checkout's editable install) are not run
    (packages / "dependencies.pth").write_text(site.getsitepackages()[0] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return venv


def test_the_installed_wheel_is_not_the_checkout(installed):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import kometa_preview; print(kometa_preview.__file__)"],
                           capture_output=True, text=True, check=True, cwd=installed).stdout
    assert where.startswith(str(installed)) and str(ROOT) not in where


def test_the_installed_wheel_renders_the_demo(installed, sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}],
                               libraries=RESOLUTION_OVERLAYS)
    result = subprocess.run([str(installed / "bin" / "kometa-preview"), "render", str(config), "--kometa", str(STANDIN),
                             "--kometa-python", sys.executable, "--offline", "--job", str(tmp_path / "job")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert json.loads((tmp_path / "job" / "output" / "summary.json").read_text())["targets"]["m"]["status"] == "exported"
    assert sample_plex.log.changes() == []


def test_the_installed_wheel_ships_the_addon_script_for_live_inspection(installed, sample_plex, tmp_path):
    path = subprocess.run([str(installed / "bin" / "kometa-preview"), "addon-path"], capture_output=True, text=True,
                          check=True, cwd=tmp_path).stdout.strip()
    assert path.startswith(str(installed)) and Path(path).is_file()
    config = write_preview_yml(tmp_path, sample_plex.url, [{"id": "m", "type": "movie", "ratingKey": "1001"}])
    job = tmp_path / "live"
    # `mitmdump -s …` (mitmproxy's own console script is not in this venv: its dependencies are borrowed)
    mitmdump = subprocess.Popen([str(installed / "bin" / "python"), "-c", MITMDUMP, "-s", path, "--mode",
                                 f"reverse:{sample_plex.url}@127.0.0.1:0", "--set", f"preview_config={config}",
                                 "--set", f"preview_job={job}", "--set", "connection_strategy=lazy"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (job / "proxy_ready.json").exists():
            assert mitmdump.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        ready = json.loads((job / "proxy_ready.json").read_text())
        assert ready["ok"] and ready["libraries"] == ["Movies"]
    finally:
        mitmdump.terminate()
        mitmdump.wait(timeout=30)
