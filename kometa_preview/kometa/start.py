"""Start Kometa early, run it on cue: real, unmodified Kometa, with its start-up overlapped with the proxy's.

Run by Kometa's own interpreter (so: standard library only, nothing of kometa_preview):

    python kometa_start.py <handoff folder> <kometa.py>

It imports the third-party packages Kometa imports first (its slow part: plexapi, Pillow, requests, tmdbapis…,
each only if installed), writes `<handoff>/warm.json`, and waits for its cue, one JSON line on stdin: Kometa's
arguments and the variables its environment gets (the proxy's addresses). Then it runs kometa.py exactly as
`python kometa.py <arguments>` would: same file, same working directory, `__main__`, the same `sys.argv`, stdin
reading nothing. The cue's pipe is the lifeline: when it closes (the render is gone), Kometa's whole process
group is killed, and before the cue this launcher simply exits.

The gate, without the box (in the box, the relay that carries Kometa's connections out is the gate).
The render may give the cue before the proxy listens (Kometa's own start-up, ~0.5 s for Kometa 2.4,
then overlaps mitmproxy's). Kometa must never find the proxy's ports closed, so a gated cue installs an audit
hook (`sys.addaudithook`, Python's interface for observing runtime events; nothing of Kometa changes) that holds
the first `socket.connect` — in Kometa's process and in the worker it forks for its run — until the render writes
`<handoff>/open`, which it does once the proxy is ready and listens where Kometa's config says. How long it held
is written to `<handoff>/gate-<pid>.json`, so that the wait is not counted as Kometa's own time. Where Kometa's
worker would not be forked (Python 3.14's default start method) it would not inherit the hook: there, a gated cue
waits for `open` before kometa.py runs at all.
"""
import json
import multiprocessing
import os
import runpy
import signal
import sys
import threading
import time

#: What Kometa 2.0 to nightly import first (kometa.py's import block), by module name.
PACKAGES = ("requests", "urllib3", "plexapi", "plexapi.server", "plexapi.video", "PIL", "PIL.Image", "lxml",
            "ruamel.yaml", "tmdbapis", "arrapi", "dateutil", "pathvalidate", "psutil", "schedule", "tenacity",
            "num2words", "dotenv", "git", "packaging.requirements")
#: How long a held connection waits for the proxy before it is refused (the render stops Kometa long before).
GATE_SECONDS = 120.0


def _write(path: str, document: dict) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(document, handle)
    os.replace(path + ".tmp", path)


def _forks_workers() -> bool:
    """Whether a ProcessPoolExecutor's worker is forked (inherits the gate). Asked without fixing the start method
    (`get_start_method()` would, and Kometa could not choose one afterwards); the first of the list is the
    default."""
    return (multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]) == "fork"


def install_gate(handoff: str) -> None:
    opened = os.path.join(handoff, "open")
    state = {"open": False}

    def hook(event: str, args: tuple) -> None:
        if state["open"] or event != "socket.connect":
            return
        started = time.monotonic()
        while not os.path.exists(opened):
            if time.monotonic() - started > GATE_SECONDS:
                raise ConnectionRefusedError("kometa-preview: the proxy did not open")
            time.sleep(0.002)
        state["open"] = True
        _write(os.path.join(handoff, f"gate-{os.getpid()}.json"), {"waited": round(time.monotonic() - started, 4)})

    sys.addaudithook(hook)


def _cue() -> tuple[dict | None, int]:
    """The cue (None: the render is gone), and the pipe it came on, moved off stdin: Kometa's stdin reads nothing,
    as when it is started by hand with </dev/null."""
    lifeline = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(lifeline, 1)
        if not chunk:
            return None, lifeline
        line += chunk
    return json.loads(line), lifeline


def _follow_lifeline(lifeline: int) -> None:
    """The render is gone when its end closes: nothing of this run may outlive it."""
    while os.read(lifeline, 4096):
        pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main() -> int:
    handoff, script = sys.argv[1], sys.argv[2]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as `python kometa.py` has it (not this file's folder)
    started = time.monotonic()
    for name in PACKAGES:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - not installed, or broken: Kometa itself will say so
            pass
    _write(os.path.join(handoff, "warm.json"), {"import_seconds": round(time.monotonic() - started, 3)})
    order, lifeline = _cue()
    if order is None:  # the render is gone: nobody will ever say go
        return 0
    threading.Thread(target=_follow_lifeline, args=(lifeline,), daemon=True).start()
    if order.get("gated"):
        if _forks_workers():
            install_gate(handoff)
        else:  # no gate to offer: Kometa starts once the proxy is open
            while not os.path.exists(os.path.join(handoff, "open")):
                time.sleep(0.002)
    os.environ.update(order["env"])
    sys.argv = [script, *order["args"]]
    _write(os.path.join(handoff, "started.json"), {"at": time.time()})
    runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
