"""What Kometa is told before the proxy is up: the proxy's two ports, the job token, and the libraries holding
the targets — so that Kometa's own start-up (about 0.5 s for Kometa 2.4: its modules, its logger, its config)
runs while mitmproxy starts (about 0.7 s) instead of after it.

The render chooses the ports and the token, and finds the libraries the way the proxy does (`plex.client` and
`plex.titles`, read-only; `PreviewState.target_sections` is the proxy's side). Kometa's first connection waits at
kometa_start.py's gate until the proxy is ready, and the plan is checked against what the proxy's ready file
says: on any difference (a port taken in between, Plex changed) that Kometa is stopped before it connected, and
Kometa runs the usual way, once the proxy listens. A plan is an optimisation; it never decides what Kometa sees.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..common.children import free_port
from ..common.config import ProxyConfig
from .proxy_child import ProxyProcess

if TYPE_CHECKING:
    from ..plex.client import Upstream


@dataclass(frozen=True)
class RunPlan:
    port: int
    outside_port: int
    client_token: str = field(repr=False)
    libraries: tuple[str, ...] = ()

    def differences(self, proxy: ProxyProcess, *, ports: bool = True) -> list[str]:
        """What the proxy that started does not share with the one Kometa was told about (none: it is that one).
        `ports=False`: Kometa is in its box, whose relay follows the proxy to whatever ports it bound."""
        compared = [("job token", self.client_token, proxy.client_token),
                    ("libraries", self.libraries, proxy.libraries)]
        if ports:
            compared += [("port", self.port, proxy.port), ("outside port", self.outside_port, proxy.outside_port)]
        return [name for name, planned, real in compared if planned != real]


def choose() -> RunPlan:
    """Two free loopback ports and a job token (the libraries come later: `with_libraries`)."""
    port = free_port()
    outside = free_port()
    while outside == port:
        outside = free_port()
    return RunPlan(port, outside, secrets.token_urlsafe(24))


def target_libraries(upstream: Upstream, config: ProxyConfig) -> tuple[str, ...]:
    """The titles of the libraries that hold a target Plex has (or that a dry run names), in Plex's order.
    Raises `UpstreamError`."""
    from ..plex import client, titles
    sections = client.sections(upstream)
    held: set[str] = set()
    for target in config.targets:
        key = target.rating_key
        if key is None:
            key = titles.resolve(upstream, sections, target.type, target.title, target.library).rating_key
        element = client.item(upstream, key) if key is not None else None
        if element is not None:
            held.add(element.get("librarySectionID", ""))
    return tuple(section.get("title", "") for section in sections
                 if section.get("key") in held or section.get("title") in config.libraries)


def with_libraries(plan: RunPlan, config: ProxyConfig) -> RunPlan | None:
    """The plan with the libraries Kometa will run on; None when they cannot be known now (Plex unreachable:
    the proxy's start says why). The Plex client is imported here, once Kometa and the proxy are starting."""
    from ..plex.client import Upstream, UpstreamError
    upstream = Upstream(config.plex.url, config.plex.token, min(config.plex.timeout, 30), config.plex.verify_ssl)
    try:
        libraries = target_libraries(upstream, config)
    except UpstreamError:
        return None
    finally:
        upstream.close()
    return RunPlan(plan.port, plan.outside_port, plan.client_token, libraries) if libraries else None
