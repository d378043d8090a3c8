"""The ``rnnlab`` command: one entry point, one subcommand per module.

Each module in ``COMMAND_MODULES`` defines ``register(subparsers)``, which adds
its own subparser(s) with help text and ``set_defaults(func=...)``; ``func(args)``
does the work and returns the exit code. Adding a command is importing its
module here and adding it to the tuple.

Exit codes: 0 success, 1 a command's own failure (e.g. a gradient check above
tolerance), 2 bad usage or bad input (printed as ``rnnlab <cmd>: error: ...``,
no traceback), 130 interrupted.

Bad input is found where it enters (options, files, checkpoints) and raised as
a ValueError whose message names it. As a last line of defence ``main`` also
turns any other OSError (a file that cannot be read or written), a MemoryError
and, as an "internal error" with exit code 1, any unexpected exception into one
line; ``RNNLAB_TRACEBACK=1`` shows the traceback instead.
"""
import argparse
import os
import sys

from rnnlab import __version__
from rnnlab.cli import caption, demo, dist, forecast, gradcheck, gradflow, lm, music, translate

# every subcommand's module; each defines register(subparsers)
COMMAND_MODULES = (demo, gradcheck, gradflow, lm, music, translate, forecast, caption, dist)


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


def os_message(e):
    """One line for an OSError: the file and the reason, as the OS says them."""
    if e.filename is not None and e.strerror:
        other = f" -> {e.filename2}" if getattr(e, "filename2", None) else ""
        return f"{e.filename}{other}: {e.strerror}"
    return str(e) or type(e).__name__


def _quiet_stdout():
    """After a broken pipe (``rnnlab generate | head``): no second error at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv=None):
    """Run ``rnnlab`` with ``argv`` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:          # --help, --version, usage errors: argparse's code
        return e.code if isinstance(e.code, int) else 2
    where = f"rnnlab {args.command}"
    try:
        return int(args.func(args) or 0)
    except ValueError as e:                              # bad input, named by the message
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except OSError as e:                                 # any other file that fails
        print(f"{where}: error: {os_message(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        # not a fixed list of flags: each command has its own sizes (the audit found
        # this line naming --bptt and --max-vocab to commands that have neither)
        sub = next((v for k, v in vars(args).items() if k.endswith("_command") and v), "")
        print(f"{where}: error: out of memory; lower the sizes the options ask for "
              f"(the batch, hidden, length and count options of `{where} {sub}".rstrip()
              + " --help`)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:                               # a bug: one line, not a traceback
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        print(f"{where}: internal error: {type(e).__name__}: {e} (a bug in rnnlab; "
              "RNNLAB_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1
