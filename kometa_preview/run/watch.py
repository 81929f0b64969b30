"""`kometa-preview watch preview.yml`: edit and see. The first render runs, then a new iteration starts by
itself whenever preview.yml, an overlay file it references (followed into the files they name, those borrowed
from kometa.config included) or an `input:` image changes — like `mkdocs serve`.

The proxy stays up across iterations (its targets are read once; only a change of the targets, Plex or the
outside allowlist starts a new one, in a new `proxy-<n>/` folder). Each iteration is a job folder of its own,
`<watch>/iterations/<n>/` (Kometa's fresh config folder, its logs, `output/`), diffed against the previous one.
The live page (results/live_page.py) follows it; a failing iteration shows its error beside the last good images.
Its editor writes a moved overlay's offsets into the user's YAML (run/editor.py); the loop sees that save like
any other and renders the next iteration.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..common.config import ConfigError, PreviewConfig, ProxyConfig, load
from ..common.events import STATE_EVENTS, Event, Follower
from ..common.job import EDITS, JobLayout
from ..kometa import run_config
from ..kometa.runner import KometaCommand, KometaProcess, KometaTimeout
from ..results import export
from ..results.diff import UNCOMPARED, Decoded, compare, write_html
from ..results.live_page import LivePage, LiveState
from ..tools.check import overlay_problems
from .editor import Editor, Refused, Scene
from .job_folder import file_logging, prepare_job
from .kometa_pass import KometaPass, choose_kometa, isolation_warning, kometa_pass, start_kometa
from .proxy_child import LaunchError, ProxyOptions, ProxyProcess, start_proxy
from .request import RenderError, RenderRequest, Reporter, interrupt_on_sigterm, raise_if_interrupted

log = logging.getLogger("kometa_preview.run.watch")
#: How often files are looked at, and how long they must stay unchanged before an iteration starts (editors save
#: in several steps: a temporary file, a rename).
POLL_SECONDS = 0.02
SETTLE_SECONDS = 0.05
PATH_KEYS = ("file", "folder")


def _referenced(document: Any) -> list[str]:
    """Every `file:`/`folder:` string anywhere in an overlay file (external templates, images…)."""
    found, stack = [], [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            found += [v for k, v in value.items() if k in PATH_KEYS and isinstance(v, str)]
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
    return found


def watched_files(config: PreviewConfig, kometa_folder: Path) -> set[Path]:
    """preview.yml, kometa.config, every overlay file the libraries name (and the files those name, followed),
    the files of every overlay folder, and the targets' input images."""
    files = {config.source.resolve()}
    user: dict[str, Any] = {}
    if config.kometa.config:
        files.add(config.kometa.config.resolve())
        try:
            user = run_config.read_user_config(config.kometa.config)
        except run_config.KometaConfigError:
            user = {}
    titles = set(config.libraries) | set((user.get("libraries") or {}) if isinstance(user.get("libraries"), dict)
                                         else ())
    pending: list[Path] = []
    for title in titles:
        for source in run_config.overlay_sources(config, user, title, kometa_folder):
            if source.kind == "file":
                pending.append(Path(source.value))
            elif source.kind == "folder":
                files.add(Path(source.value))
                pending += sorted([*Path(source.value).glob("*.yml"), *Path(source.value).glob("*.yaml")])
    while pending:
        path = pending.pop().resolve()
        if path in files:
            continue
        files.add(path)
        if path.suffix.lower() in (".yml", ".yaml") and path.is_file():
            try:
                document = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            for reference in _referenced(document):  # Kometa resolves them in its folder; people next to the file
                for base in (path.parent, kometa_folder):
                    candidate = Path(reference) if Path(reference).is_absolute() else base / reference
                    pending.append(candidate)
    files.update(t.input.resolve() for t in config.targets if t.input is not None)
    return files


def snapshot(files: set[Path]) -> dict[Path, tuple[int, int] | None]:
    """Each file's (mtime, size), None when it does not exist; a folder by its listing's newest mtime."""
    seen: dict[Path, tuple[int, int] | None] = {}
    for path in files:
        try:
            stat = path.stat()
            seen[path] = (stat.st_mtime_ns, stat.st_size) if not path.is_dir() else \
                (max([stat.st_mtime_ns, *(p.stat().st_mtime_ns for p in path.iterdir())]), 0)
        except OSError:
            seen[path] = None
    return seen


Snapshot = dict[Path, tuple[int, int] | None]


def wait_for_change(files: set[Path], stop: threading.Event,
                    before: Snapshot | None = None) -> tuple[list[Path], float, Snapshot] | None:
    """Block until one of `files` differs from `before` (default: now) and then stays unchanged for
    SETTLE_SECONDS: the files that changed, when the last of them was saved, and the settled snapshot (the next
    wait's `before`). None when stopped. `before` taken when an iteration began catches a save made while it ran."""
    before = snapshot(files) if before is None else before
    while True:
        now = snapshot(files)
        if now != before:
            seen_at = time.time()
            while not stop.wait(SETTLE_SECONDS):
                settled = snapshot(files)
                if settled == now:
                    changed = sorted(p for p in files if before.get(p) != now.get(p))
                    saved = [s[0] / 1e9 for p in changed if (s := now.get(p)) is not None and s[0]]
                    return changed, max(saved) if saved else seen_at, settled
                now = settled
            return None
        if stop.wait(POLL_SECONDS):
            return None
        raise_if_interrupted()


@dataclass
class Iteration:
    number: int
    layout: JobLayout
    outcome: export.Outcome | None = None
    error: str | None = None
    kometa_seconds: float | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    #: Seconds: save_to_start (the newest save that triggered it → Kometa's cue), kometa_run (its cue → its exit),
    #: exit_to_done (Kometa's exit → the page says done), export, diff (against the previous iteration).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return self.layout.output

    @property
    def good(self) -> bool:
        """It ran to its end without an error: its images are what the config draws."""
        return self.outcome is not None and self.error is None and self.outcome.summary.success


class JournalView:
    """The journal of a proxy that serves every iteration, followed once instead of re-read per iteration: what
    the proxy learned (its `STATE_EVENTS`, true for every run) is kept; the rest is handed out once."""

    def __init__(self, journal: Path) -> None:
        self.follower = Follower(journal)
        self.state: list[dict[str, Any]] = []
        self.target_keys: set[str] = set()

    def take(self) -> list[dict[str, Any]]:
        """The lines appended since the last call."""
        lines = self.follower.new_lines()
        for line in lines:
            if line.get("event") in STATE_EVENTS:
                self.state.append(line)
                if line.get("event") == Event.TARGET and line.get("rating_key"):
                    self.target_keys.add(str(line["rating_key"]))
        return lines


class Watch:
    """The watch loop: one proxy for as long as the targets stay the same, one iteration per change, and the next
    iteration's Kometa already started (its imports done) while the user edits."""

    def __init__(self, request: RenderRequest, reporter: Reporter, port: int = 0) -> None:
        self.request = request
        self.reporter = reporter
        self.state = LiveState()
        self.stop = threading.Event()
        self.iterations: list[Iteration] = []
        self.proxy: ProxyProcess | None = None
        self.proxy_config: ProxyConfig | None = None
        self.journal: JournalView | None = None
        self.generation = 0
        self.warm: KometaProcess | None = None
        #: What the waiting Kometa was started for: its iteration, and the secrets kept out of its environment.
        self.warm_for: tuple[int, list[str]] | None = None
        self.warned_isolation = False
        self.kometa_starts = 0
        self.page = LivePage(self.state, self.iteration_output, port, writes=self.write)
        self.decoded = Decoded()
        self.root: Path | None = None
        self.log_handler: logging.Handler | None = None
        #: What the editor judges a move against: the config and Kometa of the running loop, the files it reads.
        self.config: PreviewConfig | None = None
        self.kometa: KometaCommand | None = None
        self.files: frozenset[Path] = frozenset()
        self.editor: Editor | None = None

    def iteration_output(self, number: int) -> Path | None:
        if 1 <= number <= len(self.iterations):
            return self.iterations[number - 1].output
        return None

    # --- the proxy, kept across iterations ------------------------------------------------------------------

    def ensure_proxy(self, config: PreviewConfig) -> None:
        wanted = config.for_proxy()
        if self.proxy is not None and self.proxy.alive() and wanted == self.proxy_config:
            return
        if self.proxy is not None:
            self.reporter.stage("The targets, Plex or the outside allowlist changed: starting a new proxy")
            self.proxy.stop()
            self.proxy = None
        self.generation += 1
        assert self.root is not None
        self.proxy = start_proxy(wanted, JobLayout(self.root / f"proxy-{self.generation}"),
                                 ProxyOptions(mock=self.request.mock, outside=True, offline=self.request.offline),
                                 secrets=config.secret_values())
        self.proxy_config = wanted
        self.journal = JournalView(self.proxy.layout.journal)

    # --- the next iteration's Kometa, started early --------------------------------------------------------

    def iteration_layout(self, number: int) -> JobLayout:
        assert self.root is not None
        return JobLayout(self.root / "iterations" / str(number))

    def prepare_kometa(self, config: PreviewConfig, kometa: KometaCommand, number: int) -> None:
        """Start iteration `number`'s Kometa now (its imports take most of its start-up), unless one is waiting
        for it already with the same secrets kept out of its environment and the same files hidden (a new
        kometa.config: a new box). Its iteration folder is made now: the
        box lets Kometa write its config folder there, and nowhere else."""
        wanted = (number, sorted(config.secret_values()), config.secret_files())  # a new kometa.config: a new box
        if self.warm is not None and self.warm.usable and self.warm_for == wanted:
            return
        self.discard_kometa()
        assert self.root is not None
        self.kometa_starts += 1
        layout = prepare_job(config, self.iteration_layout(number).root, force=True).layout
        edits = self.root / EDITS
        edits.mkdir(mode=0o700, exist_ok=True)  # made now, so that Kometa's box covers it before the first move
        self.warm = start_kometa(self.request, config, kometa, self.root / "kometa-start" / str(self.kometa_starts),
                                 layout, veiled=(edits,))
        self.warm_for = wanted
        if not self.warned_isolation and (warning := isolation_warning(self.warm)) is not None:
            self.warned_isolation = True
            self.reporter.stage(warning)

    def check_overlays(self, config: PreviewConfig, kometa: KometaCommand) -> None:
        """`check`'s overlay checks, before Kometa runs: a file that does not parse (or breaks one of Kometa's
        overlay rules) fails the iteration at once, naming the file, line and column. Raises RenderError."""
        assert self.proxy is not None
        problems = overlay_problems(config, kometa, list(self.proxy.libraries))
        if problems:
            raise RenderError(f"{problems[0].message} ({problems[0].fix})" if problems[0].fix else problems[0].message)

    def discard_kometa(self) -> None:
        if self.warm is not None:
            self.warm.cancel()
            self.warm = None

    # --- one iteration ---------------------------------------------------------------------------------------

    def iterate(self, config: PreviewConfig, kometa: KometaCommand, saved_at: float | None = None) -> Iteration:
        """One render through the kept proxy. `saved_at`: when the edit that triggered it was saved."""
        assert self.root is not None
        number = len(self.iterations) + 1
        iteration = Iteration(number, self.iteration_layout(number), started_at=time.time())
        self.iterations.append(iteration)
        self.state.update(iteration=number, status="running", started_at=iteration.started_at, finished_at=None,
                          error=None, kometa_seconds=None, output_dir=str(iteration.output), timings={})
        result = None
        try:
            self.prepare_kometa(config, kometa, number)
            self.ensure_proxy(config)
            assert self.proxy is not None and self.journal is not None
            self.check_overlays(config, kometa)
            self.journal.take()  # what the proxy logged between iterations belongs to none
            started, self.warm = self.warm, None
            result = kometa_pass(self.request, config, kometa, self.proxy, iteration.layout, self.reporter,
                                 started=started, wanted=self.journal.target_keys)
            iteration.error, iteration.kometa_seconds = result.error, result.seconds
        except (RenderError, LaunchError, KometaTimeout) as exc:
            iteration.error = str(exc)
        exported = time.monotonic()
        lines = None
        if self.journal is not None:
            before = list(self.journal.state)
            lines = before + self.journal.take()
        passed = result or KometaPass(error=iteration.error)
        facts = passed.facts(kometa, self.request, started=iteration.started_at,
                             timings={"kometa": iteration.kometa_seconds or 0.0}, error=iteration.error)
        source = export.JournalSource(self.proxy.layout if self.proxy is not None else iteration.layout, lines,
                                      since=iteration.started_at)
        iteration.outcome = export.collect(config, iteration.layout, facts, source, passed.meta_log)
        iteration.timings["export"] = round(time.monotonic() - exported, 3)
        if result is not None and result.started_wall is not None:
            if saved_at is not None:
                iteration.timings["save_to_start"] = round(result.started_wall - saved_at, 3)
            if result.exited_wall is not None:
                iteration.timings["kometa_run"] = round(result.exited_wall - result.started_wall, 3)
        iteration.finished_at = time.time()
        self.publish(iteration, result.exited_wall if result is not None else None)
        return iteration

    def publish(self, iteration: Iteration, exited_wall: float | None) -> None:
        """The iteration on the page. A good one shows its images and what changed since the last good one. A failed
        one shows its error (Kometa's whole reason, or the overlay check's) beside the last good iteration's images
        (`shown_iteration`), never its own posters drawn without the overlay that failed."""
        summary = iteration.outcome.summary if iteration.outcome else None
        targets = {tid: asdict(entry) for tid, entry in summary.targets.items()} if summary else {}  # as summary.json
        shown = iteration if iteration.good else self.last_good(before=iteration.number)
        changed = self.changes(iteration) if iteration.good else {}
        if exited_wall is not None:
            iteration.timings["exit_to_done"] = round(time.time() - exited_wall, 3)
        if summary is not None:
            self.reporter.results(summary)
        self.state.update(status="done" if iteration.good else "failed", targets=targets,
                          images=self.images(shown) if shown is not None else {}, changed=changed,
                          shown_iteration=shown.number if shown is not None else None,
                          error=iteration.error or (summary.error if summary else None),
                          kometa_seconds=iteration.kometa_seconds, finished_at=iteration.finished_at,
                          timings=dict(iteration.timings))

    def last_good(self, before: int) -> Iteration | None:
        return next((it for it in reversed(self.iterations[:before - 1]) if it.good), None)

    def images(self, shown: Iteration) -> dict[str, dict[str, Any]]:
        """Each target's images from `shown`; a target it has none for keeps the last good ones it had."""
        assert shown.outcome is not None
        images: dict[str, dict[str, Any]] = {}
        for target_id, entry in shown.outcome.summary.targets.items():
            images[target_id] = {"iteration": shown.number, "before": entry.before, "after": entry.after}
            if entry.after:
                continue
            for earlier in reversed(self.iterations[:shown.number - 1]):
                old = earlier.outcome.summary.targets.get(target_id) if earlier.good and earlier.outcome else None
                if old is not None and old.after:
                    images[target_id] = {"iteration": earlier.number, "before": old.before, "after": old.after}
                    break
        return images

    def changes(self, iteration: Iteration) -> dict[str, float]:
        """What changed since the last good iteration (diff.html in this iteration's output), per target."""
        previous = self.last_good(before=iteration.number)
        if previous is None:
            return {}
        compared = time.monotonic()
        try:
            changes = compare(previous.output, iteration.output, iteration.output, self.decoded)
            self.decoded.keep_only(iteration.output)
            write_html(iteration.output, previous.output, iteration.output, changes)
        except Exception as exc:  # noqa: BLE001 - a failed diff must not stop the watch
            log.warning("diff with iteration %d failed: %s", previous.number, exc)
            changes = []
        iteration.timings["diff"] = round(time.monotonic() - compared, 3)
        for change in changes:
            if change.result != "identical":
                self.reporter.stage(f"iteration {iteration.number}: {change.line}")
        # an image that could not be compared is said above with its reason, never shown as a change
        return {c.target: c.changed_percent for c in changes if c.result not in ("identical", UNCOMPARED)}

    # --- the editor: the page's moves, written into the user's YAML -------------------------------------------

    def scene(self) -> Scene:
        """The watch as a move sees it: the files it reads now, the page's targets and each one's library."""
        assert self.config is not None and self.kometa is not None
        libraries = {str(line.get("target")): str(line.get("library")) for line in
                     (list(self.journal.state) if self.journal is not None else [])
                     if line.get("event") == Event.TARGET and line.get("library")}
        if self.proxy is not None and len(self.proxy.libraries) == 1:
            libraries = {target: libraries.get(target, self.proxy.libraries[0]) for target in self.state.targets}
        return Scene(self.config, self.kometa.folder, self.files, dict(self.state.targets), libraries,
                     self.state.iteration)

    def write(self, action: str, body: Any) -> tuple[int, dict[str, Any]]:
        """The page's `api/move` or `api/undo` (already judged by the page: its token, its origin): the answer."""
        if self.editor is None or self.config is None:
            return 503, {"error": "the first iteration has not started yet"}
        try:
            answer = self.editor.move(body) if action == "move" else self.editor.undo()
        except Refused as exc:
            self.reporter.stage(f"! {action} refused: {exc}")
            return exc.status, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a failed move must not stop the page
            log.exception("%s failed", action)
            return 500, {"error": f"{action} failed: {exc.__class__.__name__}: {exc}"}
        changed = ", ".join(f"{c['key'].rpartition('.')[2]} {c['old']} → {c['new']}" for c in answer.get("changes", []))
        self.reporter.stage(f"{action}: {Path(answer['file']).name}" + (f": {changed}" if changed else ""))
        return 200, answer

    # --- the loop ----------------------------------------------------------------------------------------------

    def run(self, on_page: Callable[[str], None]) -> int:
        """Until Ctrl-C (or `stop`): returns 130. `on_page` is given the page's address once it listens."""
        request = self.request
        try:
            config = load(request.config_path)
        except ConfigError as exc:
            raise RenderError(str(exc)) from None
        kometa = choose_kometa(config, request)
        self.reporter.kometa_found(kometa)
        root = prepare_job(config, request.job or config.output / time.strftime("watch-%Y%m%d_%H%M%S"),
                           request.force)
        self.root = root.layout.root
        self.log_handler = file_logging(root.layout)  # the render's log lines go to <watch>/logs, not the terminal
        interrupt_on_sigterm()
        self.page.start()
        on_page(self.page.url)
        saved_at: float | None = None
        files = watched_files(config, kometa.folder)
        self.config, self.kometa, self.files = config, kometa, frozenset(files)
        self.editor = Editor(self.root, self.scene)
        before = snapshot(files)  # as the iteration reads them: a save while it runs starts the next one
        try:
            while not self.stop.is_set():
                iteration = self.iterate(config, kometa, saved_at)
                # the next iteration's Kometa imports while the user edits
                self.prepare_kometa(config, kometa, len(self.iterations) + 1)
                self.reporter.stage(f"iteration {iteration.number} {self.state.status} ({iteration.output}); "
                                    f"watching {len(files)} files")
                while not self.stop.is_set():
                    change = wait_for_change(files, self.stop, before)
                    if change is None:
                        break
                    changed, saved_at, before = change
                    self.reporter.stage(f"changed: {', '.join(p.name for p in changed)}")
                    try:
                        config = load(request.config_path)
                    except ConfigError as exc:  # shown beside the last good images; the next save tries again
                        self.state.update(status="failed", error=str(exc))
                        self.reporter.stage(f"! {exc}")
                        continue
                    files = watched_files(config, kometa.folder)
                    self.config, self.files = config, frozenset(files)
                    before = {path: before.get(path, state) for path, state in snapshot(files).items()}
                    break
        except KeyboardInterrupt:
            pass
        finally:
            self.close()
        return 130

    def close(self) -> None:
        """Stop every child: the waiting Kometa, the proxy, the page."""
        self.stop.set()
        self.discard_kometa()
        if self.proxy is not None:
            self.proxy.stop()
        self.page.stop()
        if self.log_handler is not None:
            logging.getLogger("kometa_preview").removeHandler(self.log_handler)
            self.log_handler.close()
            self.log_handler = None
