"""kometa_run.yml: the Kometa configuration of one preview, in a fresh `<job>/kometa/` folder.

Kometa talks to the proxy with the job token (never Plex's token), keeps no cache, and runs only
overlays on the libraries that hold targets. From the user's own Kometa config it borrows only
what overlays need (docs/HOW-IT-WORKS.md): service connections, rendering settings, and each target library's
overlay definitions — never webhooks, notifications, collections, metadata, operations or playlists.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..common.config import SERVICE_SECTIONS, PreviewConfig

#: Kometa settings that change how overlays are drawn; nothing else is borrowed.
RENDER_SETTINGS = ("overlay_artwork_filetype", "overlay_artwork_quality", "custom_repo")
#: Library keys that describe overlays; everything else (collection_files, operations, …) is dropped.
LIBRARY_KEYS = ("overlay_files", "template_variables")
#: `overlay_files` entries that name a path on this machine.
PATH_KEYS = ("file", "folder")
OFFLINE_TMDB_KEY = "kometa-preview-offline"


class KometaConfigError(ValueError):
    """The preview cannot be given a working Kometa config. One line for the user."""


def read_user_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KometaConfigError(f"kometa.config: cannot read {path} ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise KometaConfigError(f"kometa.config: {path} is not valid YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise KometaConfigError(f"kometa.config: {path} is not a Kometa config (no mapping at the top)")
    return data


def _library(definitions: dict[str, Any], title: str) -> dict[str, Any] | None:
    """A library's definition by its Plex title: the key itself, or a `library_name:` inside it."""
    for key, value in (definitions or {}).items():
        if isinstance(value, dict) and (value.get("library_name") == title or (key == title and
                                                                                 "library_name" not in value)):
            return value
    return None


def _overlays_of(definition: dict[str, Any] | None) -> dict[str, Any]:
    if not definition:
        return {}
    picked = {key: definition[key] for key in LIBRARY_KEYS if definition.get(key)}
    if "overlay_files" not in picked and definition.get("overlay_path"):  # Kometa's older name
        picked["overlay_files"] = definition["overlay_path"]
    return picked


def _absolute(entries: Any, base: Path) -> Any:
    """`overlay_files` with every relative `file:`/`folder:` made absolute against `base` (`~` expanded)."""
    def resolve(key: str, value: Any) -> Any:
        if key not in PATH_KEYS or not isinstance(value, str):
            return value
        path = Path(os.path.expanduser(value))
        return str(path if path.is_absolute() else base / path)

    if not isinstance(entries, list):
        return entries
    return [{key: resolve(key, value) for key, value in entry.items()} if isinstance(entry, dict) else entry
            for entry in entries]


def overlays_for(config: PreviewConfig, user: dict[str, Any], title: str, kometa_folder: Path) -> dict[str, Any]:
    """A library's overlay definitions, with their paths resolved: from preview.yml (relative to preview.yml's
    folder), else from the user's Kometa config (relative to Kometa's folder, the working directory the user's
    own Kometa resolves them in: its checkout, or `/` in the official image)."""
    for definitions, base in ((config.libraries, config.source.parent), (user.get("libraries"), kometa_folder)):
        picked = _overlays_of(_library(definitions, title))
        if picked:
            if "overlay_files" in picked:
                picked["overlay_files"] = _absolute(picked["overlay_files"], base.resolve())
            return picked
    return {}


@dataclass(frozen=True)
class OverlaySource:
    """One `overlay_files` entry as Kometa will read it."""
    library: str
    kind: str            # file | folder | default | url | git | repo
    value: str
    where: str           # the field it came from, for messages


def overlay_sources(config: PreviewConfig, user: dict[str, Any], title: str,
                    kometa_folder: Path) -> list[OverlaySource]:
    entries = overlays_for(config, user, title, kometa_folder).get("overlay_files") or []
    sources = []
    for n, entry in enumerate(entries if isinstance(entries, list) else []):
        for kind in ("file", "folder", "default", "pmm", "url", "git", "repo"):
            if isinstance(entry, dict) and isinstance(entry.get(kind), str):
                sources.append(OverlaySource(title, "default" if kind == "pmm" else kind, entry[kind],
                                             f"libraries.{title}.overlay_files[{n}].{kind}"))
    return sources


def build(config: PreviewConfig, proxy_url: str, job_token: str, libraries: list[str], *,
          offline: bool, kometa_folder: Path) -> dict[str, Any]:
    """The kometa_run.yml document. Raises `KometaConfigError`."""
    user = read_user_config(config.kometa.config) if config.kometa.config else {}
    run_libraries: dict[str, Any] = {}
    for title in libraries:
        definition = overlays_for(config, user, title, kometa_folder)
        if not definition.get("overlay_files"):
            raise KometaConfigError(
                f"{config.source.name}: libraries.{title}: no overlay_files for the library holding targets "
                f"(add `libraries: {{{title}: {{overlay_files: [{{default: resolution}}]}}}}` or set kometa.config)")
        run_libraries[title] = {**definition, "remove_overlays": False, "reset_overlays": None}
        run_libraries[title] = {k: v for k, v in run_libraries[title].items() if v is not None}
    settings = {key: value for key, value in (user.get("settings") or {}).items() if key in RENDER_SETTINGS}
    settings.update(config.settings)
    settings.update({"cache": False, "run_order": ["overlays"], "asset_directory": [], "playlist_report": False,
                     "verify_ssl": True, "show_unmanaged": False, "show_missing": False, "save_report": False})
    document: dict[str, Any] = {
        "libraries": run_libraries,
        "settings": settings,
        "plex": {"url": proxy_url, "token": job_token, "timeout": config.plex.timeout, "db_cache": None,
                 "clean_bundles": False, "empty_trash": False, "optimize": False, "verify_ssl": False},
    }
    for name in SERVICE_SECTIONS:
        section = config.services.get(name) or user.get(name)
        if section:
            document[name] = section
    if not (document.get("tmdb") or {}).get("apikey"):
        if not offline:
            raise KometaConfigError(f"{config.source.name}: tmdb.apikey: Kometa needs a TMDb API key "
                                    "(add `tmdb: {apikey: …}` or set kometa.config), or run with --offline")
        document["tmdb"] = {"apikey": OFFLINE_TMDB_KEY, "language": "en"}
    return document


def text(document: dict[str, Any]) -> str:
    """kometa_run.yml's text. It holds service keys: Kometa gets it in its box's private tmpfs, or (without the box)
    in a 0600 file deleted after the run."""
    return yaml.safe_dump(document, sort_keys=False)


def overlay_files(document: dict[str, Any]) -> list[str]:
    """The overlay files (`file:` entries, real paths) a run config (`build`) has its libraries read: what Kometa's
    box copies into its view of a folder it covers, at the cue (box_init.refresh)."""
    return [os.path.realpath(entry["file"]) for library in document["libraries"].values()
            for entry in library.get("overlay_files") or []
            if isinstance(entry, dict) and isinstance(entry.get("file"), str)]
