"""A sample Plex Media Server: try the tool without a real Plex, and the oracle every test runs against."""

from .library import Library, generate
from .server import RequestLog, SampleServer

__all__ = ["Library", "RequestLog", "SampleServer", "generate"]
