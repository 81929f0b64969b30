"""Kometa as a child process: where it is, which interpreter runs it, what version it is, and running it.

Kometa is never vendored: it is found at run time (`--kometa`/`KOMETA_PATH`, `kometa.path`, the official
image's `/kometa.py`), and so is its interpreter, because Kometa's requirements (arrapi, tmdbapis…) are
usually installed in a venv of its own and not in this tool's. Kometa prints `Requirements Error` and exits
0 when they are missing, so an interpreter nobody chose is proved first, with Kometa's own import code.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..common.children import child_environment, stop_process
from ..common.files import write_private
from . import box
from . import log as kometa_log
from .box import Isolation

DEFAULT_KOMETA = Path("/kometa.py")
#: Folders beside kometa.py that Kometa's install guides create for its venv.
VENV_NAMES = ("venv", ".venv", "kometa-venv", "env")
#: Where the interpreter came from, when nobody named one: it must be proved to have Kometa's requirements.
OWN_INTERPRETER = "this tool's own interpreter"


class KometaNotFound(Exception):
    """Kometa, or the interpreter to run it with, cannot be used. One line, safe to show."""


@dataclass(frozen=True)
class KometaCommand:
    python: str
    script: Path
    #: Which setting chose `python` (--kometa-python/KOMETA_PYTHON, kometa.python, a venv beside kometa.py, or
    #: `OWN_INTERPRETER`).
    python_source: str = OWN_INTERPRETER

    @property
    def folder(self) -> Path:
        return self.script.parent

    @property
    def version(self) -> str | None:
        """Kometa's version as it states it itself: the VERSION file beside kometa.py, and the build number of
        its PART file when that is not 0 (`2.3.1` with PART `4` is `2.3.1.4`, as Kometa's `Version` class says)."""
        try:
            version = (self.folder / "VERSION").read_text(encoding="utf-8").strip()
        except OSError:
            return None
        try:
            part = (self.folder / "PART").read_text(encoding="utf-8").strip()
        except OSError:
            part = ""
        return (f"{version}.{part}" if part.isdigit() and int(part) else version) or None

    @property
    def overlay_defaults(self) -> Path:
        """Kometa's own `default:` overlay files."""
        return self.folder / "defaults" / "overlays"

    def compile_once(self) -> None:
        """Kometa's own modules compiled to bytecode, if they never were: in its box, Kometa's folder is read-only,
        so a Kometa that never ran unboxed would compile its modules on every render (about a second). Python's
        compiler only parses the files: no code of Kometa's runs, so this is done outside the box."""
        modules = self.folder / "modules"
        if not modules.is_dir() or any((modules / "__pycache__").glob("*.pyc")):
            return
        subprocess.run([self.python, "-m", "compileall", "-q", "-j0", str(modules)],
                       cwd=self.folder, capture_output=True, timeout=300, env=child_environment([]))

    def arguments(self, run_config: Path, libraries: list[str]) -> list[str]:
        """kometa.py's command line for a preview (docs/PREVIEW-MODE.md). `--trace` makes Kometa log which items each
        overlay's search returned and which its filters kept (`IDs: …`, `Titles Found: …`), what a target's "why
        not" is read from (kometa/overlay_log.py); it changes no image Kometa makes (docs/BOXES.md, measured)."""
        return ["--config", str(run_config), "--run", "--overlays-only", "--run-libraries", "|".join(libraries),
                "--ignore-schedules", "--read-only-config", "--no-report", "--no-missing", "--trace"]

    def start(self, handoff: Path, secrets: list[str], *, home: Path, isolation: Isolation = Isolation.AUTO,
              hidden: tuple[Path, ...] = (), veiled: tuple[Path, ...] = ()) -> KometaProcess:
        """Kometa, started now and waiting for its cue (`KometaProcess.go`), in an allowlisted environment
        (`child_environment`: no KOMETA_*/PMM_* overrides, nothing holding a secret), in its box (box.py) unless
        `isolation` says otherwise. `home`: its config folder, which it may write; `hidden`: files it must not
        read (their folders are covered: box.BoxSpec); `veiled`: folders it must not see into. Raises `KometaNotFound`
        when `--isolation box` cannot be had."""
        return KometaProcess(self, handoff, home, child_environment(secrets), isolation, hidden, veiled)


def _interpreter(text: str, source: str) -> str:
    found = text if os.sep in text else shutil.which(text)
    if found is None or not os.access(found, os.X_OK) or Path(found).is_dir():
        raise KometaNotFound(f"{source} {text!r} is not an interpreter that can be run")
    return found


def find_kometa(given: Path | None, configured: Path | None, python: str | None = None,
                configured_python: str | None = None, python_from: str = "--kometa-python") -> KometaCommand:
    """kometa.py: `--kometa`/`KOMETA_PATH`, then `kometa.path`, then the official image's `/kometa.py` (a folder
    means the checkout holding kometa.py). Its interpreter: `python` (given as `python_from` says:
    `--kometa-python` or `KOMETA_PYTHON`), then `kometa.python`, then a venv beside kometa.py (venv/, .venv/,
    kometa-venv/, env/), then this tool's own. Raises `KometaNotFound` naming what was tried."""
    tried = []
    script = None
    for source, candidate in (("--kometa/KOMETA_PATH", given), ("kometa.path", configured),
                              ("the default", DEFAULT_KOMETA)):
        if candidate is None:
            continue
        path = candidate / "kometa.py" if candidate.is_dir() else candidate
        if path.is_file():
            script = path.resolve()
            break
        tried.append(f"{source} {path}")
        if source != "the default":
            break  # an explicit path that is wrong is an error, not a reason to run another Kometa
    if script is None:
        raise KometaNotFound(f"Kometa not found (tried {', '.join(tried)}); point --kometa or KOMETA_PATH at "
                             "kometa.py")
    if python:
        return KometaCommand(_interpreter(python, python_from), script, python_from)
    if configured_python:
        return KometaCommand(_interpreter(configured_python, "kometa.python"), script, "kometa.python")
    for name in VENV_NAMES:
        candidate = script.parent / name / "bin" / "python"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return KometaCommand(str(candidate), script, f"the venv beside kometa.py ({name}/)")
    return KometaCommand(sys.executable, script, OWN_INTERPRETER)


def requirements_problem(kometa: KometaCommand, secrets: list[str], timeout: float = 120, *,
                         hidden: tuple[Path, ...] = (), isolation: Isolation = Isolation.AUTO) -> str | None:
    """Run Kometa's own start (`kometa.py --help`: its import block, then argparse) with `kometa.python`, and
    say what is wrong: Kometa's `Requirements Error` (it exits 0 after it), or a crash. None when it starts.
    Kometa's module code runs even for --help: it runs as a render runs it, in its box where there is one, with the
    environment a render gives it (no secrets) and `hidden` hidden."""
    argv = [kometa.python, str(kometa.script), "--help"]
    try:
        code, output = _run_once(argv, kometa.folder, child_environment(secrets), hidden, isolation, timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{kometa.python} {kometa.script.name} --help` could not be run ({type(exc).__name__})"
    screen = kometa_log.screen_lines(output.decode("utf-8", "replace").splitlines(keepends=True))
    problem = kometa_log.requirements_error(screen)
    if problem:
        return problem
    if code != 0:
        last = kometa_log.python_crash(screen) or (screen[-1].text if screen else "no output")
        return f"`{Path(kometa.python).name} {kometa.script.name} --help` exited {code}: {last}"
    return None


def _run_once(argv: list[str], cwd: Path, env: dict[str, str], hidden: tuple[Path, ...], isolation: Isolation,
              timeout: float) -> tuple[int, bytes]:
    """`argv` to its end, in the box unless `isolation` is none (or auto finds no box): its exit code and output."""
    if isolation is not Isolation.NONE:
        with tempfile.TemporaryDirectory(prefix="kometa-preview-") as scratch:
            spec = box.BoxSpec(argv, cwd, {**env, "TMPDIR": scratch}, writable=(Path(scratch),), hidden=hidden)
            try:
                boxed = box.start(spec, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            except box.BoxUnavailable as exc:
                if isolation is Isolation.BOX:
                    raise KometaNotFound(f"--isolation box: Kometa's box cannot be built here ({exc})") from None
            else:
                try:
                    output = boxed.process.communicate(timeout=timeout)[0]
                except subprocess.TimeoutExpired:
                    stop_process(boxed.process, group=True)
                    raise
                finally:
                    boxed.close()
                return boxed.process.returncode, output
    run = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, env=env)
    return run.returncode, run.stdout + run.stderr


class KometaTimeout(Exception):
    pass


#: The launcher Kometa's interpreter runs (standard library only): kometa.py, started early, run on cue.
START_SCRIPT = Path(__file__).parent / "start.py"


class KometaProcess:
    """Kometa, started before it is needed (its imports overlap the proxy's start-up, or the last watch
    iteration), and told to run once the proxy listens. Its output goes to the log file named at `go` (and each
    line, Kometa's carriage-return progress lines included, to `on_line`).

    Kometa is never modified: kometa_start.py runs kometa.py as `python kometa.py <arguments>` would, once the
    cue arrives on its stdin (`go`). That pipe stays open while the render lives: kometa_start.py stops Kometa when
    it closes. In the box, the box's init takes the cue first (the run config goes to a private tmpfs, never to
    the disk) and the relay is the gate; without it, kometa_start.py's audit hook is the gate.
    """

    def __init__(self, kometa: KometaCommand, handoff: Path, home: Path, env: dict[str, str],
                 isolation: Isolation, hidden: tuple[Path, ...], veiled: tuple[Path, ...] = ()) -> None:
        handoff.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        self.kometa = kometa
        self.handoff = handoff
        self.home = home
        self.on_line: Callable[[str], None] | None = None
        self.started_at: float | None = None
        self.exited_at: float | None = None
        #: Wall-clock times of the cue and of the exit, for the page and the benchmark.
        self.started_wall: float | None = None
        self.exited_wall: float | None = None
        self._log: BinaryIO | None = None
        self.gated = False
        self._early = bytearray()          # output before `go` named the log (a crash while importing)
        self._output_lock = threading.Lock()
        self._eof = threading.Event()
        self.requested = isolation
        #: Why the box could not be had (None: it runs boxed, or nobody asked for it).
        self.isolation_problem: str | None = None
        self.box = self._boxed(env, hidden, veiled) if isolation is not Isolation.NONE else None
        if self.box is not None:
            self.process = self.box.process
        else:
            self.process = subprocess.Popen(self._argv(), cwd=kometa.folder, env=env, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._pump, name="kometa-output", daemon=True)
        self._reader.start()

    def _argv(self) -> list[str]:
        return [self.kometa.python, str(START_SCRIPT), str(self.handoff), str(self.kometa.script)]

    def _boxed(self, env: dict[str, str], hidden: tuple[Path, ...], veiled: tuple[Path, ...]) -> box.Box | None:
        scratch = self.handoff / "tmp"
        secret = self.handoff / "secret"
        scratch.mkdir(exist_ok=True)
        secret.mkdir(mode=0o700, exist_ok=True)
        spec = box.BoxSpec(self._argv(), self.kometa.folder,
                           {**env, "TMPDIR": str(scratch)},
                           writable=(self.home, self.handoff), hidden=hidden, veiled=veiled, secret_folder=secret,
                           listen=2)
        self.kometa.compile_once()
        try:
            return box.start(spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except box.BoxUnavailable as exc:
            if self.requested is Isolation.BOX:
                raise KometaNotFound(f"--isolation box: Kometa's box cannot be built here ({exc})") from None
            self.isolation_problem = str(exc)
            return None

    @property
    def isolation(self) -> str:
        """Which isolation Kometa runs with: `box` or `none`."""
        return Isolation.BOX.value if self.box is not None else Isolation.NONE.value

    def endpoints(self, port: int, outside_port: int | None) -> tuple[int, int | None]:
        """The ports Kometa's config must name to reach the proxy's `port` and `outside_port`: in the box, the box's
        own (the relay carries them out, and follows the proxy if it moves before `open`); else those."""
        if self.box is None:
            return port, outside_port
        self.box.relay.point([port, outside_port])
        return self.box.ports[0], self.box.ports[1]

    def _pump(self) -> None:
        assert self.process.stdout is not None
        try:
            for raw in iter(lambda: self.process.stdout.read1(65536), b""):  # type: ignore[union-attr]
                with self._output_lock:
                    if self._log is None:
                        self._early += raw
                    else:
                        self._log.write(raw)
                        self._log.flush()
                if self.on_line is not None:
                    for part in raw.decode("utf-8", "replace").replace("\r", "\n").split("\n"):
                        if part.strip():
                            self.on_line(part.rstrip())
        finally:
            self._eof.set()  # Kometa closed its output: it has exited (or is about to)

    @property
    def usable(self) -> bool:
        """Still waiting for its cue (a process started for a later watch iteration may have died meanwhile)."""
        return self.started_at is None and self.process.poll() is None

    def go(self, run_config: Path, config_text: str, args: list[str], env: dict[str, str], log_path: Path, *,
           gated: bool = False, shown: list[str] = ()) -> None:
        """Run kometa.py with its config `run_config` holding `config_text`, these arguments, and these variables
        added to its environment; its output from now on (and what it printed before) goes to `log_path`.
        `gated`: before the proxy listens — no connection reaches the proxy until `open`. `shown`: the overlay files
        the config names (run_config.overlay_files), copied into the box's view of a folder it covers."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._output_lock:
            self._log = log_path.open("ab")
            self._log.write(bytes(self._early))
            self._early.clear()
        self.started_at, self.started_wall = time.monotonic(), time.time()
        self.gated = gated
        order: dict = {"args": args, "env": env, "gated": gated and self.box is None}
        if self.box is not None:
            write_private(run_config, "")  # the placeholder the box binds the run config over
            order["config"] = {"path": str(run_config), "text": config_text}
            order["shown"] = list(shown)
        else:
            write_private(run_config, config_text)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(order).encode() + b"\n")
        self.process.stdin.flush()

    def open(self) -> None:
        """The proxy listens where `endpoints` was told: let Kometa's connections through."""
        if self.box is not None:
            self.box.relay.open()
        else:
            write_private(self.handoff / "open", "")

    @property
    def gate_seconds(self) -> float:
        """How long Kometa's first connection waited for the proxy (not Kometa's own time)."""
        if self.box is not None:
            self.box.relay.read_reports()
            return self.box.relay.waited
        waited = 0.0
        for record in self.handoff.glob("gate-*.json"):
            try:
                waited += float(json.loads(record.read_text(encoding="utf-8"))["waited"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return waited

    def finish(self, timeout: float, on_tick: Callable[[], None] | None = None) -> int:
        """Wait for Kometa to end. Raises `KometaTimeout` after `timeout` seconds and re-raises KeyboardInterrupt,
        in both cases after stopping Kometa and everything it started."""
        deadline = time.monotonic() + timeout
        try:
            while self.process.poll() is None:
                if time.monotonic() > deadline:
                    self.cancel()
                    raise KometaTimeout(f"Kometa was stopped after {timeout:g}s (kometa.timeout)")
                if on_tick is not None:
                    on_tick()
                if self._eof.wait(0.05):  # its output closes as it exits: seen at once, not at the next poll
                    try:
                        self.process.wait(timeout=0.5)
                    except subprocess.TimeoutExpired:
                        pass  # something Kometa started still holds its output: poll on
        except BaseException:
            self.cancel()
            raise
        finally:
            self._mark_exit()
            self._reader.join(timeout=5)
            with self._output_lock:
                if self._log is not None:
                    self._log.close()
            self._release()
        return self.process.returncode

    def _release(self) -> None:
        """Kometa has ended: its relay, its stdin (its lifeline) go."""
        if self.box is not None:
            self.box.close()
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def _mark_exit(self) -> None:
        if self.exited_at is None:
            self.exited_at, self.exited_wall = time.monotonic(), time.time()

    def cancel(self) -> None:
        stop_process(self.process, group=True)
        self._mark_exit()
        self._release()

    @property
    def import_seconds(self) -> float:
        """How long its imports took (done before the cue)."""
        try:
            return float(json.loads((self.handoff / "warm.json").read_text(encoding="utf-8"))["import_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0.0

    @property
    def run_started_wall(self) -> float | None:
        """When kometa.py began to run (its imports done and its cue given), by its own clock."""
        try:
            return float(json.loads((self.handoff / "started.json").read_text(encoding="utf-8"))["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return self.started_wall

    @property
    def own_seconds(self) -> float | None:
        """Kometa's own time, what `python kometa.py …` would take: its imports (done early), plus its run from its
        start to its exit, minus the time its first connection waited at the gate for the proxy."""
        start = self.run_started_wall
        if start is None or self.exited_wall is None:
            return None
        return round(self.import_seconds + max(0.0, self.exited_wall - start - self.gate_seconds), 3)


def kometa_proxy_environment(port: int, outside_port: int | None, ca_cert: Path) -> dict[str, str]:
    """What Kometa's environment gets for its run: its outside calls through the proxy's forward mode on
    `outside_port`, trusting the per-job CA; only the reverse proxy's own address and port are exempt
    (`localhost:<port>`, the host its config names: requests matches NO_PROXY's host:port form for host names,
    never for IP addresses). Everything else, loopback and the LAN included, goes through the door and is judged."""
    if not outside_port:
        return {}
    outside = f"http://127.0.0.1:{outside_port}"
    exempt = f"localhost:{port}"
    return {"HTTP_PROXY": outside, "HTTPS_PROXY": outside, "http_proxy": outside, "https_proxy": outside,
            "NO_PROXY": exempt, "no_proxy": exempt, "REQUESTS_CA_BUNDLE": str(ca_cert), "SSL_CERT_FILE": str(ca_cert)}


def proxy_url(port: int) -> str:
    """The reverse proxy as Kometa's config names it (see `kometa_proxy_environment`)."""
    return f"http://localhost:{port}"
