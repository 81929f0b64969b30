"""One line of Kometa's log as the readers see it: the log's reader (log.py) makes them, and the overlay readers
(overlay_log.py) take them. Its own module so that neither reader imports the other's module for the type.
"""
from __future__ import annotations

from dataclasses import dataclass

ERROR_LEVELS = ("ERROR", "CRITICAL")


@dataclass(frozen=True)
class Line:
    level: str            # DEBUG/INFO/WARNING/ERROR/CRITICAL, or "" for Kometa's screen output
    text: str
    when: float | None = None
    #: A later line of a message logged as several (its level and time are the first line's).
    continued: bool = False

    @property
    def is_error(self) -> bool:
        return self.level in ERROR_LEVELS
