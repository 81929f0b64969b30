"""`kometa-preview check preview.yml`: everything a render needs, checked up front, read-only.

Each check gives one line: passed, or failed with how to fix it, and a failure does not stop the checks after
it. Plex is read with the same GET-only client the proxy uses; overlay files are resolved by the same code the
render uses (`run_config.overlays_for`), and Kometa is started the same way (`kometa_runner`), so `check`
and `render` cannot disagree about a path, a default or an interpreter.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..common import images
from ..common.config import PreviewConfig
from ..common.limits import CHECK_PIXELS
from ..kometa import run_config
from ..kometa.box import Isolation
from ..kometa.runner import KometaCommand, KometaNotFound, find_kometa, requirements_problem
from ..plex import client, titles
from ..plex.client import PlexAnswerError, Upstream, UpstreamError

#: What Kometa calls at start-up and cannot run without (docs/KOMETA-TRAFFIC.md).
START_UP_HOSTS = ("raw.githubusercontent.com", "api.themoviedb.org")


@dataclass(frozen=True)
class Result:
    ok: bool
    name: str
    message: str
    fix: str = ""


def _plex(config: PreviewConfig) -> Iterator[Result | dict[str, str]]:
    """Plex, the token, and each target; yields the libraries holding targets last ({title: type})."""
    upstream = Upstream(config.plex.url, config.plex.token, min(config.plex.timeout, 30), config.plex.verify_ssl)
    try:
        server = client.server(upstream)
        directories = client.sections(upstream)
        sections = {d.get("key"): d.get("title") for d in directories}
        section_types = {d.get("title"): d.get("type", "") for d in directories}
    except PlexAnswerError as exc:
        fix = "put a valid X-Plex-Token in plex.token" if "(401)" in str(exc) else "check plex.url"
        yield Result(False, "plex", str(exc), fix)
        yield {}
        return
    except UpstreamError as exc:
        yield Result(False, "plex", str(exc), "check plex.url, and that Plex is running and reachable from here")
        yield {}
        return
    yield Result(True, "plex", f"reachable at {config.plex.url}, token accepted "
                               f"({server.get('friendlyName', 'Plex')} {server.get('version', '')})".rstrip())
    libraries: dict[str, str] = {}
    for n, target in enumerate(config.targets):
        where = f"preview.targets[{n}]"
        try:
            if target.rating_key is None:
                found = titles.resolve(upstream, directories, target.type, target.title, target.library)
                if found.rating_key is None:
                    named = ", ".join(f"{c['title']} ({c['year'] or c['type']}) ratingKey {c['ratingKey']}"
                                      for c in found.candidates)
                    yield Result(False, f"target {target.id}", f"title {target.title!r}: {found.reason}"
                                 + (f" ({named})" if named else ""),
                                 f"set {where}.ratingKey (`kometa-preview find` lists them) or make the title exact")
                    continue
                target = dataclasses.replace(target, rating_key=found.rating_key)
            element = client.item(upstream, target.rating_key)
        except UpstreamError as exc:
            yield Result(False, f"target {target.id}", f"could not be read ({exc})")
            continue
        if element is None:
            yield Result(False, f"target {target.id}", f"ratingKey {target.rating_key} does not exist in Plex",
                         f"fix {where}.ratingKey (`kometa-preview find TITLE` prints the right one)")
            continue
        kind, title = element.get("type"), titles.written_element(element)
        library = sections.get(element.get("librarySectionID"), "?")
        if kind != target.type:
            yield Result(False, f"target {target.id}", f"ratingKey {target.rating_key} is the {kind} {title!r}, "
                                                       f"not {titles.a(target.type)}", f"set {where}.type: {kind}")
            continue
        libraries[library] = section_types.get(library, "")
        yield Result(True, f"target {target.id}", f"ratingKey {target.rating_key} is the {kind} {title!r} in {library}")
    yield libraries


def _kometa(config: PreviewConfig, given: Path | None, python: str | None, python_from: str,
            isolation: Isolation) -> tuple[Result, KometaCommand | None]:
    try:
        kometa = find_kometa(given, config.kometa.path, python, config.kometa.python, python_from)
    except KometaNotFound as exc:
        return Result(False, "kometa", str(exc), "install Kometa, or use the Docker image where it is /kometa.py"), None
    version = kometa.version or "version unknown"
    try:
        problem = requirements_problem(kometa, config.secret_values(), hidden=config.secret_files(),
                                       isolation=isolation)
    except KometaNotFound as exc:
        problem = str(exc)
    if problem:
        return Result(False, "kometa", f"{kometa.script} ({version}) does not start with {kometa.python} "
                                       f"({kometa.python_source}): {problem}",
                      "set --kometa-python, KOMETA_PYTHON or kometa.python to the interpreter that has Kometa's "
                      f"requirements (pip install -r {kometa.folder / 'requirements.txt'})"), kometa
    return Result(True, "kometa", f"{kometa.script} {version}, runs with {kometa.python} ({kometa.python_source})"), \
        kometa


def _default_file(kometa: KometaCommand, name: str, library_type: str | None) -> Path | None:
    """Where Kometa finds `default: name` (modules/meta.py: defaults/overlays/<name>.yml, or under the library's
    type folder, both/, chart/, award/)."""
    name = name[len("overlays/"):] if name.startswith("overlays/") else name
    folders = [kometa.overlay_defaults] + [kometa.overlay_defaults / sub for sub in
                                           (library_type or "", "both", "chart", "award") if sub]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.yml", folder / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    return None


def _overlay_file(path: Path, name: str, where: str) -> Result:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return Result(False, name, f"{where}: {path} cannot be read ({exc.strerror})", f"fix {where}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return Result(False, name, f"{where}: {path} is not valid YAML{at}: {getattr(exc, 'problem', exc)}",
                      f"fix {path.name}")
    if not isinstance(document, dict) or not ({"overlays", "templates", "external_templates"} & set(document)):
        return Result(False, name, f"{where}: {path} has no `overlays:` section, so Kometa loads nothing from it",
                      f"fix {path.name}")
    overlays = document.get("overlays") or {}
    for overlay_name, definition in overlays.items() if isinstance(overlays, dict) else ():
        problem = overlay_problem(definition)
        if problem:
            return Result(False, name, f"{where}: {path.name}: overlay {overlay_name!r}: {problem}",
                          f"fix overlays.{overlay_name} in {path.name}")
    return Result(True, name, f"{where}: {path} parses ({len(overlays) if isinstance(overlays, dict) else 0} "
                              "overlays)")


def overlay_problem(definition: Any) -> str | None:
    """The rules Kometa's overlay.py checks before it draws anything (2.0 to nightly), for a definition that does
    not get its values from a template: Kometa logs them as an `Overlay Error` and leaves the overlay out."""
    if not isinstance(definition, dict) or {"template", "templates"} & set(definition):
        return None
    overlay = definition.get("overlay")
    if not isinstance(overlay, dict) or any("<<" in str(value) for value in overlay.values()):
        return None
    if not overlay.get("name"):
        return "Overlay Error: Overlays must have the 'name' attribute"
    if ("horizontal_offset" in overlay) != ("vertical_offset" in overlay):
        return "Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' must be used together"
    backdrop = overlay.get("back_color") or overlay.get("back_line_color")
    if backdrop and overlay.get("name") != "backdrop" and "horizontal_offset" not in overlay and "queue" not in overlay:
        return "Overlay Error: Overlay attributes 'horizontal_offset' and 'vertical_offset' are required when using " \
               "'backdrop'"
    if "group" in overlay and "weight" not in overlay:
        return "Overlay Error: Overlay attribute 'group' requires the 'weight' attribute"
    if "queue" in overlay and "weight" not in overlay:
        return "Overlay Error: Overlay attribute 'queue' requires the 'weight' attribute"
    if "group" in overlay and "queue" in overlay:
        return "Overlay Error: Overlay attributes 'group' and 'queue' cannot be used together"
    return None


def _overlays(config: PreviewConfig, kometa: KometaCommand | None, libraries: dict[str, str],
              user: dict[str, Any], *, require_sources: bool = True) -> Iterator[Result]:
    """Each library's overlay_files, as the render will hand them to Kometa: one line per entry (and, with
    `require_sources`, a failure for a library that has none)."""
    folder = kometa.folder if kometa is not None else Path.cwd()
    for library in sorted(libraries):
        name = f"overlays {library}"
        sources = run_config.overlay_sources(config, user, library, folder)
        if not sources and require_sources:
            yield Result(False, name, "no overlay_files for this library",
                         f"add `libraries: {{{library}: {{overlay_files: [{{default: resolution}}]}}}}` "
                         "or set kometa.config")
            continue
        for source in sources:
            where = source.where
            if source.kind == "file":
                path = Path(source.value)
                yield _overlay_file(path, name, where) if path.is_file() else \
                    Result(False, name, f"{where}: {path} does not exist (Kometa would say: File Error: File does not "
                                        "exist)", f"fix {where}; a relative path in preview.yml is relative to "
                                                  "preview.yml's folder, one in kometa.config to Kometa's folder")
            elif source.kind == "folder":
                path = Path(source.value)
                files = sorted([*path.glob("*.yml"), *path.glob("*.yaml")]) if path.is_dir() else []
                if not files:
                    yield Result(False, name, f"{where}: {path} is not a folder holding .yml files", f"fix {where}")
                for file in files:
                    yield _overlay_file(file, name, where)
            elif source.kind == "default":
                if kometa is None:
                    continue
                found = _default_file(kometa, source.value, libraries.get(library))
                if found is None:
                    known = sorted(p.stem for p in kometa.overlay_defaults.glob("*.yml"))
                    close = [k for k in known if k[:3] == source.value[:3]] or known[:8]
                    yield Result(False, name, f"{where}: default {source.value!r} does not exist in Kometa "
                                              f"{kometa.version or '(version unknown)'} (Kometa would say: Default "
                                              "does not exist)", f"use one of: {', '.join(close)}")
                else:
                    yield Result(True, name, f"{where}: default {source.value!r} is "
                                             f"{found.relative_to(kometa.folder)}")
            else:
                yield Result(True, name, f"{where}: {source.kind} {source.value} (read by Kometa through the "
                                         "outside-calls door)")


def overlay_problems(config: PreviewConfig, kometa: KometaCommand, libraries: list[str]) -> list[Result]:
    """The overlay checks of `check` for these libraries, failures only: what `watch` runs before each iteration,
    so a file that does not parse fails it at once (with its file, line and column) instead of after Kometa's
    start-up."""
    try:
        user = run_config.read_user_config(config.kometa.config) if config.kometa.config else {}
    except run_config.KometaConfigError as exc:
        return [Result(False, "kometa.config", str(exc))]
    return [result for result in _overlays(config, kometa, {title: "" for title in libraries}, user,
                                           require_sources=False) if not result.ok]


def _services(config: PreviewConfig, user: dict[str, Any], offline: bool) -> Result:
    key = (config.services.get("tmdb") or user.get("tmdb") or {}).get("apikey")
    if key:
        return Result(True, "tmdb", "an API key is set")
    if offline:
        return Result(True, "tmdb", "no API key; --offline answers Kometa's TMDb start-up call itself")
    return Result(False, "tmdb", "Kometa needs a TMDb API key and none is set",
                  "add `tmdb: {apikey: …}` or set kometa.config, or run with --offline")


def _outside(offline: bool, connect: Callable[..., socket.socket] = socket.create_connection) -> Result:
    """Kometa's start-up hosts reachable from here (not offline): without them Kometa stops before any overlay."""
    if offline:
        return Result(True, "internet", "--offline: Kometa's start-up calls are answered locally")
    failed = []
    for host in START_UP_HOSTS:
        try:
            connect((host, 443), timeout=5).close()
        except OSError as exc:
            failed.append(f"{host} ({exc.strerror or type(exc).__name__})")
    if failed:
        return Result(False, "internet", f"cannot reach {', '.join(failed)}",
                      "run with --offline (the preview then answers Kometa's start-up calls itself)")
    return Result(True, "internet", f"{', '.join(START_UP_HOSTS)} reachable")


def _inputs(config: PreviewConfig) -> Iterator[Result]:
    for target in config.targets:
        if target.input is None:
            continue
        try:  # untrusted like every image: the one opener, bounded (a bomb or a truncated file is a reason)
            data = target.input.read_bytes()
            size = images.probe(data)
            images.decode(data, budget=CHECK_PIXELS)  # decoded (reduced): a truncated file fails here
            fmt = images.sniff(data).name  # type: ignore[union-attr] - decode accepted one of its formats
        except (images.Unreadable, OSError) as exc:
            yield Result(False, f"input {target.id}", f"{target.input} is not a readable image ({exc})",
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


def run_checks(config: PreviewConfig, kometa_path: Path | None, *, python: str | None = None,
               python_from: str = "--kometa-python", offline: bool = False,
               isolation: Isolation = Isolation.AUTO) -> Iterator[Result]:
    yield Result(True, "config", f"{config.source.name} is valid ({len(config.targets)} targets)")
    user: dict[str, Any] = {}
    if config.kometa.config:
        try:
            user = run_config.read_user_config(config.kometa.config)
        except run_config.KometaConfigError as exc:
            yield Result(False, "kometa config", str(exc), "fix kometa.config in preview.yml")
    libraries: dict[str, str] = {}
    for result in _plex(config):
        if isinstance(result, dict):
            libraries = result
        else:
            yield result
    kometa_result, kometa = _kometa(config, kometa_path, python, python_from, isolation)
    yield kometa_result
    yield from _overlays(config, kometa, libraries, user)
    yield _services(config, user, offline)
    yield _outside(offline)
    yield from _inputs(config)
    yield _output(config)
    yield _ports()
