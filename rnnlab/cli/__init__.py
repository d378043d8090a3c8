"""The ``rnnlab`` command."""
from rnnlab.cli.command import build_parser, main

__all__ = ["main", "build_parser"]
