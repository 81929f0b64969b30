"""Try the whole pipeline without a Plex server: the sample Plex server, the proxy, and Kometa.

Kometa is real Kometa when KOMETA_PATH points at it (KOMETA_PYTHON: the interpreter with its
requirements); otherwise the Kometa stand-in the tests use. Runs offline. Results in ./demo-output/.

    bash scripts/demo
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from kometa_preview.sandbox import SampleServer, generate

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "demo-token-not-a-secret"


def main() -> int:
    folder = ROOT / "demo-output"
    folder.mkdir(exist_ok=True)
    library = generate(seed=7, movies=500, shows=3)
    with SampleServer(library, TOKEN) as server:
        movies = [k for k in sorted(library.items) if library.items[k].type == "movie"][:5]
        shows = [k for k in sorted(library.items) if library.items[k].type == "show"][:2]
        targets = [{"id": f"movie{n}", "type": "movie", "title": library.items[k].title, "ratingKey": str(k)}
                   for n, k in enumerate(movies, 1)]
        targets += [{"id": f"show{n}", "type": "show", "title": library.items[k].title, "ratingKey": str(k)}
                    for n, k in enumerate(shows, 1)]
        kometa = os.environ.get("KOMETA_PATH")
        # Kometa's defaults that read each item's media: resolution and HDR, the audio track, the release source
        defaults = ("resolution", "audio_codec", "video_format")
        document = {
            "plex": {"url": server.url, "token": TOKEN},
            "libraries": {name: {"overlay_files": [{"default": default} for default in defaults]}
                          for name in ("Movies", "TV Shows")},
            "preview": {"mode": "write_blocked", "output": str(folder), "targets": targets},
        }
        config = folder / "preview.yml"
        config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        print(f"Sample Plex server with 500 movies at {server.url}; preview.yml written to {config}")
        kometa_path = kometa or str(ROOT / "tests" / "kometa_standin" / "kometa.py")
        print(f"Kometa: {kometa_path}{'' if kometa else ' (the stand-in; set KOMETA_PATH for real Kometa)'}")
        result = subprocess.run([sys.executable, "-m", "kometa_preview", "render", str(config), "--offline",
                                 "--kometa", kometa_path])
        changes = server.log.changes()
        print(f"Requests that would have changed Plex: {len(changes)}")
        return result.returncode


if __name__ == "__main__":
    sys.exit(main())
