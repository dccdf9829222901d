"""What the subcommands share: output files checked before any work, file errors
turned into `ConfigError`s, the `--routing` argument."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO, TypeAlias

from ibmig.core.sm.routing import ROUTING_ENGINES
from ibmig.errors import ConfigError

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What `ArgumentParser.add_subparsers` returns; each subcommand module adds to it."""


def add_routing_argument(parser: argparse.ArgumentParser) -> None:
    """`--routing NAME`, a name in the SM's registry of routing engines."""
    parser.add_argument(
        "--routing", choices=tuple(ROUTING_ENGINES), default=next(iter(ROUTING_ENGINES))
    )


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def check_output_file(path: str, option: str) -> None:
    """Refuse, before any work, a file the command could not write at the end."""
    where = f"{option} {path}"
    target = Path(path)
    if target.is_dir():
        raise ConfigError("is a directory", where)
    parent = target.parent
    if not parent.exists():
        raise ConfigError(f"no such directory: {parent}", where)
    if not parent.is_dir():
        raise ConfigError(f"{parent} is not a directory", where)
    if not _writable(parent) or (target.exists() and not _writable(target)):
        raise ConfigError("permission denied", where)


def check_output_dir(path: str, option: str) -> None:
    """Refuse, before any work, a directory the command could neither use nor create."""
    where = f"{option} {path}"
    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise ConfigError("not a directory", where)
        if not _writable(target):
            raise ConfigError("permission denied", where)
        return
    ancestor = target.parent  # created with its parents: the nearest existing one decides
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{ancestor} is not a directory", where)
    if not _writable(ancestor):
        raise ConfigError(f"permission denied in {ancestor}", where)


@contextmanager
def file_errors(path: str) -> Iterator[None]:
    """A user's file that cannot be read or written is bad input: one error line
    naming the file ("No such file or directory"), not a traceback."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(exc.strerror or str(exc), path) from None


def open_binary(path: str) -> BinaryIO:
    """`path` opened for writing bytes; the caller closes it."""
    with file_errors(path):
        return open(path, "wb")


def open_text(path: str) -> TextIO:
    """`path` opened for writing text; the caller closes it."""
    with file_errors(path):
        return open(path, "w")
