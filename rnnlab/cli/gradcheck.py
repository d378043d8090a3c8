"""``rnnlab gradcheck``: the gradient checker of ``rnnlab.lab.gradcheck`` on the
command line: a table (or JSON) of the worst relative error per tensor; exit 1
above tolerance."""
import json
import math

from rnnlab.engine.cells import CELLS
from rnnlab.lab.gradcheck import check_layer, variable_lengths, variants
from rnnlab.training.options import int_in_range

HELP = "check every BPTT gradient against central finite differences (float64)"


def add_arguments(parser):
    """The ``rnnlab gradcheck`` flags, grouped."""
    arch = parser.add_argument_group("layer")
    arch.add_argument("--cell", nargs="+", choices=list(CELLS), default=None,
                      help="cell type(s) to check (default: all three)")
    arch.add_argument("--nonlinearity", choices=CELLS["rnn"].NONLINEARITIES, default="tanh",
                      help="RNN nonlinearity (for --cell rnn)")
    arch.add_argument("--layers", type=int, default=1, help="num_layers")
    arch.add_argument("--bidirectional", action="store_true", help="two directions per layer")
    arch.add_argument("--gru-reset-before", action="store_true",
                      help="GRU of Cho et al. 2014: reset gate before the recurrent product")
    data = parser.add_argument_group("data")
    data.add_argument("--seq-len", type=int, default=4, help="T")
    data.add_argument("--batch", type=int, default=2, help="B")
    data.add_argument("--input-size", type=int, default=3, help="I")
    data.add_argument("--hidden-size", type=int, default=3, help="H")
    data.add_argument("--lengths", action="store_true",
                      help="variable sequence lengths in the batch (1..T, shuffled)")
    data.add_argument("--seed", type=int, default=0, help="seed of weights and data")
    chk = parser.add_argument_group("check")
    chk.add_argument("--bptt-truncate", type=int, default=None, metavar="K",
                     help="check per-term truncated BPTT (loss at t reaches t-K..t) "
                          "against the brute-force reference instead")
    chk.add_argument("--directional", action="store_true",
                     help="one random direction per tensor instead of every element "
                          "(two loss evaluations per tensor: for large layers)")
    chk.add_argument("--tol", type=float, default=1e-7,
                     help="largest relative error that passes (default 1e-7)")
    chk.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register(subparsers):
    """Add the ``gradcheck`` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("gradcheck", help=HELP, description=HELP)
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def _label(mode, nonlinearity, reset_after):
    """The variant's label in ``gradcheck.variants()`` ("rnn-tanh", "gru-reset-before")."""
    for label, kw in variants().items():
        if kw == {"mode": mode, "nonlinearity": nonlinearity, "reset_after": reset_after}:
            return label
    return mode


def _rows(args):
    """Check each requested cell; one dict per tensor."""
    lengths = variable_lengths(args.seq_len, args.batch, args.seed) if args.lengths else None
    rows = []
    for mode in args.cell or list(CELLS):
        kw = getattr(CELLS[mode], "OPTIONS", ())       # each cell gets the options it reads
        opts = {"nonlinearity": args.nonlinearity if "nonlinearity" in kw else "tanh",
                "reset_after": not args.gru_reset_before if "reset_after" in kw else True}
        report = check_layer(
            mode, num_layers=args.layers, bidirectional=args.bidirectional,
            bptt_truncate=args.bptt_truncate, lengths=lengths, T=args.seq_len,
            B=args.batch, I=args.input_size, H=args.hidden_size, seed=args.seed,
            tol=args.tol, directional=args.directional, **opts)
        label = _label(mode, opts["nonlinearity"], opts["reset_after"])
        rows += [{"cell": label, "tensor": name, "rel_error": err, "passed": err <= args.tol,
                  "reference": report.reference} for name, err in report.errors.items()]
    return rows


def _table(rows, tol):
    lines = [f"reference: {rows[0]['reference']}; tolerance {tol:.1e}",
             f"{'cell':<12} {'tensor':<22} {'rel. error':>11}  result"]
    lines += [f"{r['cell']:<12} {r['tensor']:<22} {r['rel_error']:>11.2e}  "
              f"{'PASS' if r['passed'] else 'FAIL'}" for r in rows]
    bad = sum(not r["passed"] for r in rows)
    lines.append(f"{len(rows) - bad}/{len(rows)} tensors pass")
    return "\n".join(lines)


# a float64 finite-difference check of every weight: sizes past these are a typo
# (100,000 layers ran until killed), not a check anyone waits for
MAX_LAYERS, MAX_SIZE = 64, 4096


def _check(args):
    """The flags' ranges, named as the command line spells them (the layer's own
    checks would name num_layers, input_size ... and only after building it)."""
    for flag, v, lo, hi in (("--layers", args.layers, 1, MAX_LAYERS),
                            ("--seq-len", args.seq_len, 1, MAX_SIZE),
                            ("--batch", args.batch, 1, MAX_SIZE),
                            ("--input-size", args.input_size, 1, MAX_SIZE),
                            ("--hidden-size", args.hidden_size, 1, MAX_SIZE),
                            ("--seed", args.seed, 0, None)):
        int_in_range(flag, v, lo, hi)
    if args.bptt_truncate is not None and args.bptt_truncate < 0:
        raise ValueError(f"--bptt-truncate: expected an integer >= 0, got {args.bptt_truncate}")
    if not (math.isfinite(args.tol) and args.tol > 0):          # nan, <= 0: every tensor fails
        raise ValueError(f"--tol: expected a finite number > 0, got {args.tol}")
    _check_read(args)


def _check_read(args):
    """A flag no checked cell or check reads is an error, not a silent no-op."""
    cells = args.cell or list(CELLS)
    for given, reader, what in ((args.nonlinearity != "tanh", "rnn",
                                 f"--nonlinearity {args.nonlinearity}"),
                                (args.gru_reset_before, "gru", "--gru-reset-before")):
        if given and reader not in cells:
            raise ValueError(f"{what}: read by the {reader} cell only; --cell "
                             f"{' '.join(cells)} would ignore it")
    if args.directional and args.bptt_truncate is not None:
        raise ValueError("--directional: finite differences only; --bptt-truncate checks "
                         "against the per-term reference instead, which would ignore it")


def run(args):
    """``rnnlab gradcheck``: print the table (or JSON); 1 if any tensor fails."""
    _check(args)
    rows = _rows(args)
    passed = all(r["passed"] for r in rows)
    if args.json:
        print(json.dumps({"tol": args.tol, "passed": passed, "results": rows}, indent=1))
    else:
        print(_table(rows, args.tol))
    return 0 if passed else 1
