"""preview.yml: load, validate, and turn into frozen dataclasses.

Every mistake is one `ConfigError` line naming the file and the field path
(`preview.yml: preview.targets[1].ratingKey: must be a number`), so the CLI can print it and exit 2.
An object of these classes that exists is valid.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import images, names
from .limits import MAX_CONFIG_FILE_BYTES
from .outside_policy import as_address

MAX_FILE_BYTES = MAX_CONFIG_FILE_BYTES
MAX_ALIASES = 200
TARGET_TYPES = ("movie", "show", "season", "episode")
SERVICE_SECTIONS = ("tmdb", "omdb", "mdblist", "trakt", "mal", "anidb")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+")


def mock_library_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """Mock library mode unless PREVIEW_MOCK_LIBRARY says off (0, false, no, off): the one reading of it, used by
    `render`, `proxy` and the live-inspection script `addons/preview.py` (the addons never read the
    environment: the launcher passes the mode as an option)."""
    value = (os.environ if environ is None else environ).get("PREVIEW_MOCK_LIBRARY", "1")
    return value.strip().lower() not in ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A preview.yml mistake, already phrased as the one line the user sees."""


@dataclass(frozen=True)
class PlexSettings:
    url: str
    token: str = field(repr=False)
    timeout: int = 60
    verify_ssl: bool = True


@dataclass(frozen=True)
class KometaSettings:
    path: Path | None = None
    python: str | None = None
    config: Path | None = None
    timeout: int = 1800


@dataclass(frozen=True)
class Target:
    id: str
    type: str
    #: None when the target is named by `title` only: the proxy resolves it read-only (plex/titles.py).
    rating_key: str | None
    title: str = ""
    input: Path | None = None
    output: Path | None = None
    #: The library to look a title up in (optional).
    library: str | None = None


@dataclass(frozen=True)
class PreviewConfig:
    source: Path
    plex: PlexSettings
    kometa: KometaSettings
    targets: tuple[Target, ...]
    output: Path
    services: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    libraries: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    #: Extra outside hosts Kometa may read (custom repos, image URLs): `outside: {allow: [host, …]}`.
    outside_allow: tuple[str, ...] = ()
    #: The values of the `${VARIABLES}` this file expanded: what a child needs to load it again without
    #: inheriting the environment (the launcher hands them to the proxy in a 0600 file).
    expanded_environ: dict[str, str] = field(default_factory=dict, repr=False)
    #: Whole libraries to preview (`preview.libraries`, `render --library`): every item is a target, its id its
    #: ratingKey (a dry run of the whole library).
    dry_run_libraries: tuple[str, ...] = ()

    @property
    def rating_keys(self) -> list[str]:
        """The ratingKeys preview.yml gives (targets named by title only are resolved by the proxy)."""
        return [target.rating_key for target in self.targets if target.rating_key]

    def secret_files(self) -> tuple[Path, ...]:
        """The user's files that may hold the Plex token (this preview.yml, the user's own Kometa config): Kometa's
        box hides them."""
        return tuple(path for path in (self.source, self.kometa.config) if path is not None)

    def secret_values(self) -> list[str]:
        """Every credential this file holds or expanded: the Plex token, each service section's text values
        (api keys, client secrets, OAuth tokens), and every `${VARIABLE}` value. A child environment holding
        any of them is refused (launcher.child_environment)."""
        found = [self.plex.token, *self.expanded_environ.values()]
        stack: list[Any] = list(self.services.values())
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                stack.extend(value.values())
            elif isinstance(value, str):
                found.append(value)
        return [value for value in found if value]


    def for_proxy(self, shard: Shard | None = None) -> ProxyConfig:
        """The part of this file the proxy process needs (never the service keys or Kometa's settings)."""
        return ProxyConfig(plex=self.plex, targets=self.targets, kometa_config=self.kometa.config,
                           outside_allow=self.outside_allow, output=self.output,
                           libraries=self.dry_run_libraries, shard=shard)


@dataclass(frozen=True)
class Shard:
    """Which part of a dry run's items one job previews: the top-level items (movies, shows with their seasons
    and episodes) whose position in the library, counted in Plex's order, is `index` modulo `count`; minus those
    a resumed job already captured."""
    index: int = 0
    count: int = 1
    skip: frozenset[str] = frozenset()

    def holds(self, position: int, rating_key: str) -> bool:
        return position % self.count == self.index and rating_key not in self.skip


@dataclass(frozen=True)
class ProxyConfig:
    """What the proxy process is given: Plex, the targets, where Kometa keeps its stored original posters,
    and the extra outside hosts. The launcher writes it as a 0600 JSON file the proxy reads once and
    deletes (so the Plex token is on no argv and in no environment); `mitmdump -s addons/preview.py`
    users point `preview_config` at preview.yml instead and get the same object from `load`."""
    plex: PlexSettings
    targets: tuple[Target, ...]
    kometa_config: Path | None = None
    outside_allow: tuple[str, ...] = ()
    #: Where live-inspection jobs go when no `preview_job` is given (preview.output).
    output: Path | None = None
    #: Whole libraries whose every item is a target (a dry run), and the part of them this job takes.
    libraries: tuple[str, ...] = ()
    shard: Shard | None = None
    #: The job token Kometa will present, when the render chose it before the proxy started (None: the proxy
    #: picks one and says it in its ready file).
    client_token: str | None = field(default=None, repr=False, compare=False)

    @property
    def rating_keys(self) -> list[str]:
        return [target.rating_key for target in self.targets if target.rating_key]

    def to_json(self) -> dict[str, Any]:
        def path(value: Path | None) -> str | None:
            return None if value is None else str(value)
        return {"plex": {"url": self.plex.url, "token": self.plex.token, "timeout": self.plex.timeout,
                         "verify_ssl": self.plex.verify_ssl},
                "targets": [{"id": t.id, "type": t.type, "rating_key": t.rating_key, "title": t.title,
                             "input": path(t.input), "output": path(t.output), "library": t.library}
                            for t in self.targets],
                "kometa_config": path(self.kometa_config), "outside_allow": list(self.outside_allow),
                "output": path(self.output), "libraries": list(self.libraries),
                "shard": None if self.shard is None else {"index": self.shard.index, "count": self.shard.count,
                                                          "skip": sorted(self.shard.skip)},
                "client_token": self.client_token}

    @classmethod
    def from_json(cls, document: Any, name: str) -> ProxyConfig:
        """Raises `ConfigError` naming `name` (the file) for a document that is not one of ours."""
        try:
            plex = PlexSettings(**document["plex"])
            targets = tuple(Target(id=t["id"], type=t["type"], rating_key=t["rating_key"], title=t.get("title", ""),
                                   input=Path(t["input"]) if t.get("input") else None,
                                   output=Path(t["output"]) if t.get("output") else None,
                                   library=t.get("library"))
                            for t in document["targets"])
            return cls(plex=plex, targets=targets,
                       kometa_config=Path(document["kometa_config"]) if document.get("kometa_config") else None,
                       outside_allow=tuple(document.get("outside_allow") or ()),
                       output=Path(document["output"]) if document.get("output") else None,
                       libraries=tuple(document.get("libraries") or ()),
                       shard=Shard(document["shard"]["index"], document["shard"]["count"],
                                   frozenset(document["shard"]["skip"])) if document.get("shard") else None,
                       client_token=document.get("client_token") or None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: not a kometa-preview proxy configuration ({type(exc).__name__}: {exc})") \
                from None


def load_for_proxy(path: str | Path) -> ProxyConfig:
    """`preview_config` as the proxy reads it: the launcher's JSON, or a preview.yml (live inspection)."""
    path = Path(path)
    if path.suffix == ".json":
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot be read ({exc})") from None
        return ProxyConfig.from_json(document, str(path))
    return load(path).for_proxy()


class _CountingLoader(yaml.SafeLoader):
    """Safe YAML that refuses alias bombs (a few lines that expand to gigabytes when walked)."""

    aliases = 0

    def compose_node(self, parent, index):  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)


class _Reader:
    """Walks the parsed YAML with the current field path, so every error names its field."""

    def __init__(self, source: Path, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.expanded: dict[str, str] = {}

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source.name}: {where}: {message}" if where else f"{self.source.name}: {message}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{where}.{key}" if where else str(key),
                                f"unknown key (expected one of: {', '.join(allowed)})")
        return value

    def text(self, value: Any, where: str, *, required: bool = False, env: bool = False) -> str | None:
        if value is None:
            if required:
                raise self.fail(where, "is required")
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(where, "must be text")
        text = str(value)
        if env:
            def expand(match: re.Match[str]) -> str:
                name = match[1]
                if name not in self.environ:
                    raise self.fail(where, f"environment variable {name} is not set")
                self.expanded[name] = self.environ[name]
                return self.environ[name]
            text = _ENV.sub(expand, text)
        if required and not text.strip():
            raise self.fail(where, "must not be empty")
        return text

    def number(self, value: Any, where: str, default: int, minimum: int = 1) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(where, f"must be a whole number of at least {minimum}")
        return value

    def flag(self, value: Any, where: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(where, "must be true or false")
        return value

    def command(self, value: Any, where: str) -> str | None:
        """A program: a bare name is looked up on PATH when it is run; a path is relative to this file's folder."""
        text = self.text(value, where)
        if text is None or "/" not in text:
            return text
        return str(self.path(text, where))

    def path(self, value: Any, where: str) -> Path | None:
        text = self.text(value, where)
        if text is None:
            return None
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (self.source.parent / path)


def _read_yaml(path: Path) -> Any:
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found ({path})") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{name}: is {len(raw)} bytes; a preview.yml larger than {MAX_FILE_BYTES} is refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: is not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_CountingLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{name}: {where}YAML syntax error: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: YAML error: {exc}") from None


def _target(r: _Reader, raw: Any, where: str) -> Target:
    data = r.mapping(raw, where, ("id", "type", "title", "ratingKey", "library", "input", "output"))
    if not data:
        raise r.fail(where, "must be a mapping with at least id, type and ratingKey (or title)")
    target_id = r.text(data.get("id"), f"{where}.id", required=True)
    if not names.is_target_id(target_id):
        raise r.fail(f"{where}.id", f"{target_id!r} must be letters, digits, - and _ only (it becomes a file name)")
    kind = r.text(data.get("type"), f"{where}.type", required=True)
    if kind not in TARGET_TYPES:
        raise r.fail(f"{where}.type", f"{kind!r} must be one of {', '.join(TARGET_TYPES)}")
    title = r.text(data.get("title"), f"{where}.title") or ""
    rating_key = None
    if data.get("ratingKey") is None:
        if not title.strip():
            raise r.fail(f"{where}.ratingKey", f"MISSING_RATINGKEY target={target_id}: every target needs its Plex "
                                               "ratingKey, or a title to find it by (`kometa-preview find TITLE` "
                                               "prints the ratingKey)")
    else:
        rating_key = r.text(data.get("ratingKey"), f"{where}.ratingKey", required=True)
        if not rating_key.isdigit():
            raise r.fail(f"{where}.ratingKey", f"must be a number, not {rating_key!r}")
    image = r.path(data.get("input"), f"{where}.input")
    if image is not None:
        try:
            with image.open("rb") as handle:
                head = handle.read(16)
        except OSError as exc:
            raise r.fail(f"{where}.input", f"cannot read {image} ({exc.strerror})") from None
        if images.sniff(head) is None:
            raise r.fail(f"{where}.input", f"{image} is not a JPEG, PNG or WebP image")
    return Target(id=target_id, type=kind, rating_key=rating_key, title=title, input=image,
                  output=r.path(data.get("output"), f"{where}.output"),
                  library=r.text(data.get("library"), f"{where}.library"))


def _outside_allow(r: _Reader, raw: Any, plex: PlexSettings) -> tuple[str, ...]:
    """The hosts the user adds to the outside door: names only (an address would bypass the resolution check), never
    Plex's own host."""
    plex_host = (urlsplit(plex.url).hostname or "").lower()
    section = r.mapping(raw, "outside", ("allow",))
    hosts = section.get("allow") or []
    if not isinstance(hosts, list):
        raise r.fail("outside.allow", "must be a list of host names (raw.githubusercontent.com, …)")
    allowed = []
    for n, value in enumerate(hosts):
        where = f"outside.allow[{n}]"
        host = (r.text(value, where, required=True) or "").strip().lower().rstrip(".")
        if "://" in host or "/" in host or ":" in host:
            raise r.fail(where, f"{value!r} must be a host name only (no scheme, port or path)")
        if not _HOST.fullmatch(host) or as_address(host) is not None:
            raise r.fail(where, f"{value!r} is not a host name (addresses are never allowed: name the host)")
        if host == plex_host:
            raise r.fail(where, f"{value!r} is Plex's host: Plex is never reachable through the outside door")
        allowed.append(host)
    return tuple(allowed)


def _plex(r: _Reader, raw: Any) -> PlexSettings:
    """The one server the proxy forwards reads to: an http(s) URL naming a host, and its token."""
    section = r.mapping(raw, "plex", ("url", "token", "timeout", "verify_ssl"))
    written = r.text(section.get("url"), "plex.url", required=True, env=True)
    url = written.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise r.fail("plex.url", f"{written!r} must be an http:// or https:// URL")
    return PlexSettings(url=url, token=r.text(section.get("token"), "plex.token", required=True, env=True),
                        timeout=r.number(section.get("timeout"), "plex.timeout", 60),
                        verify_ssl=r.flag(section.get("verify_ssl"), "plex.verify_ssl", True))


def _kometa(r: _Reader, raw: Any) -> KometaSettings:
    """Where Kometa is and how long it may run; `config` is the user's own Kometa config, which the preview borrows
    from (README: service keys, settings, overlay files, stored originals)."""
    section = r.mapping(raw, "kometa", ("path", "python", "config", "timeout"))
    return KometaSettings(path=r.path(section.get("path"), "kometa.path"),
                          python=r.command(section.get("python"), "kometa.python"),
                          config=r.path(section.get("config"), "kometa.config"),
                          timeout=r.number(section.get("timeout"), "kometa.timeout", 1800))


def _services(r: _Reader, top: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The service sections Kometa reads (tmdb, mdblist…), passed on as written, their text `${VARIABLES}` expanded."""
    services = {}
    for name in SERVICE_SECTIONS:
        if top.get(name) is not None:
            section = r.mapping(top[name], name, tuple(top[name]) if isinstance(top[name], dict) else ())
            services[name] = {k: (r.text(v, f"{name}.{k}", env=True) if isinstance(v, str) else v)
                              for k, v in section.items()}
    return services


def load(path: Path | str, environ: Mapping[str, str] | None = None,
         also_dry_run: tuple[str, ...] = ()) -> PreviewConfig:
    """Read and validate preview.yml, expanding `${VARIABLES}` from `environ` (default: this process's
    environment); `also_dry_run` (`render --library`) joins preview.libraries. Raises `ConfigError` with the one
    line to show."""
    source = Path(path)
    r = _Reader(source, os.environ if environ is None else environ)
    top = r.mapping(_read_yaml(source), "",
                    ("plex", "kometa", "libraries", "settings", "preview", "outside", *SERVICE_SECTIONS))
    plex = _plex(r, top.get("plex"))
    kometa = _kometa(r, top.get("kometa"))
    services = _services(r, top)
    libraries = top.get("libraries") or {}
    if not isinstance(libraries, dict) or not all(isinstance(v, dict) for v in libraries.values()):
        raise r.fail("libraries", "must map each library title to its Kometa settings (overlay_files: …)")
    settings = top.get("settings") or {}
    if not isinstance(settings, dict):
        raise r.fail("settings", "must be a mapping of Kometa settings")
    preview = r.mapping(top.get("preview"), "preview", ("mode", "output", "targets", "libraries"))
    if not preview:
        raise r.fail("preview", "is required (with mode and targets)")
    mode = r.text(preview.get("mode"), "preview.mode") or "write_blocked"
    if mode != "write_blocked":
        raise r.fail("preview.mode", f"{mode!r}: write_blocked is the only mode")
    dry_run = preview.get("libraries")
    if dry_run is not None and (not isinstance(dry_run, list) or not dry_run):
        raise r.fail("preview.libraries", "must be a list of library titles (every item of each becomes a target)")
    dry_run_libraries = tuple(dict.fromkeys([*(r.text(v, f"preview.libraries[{n}]", required=True) or ""
                                               for n, v in enumerate(dry_run or [])), *also_dry_run]))
    raw_targets = preview.get("targets")
    if raw_targets is None and dry_run_libraries:
        raw_targets = []
    if not isinstance(raw_targets, list) or (not raw_targets and not dry_run_libraries):
        raise r.fail("preview.targets", "must be a non-empty list (or give preview.libraries for a whole-library "
                                        "dry run)")
    targets = tuple(_target(r, raw, f"preview.targets[{n}]") for n, raw in enumerate(raw_targets))
    seen: dict[str, int] = {}
    for n, target in enumerate(targets):
        if target.id in seen:
            raise r.fail(f"preview.targets[{n}].id",
                         f"{target.id!r} is already used by preview.targets[{seen[target.id]}]")
        seen[target.id] = n
    output = r.path(preview.get("output"), "preview.output") or source.parent / "preview-output"
    return PreviewConfig(source=source, plex=plex, kometa=kometa, targets=targets, output=output,
                         services=services, libraries=libraries, settings=settings,
                         outside_allow=_outside_allow(r, top.get("outside"), plex),
                         expanded_environ=dict(r.expanded), dry_run_libraries=dry_run_libraries)
