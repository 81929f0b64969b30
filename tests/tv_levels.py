"""A TV library whose overlay files each work at one of Kometa's levels (`builder_level`), and what that means for a
show, one of its seasons and that season's episodes as targets — the same for the stand-in (test_tv_fidelity)
and for real Kometa (test_real_kometa).

Kometa's rules, as real Kometa 2.4 applies them: a default file's overlays go on the level of its
`template_variables: {builder_level: …}`, else the library's, else shows; an overlay of the user's own file goes on
its own `builder_level:` attribute, and template variables do not reach it (it uses no template).
"""
from __future__ import annotations

from pathlib import Path

import sample_badges


def _text(name: str, colour: str, level: str | None) -> str:
    return (f"  {name}:\n" + (f"    builder_level: {level}\n" if level else "") +
            f"    overlay:\n      name: text({name})\n      back_color: '{colour}'\n      horizontal_offset: 30\n"
            "      vertical_offset: 30\n      horizontal_align: left\n      vertical_align: top\n    plex_all: true\n")


def write_overlay_files(folder: Path) -> None:
    (folder / "levels.yml").write_text("overlays:\n" + _text("Season", "#00AA00", "season") +
                                       _text("Episode", "#0000AA", "episode"))
    (folder / "plain.yml").write_text("overlays:\n" + _text("Plain", "#AA0000", None))


#: Overlay File (0): shows; (1): seasons; (2): seasons and episodes by their own attribute; (3): shows (its
#: template variable reaches nothing); (4): episodes, by the library's template variable.
LIBRARIES = {"TV Shows": {
    "template_variables": {"builder_level": "episode"},
    "overlay_files": [{"default": "resolution", "template_variables": {"builder_level": "show"}},
                      {"default": "resolution", "template_variables": {"builder_level": "season"}},
                      {"file": "levels.yml"},
                      {"file": "plain.yml", "template_variables": {"builder_level": "season"}},
                      {"default": "audio_codec"}]}}


def targets(library) -> list[dict]:
    """The second show, its first season and that season's episodes."""
    show = library.items[sorted(k for k, i in library.items.items() if i.type == "show")[1]]
    season = library.items[show.children[0]]
    return ([{"id": "show", "type": "show", "ratingKey": str(show.rating_key)},
             {"id": "season", "type": "season", "ratingKey": str(season.rating_key)}] +
            [{"id": f"episode{n}", "type": "episode", "ratingKey": str(key)} for n, key in enumerate(season.children)])


def check(summary: dict, library) -> None:
    """Every target exported with the overlays of its own level's files, and only those (Kometa lists them by
    file): the show its resolution and Plain, the season its resolution and Season, each episode Episode and the
    audio badge its own media earns."""
    entries = summary["targets"]
    assert {entry["status"] for entry in entries.values()} == {"exported"}, entries
    show, season = entries["show"]["overlays"], entries["season"]["overlays"]
    assert len(show) == 2 and show[0].startswith("Overlay File (0) ") and show[1] == "Overlay File (3) Plain", show
    assert len(season) == 2 and season[0].startswith("Overlay File (1) ") and season[1] == "Overlay File (2) Season"
    episodes = [entry for target_id, entry in entries.items() if target_id.startswith("episode")]
    assert len(episodes) >= 2
    for entry in episodes:
        item = library.items[int(entry["rating_key"])]
        assert entry["overlays"] == ["Overlay File (2) Episode", f"Overlay File (4) {sample_badges.audio_codec(item)}"]
