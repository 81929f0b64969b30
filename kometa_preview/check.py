"""`kometa-preview check preview.yml`: everything a render needs, checked up front, read-only.

Each check gives one line: passed, or failed with how to fix it. Plex is read with the same
GET-only client the proxy uses.
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from . import kometa_config
from .config import PreviewConfig
from .launcher import LaunchError, child_environment, find_kometa
from .plex import client
from .plex.client import PlexAnswerError, Upstream, UpstreamError


@dataclass(frozen=True)
class Result:
    ok: bool
    name: str
    message: str
    fix: str = ""


def _plex(config: PreviewConfig) -> Iterator[Result]:
    upstream = Upstream(config.plex.url, config.plex.token, min(config.plex.timeout, 30), config.plex.verify_ssl)
    try:
        server = client.server(upstream)
        sections = {d.get("key"): d.get("title") for d in client.sections(upstream)}
    except PlexAnswerError as exc:
        fix = "put a valid X-Plex-Token in plex.token" if "(401)" in str(exc) else "check plex.url"
        yield Result(False, "plex", str(exc), fix)
        return
    except UpstreamError as exc:
        yield Result(False, "plex", str(exc), "check plex.url, and that Plex is running and reachable from here")
        return
    yield Result(True, "plex", f"reachable at {config.plex.url}, token accepted "
                               f"({server.get('friendlyName', 'Plex')} {server.get('version', '')})".rstrip())
    user = {}
    if config.kometa.config:
        try:
            user = kometa_config.read_user_config(config.kometa.config)
        except kometa_config.KometaConfigError as exc:
            yield Result(False, "kometa config", str(exc), "fix kometa.config in preview.yml")
    libraries: set[str] = set()
    for n, target in enumerate(config.targets):
        where = f"preview.targets[{n}]"
        try:
            element = client.item(upstream, target.rating_key)
        except UpstreamError as exc:
            yield Result(False, f"target {target.id}", f"could not be read ({exc})")
            continue
        if element is None:
            yield Result(False, f"target {target.id}", f"ratingKey {target.rating_key} does not exist in Plex",
                         f"fix {where}.ratingKey (`kometa-preview find TITLE` prints the right one)")
            continue
        kind, title = element.get("type"), element.get("title")
        library = sections.get(element.get("librarySectionID"), "?")
        if kind != target.type:
            yield Result(False, f"target {target.id}", f"ratingKey {target.rating_key} is the {kind} {title!r}, "
                                                       f"not a {target.type}", f"set {where}.type: {kind}")
            continue
        libraries.add(library)
        yield Result(True, f"target {target.id}", f"ratingKey {target.rating_key} is the {kind} {title!r} in {library}")
    for library in sorted(libraries):
        if kometa_config.overlays_for(config, user, library).get("overlay_files"):
            yield Result(True, f"overlays {library}", "overlay_files defined")
        else:
            yield Result(False, f"overlays {library}", "no overlay_files for this library",
                         f"add `libraries: {{{library}: {{overlay_files: [{{default: resolution}}]}}}}` "
                         "or set kometa.config")


def _kometa(config: PreviewConfig, given: Path | None) -> Result:
    try:
        kometa = find_kometa(given, config.kometa.path, config.kometa.python)
    except LaunchError as exc:
        return Result(False, "kometa", str(exc), "install Kometa, or use the Docker image where it is /kometa.py")
    try:
        # Kometa's module code runs even for --help: it gets the environment a render gives it, no secrets.
        run = subprocess.run([kometa.python, str(kometa.script), "--help"], cwd=kometa.script.parent,
                             capture_output=True, timeout=120, env=child_environment(config.secret_values()))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Result(False, "kometa", f"{kometa.script} could not be run ({type(exc).__name__})",
                      "set kometa.python to the interpreter that has Kometa's requirements")
    if run.returncode != 0:
        last = (run.stderr or run.stdout).decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return Result(False, "kometa",
                      f"`{kometa.python} {kometa.script.name} --help` exited {run.returncode}: {last[0]}",
                      "set kometa.python to the interpreter that has Kometa's requirements")
    return Result(True, "kometa", f"{kometa.script} runs with {kometa.python}")


def _inputs(config: PreviewConfig) -> Iterator[Result]:
    for target in config.targets:
        if target.input is None:
            continue
        try:
            with Image.open(io.BytesIO(target.input.read_bytes())) as image:
                image.load()
                size, fmt = image.size, image.format
        except Exception as exc:  # noqa: BLE001 - any unreadable image is one failed check
            yield Result(False, f"input {target.id}", f"{target.input} is not a readable image ({type(exc).__name__})",
                         "replace the file or remove input:")
            continue
        yield Result(True, f"input {target.id}", f"{target.input.name} is a {size[0]}×{size[1]} {fmt}")


def _output(config: PreviewConfig) -> Result:
    """Writable without creating anything: the folder, or the nearest existing folder above it."""
    folder = config.output
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Result(False, "output", f"{folder} is not writable ({existing} is not a writable folder)",
                      "set preview.output to a writable folder")
    return Result(True, "output", f"{folder} is writable")


def _ports() -> Result:
    try:
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            second.bind(("127.0.0.1", 0))
    except OSError as exc:
        return Result(False, "ports", f"cannot listen on 127.0.0.1 ({exc.strerror})",
                      "free a port or check the sandbox")
    return Result(True, "ports", "127.0.0.1 has free ports for the proxy")


def run_checks(config: PreviewConfig, kometa: Path | None) -> Iterator[Result]:
    yield Result(True, "config", f"{config.source.name} is valid ({len(config.targets)} targets)")
    yield from _plex(config)
    yield _kometa(config, kometa)
    yield from _inputs(config)
    yield _output(config)
    yield _ports()
