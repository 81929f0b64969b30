"""Shared fixtures: the sample Plex Media Server (a real HTTP server on an ephemeral port)."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from kometa_preview.sandbox import SampleServer, generate

TOKEN = "sample-plex-token-0123456789"


@pytest.fixture
def sample_plex_factory() -> Iterator[Callable[..., SampleServer]]:
    """Start sample servers of any size; all are stopped at the end of the test."""
    started: list[SampleServer] = []

    def start(movies: int = 40, shows: int = 3, seasons: int = 2, episodes: int = 3, seed: int = 1) -> SampleServer:
        library = generate(seed=seed, movies=movies, shows=shows, seasons=seasons, episodes=episodes)
        server = SampleServer(library, TOKEN).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sample_plex(sample_plex_factory) -> SampleServer:
    return sample_plex_factory()


@pytest.fixture
def plex(sample_plex):
    from plexapi.server import PlexServer
    return PlexServer(sample_plex.url, TOKEN)
