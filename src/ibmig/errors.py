"""Exceptions shared by every layer.

`WireError` is the only exception a codec raises for malformed bytes or for a
value that does not fit its field. `ConfigError` is bad user input (topology
file, scenario, command-line arguments); the CLI prints it as one line and
exits with status 2.
"""

from __future__ import annotations


class WireError(ValueError):
    """Malformed bytes, or a value that cannot be encoded in its field."""


class ConfigError(Exception):
    """Bad user input; `where` names the file and line, or the key."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        if self.where:
            return f"{self.where}: {self.message}"
        return self.message


ECHO_LIMIT = 60
"""Characters of a bad value an error line repeats; the rest is elided."""


def shown(value: object, limit: int = ECHO_LIMIT) -> str:
    """`repr(value)` for an error line, cut to `limit` characters: a bad token can be
    megabytes long, and the line must stay one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"
