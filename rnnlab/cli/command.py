"""The ``rnnlab`` command: one entry point, one subcommand per module.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)``, which adds
its own subparser(s) with help text and ``set_defaults(func=...)``; ``func(args)``
does the work and returns the exit code. Adding a command is importing its
module here and adding it to the tuple.

Exit codes: 0 success, 1 a command's own failure (e.g. a gradient check above
tolerance), 2 bad usage or bad input (printed as ``rnnlab <cmd>: error: ...``,
no traceback), 130 interrupted.
"""
import argparse
import sys

from rnnlab import __version__
from rnnlab.cli import demo, gradflow, lm, music
from rnnlab.lab import gradcheck

# every subcommand's module; each defines register(subparsers)
COMMAND_MODULES = (demo, gradcheck, lm, gradflow, music)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks (RNN, LSTM, GRU) with hand-written "
                    "backpropagation through time.")
    parser.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv=None):
    """Run ``rnnlab`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:          # --help, --version, usage errors: argparse's code
        return e.code if isinstance(e.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"rnnlab {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
