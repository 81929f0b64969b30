"""Start Kometa early, run it on cue: real, unmodified Kometa, with its start-up overlapped with the proxy's.

Run by Kometa's own interpreter (so: standard library only, nothing of kometa_preview):

    python kometa_start.py <handoff folder> <kometa.py>

It imports the third-party packages Kometa imports first (its slow part: plexapi, Pillow, requests, tmdbapis…,
each only if installed) while the proxy starts, writes `<handoff>/warm.json`, and waits for `<handoff>/go.json`
— Kometa's arguments and the proxy's address — which the render writes once the proxy listens (so Kometa never
finds its port closed). Then it runs kometa.py exactly as `python kometa.py <arguments>` would: same file, same
working directory, `__main__`, the same `sys.argv`. It exits when the render that started it is gone.
"""
import json
import os
import runpy
import sys
import time

#: What Kometa 2.0 to nightly import first (kometa.py's import block), by module name.
PACKAGES = ("requests", "urllib3", "plexapi", "plexapi.server", "plexapi.video", "PIL", "PIL.Image", "lxml",
            "ruamel.yaml", "tmdbapis", "arrapi", "dateutil", "pathvalidate", "psutil", "schedule", "tenacity",
            "num2words", "dotenv", "git", "packaging.requirements")


def main() -> int:
    handoff, script = sys.argv[1], sys.argv[2]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python kometa.py` has it (not this file's folder)
    parent = os.getppid()
    started = time.monotonic()
    for name in PACKAGES:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - not installed, or broken: Kometa itself will say so
            pass
    with open(os.path.join(handoff, "warm.json"), "w", encoding="utf-8") as handle:
        json.dump({"import_seconds": round(time.monotonic() - started, 3)}, handle)
    go = os.path.join(handoff, "go.json")
    while not os.path.exists(go):
        if os.getppid() != parent:  # the render is gone: nobody will ever say go
            return 0
        time.sleep(0.005)
    with open(go, encoding="utf-8") as handle:
        order = json.load(handle)
    os.environ.update(order["env"])
    sys.argv = [script, *order["args"]]
    with open(os.path.join(handoff, "started.json"), "w", encoding="utf-8") as handle:
        json.dump({"at": time.time()}, handle)
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
