"""The `kometa-preview` command. Commands parse arguments, call one library function, and turn its
errors into one-line messages with the exit codes of docs/PREVIEW-MODE.md (2 = bad input or environment)."""
from __future__ import annotations

import errno
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import click

from . import __version__


class UserError(click.ClickException):
    """Bad input or environment: one line on stderr, exit code 2."""

    exit_code = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kometa-preview")
def main() -> None:
    """Preview Kometa overlays on a few Plex items without letting Kometa write to Plex."""
    non_dumpable()


def non_dumpable() -> None:
    """The Plex token is in this process (its environment, preview.yml): no other process of this user may read its
    memory or /proc/<pid>/environ (Linux: only root or CAP_SYS_PTRACE can, then)."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE


@main.command()
@click.option("--movies", default=40, show_default=True, help="Number of movies in the sample library.")
@click.option("--shows", default=3, show_default=True, help="Number of TV shows.")
@click.option("--seasons", default=2, show_default=True, help="Seasons per show.")
@click.option("--episodes", default=3, show_default=True, help="Episodes per season.")
@click.option("--seed", default=1, show_default=True, help="Same seed and sizes, same library.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=32400, show_default=True, help="Port to listen on (0 picks a free one).")
@click.option("--token", envvar="SANDBOX_TOKEN", help="Token clients must send (default: a random one).")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Append every request it receives to this JSON-lines file.")
@click.option("--latency-ms", default=0, show_default=True, type=click.IntRange(min=0),
              help="Answer each request this much later (a Plex across a network, with its database).")
def sandbox(movies: int, shows: int, seasons: int, episodes: int, seed: int, host: str, port: int,
            token: str | None, log_path: Path | None, latency_ms: int) -> None:
    """Run a sample Plex Media Server to try kometa-preview without a real Plex.

    It prints its URL and token; put them in preview.yml's `plex:` section.
    """
    from .sandbox import SampleServer, generate

    try:
        library = generate(seed=seed, movies=movies, shows=shows, seasons=seasons, episodes=episodes)
    except ValueError as exc:
        raise UserError(f"sandbox: {exc}") from None
    if not 0 <= port <= 65535:
        raise UserError(f"sandbox: --port must be between 0 and 65535, not {port}")
    token = token or secrets.token_urlsafe(16)
    try:
        server = SampleServer(library, token, host=host, port=port, log_path=log_path, latency=latency_ms / 1000)
    except OSError as exc:
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be opened ({exc.strerror})"
        raise UserError(f"sandbox: port {port} on {host} {reason}") from None
    server.start()
    click.echo(f"Sample Plex Media Server with {movies} movies and {shows} shows")
    click.echo(f"url:   {server.url}")
    click.echo(f"token: {token}")
    click.echo("Press Ctrl-C to stop.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _load_config(path: Path):
    from .common.config import ConfigError, load
    try:
        return load(path)
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def _token_from(given: str | None, token_file: Path | None, ctx: click.Context, command: str) -> str | None:
    """A Plex token from --token-file, PLEX_TOKEN or --token. On the command line, a token can be read by every
    local user (/proc/*/cmdline), so --token itself is accepted with a warning."""
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise UserError(f"{command}: --token-file {token_file}: cannot be read ({exc.strerror})") from None
    if given and ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        click.secho(f"{command}: warning: --token on the command line can be read by other users of this machine; "
                    "use PLEX_TOKEN or --token-file", fg="yellow", err=True)
    return given


def _check_port(port: int, what: str) -> None:
    from .common.children import port_in_use
    if not 0 <= port <= 65535:
        raise UserError(f"{what} must be between 0 and 65535, not {port}")
    if port and port_in_use(port):
        raise UserError(f"{what}: port {port} on 127.0.0.1 is in use")


@main.command()
@click.argument("preview_yml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--port", default=0, show_default=True, help="Port for the proxy on 127.0.0.1 (0 picks a free one).")
@click.option("--web", is_flag=True, help="Run mitmweb instead of mitmdump, to look at every flow in a browser.")
@click.option("--web-port", default=8081, show_default=True, help="Port of the mitmweb UI (with --web).")
@click.option("--filter-mode", is_flag=True, envvar="PREVIEW_FILTER_MODE",
              help="Forward listings to Plex and filter them (legacy) instead of answering them locally.")
@click.option("--job", "job", type=click.Path(file_okay=False, path_type=Path),
              help="Job folder for the journal and captures (default: <preview.output>/proxy-<time>).")
def proxy(preview_yml: Path, port: int, web: bool, web_port: int, filter_mode: bool, job: Path | None) -> None:
    """Run only the preview proxy, to point any Plex client (or Kometa by hand) at it.

    It prints the URL and the job token a client must use. Every flow is tagged with its verdict
    (MOCK_LIST, ALLOW_FORWARD, BLOCKED_WRITE, …): with --web you see them in mitmweb.
    """
    import time

    from .common.config import mock_library_from_environment
    from .common.job import JobLayout
    from .run.proxy_child import LaunchError, ProxyOptions, start_proxy

    config = _load_config(preview_yml)
    _check_port(port, "--port")
    if web:
        _check_port(web_port, "--web-port")
    job = job or config.output / time.strftime("proxy-%Y%m%d_%H%M%S")
    web_password = secrets.token_urlsafe(12)
    mock = not filter_mode and mock_library_from_environment()
    try:
        options = ProxyOptions(mock=mock, port=port, web_port=web_port if web else None,
                               web_password=web_password if web else None)
        child = start_proxy(config.for_proxy(), JobLayout(job.resolve()), options, secrets=config.secret_values())
    except LaunchError as exc:
        raise UserError(f"proxy: {exc}") from None
    click.echo(f"kometa-preview proxy ({'mock library' if mock else 'filter'} mode) for {len(config.targets)} targets")
    click.echo(f"url:   {child.url}")
    click.echo(f"token: {child.client_token}")
    click.echo(f"job:   {job}")
    if web:
        click.echo(f"web:   http://127.0.0.1:{web_port}/?token={web_password}")
    click.echo("Press Ctrl-C to stop.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if not child.alive():
                raise UserError(f"proxy: the proxy exited with code {child.process.returncode} (see {child.log_path})")
    except KeyboardInterrupt:
        pass
    finally:
        child.stop()


class TerminalReporter:
    """Stages and progress the way click users expect; raw Kometa output only with --verbose. During Kometa's
    long silent phases, what it is doing (`kometa_log.progress`), at most every few seconds."""

    PROGRESS_EVERY = 3.0

    def __init__(self, quiet: bool, verbose: bool) -> None:
        self.quiet, self.verbose = quiet, verbose
        self._shown_at = 0.0

    def stage(self, text: str) -> None:
        if not self.quiet:
            click.secho(f"• {text}", fg="cyan", err=True)

    def kometa_found(self, kometa) -> None:
        if not self.quiet:
            click.secho(f"• Kometa {kometa.version or '(version unknown)'} at {kometa.script}, with {kometa.python}",
                        fg="cyan", err=True)

    def progress(self, captured: int, total: int) -> None:
        if not self.quiet:
            click.echo(f"  captured {captured}/{total} posters", err=True)

    def progress_line(self, text: str) -> None:
        if not self.quiet:
            click.echo(f"  {text}", err=True)

    def kometa_line(self, line: str) -> None:
        if self.verbose:
            click.echo(f"  kometa | {line}", err=True)

    def results(self, summary) -> None:
        """A watch iteration's lines: the same as a render's (results/terminal.py), its verdict last."""
        from .results import terminal
        terminal.show(terminal.outcome_lines(summary, [], quiet=self.quiet), click.secho)

    def kometa_progress(self, doing: str) -> None:
        import time
        now = time.monotonic()
        if self.quiet or self.verbose or now - self._shown_at < self.PROGRESS_EVERY:
            return
        click.echo(f"  Kometa: {doing}", err=True)
        self._shown_at = now


def _print_outcome(outcome, quiet: bool = False) -> None:
    """The job's lines (results/terminal.py): targets, problems, where the results are, the verdict last."""
    from .common.job import REPORT
    from .results import terminal
    where = [f"summary: {outcome.summary_path}", f"report:  {outcome.summary_path.parent / REPORT}"]
    terminal.show(terminal.outcome_lines(outcome.summary, where, quiet=quiet), click.secho)


KOMETA_PYTHON_HELP = ("The interpreter that has Kometa's requirements (default: kometa.python, then a venv beside "
                      "kometa.py; this tool's own only if Kometa starts with it).")


def _python_from() -> str:
    """How the user gave --kometa-python: on the command line, or as KOMETA_PYTHON (messages name that one)."""
    source = click.get_current_context().get_parameter_source("kometa_python")
    return "KOMETA_PYTHON" if source is click.core.ParameterSource.ENVIRONMENT else "--kometa-python"


ISOLATION_OPTION = click.option(
    "--isolation", type=click.Choice(["auto", "box", "none"]), default="auto", show_default=True,
    envvar="PREVIEW_ISOLATION",
    help="Kometa's box: its own network (only the proxy's ports reachable), processes and read-only files. "
         "auto: the box where the kernel allows it, else a warning; box: the box or nothing.")


KOMETA_RUN_OPTIONS = (
    click.option("--kometa", "kometa_path", envvar="KOMETA_PATH", type=click.Path(path_type=Path),
                 help="kometa.py or the Kometa checkout holding it (default: kometa.path, then /kometa.py)."),
    click.option("--kometa-python", envvar="KOMETA_PYTHON", help=KOMETA_PYTHON_HELP),
    click.option("--offline", is_flag=True,
                 help="No internet: answer Kometa's start-up calls (version, TMDb configuration) locally."),
    click.option("--filter-mode", is_flag=True, envvar="PREVIEW_FILTER_MODE",
                 help="Forward listings to Plex and filter them (legacy mode)."),
    ISOLATION_OPTION,
)


def kometa_run_options(command: Callable) -> Callable:
    """The flags of every command that runs Kometa through the proxy (render, watch): which Kometa, with which
    interpreter, online or not, in which mode."""
    for option in reversed(KOMETA_RUN_OPTIONS):
        command = option(command)
    return command


@main.command()
@click.argument("preview_yml", type=click.Path(dir_okay=False, path_type=Path))
@kometa_run_options
@click.option("--job", type=click.Path(file_okay=False, path_type=Path),
              help="Job folder (default: a new timestamped folder under preview.output).")
@click.option("--force", is_flag=True, help="Replace --job if it already exists.")
@click.option("--timeout", type=click.IntRange(min=1),
              help="Seconds before Kometa is stopped (default: kometa.timeout).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the results.")
@click.option("-v", "--verbose", is_flag=True, help="Also print Kometa's own output.")
@click.option("--open", "open_report", is_flag=True, help="Open report.html in a browser when done.")
@click.option("--library", "libraries", multiple=True, metavar="NAME",
              help="Dry run: every item of this library is a target (repeatable; also preview.libraries).")
@click.option("--shards", type=click.IntRange(min=1, max=64), default=1, show_default=True,
              help="Dry run: split the items into N jobs (own proxy, own Kometa) that run at once, then merge them.")
@click.option("--resume", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Dry run: finish the interrupted job in this folder, skipping the items it captured.")
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="With --library: preview at most N items of it that show every badge (see find --sample).")
@click.option("--shard", type=click.IntRange(min=1), metavar="K",
              help="Dry run on several machines: render only shard K of --shards N into <--job>/shards/1-K; "
                   "then `kometa-preview merge JOB` (docs/SHARDS.md).")
def render(preview_yml: Path, kometa_path: Path | None, kometa_python: str | None, offline: bool, filter_mode: bool,
           isolation: str, job: Path | None, force: bool, timeout: int | None, quiet: bool, verbose: bool,
           open_report: bool, libraries: tuple[str, ...], shards: int, resume: Path | None, sample: int | None,
           shard: int | None) -> None:
    """Run Kometa through the preview proxy and export the posters it would have uploaded.

    Results land in <job>/output/: <id>_after.<ext> (the overlaid poster), <id>_before.<ext>
    (the poster Kometa started from), summary.json and report.html. Plex is never written to.
    Each target ends exported, unchanged (no overlay applies), failed (with Kometa's reason) or missing.
    Exit codes: 0 every target exported or unchanged, 1 a target failed or missing or Kometa failed,
    2 bad input, 130 interrupted.
    """
    from .common.config import mock_library_from_environment
    from .kometa.box import Isolation
    from .run.render import render as run
    from .run.request import RenderError, RenderRequest

    mock = not filter_mode and mock_library_from_environment()
    request = RenderRequest(preview_yml, kometa=kometa_path, kometa_python=kometa_python, offline=offline, mock=mock,
                            job=job, force=force, timeout=timeout, libraries=libraries, shards=shards,
                            resume=resume, sample=sample, shard=shard, isolation=Isolation(isolation),
                            kometa_python_from=_python_from())
    try:
        outcome = run(request, TerminalReporter(quiet, verbose))
    except RenderError as exc:
        raise UserError(str(exc)) from None
    _print_outcome(outcome, quiet)
    if open_report:
        from .common.job import REPORT
        _open(outcome.summary_path.parent / REPORT)
    raise SystemExit(outcome.exit_code)


def _open(path: Path) -> None:
    """Open a page in the user's browser; on a host with no display, say where the file is, in one line."""
    import os
    import webbrowser
    if os.name == "posix" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
            and sys.platform != "darwin":
        click.echo(f"open: no display here; the report is {path}")
        return
    try:
        opened = webbrowser.open(path.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        click.echo(f"open: no browser found; the report is {path}")


@main.command()
@click.argument("preview_yml", type=click.Path(dir_okay=False, path_type=Path))
@kometa_run_options
@click.option("--job", type=click.Path(file_okay=False, path_type=Path),
              help="Watch folder (default: a new watch-<time> folder under preview.output).")
@click.option("--force", is_flag=True, help="Replace --job if it already exists.")
@click.option("--timeout", type=click.IntRange(min=1),
              help="Seconds before one Kometa run is stopped (default: kometa.timeout).")
@click.option("--port", default=0, show_default=True, type=click.IntRange(min=0, max=65535),
              help="Port of the live page on 127.0.0.1 (0 picks a free one).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the page's address.")
@click.option("-v", "--verbose", is_flag=True, help="Also print Kometa's own output.")
def watch(preview_yml: Path, kometa_path: Path | None, kometa_python: str | None, offline: bool, filter_mode: bool,
          isolation: str, job: Path | None, force: bool, timeout: int | None, port: int, quiet: bool,
          verbose: bool) -> None:
    """Render, then render again whenever preview.yml, an overlay file it names (or one those name), or an input
    image changes; a live page shows each iteration's before/after and what changed, without reloading.

    Prints one line `page: http://127.0.0.1:PORT/?token=T`. Ctrl-C stops every child.
    """
    from .common.config import mock_library_from_environment
    from .kometa.box import Isolation
    from .run.request import RenderError, RenderRequest
    from .run.watch import Watch

    if port:
        _check_port(port, "--port")
    mock = not filter_mode and mock_library_from_environment()
    request = RenderRequest(preview_yml, kometa=kometa_path, kometa_python=kometa_python, offline=offline, mock=mock,
                            job=job, force=force, timeout=timeout, isolation=Isolation(isolation),
                            kometa_python_from=_python_from())
    try:
        session = Watch(request, TerminalReporter(quiet, verbose), port)
    except OSError as exc:  # taken between the check and the bind
        raise UserError(f"--port: port {port} on 127.0.0.1 cannot be used ({exc.strerror})") from None
    try:
        code = session.run(lambda url: click.echo(f"page: {url}"))
    except RenderError as exc:
        session.close()
        raise UserError(str(exc)) from None
    raise SystemExit(code)


@main.command()
@click.argument("a", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.argument("b", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where diff.html and the heat maps go (default: B's output folder).")
@click.option("--fail-on-change", is_flag=True, help="Exit 1 when any target changed (for scripts).")
def diff(a: Path, b: Path, out: Path | None, fail_on_change: bool) -> None:
    """Compare two previews (output folders, jobs, or watch iterations): each target identical, or changed with
    the share of pixels that differ and a heat map. Writes diff.html; one line per target.

    Exit codes: 0 compared (1 with --fail-on-change when anything changed), 3 a target could not be compared (an
    unreadable or oversized image: never mistaken for a change), 2 bad input."""
    from .results.diff import DiffError, compare, exit_code, output_of, write_html
    try:
        target = out or output_of(b)
        changes = compare(a, b, target)
    except DiffError as exc:
        raise UserError(f"diff: {exc}") from None
    target.mkdir(parents=True, exist_ok=True)
    for change in changes:
        click.echo(change.line)
    click.echo(f"diff:    {write_html(target, a, b, changes)}")
    raise SystemExit(exit_code(changes, fail_on_change))


@main.command()
@click.argument("job", type=click.Path(file_okay=False, exists=True, path_type=Path))
def merge(job: Path) -> None:
    """Merge the shards of a dry run rendered apart (render --shards N --shard K --job JOB, one per machine) into
    JOB/output: the images, summary.json, report.html and contact.html."""
    from .common.job import SHARDS
    from .run.shards import merge_job
    if not any((job / SHARDS).glob("*/output/summary.json")):
        raise UserError(f"merge: {job} holds no rendered shard ({job / SHARDS}/*/output/summary.json)")
    outcome = merge_job(job)
    _print_outcome(outcome)
    raise SystemExit(outcome.exit_code)


@main.command("addon-path")
def addon_path() -> None:
    """Print the path of the mitmproxy script the preview runs, for live inspection:
    `mitmdump -s "$(kometa-preview addon-path)" --mode reverse:http://PLEX:32400@127.0.0.1:32500
    --set preview_config=preview.yml`."""
    from .run.proxy_child import PROXY_SCRIPT
    click.echo(str(PROXY_SCRIPT))


def _sample(plex_url: str, token: str, library: str, count: int, command: str):
    """`sample.pick` for the CLI: its errors as one line, exit 2."""
    from .plex.client import Upstream, UpstreamError
    from .tools.sample import SampleError, pick
    upstream = Upstream(plex_url, token, 30)
    try:
        return pick(upstream, library, count)
    except (SampleError, UpstreamError) as exc:
        raise UserError(f"{command}: {exc}") from None
    finally:
        upstream.close()


@main.command()
@click.argument("text", required=False)
@click.option("--library", help="Search only this library (its title in Plex).")
@click.option("--sample", type=click.IntRange(min=1), metavar="N",
              help="Instead of searching: at most N items of --library that together show every resolution, "
                   "HDR/Dolby Vision, audio codec, edition and content rating it holds (network for shows).")
@click.option("--type", "libtype", type=click.Choice(["movie", "show", "season", "episode"]),
              help="Only items of this type.")
@click.option("--children", is_flag=True, help="For shows, also list their seasons and first episodes.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Take the Plex URL and token from this preview.yml.")
@click.option("--plex-url", envvar="PLEX_URL", help="Plex URL (or PLEX_URL).")
@click.option("--token", envvar="PLEX_TOKEN", help="Plex token (better: PLEX_TOKEN or --token-file; "
                                                    "other users can read a command line).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the Plex token from this file.")
@click.pass_context
def find(ctx: click.Context, text: str | None, library: str | None, sample: int | None, libtype: str | None,
         children: bool, config_path: Path | None, plex_url: str | None, token: str | None,
         token_file: Path | None) -> None:
    """Search Plex for TEXT in titles (or, with --sample N --library NAME, pick a sample that shows every badge)
    and print ready-to-paste preview.targets entries.

    Read-only: it only searches. Paste what it prints under `preview: targets:` in preview.yml.
    """
    from .tools.find import FindError, as_yaml, connect, search

    if (text is None) == (sample is None):
        raise UserError("find: give either TEXT to search for, or --sample N --library NAME")
    if sample is not None and not library:
        raise UserError("find: --sample needs --library NAME")

    token = _token_from(token, token_file, ctx, "find")
    if config_path is not None:
        config = _load_config(config_path)
        plex_url, token = plex_url or config.plex.url, token or config.plex.token
    if not plex_url or not token:
        raise UserError("find: give --plex-url and a token (PLEX_URL and PLEX_TOKEN, --token-file, "
                        "or --config preview.yml)")
    if sample is not None:
        entries, uncovered = _sample(plex_url, token, library, sample, "find")
        click.echo(f"# a sample of {len(entries)} items of {library} showing every value overlays decide on"
                   + (f" (not covered with {sample}: {', '.join(v for _, v in uncovered)})" if uncovered else "")
                   + "; paste under `preview: targets:` in preview.yml")
        click.echo(as_yaml(entries))
        return
    try:
        entries = search(connect(plex_url, token), text, library=library, libtype=libtype, children=children)
    except FindError as exc:
        raise UserError(f"find: {exc}") from None
    if not entries:
        click.echo(f"No {libtype or 'item'} with {text!r} in its title.", err=True)
        raise SystemExit(1)
    click.echo(f"# {len(entries)} found for {text!r}; paste under `preview: targets:` in preview.yml")
    click.echo(as_yaml(entries))


@main.command()
@click.argument("preview_yml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kometa", "kometa_path", envvar="KOMETA_PATH", type=click.Path(path_type=Path),
              help="kometa.py or the Kometa checkout holding it.")
@click.option("--kometa-python", envvar="KOMETA_PYTHON", help=KOMETA_PYTHON_HELP)
@click.option("--offline", is_flag=True, help="Check for a render with --offline (no internet needed).")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Read the Plex token from this file instead of preview.yml's plex.token.")
@ISOLATION_OPTION
@click.pass_context
def check(ctx: click.Context, preview_yml: Path, kometa_path: Path | None, kometa_python: str | None, offline: bool,
          token_file: Path | None, isolation: str) -> None:
    """Check everything a render needs: config, Plex and token, each ratingKey and its type, overlay files and
    defaults, Kometa and its interpreter, TMDb key, internet, input images, output folder, ports.
    One line per check; exit 0 only if all pass."""
    import dataclasses

    from .tools.check import run_checks

    config = _load_config(preview_yml)
    if token_file is not None:
        token = _token_from(None, token_file, ctx, "check")
        if not token:
            raise UserError(f"check: --token-file {token_file} is empty")
        config = dataclasses.replace(config, plex=dataclasses.replace(config.plex, token=token))
    failed = 0
    from .kometa.box import Isolation
    for result in run_checks(config, kometa_path, python=kometa_python, python_from=_python_from(), offline=offline,
                             isolation=Isolation(isolation)):
        if result.ok:
            click.echo(f"{click.style('✓', fg='green')} {result.name}: {result.message}")
        else:
            failed += 1
            fix = f" — {result.fix}" if result.fix else ""
            click.echo(f"{click.style('✗', fg='red')} {result.name}: {result.message}{fix}")
    click.echo(f"{'all checks passed' if not failed else f'{failed} check(s) failed'}")
    raise SystemExit(1 if failed else 0)
