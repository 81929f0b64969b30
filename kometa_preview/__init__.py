"""kometa-preview: run real Kometa against a read-only proxy of Plex and keep the posters it would upload."""

__version__ = "0.1.0"
