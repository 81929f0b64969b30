"""A job folder: every path in it, how captures are named, and the ready file — the contract between the
render (parent) process and the proxy (child) process, which talk through this folder only.

No mitmproxy import: both processes use it.

    <job>/
      proxy_journal.jsonl      the proxy's decisions, one JSON line each (events.py)
      proxy_ready.json         written by the proxy once listening (0600: it holds the job token)
      logs/                    render.log, proxy.log, kometa.log
      kometa/                  Kometa's config folder for this run (kometa_run.yml, deleted after the run;
                               logs/meta.log, Kometa's own log)
      mitmproxy/               mitmproxy's confdir (its CA; it reads no config.yaml from here)
      kometa-start/            Kometa's start (kometa_start.py, its cue on stdin): warm.json (imports done),
                               started.json, tmp/ and secret/ (its TMPDIR and the tmpfs for kometa_run.yml, in the
                               box); without the box, open (the proxy listens) and gate-<pid>.json (how long Kometa's
                               first connection waited for it)
      output/
        by_ratingkey/          captured uploads: <ratingKey>_<kind>_<stamp>[_n].<ext>
        captured_requests/     upload bodies with no complete image: <ratingKey>_<kind>_<stamp>[_n].bin
        before/                the poster served to Kometa: <ratingKey>.<ext>
        <id>_before.<ext>, <id>_after.<ext>, summary.json, report.html, contact.html (a dry run's; pages.py)
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .files import write_private

STAMP_FORMAT = "%Y%m%d_%H%M%S_%f"
#: A sharded dry run's job folder holds its shards' job folders here: shards/<round>-<n>/ (shards.py).
SHARDS = "shards"
#: The summary's name in an output folder.
SUMMARY = "summary.json"
#: The pages' names in an output folder (results/pages.py writes them; the contact sheet links the report).
REPORT = "report.html"
CONTACT = "contact.html"
#: The folder of a watch (its root) where each of the editor's writes keeps the bytes it replaced. Copies of
#: preview.yml may hold the Plex token: Kometa's box never shows one (run/kometa_pass.start_kometa).
EDITS = "edits"


@dataclass(frozen=True)
class JobLayout:
    root: Path

    @property
    def journal(self) -> Path:
        return self.root / "proxy_journal.jsonl"

    @property
    def ready(self) -> Path:
        return self.root / "proxy_ready.json"

    @property
    def reserve(self) -> Path:
        """Disk space held back until export (see `limits.RESERVE_BYTES`)."""
        return self.root / ".space-reserve"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def render_log(self) -> Path:
        return self.logs / "render.log"

    @property
    def proxy_log(self) -> Path:
        return self.logs / "proxy.log"

    @property
    def kometa_log(self) -> Path:
        return self.logs / "kometa.log"

    @property
    def kometa(self) -> Path:
        return self.root / "kometa"

    @property
    def kometa_start(self) -> Path:
        """Kometa's start-up folder (warm.json, started.json; in the box its TMPDIR and secret tmpfs)."""
        return self.root / "kometa-start"

    @property
    def kometa_meta_log(self) -> Path:
        """Kometa's own log (with levels), under its config folder: read back by `kometa_log`."""
        return self.kometa / "logs" / "meta.log"

    @property
    def run_config(self) -> Path:
        return self.kometa / "kometa_run.yml"

    @property
    def redacted_run_config(self) -> Path:
        return self.kometa / "kometa_run.redacted.yml"

    @property
    def confdir(self) -> Path:
        return self.root / "mitmproxy"

    @property
    def ca_cert(self) -> Path:
        """The per-job CA's certificate mitmproxy writes in its confdir: what Kometa trusts for its outside calls."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def by_ratingkey(self) -> Path:
        return self.output / "by_ratingkey"

    @property
    def captured_requests(self) -> Path:
        return self.output / "captured_requests"

    @property
    def before(self) -> Path:
        return self.output / "before"

    @property
    def summary(self) -> Path:
        return self.output / SUMMARY

    @property
    def report(self) -> Path:
        return self.output / REPORT

    @property
    def contact(self) -> Path:
        """The contact sheet: a dry run's merged output only."""
        return self.output / CONTACT

    def exported(self, target_id: str, side: str, ext: str) -> Path:
        """`output/<id>_before.<ext>` or `output/<id>_after.<ext>` (target ids are checked by config to stay
        inside the folder)."""
        assert side in ("before", "after")
        return self.output / f"{target_id}_{side}.{ext.lstrip('.')}"


# --- capture names ----------------------------------------------------------------------------------------

_CAPTURE = re.compile(r"(?P<rk>\d+|unknown)_(?P<kind>[a-z_]+?)_(?P<stamp>\d{8}_\d{6}_\d{6})(?:_(?P<n>\d+))?"
                      r"\.(?P<ext>jpg|png|webp|bin)")


@dataclass(frozen=True)
class CaptureName:
    """`<ratingKey>_<kind>_<stamp>[_n].<ext>`: enough to map a capture to its target from its name alone,
    so captures survive a journal that could not be written (a full disk)."""
    rating_key: str
    kind: str
    stamp: str
    ext: str
    n: int = 0

    @classmethod
    def new(cls, rating_key: str | None, kind: str | None, ext: str, when: datetime | None = None) -> CaptureName:
        return cls(rating_key or "unknown", kind or "unknown", (when or datetime.now()).strftime(STAMP_FORMAT), ext)

    @property
    def stem(self) -> str:
        return f"{self.rating_key}_{self.kind}_{self.stamp}" + (f"_{self.n}" if self.n else "")

    @property
    def name(self) -> str:
        return f"{self.stem}.{self.ext}"

    def numbered(self, n: int) -> CaptureName:
        """The same capture under a free name (two uploads within one microsecond)."""
        return CaptureName(self.rating_key, self.kind, self.stamp, self.ext, n)

    @property
    def timestamp(self) -> float:
        return datetime.strptime(self.stamp, STAMP_FORMAT).timestamp()

    @classmethod
    def parse(cls, name: str) -> CaptureName | None:
        match = _CAPTURE.fullmatch(name)
        if match is None:
            return None
        return cls(match["rk"], match["kind"], match["stamp"], match["ext"], int(match["n"] or 0))


# --- the ready file ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ready:
    """What the proxy tells the launcher once it listens (or why it will not)."""
    ok: bool
    error: str | None = None
    pid: int | None = None
    #: mode name → [[host, port], …] as mitmproxy bound them ("reverse", "regular" or "upstream")
    modes: dict[str, list[list[Any]]] = field(default_factory=dict)
    libraries: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    client_token: str = field(default="", repr=False)
    mock_library: bool = True

    @property
    def port(self) -> int:
        return int(self.modes["reverse"][0][1])

    @property
    def outside_port(self) -> int | None:
        addresses = self.modes.get("regular") or self.modes.get("upstream")
        return int(addresses[0][1]) if addresses else None

    def write(self, layout: JobLayout) -> None:
        write_private(layout.ready, json.dumps(asdict(self)))

    @classmethod
    def read(cls, layout: JobLayout) -> Ready:
        document = json.loads(layout.ready.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in document.items() if k in cls.__dataclass_fields__})
