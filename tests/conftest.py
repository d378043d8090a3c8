"""Shared fixtures: strict numerics, the registry of cell variants, torch twins.

Warnings are errors (pyproject's filterwarnings); here NumPy overflow, invalid
and divide-by-zero raise too, since no test expects them.

Oracle, fast-path and distributed tests carry a marker (``needs_torch``,
``needs_numba``, ``needs_mkl``, ``needs_mpi``, ``needs_ray``;
a test using the ``torch_twin`` fixture gets ``needs_torch`` by itself). They
are skipped where torch or the fast path is missing, except when the
environment variable ``CI`` is set: there a skipped one is a failure, so a
missing wheel or BLAS symbol cannot silently turn the oracles off. A test
marked ``gpu`` is exempt: it skips where there is no GPU, CI included.
"""
import importlib.util
import os

import numpy as np
import pytest

from rnnlab.engine import backend as _backend, layers
from rnnlab.lab.gradcheck import rel_error, variants
from rnnlab.engine.layers import as_hx

VARIANTS = variants()
NEEDS = {"needs_torch": "torch", "needs_numba": "numba", "needs_mpi": "mpi4py",
         "needs_ray": "ray", "needs_mkl": "numba"}


def _missing(mark):
    """Why a test with this marker cannot run here, or None."""
    if importlib.util.find_spec(NEEDS[mark]) is None:
        return f"{NEEDS[mark]} is not installed"
    if mark == "needs_numba":
        from rnnlab.engine.fast import kernels
        return None if kernels.available() else "NumPy's OpenBLAS (with its cblas ?gemm) not found"
    if mark == "needs_mkl":
        from rnnlab.engine.fast import kernels
        return None if kernels._load_mkl() is not None else "the mkl extra is not installed (no libmkl_rt)"
    return None


def pytest_collection_modifyitems(items):
    for item in items:
        if "torch_twin" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_torch)


def pytest_runtest_setup(item):
    for mark in NEEDS:
        why = item.get_closest_marker(mark) and _missing(mark)
        if why:
            pytest.skip(f"{mark}: {why}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI set, a skipped oracle or fast-path test fails instead."""
    outcome = yield
    rep = outcome.get_result()
    if (rep.skipped and os.environ.get("CI") and not item.get_closest_marker("gpu")
            and any(item.get_closest_marker(m) for m in NEEDS)):
        rep.outcome = "failed"
        rep.longrepr = f"skipped in CI (CI is set), which must run it: {rep.longrepr}"


@pytest.fixture(autouse=True)
def strict_numerics():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        yield


@pytest.fixture(params=list(VARIANTS))
def variant(request):
    """One cell variant as RNNConfig keyword arguments (mode, nonlinearity, reset_after)."""
    return VARIANTS[request.param]


@pytest.fixture(scope="session")
def torch_twin():
    """build(cfg, params, dtype) -> the torch.nn module holding the same weights."""
    torch = pytest.importorskip("torch")

    def build(cfg, params, dtype=torch.float64):
        cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cfg.mode]
        extra = {"nonlinearity": cfg.nonlinearity} if cfg.mode == "rnn" else {}
        m = cls(cfg.input_size, cfg.hidden_size, cfg.num_layers, bias=cfg.bias,
                batch_first=cfg.batch_first, bidirectional=cfg.bidirectional, **extra)
        m = m.to(dtype)
        m.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
        return m

    return build


def make_case(cfg, T, B, seed=0, dtype=np.float64):
    """params, x (caller's layout), initial states, doutput, dstate_n for cfg."""
    rng = np.random.default_rng(seed)
    LD, H = cfg.num_layers * cfg.num_directions, cfg.hidden_size
    params = layers.init_params(cfg, rng, dtype)
    shape = (B, T) if cfg.batch_first else (T, B)
    x = rng.standard_normal(shape + (cfg.input_size,)).astype(dtype)
    dout = rng.standard_normal(shape + (cfg.num_directions * H,)).astype(dtype)
    state0 = tuple(0.5 * rng.standard_normal((LD, B, H)).astype(dtype) for _ in cfg.cell.STATE)
    dstate_n = tuple(rng.standard_normal((LD, B, H)).astype(dtype) for _ in cfg.cell.STATE)
    return params, x, state0, dout, dstate_n


def run_layer(cfg, params, x, state0, dout, dstate_n, lengths=None, bptt_truncate=None,
              impl="auto"):
    """Forward and backward; every result in one flat dict: "output", "h_n"
    (and "c_n"), "input", "h_0" (and "c_0") gradients, and params' gradients.
    state0=None runs from the default zero state. impl: which implementation."""
    hx = None if state0 is None else as_hx(state0)
    out, fin, cache = layers.forward(cfg, params, x, hx, lengths, impl=impl)
    if impl == "fast":
        assert all(c.fm is not None for layer in cache.seq for c in layer)   # fused ran
    dx, dstate0, grads = layers.backward(cfg, params, cache, dout, dstate_n, bptt_truncate,
                                         impl=impl)
    names = cfg.cell.STATE
    return {"output": out, **{f"{n}_n": s for n, s in zip(names, fin)}, "input": dx,
            **{f"{n}_0": d for n, d in zip(names, dstate0)}, **grads}


def assert_close(got, want, tol, where=""):
    """Every entry of two flat dicts within tol normwise relative error."""
    assert set(got) == set(want), where
    errors = {k: rel_error(_backend.to_numpy(got[k]), _backend.to_numpy(want[k])) for k in want}
    bad = {k: e for k, e in errors.items() if not e <= tol}
    assert not bad, f"{where}: relative errors above {tol}: {bad}"


@pytest.fixture(scope="session")
def case():
    """The ``make_case`` helper, as a fixture."""
    return make_case


@pytest.fixture(scope="session")
def run():
    """The ``run_layer`` helper, as a fixture."""
    return run_layer


@pytest.fixture(scope="session")
def close():
    """The ``assert_close`` helper, as a fixture."""
    return assert_close


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv)``: runs ``rnnlab argv`` (each item str()'d, so paths and numbers
    may be given as they are), which must exit 2 with one line on stderr,
    ``rnnlab <command>: error: <message>`` (<command> is argv[0]), and no traceback;
    returns <message>, without that prefix. The one home of that check for every
    bad-input test: assert on the message, e.g. ``assert "--lr" in cli_error([...])``.

    It reads the test's own ``capsys``: output captured before the call is discarded,
    and the call's stdout is read along with its stderr (and not returned); a test may
    still use ``capsys`` for the other commands it runs."""
    from rnnlab.cli.command import main

    def run(argv):
        argv = [str(a) for a in argv]
        capsys.readouterr()                                       # what came before is not ours
        code = main(argv)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2, (code, err)
        assert len(lines) == 1 and "Traceback" not in err, err
        prefix = f"rnnlab {argv[0]}: error: "
        assert lines[0].startswith(prefix), err
        return lines[0][len(prefix):]
    return run
