"""Options declared once, checked once: the same rule for the command line, a TOML
file and the Python API.

A config is a dataclass whose fields are made with ``option(...)``: the default,
a help line and the allowed range or choices. ``check(cfg)`` (called from the
dataclass's ``__post_init__``) enforces types, finiteness and ranges;
``add_arguments`` turns the fields into argparse flags; ``from_mapping`` builds a
config from a TOML table or a checkpoint, rejecting unknown keys.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     lr: float = option(0.1, "learning rate", lo=0, lo_open=True)
    ...     def __post_init__(self): check(self)
    >>> C(lr=-1)
    Traceback (most recent call last):
    ...
    ValueError: --lr: expected a number > 0, got -1
"""
import argparse
import math
import tomllib
import typing
from dataclasses import MISSING, field, fields


def option(default, help, *, lo=None, hi=None, lo_open=False, hi_open=False, choices=None,
           positional=False, short=None):
    """A dataclass field with its help text and its allowed values.

    ``positional``: a command-line argument instead of a flag (``True``: optional,
    ``"required"``: required); ``short``: an extra short flag such as ``"-n"``.
    """
    meta = dict(help=help, lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open, choices=choices,
                positional=positional, short=short)
    return field(default=default, metadata=meta)


def int_in_range(flag, value, lo, hi=None, note=""):
    """A plain argparse integer checked where no option dataclass declares it: a
    ValueError naming ``flag`` when it lies outside lo..hi (hi None: no bound)."""
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"from {lo} to {hi:,}"
        raise ValueError(f"{flag}: expected an integer {rng}{note}, got {value}")


def changed(cfg, name):
    """Whether option ``name`` of the config ``cfg`` is set off its declared default
    (for a setting that some other choice would leave unread)."""
    return getattr(cfg, name) != cfg.__dataclass_fields__[name].default


def redefault(cls, name, default):
    """``cls``'s option ``name`` with another default (help, range and choices as
    declared there): for a subclass whose defaults differ."""
    f = cls.__dataclass_fields__[name]
    return field(default=default, metadata=f.metadata)


def _base_type(f, cls):
    t = typing.get_type_hints(cls).get(f.name, f.type)
    optional = typing.get_origin(t) is typing.Union and type(None) in typing.get_args(t)
    if optional:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return t, optional


def flag(name):
    return "--" + name.replace("_", "-")


def _expected(t, m):
    if m["choices"] is not None:
        return "one of " + ", ".join(map(str, m["choices"]))
    what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[t]
    bounds = []
    if m["lo"] is not None:
        bounds.append(f"{'>' if m['lo_open'] else '>='} {m['lo']}")
    if m["hi"] is not None:
        bounds.append(f"{'<' if m['hi_open'] else '<='} {m['hi']}")
    return what + (" " + " and ".join(bounds) if bounds else "")


def _ok(v, t, m):
    if t is bool:
        return isinstance(v, bool)
    if t is int and (not isinstance(v, int) or isinstance(v, bool)):
        return False
    if t is float:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return False
    if t is str and not isinstance(v, str):
        return False
    if m["choices"] is not None and v not in m["choices"]:
        return False
    lo, hi = m["lo"], m["hi"]
    if lo is not None and (v < lo or (m["lo_open"] and v == lo)):
        return False
    return hi is None or not (v > hi or (m["hi_open"] and v == hi))


def check(cfg):
    """Raise ValueError naming the first option whose value is not allowed."""
    for f in fields(cfg):
        if "help" not in f.metadata:
            continue
        t, optional = _base_type(f, type(cfg))
        v = getattr(cfg, f.name)
        if v is None and optional:
            continue
        if not _ok(v, t, f.metadata):
            raise ValueError(f"{flag(f.name)}: expected {_expected(t, f.metadata)}, got {v!r}")


def add_arguments(parser, cls, skip=(), title="options (also settable in a --config TOML file)"):
    """One argparse flag per option of ``cls`` (defaults SUPPRESSed: the config's rule)."""
    g = parser.add_argument_group(title)
    for f in fields(cls):
        if f.name in skip or "help" not in f.metadata:
            continue
        t, _ = _base_type(f, cls)
        m = f.metadata
        default = f.default if f.default is not MISSING else f.default_factory()
        help_ = f"{m['help']} (default: {default})"
        names = [flag(f.name)] + ([m["short"]] if m.get("short") else [])
        if m["positional"] == "required":
            parser.add_argument(f.name, help=m["help"])
        elif m["positional"]:
            parser.add_argument(f.name, nargs="?", default=argparse.SUPPRESS, help=help_)
        elif t is bool:
            g.add_argument(*names, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_)
        else:
            g.add_argument(*names, type=_parse(t, f.name), metavar=f.name.upper(),
                           default=argparse.SUPPRESS, help=help_,
                           choices=m["choices"] if t is str else None)


def _parse(t, name):
    def parse(text):
        try:
            return t(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {_expected(t, dict(choices=None, lo=None, hi=None))}, "
                f"got {text!r}") from None
    parse.__name__ = t.__name__
    return parse


def from_mapping(cls, d, where="options"):
    """``cls(**d)``, with unknown keys and wrong values named after ``where``
    (``where=None``: the message names the option only)."""
    pre = "" if where is None else f"{where}: "
    if not isinstance(d, dict):
        raise ValueError(f"{pre}expected a table of options, got {type(d).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{pre}unknown option(s) {', '.join(unknown)}")
    try:
        return cls(**d)
    except ValueError as e:
        raise ValueError(f"{pre}{e}") from None


def from_args(cls, args, drop=("func", "command", "config", "resume")):
    """A config from parsed arguments: defaults < ``--config`` TOML < command line.

    A wrong value is named by its flag, plus the TOML file when it came from there.
    """
    given = {k: v for k, v in vars(args).items() if k not in drop}
    path = getattr(args, "config", None)
    from_file = load_toml(path) if path else {}
    try:
        return from_mapping(cls, {**from_file, **given}, None)
    except ValueError as e:
        culprits = [k for k in from_file if k not in given
                    and (str(e).startswith(flag(k)) or k not in {f.name for f in fields(cls)})]
        if culprits:
            raise ValueError(f"--config {path}: {e}") from None
        raise


def load_toml(path):
    """A TOML file's top-level table, keys with '-' read as '_'."""
    try:
        with open(path, "rb") as f:              # a UTF-8 byte-order mark (Windows editors)
            d = tomllib.loads(f.read().removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {path}: invalid TOML ({e})") from None
    except OSError as e:
        raise ValueError(f"--config {path}: cannot read it ({e.strerror})") from None
    return {k.replace("-", "_"): v for k, v in d.items()}


# the parser's own keys in an application's parsed arguments, not options: the
# command, its sub-command ``action``, ``--config`` and ``--resume``
PARSER_KEYS = ("func", "command", "action", "config", "resume")


def settings(args, drop=PARSER_KEYS):
    """Defaults < TOML file (``--config``) < command line, as one dict (without the
    parser's own keys: the command, an application's sub-command ``action``, ...)."""
    given = {k: v for k, v in vars(args).items() if k not in drop}
    merged = load_toml(args.config) if getattr(args, "config", None) else {}
    merged.update(given)
    return merged
