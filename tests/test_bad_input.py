"""Bad input gets a clear ValueError that names the argument and says what was
expected and what was given (issue 2, item 8), before any arithmetic runs.
"""
import re

import numpy as np
import pytest

from rnnlab import GRU, LSTM
from rnnlab.engine import layers

CFG = layers.RNNConfig("lstm", 3, 4, num_layers=2)       # LD = 2, H = 4
PARAMS = layers.init_params(CFG, 0, np.float64)
X = np.zeros((5, 2, 3))                                   # (T, B, I)
H0 = np.zeros((2, 2, 4))                                  # (L*D, B, H)


def raises(fn, *fragments):
    """fn raises ValueError whose message contains every fragment (literally)."""
    with pytest.raises(ValueError) as info:
        fn()
    for f in fragments:
        assert f in str(info.value), f"{f!r} not in {str(info.value)!r}"


def forward(x=X, hx=None, lengths=None, cfg=CFG, params=PARAMS):
    return layers.forward(cfg, params, x, hx, lengths)


def nan_at(a, index, value=np.nan):
    a = a.copy()
    a[index] = value
    return a


@pytest.mark.parametrize("x,fragments", [
    (np.zeros(3), ["input", "2-D or 3-D", "got 1-D", "(3,)"]),
    (np.zeros((1, 5, 2, 3)), ["input", "2-D or 3-D", "got 4-D", "(1, 5, 2, 3)"]),
    ([[0.0] * 3] * 5, ["input", "must be an array", "got list"]),
    (np.zeros((5, 2, 4)), ["input", "3 features (input_size)", "got 4"]),
    (np.zeros((5, 2, 3), np.int64), ["input", "float32 or float64", "got int64"]),
    (np.zeros((5, 2, 3), np.float16), ["input", "float32 or float64", "got float16"]),
    (np.zeros((5, 2, 3), np.float32), ["input", "dtype float32", "parameters are float64"]),
    (nan_at(X, (1, 1, 1)), ["input", "1 NaN or Inf", "expected finite"]),
    (nan_at(X, (0, 0, 2), np.inf), ["input", "1 NaN or Inf", "expected finite"]),
    (np.zeros((0, 2, 3)), ["input is empty", "(0, 2, 3)", "at least one time step"]),
    (np.zeros((5, 0, 3)), ["input is empty", "(5, 0, 3)", "one batch row"]),
], ids=["rank1", "rank4", "list", "features", "int", "float16", "dtype-mismatch", "nan",
        "inf", "T0", "B0"])
def test_bad_input_array(x, fragments):
    raises(lambda: forward(x), *fragments)


@pytest.mark.parametrize("hx,fragments", [
    (H0, ["hx for an LSTM must be a tuple (h_0, c_0)", "got ndarray"]),
    ((np.zeros((1, 2, 4)), H0), ["h_0", "(2, 2, 4)", "num_layers * num_directions", "got (1, 2, 4)"]),
    ((H0, np.zeros((2, 3, 4))), ["c_0", "(2, 2, 4)", "got (2, 3, 4)"]),
    ((H0, np.zeros((2, 4))), ["c_0", "3-D", "got 2-D"]),
    ((H0.astype(np.float32), H0), ["h_0", "dtype float32", "parameters are float64"]),
    ((nan_at(H0, (0, 0, 0)), H0), ["h_0", "NaN or Inf", "expected finite"]),
    ((H0, nan_at(H0, (1, 1, 3), -np.inf)), ["c_0", "NaN or Inf", "expected finite"]),
], ids=["not-tuple", "h0-layers", "c0-batch", "c0-rank", "h0-dtype", "h0-nan", "c0-inf"])
def test_bad_initial_state(hx, fragments):
    raises(lambda: forward(hx=hx), *fragments)


@pytest.mark.parametrize("lengths,fragments", [
    ([5, 2, 3], ["lengths", "one entry per batch row (2)", "got shape (3,)"]),
    ([[5, 2]], ["lengths", "1-D", "got shape (1, 2)"]),
    ([0, 2], ["lengths", "1..5", "min 0"]),
    ([6, 2], ["lengths", "1..5", "max 6"]),
    ([-1, 2], ["lengths", "1..5", "min -1"]),
    ([1.5, 2], ["lengths", "integers", "float64"]),
    (["a", "b"], ["lengths", "integers"]),
], ids=["too-many", "2-D", "zero", "too-long", "negative", "fractional", "strings"])
def test_bad_lengths(lengths, fragments):
    raises(lambda: forward(lengths=lengths), *fragments)


@pytest.mark.parametrize("kwargs,fragments", [
    ({"hidden_size": 0}, ["hidden_size", "positive integer", "got 0"]),
    ({"input_size": -3}, ["input_size", "positive integer", "got -3"]),
    ({"num_layers": 1.0}, ["num_layers", "positive integer", "got 1.0"]),
    ({"mode": "transformer"}, ["mode", "'rnn'", "got 'transformer'"]),
    ({"mode": "rnn", "nonlinearity": "gelu"}, ["nonlinearity", "'tanh'", "got 'gelu'"]),
    ({"dropout": 1.0}, ["dropout", "[0, 1)", "got 1.0"]),
    ({"dropout": -0.1}, ["dropout", "[0, 1)", "got -0.1"]),
], ids=["hidden0", "input-negative", "layers-float", "mode", "nonlinearity", "dropout1",
        "dropout-negative"])
def test_bad_config(kwargs, fragments):
    spec = {"mode": "lstm", "input_size": 3, "hidden_size": 4, **kwargs}
    raises(lambda: layers.RNNConfig(**spec), *fragments)


def test_bad_config_through_the_module_constructor():
    raises(lambda: GRU(3, 0), "hidden_size", "got 0")
    raises(lambda: GRU(3, 4, dropout=1.0), "dropout", "got 1.0")


@pytest.fixture(scope="module")
def cache():
    return forward()[2]


@pytest.mark.parametrize("k", [-1, 1.5, "2"])
def test_bad_bptt_truncate(cache, k):
    raises(lambda: layers.backward(CFG, PARAMS, cache, None, None, bptt_truncate=k),
           "bptt_truncate", "integer >= 0", f"got {k!r}")


@pytest.mark.parametrize("dout,dh_n,fragments", [
    (np.zeros((4, 2, 4)), None, ["doutput", "(5, 2, 4)", "got (4, 2, 4)"]),
    (np.zeros((5, 2, 8)), None, ["doutput", "(5, 2, 4)", "got (5, 2, 8)"]),
    (None, (np.zeros((1, 2, 4)), None), ["dh_n", "(2, 2, 4)", "got (1, 2, 4)"]),
    (None, (None, np.zeros((2, 2, 3))), ["dc_n", "(2, 2, 4)", "got (2, 2, 3)"]),
], ids=["doutput-time", "doutput-features", "dh_n", "dc_n"])
def test_bad_upstream_gradient(cache, dout, dh_n, fragments):
    raises(lambda: layers.backward(CFG, PARAMS, cache, dout, dh_n), *fragments)


def test_module_reports_dtype_and_missing_forward():
    m = LSTM(3, 4)                                                  # float32 parameters
    raises(lambda: m(X), "input", "dtype float64", "parameters are float32")
    with pytest.raises(RuntimeError, match=re.escape("backward() needs a forward() first")):
        LSTM(3, 4).backward()


# ---------------------------------------------------------------- the caller's own shapes; doutput checks

BF = layers.RNNConfig("gru", 3, 4, batch_first=True)
BF_PARAMS = layers.init_params(BF, 0, np.float64)


def test_batch_first_empty_input_message_shows_the_callers_shape():
    raises(lambda: layers.forward(BF, BF_PARAMS, np.zeros((2, 0, 3))), "(2, 0, 3)")


def test_batch_first_doutput_message_shows_the_callers_shape():
    cache = layers.forward(BF, BF_PARAMS, np.zeros((2, 5, 3)))[2]     # x (B, T, I)
    raises(lambda: layers.backward(BF, BF_PARAMS, cache, np.zeros((2, 4, 4))),
           "doutput", "(2, 5, 4)", "got (2, 4, 4)")


def test_unbatched_doutput_message_shows_the_callers_shape():
    cfg = layers.RNNConfig("gru", 3, 4)
    cache = layers.forward(cfg, BF_PARAMS, np.zeros((5, 3)))[2]
    raises(lambda: layers.backward(cfg, BF_PARAMS, cache, np.zeros((4, 4))),
           "doutput", "(5, 4)", "got (4, 4)")


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_doutput_dtype_is_checked(cache, dtype):
    raises(lambda: layers.backward(CFG, PARAMS, cache, np.zeros((5, 2, 4), dtype)),
           "doutput", "float")


def test_doutput_nan_is_rejected(cache):
    d = np.zeros((5, 2, 4))
    d[1, 0, 2] = np.nan
    raises(lambda: layers.backward(CFG, PARAMS, cache, d), "doutput", "NaN")
