"""The `kometa-preview` command. Commands parse arguments, call one library function, and turn its
errors into one-line messages with the exit codes of SPEC §4 (2 = bad input or environment)."""
from __future__ import annotations

import errno
import secrets
import signal
import threading
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
def sandbox(movies: int, shows: int, seasons: int, episodes: int, seed: int, host: str, port: int,
            token: str | None, log_path: Path | None) -> None:
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
        server = SampleServer(library, token, host=host, port=port, log_path=log_path)
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
