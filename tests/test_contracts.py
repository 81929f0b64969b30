"""The contracts between the proxy and the render job, as code: the event vocabulary, who claims which route,
the job folder, summary.json's schema, configuration that does not change under a running preview, and a
parent process that never imports mitmproxy."""
from __future__ import annotations

import ast
import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import movie_targets, write_preview_yml
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

import kometa_preview
from kometa_preview.common.config import load, mock_library_from_environment
from kometa_preview.common.events import Event, MockList, UnknownEvent, parse
from kometa_preview.common.outside_policy import Refusal
from kometa_preview.plex.routes import READ_ONLY
from kometa_preview.proxy.flows import Proxy
from kometa_preview.proxy.journal import Journal
from kometa_preview.proxy.listing_filter import ListingFilter
from kometa_preview.proxy.metadata_gate import MetadataGate
from kometa_preview.proxy.mock_library import MockLibrary
from kometa_preview.proxy.poster_source import PosterSource
from kometa_preview.proxy.read_only import ReadOnlyRoutes
from kometa_preview.proxy.setup import Setup
from kometa_preview.results.summary import READS, Records, RunFacts, summarize

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "summary.schema.json").read_text(encoding="utf-8"))
CLAIMING = (MockLibrary, MetadataGate, ListingFilter, ReadOnlyRoutes)


def test_every_event_is_decided_by_the_summary_and_every_refusal_is_an_event():
    assert set(READS) == set(Event), set(Event) ^ set(READS)
    assert {r.value for r in Refusal} <= {e.value for e in Event}


def test_an_unknown_event_is_named_never_dropped(tmp_path):
    with pytest.raises(UnknownEvent):
        parse({"t": 1, "event": "NOT_AN_EVENT"})
    config = load(write_preview_yml(tmp_path, "http://127.0.0.1:1", movie_targets([1001])))
    journal = Records([{"t": 1, "event": "FROM_A_NEWER_PROXY"}, {"t": 2, "event": "PROXY_START",
                                                                        "mock_library": False}])
    summary = summarize(journal, config, {}, RunFacts(kometa_exit_code=0))
    assert summary.unknown_events == ["FROM_A_NEWER_PROXY"] and summary.mock_mode.enabled is False
    jsonschema.validate(summary.to_json(), SCHEMA)


def test_the_proxy_journals_only_events(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    with pytest.raises(TypeError):
        journal.note("MOCK_SECTIONS", path="/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        journal.write("MOCK_LIST")  # type: ignore[arg-type]
    journal.write(MockList(event=Event.MOCK_LIST, path="/x"))
    journal.close()
    assert json.loads((tmp_path / "journal.jsonl").read_text())["event"] == "MOCK_LIST"


@pytest.mark.parametrize("mode", ["mock", "filter"])
def test_the_addons_claims_partition_the_read_only_table(mode):
    claims = {addon.__name__: addon.CLAIMS[mode] for addon in CLAIMING}
    for (a, first), (b, second) in itertools.combinations(claims.items(), 2):
        assert not first & second, f"{a} and {b} both claim {sorted(first & second)} in {mode} mode"
    assert frozenset().union(*claims.values()) == READ_ONLY
    assert PosterSource.SERVES_FIRST <= MetadataGate.CLAIMS[mode]


def test_only_the_proxy_imports_mitmproxy():
    """Every module outside proxy/ — the render, the pages, common/ above all, which both processes share — is
    imported without loading mitmproxy."""
    package = Path(kometa_preview.__file__).parent
    modules = sorted(".".join(("kometa_preview", *p.relative_to(package).with_suffix("").parts))
                     for p in package.rglob("*.py") if p.relative_to(package).parts[0] != "proxy"
                     and p.name != "__main__.py")
    code = ("import sys\n" + "".join(f"import {m.removesuffix('.__init__')}\n" for m in modules)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mitmproxy'))")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert len(modules) > 40 and shown.strip() == "[]"


#: Each folder's layer: a module imports its own layer's and lower layers' modules only (docs/ARCHITECTURE.md).
LAYERS = {"common": 0, "plex": 1, "kometa": 1, "results": 2, "tools": 2, "proxy": 2, "sandbox": 2, "run": 3,
          "cli": 4, "__main__": 5}


def _imports(path: Path, module: str) -> set[str]:
    """The kometa_preview modules `path` imports, absolute."""
    found = set()
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kometa_preview"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kometa_preview")}
    return found


def test_no_module_imports_a_layer_above_its_own():
    package = Path(kometa_preview.__file__).parent
    upward = []
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        if parts == ("__init__",):
            continue
        module = ".".join(("kometa_preview", *parts))
        layer = LAYERS[parts[0]]
        for imported in _imports(path, module):
            top = imported.split(".")[1] if "." in imported else None
            if top in LAYERS and LAYERS[top] > layer:
                upward.append(f"{module} -> {imported}")
    assert upward == []


@pytest.mark.parametrize("value, mock", [("0", False), ("false", False), ("False", False), ("off", False),
                                         ("no", False), ("1", True), ("true", True), ("", True)])
def test_one_parser_for_preview_mock_library(value, mock):
    assert mock_library_from_environment({"PREVIEW_MOCK_LIBRARY": value}) is mock


def test_configure_is_idempotent_and_refuses_changes_once_built(sample_plex, tmp_path):
    config = write_preview_yml(tmp_path, sample_plex.url, movie_targets([1001]))
    proxy = Proxy()
    setup = Setup(proxy)

    async def run():
        with taddons.context(setup) as tctx:
            tctx.configure(setup, preview_config=str(config), preview_job=str(tmp_path / "job"))
            state, requests = proxy.state, sample_plex.log.snapshot()
            tctx.configure(setup, preview_config=str(config), preview_job=str(tmp_path / "job"))
            assert proxy.state is state and sample_plex.log.snapshot() == requests  # no new prefetch, same token
            with pytest.raises(OptionsError, match="preview_job cannot be changed"):
                tctx.configure(setup, preview_job=str(tmp_path / "other"))
            assert proxy.state is state and not (tmp_path / "other").exists()
            state.journal.close()
    asyncio.run(run())


def test_summary_schema_names_exactly_the_summary_dataclasses_fields():
    """docs/summary.schema.json is the contract other tools read: it cannot drift from `Summary`."""
    import dataclasses

    from kometa_preview.results.outcomes import Consideration, OutsideData, OverlayBox, OverlayLabel
    from kometa_preview.results.summary import (
        Filtering,
        IsolationUsed,
        MockMode,
        ProxyFigures,
        SideDoors,
        Summary,
        TargetResult,
    )
    for name, kind in (("", Summary), ("TargetResult", TargetResult), ("MockMode", MockMode),
                       ("Filtering", Filtering), ("ProxyFigures", ProxyFigures), ("SideDoors", SideDoors),
                       ("OutsideData", OutsideData), ("IsolationUsed", IsolationUsed), ("OverlayLabel", OverlayLabel),
                       ("OverlayBox", OverlayBox), ("Consideration", Consideration)):
        block = SCHEMA if not name else SCHEMA["$defs"][name]
        fields = [f.name for f in dataclasses.fields(kind)]
        assert list(block["properties"]) == fields, name
        assert set(block["required"]) == set(fields) and block.get("additionalProperties") is False, name


def test_the_flat_sections_declare_summarys_own_fields():
    """Each section summary.json keeps at its top level (`summary.Flat`) is spliced into `Summary`: its fields are
    Summary's, with Summary's types, and no two sections build the same one."""
    import typing

    from kometa_preview.results.summary import FLAT_SECTIONS, Summary
    declared = typing.get_type_hints(Summary)
    built = [name for section in FLAT_SECTIONS for name in typing.get_type_hints(section)]
    assert len(built) == len(set(built)), built
    for section in FLAT_SECTIONS:
        assert {name: declared.get(name) for name in typing.get_type_hints(section)} == typing.get_type_hints(section)


def test_every_field_reads_names_is_a_summary_field():
    """READS says where the summary shows each event: a path of `Summary`'s fields (`*`: any target)."""
    import typing

    from kometa_preview.results.summary import Summary
    for event, where in READS.items():
        if where == "diagnostic":
            continue
        hint: object = Summary
        for step in where.split("."):
            hint = typing.get_args(hint)[1] if step == "*" else typing.get_type_hints(hint).get(step)
            assert hint is not None, f"{event}: {where}"


def test_every_log_event_name_lives_in_the_events_module():
    """The words users grep for: the proxy's (Event) and the render's (RenderEvent), each written in one place."""
    from kometa_preview.common.events import RenderEvent
    assert not set(Event) & set(RenderEvent)
    sources = "".join(p.read_text(encoding="utf-8") for p in (Path(__file__).parents[1] / "kometa_preview").rglob("*.py"))
    for event in RenderEvent:
        assert f"RenderEvent.{event.name}" in sources, f"{event} is never logged"


def test_every_function_fits_on_a_screen():
    """60 lines at most (STYLE.md): a longer one is a value object or a helper waiting to be named."""
    package = Path(kometa_preview.__file__).parent
    long = [f"{path.relative_to(package)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in package.rglob("*.py") for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60]
    assert long == []


def test_the_package_s_top_level_holds_its_entry_points_only():
    """Roles live in folders (common, kometa, run, results, tools, proxy, plex, sandbox): at most 8 modules at top."""
    package = Path(kometa_preview.__file__).parent
    assert len(list(package.glob("*.py"))) <= 8
