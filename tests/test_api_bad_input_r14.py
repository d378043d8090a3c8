"""Round fourteen's audit of the Python API: what a user importing rnnlab gets
wrong is a ValueError that names the argument, never a deep traceback, a silently
wrong result or a silently ignored argument.

Each test names the defect it pins: what the call did before (in its docstring)
and the error it gets now.
"""
import math

import numpy as np
import pytest

from rnnlab import GRU, LSTM, RNN, RNNConfig, backward, forward, init_params
from rnnlab.io import checkpoint
from rnnlab.lab import gradcheck as gc
from rnnlab.optim import clip_by_global_norm, make

CFG = RNNConfig("lstm", 3, 4)
P = init_params(CFG, 0, np.float64)
G = {k: np.ones_like(v) for k, v in P.items()}
X = np.random.default_rng(0).standard_normal((5, 2, 3))
OPTIMIZERS = ["sgd", "sgd-momentum", "adam", "rmsprop", "adagrad"]


def _opt(name):
    return make("sgd", momentum=0.9) if name == "sgd-momentum" else make(name)


# ================================================================ 1. optimiser updates

@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("grads, words", [
    ({**G, "bias_hh_l0": np.ones((16, 1))}, r"grads\['bias_hh_l0'\] must have shape \(16,\), "
                                             r"got \(16, 1\)"),
    ({**G, "bias_hh_l0": np.ones(1)}, r"grads\['bias_hh_l0'\] must have shape \(16,\)"),
    ({k: v for k, v in G.items() if k != "bias_hh_l0"},
     r"grads do not match params: missing \['bias_hh_l0'\]"),
    ({**G, "decoder.weight": np.ones(3)}, r"unexpected \['decoder.weight'\]"),
    ({k: v.astype(np.int64) for k, v in G.items()}, r"grads\['weight_ih_l0'\] must be floats"),
], ids=["broadcasts-to-2d", "broadcasts-from-1", "missing", "extra", "integers"])
def test_update_checks_grads_against_params(name, grads, words):
    """Adam, RMSprop and Adagrad turned a (16,) bias into (16, 16) given a (16, 1)
    gradient, momentum SGD broadcast a (1,) gradient; a missing gradient was a
    KeyError, an extra one was ignored."""
    opt = _opt(name)
    with pytest.raises(ValueError, match=words):
        opt.update(P, grads, opt.init(P), 0.1)


@pytest.mark.parametrize("name", ["adam", "rmsprop", "adagrad", "sgd-momentum"])
def test_update_refuses_state_of_other_params(name):
    """Adam's state of a GRU given with an LSTM's params: a NumPy broadcast error."""
    other = init_params(RNNConfig("gru", 3, 4), 0, np.float64)
    opt = _opt(name)
    with pytest.raises(ValueError, match=r"state\['\w+/weight_ih_l0'\] must have shape "
                                         r"\(16, 3\), got \(12, 3\)"):
        opt.update(P, G, opt.init(other), 0.1)


def test_update_refuses_state_of_another_optimiser():
    """Adam's state given to RMSprop: a KeyError on 'ms/weight_ih_l0'."""
    with pytest.raises(ValueError, match=r"state does not match what rmsprop's init\(params\) "
                                         r"makes for these params: missing \['ms/"):
        make("rmsprop").update(P, G, make("adam").init(P), 0.1)
    with pytest.raises(ValueError, match="state must be a dict"):
        make("adam").update(P, G, None, 0.1)


# ================================================================ 2. lr and hyperparameters

@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("lr", [0.0, -1.0, math.nan, math.inf, "0.1", True])
def test_update_refuses_a_bad_learning_rate(name, lr):
    """lr=-1 climbed the gradient, nan made every weight NaN, "0.1" was a TypeError
    from deep inside; torch.optim refuses a negative lr too."""
    opt = _opt(name)
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got "):
        opt.update(P, G, opt.init(P), lr)


@pytest.mark.parametrize("name, kw, words", [
    ("sgd", dict(momentum=-0.5), "momentum must be a finite number >= 0 and < 1, got -0.5"),
    ("sgd", dict(momentum=1.0), "momentum must be a finite number >= 0 and < 1"),
    ("adam", dict(beta1=1.5), "beta1 must be a finite number >= 0 and < 1, got 1.5"),
    ("adam", dict(beta2=-0.1), "beta2 must be"),
    ("adam", dict(eps=-1e-8), "eps must be a finite number >= 0"),
    ("rmsprop", dict(decay=1.0), "decay must be a finite number >= 0 and < 1"),
    ("adagrad", dict(eps=math.nan), "eps must be a finite number >= 0, got nan"),
])
def test_optimiser_hyperparameters_are_checked(name, kw, words):
    """All were accepted: momentum 1 never forgets, beta1 1.5 diverges."""
    with pytest.raises(ValueError, match=words):
        make(name, **kw)


def test_good_updates_are_unchanged():
    new, st = make("adam").update(P, G, make("adam").init(P), 0.1)
    assert {k: v.shape for k, v in new.items()} == {k: v.shape for k, v in P.items()}
    assert int(st["step"]) == 1
    new, _ = make("sgd").update(P, G, make("sgd").init(P), 0.5)
    assert np.array_equal(new["bias_hh_l0"], P["bias_hh_l0"] - 0.5)


# ================================================================ 3. clipping

@pytest.mark.parametrize("max_norm", [0.0, -1.0, math.nan, math.inf, "1"])
def test_clip_refuses_a_bad_max_norm(max_norm):
    """0 zeroed every gradient, -1 reversed them, nan made them NaN (all with
    clipped=True), "1" was a TypeError."""
    with pytest.raises(ValueError, match="max_norm must be a finite number > 0, or None for "
                                         "no clipping"):
        clip_by_global_norm(G, max_norm)


def test_clip_refuses_integer_gradients():
    """The scale became int64(0.2) = 0: [3, 4] clipped to [0, 0]."""
    with pytest.raises(ValueError, match=r"grads\['a'\] must be floats, got int64"):
        clip_by_global_norm({"a": np.array([3, 4])}, 1.0)
    with pytest.raises(ValueError, match=r"grads\['a'\] must be an array, got list"):
        clip_by_global_norm({"a": [3.0, 4.0]}, 1.0)
    grads, norm, clipped = clip_by_global_norm({"a": np.array([3.0, 4.0])}, 1.0)
    assert norm == 5.0 and clipped and np.allclose(grads["a"], [0.6, 0.8])
    assert clip_by_global_norm({"a": np.array([3.0, 4.0])}, None)[2] is False


# ================================================================ 4. options a cell never reads

@pytest.mark.parametrize("make_layer, words", [
    (lambda: LSTM(3, 4, nonlinearity="relu"),
     "nonlinearity='relu': read by the rnn cell only; mode 'lstm' would ignore it"),
    (lambda: GRU(3, 4, nonlinearity="sigmoid"), "mode 'gru' would ignore it"),
    (lambda: LSTM(3, 4, reset_after=False),
     "reset_after=False: read by the gru cell only; mode 'lstm' would ignore it"),
    (lambda: RNN(3, 4, reset_after=False), "mode 'rnn' would ignore it"),
    (lambda: RNNConfig("lstm", 3, 4, nonlinearity=None), "nonlinearity=None"),
    (lambda: gc.check_layer("gru", nonlinearity="relu"), "mode 'gru' would ignore it"),
])
def test_options_the_cell_never_reads_are_refused(make_layer, words):
    """LSTM(nonlinearity="relu") ran a tanh LSTM (torch.nn.LSTM refuses the keyword);
    check_layer("gru", nonlinearity="relu") checked the plain GRU and passed."""
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        make_layer()
    assert RNN(3, 4, nonlinearity="relu").config.nonlinearity == "relu"
    assert GRU(3, 4, reset_after=False).config.reset_after is False


def test_lab_train_config_refuses_nonlinearity_off_rnn():
    from rnnlab.lab import experiment
    with pytest.raises(ValueError, match="--nonlinearity relu: read by --cell rnn only"):
        experiment.TrainConfig(cell="lstm", nonlinearity="relu")
    assert experiment.TrainConfig(cell="rnn", nonlinearity="relu").nonlinearity == "relu"


def test_gradcheck_cli_without_cell_still_checks_every_cell(capsys):
    """The command passes each cell only the options it reads (it passed
    --nonlinearity to the LSTM and GRU too, which the config now refuses)."""
    from rnnlab.cli.command import main
    code = main(["gradcheck", "--nonlinearity", "relu", "--seq-len", "2", "--batch", "1",
                 "--input-size", "2", "--hidden-size", "2"])
    out = capsys.readouterr().out
    assert code == 0 and "rnn-relu" in out and "lstm" in out and "gru" in out


# ================================================================ 5. module arguments

def test_dtype_that_disagrees_with_params_is_refused():
    """LSTM(dtype=np.float64, params=<float32>) silently ran in float32."""
    p32 = init_params(CFG, 0, np.float32)
    with pytest.raises(ValueError, match="dtype is float64 but params are float32; leave "
                                         "dtype out"):
        LSTM(3, 4, dtype=np.float64, params=p32)
    assert LSTM(3, 4, params=p32).params["weight_ih_l0"].dtype == np.float32
    assert LSTM(3, 4, dtype=np.float32, params=p32).params["weight_ih_l0"].dtype == np.float32
    assert LSTM(3, 4, params=P).params["weight_ih_l0"].dtype == np.float64
    assert LSTM(3, 4, seed=0).params["weight_ih_l0"].dtype == np.float32      # the default


def test_train_mode_must_be_a_bool():
    """train("no") stored "no": a truthy training mode (torch refuses it too)."""
    m = GRU(3, 4, num_layers=2, dropout=0.5, seed=0)
    with pytest.raises(ValueError, match="mode must be True or False, got 'no'"):
        m.train("no")
    assert m.training is True and m.eval().training is False


def test_lstm_hx_as_one_array_is_named():
    """tuple(hx) split a lone (L*D, B, H) array by layer: 'got 1' or 'h_0 must be
    3-D, got 2-D', where the layer has the message for it."""
    m = LSTM(3, 4, num_layers=2, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match=r"hx for an LSTM must be a tuple \(h_0, c_0\), "
                                         "got ndarray"):
        m(X, np.zeros((2, 2, 4)))
    out, (h, c) = m(X, [np.zeros((2, 2, 4)), np.zeros((2, 2, 4))])        # a list still works
    assert h.shape == c.shape == (2, 2, 4)


# ================================================================ 6. forward/backward (functional)

def test_backward_refuses_a_cache_of_another_config():
    """A cache of a one-layer forward with a two-layer config: IndexError deep
    inside; with batch_first flipped (B == T) the gradient was read transposed."""
    _, _, cache = forward(CFG, P, X)
    two = RNNConfig("lstm", 3, 4, 2)
    with pytest.raises(ValueError, match="cache comes from a forward of another configuration "
                                         r"\(num_layers 1 there, 2 here\)"):
        backward(two, init_params(two, 0, np.float64), cache, np.ones((5, 2, 4)))
    bf = RNNConfig("lstm", 3, 4, batch_first=True)
    square = forward(CFG, P, X[:2])[2]                                        # T = B = 2
    with pytest.raises(ValueError, match="batch_first False there, True here"):
        backward(bf, P, square, np.ones((2, 2, 4)))
    for bad in (None, "cache", cache[:3]):
        with pytest.raises(ValueError, match="cache must be the third value forward"):
            backward(CFG, P, bad, np.ones((5, 2, 4)))


def test_functional_arguments_are_named():
    with pytest.raises(ValueError, match="cfg must be an RNNConfig, got dict"):
        forward(CFG.to_dict(), P, X)
    with pytest.raises(ValueError, match="bptt_truncate must be None or an integer >= 0, "
                                         "got True"):
        backward(CFG, P, forward(CFG, P, X)[2], np.ones((5, 2, 4)), bptt_truncate=True)
    drop = RNNConfig("lstm", 3, 4, 2, dropout=0.5)
    with pytest.raises(ValueError, match="rng must be None, an integer >= 0 or a numpy "
                                         "Generator, got 'abc'"):
        forward(drop, init_params(drop, 0, np.float64), X, training=True, rng="abc")


@pytest.mark.parametrize("config, words", [
    ({**CFG.to_dict(), "foo": 1}, r"config dict: unknown keys \['foo'\]"),
    ({"mode": "lstm", "input_size": 3}, r"config dict: missing \['hidden_size'\]"),
    (3, "config must be an RNNConfig"),
])
def test_config_dicts_name_their_keys(config, words):
    """from_config and to_torch(config, params) raised RNNConfig.__init__'s
    TypeError, or an AttributeError for a non-dict."""
    with pytest.raises(ValueError, match=words):
        LSTM.from_config(config, P)


# ================================================================ 7. checkpoint.save

@pytest.mark.parametrize("kwargs, words", [
    (dict(params={"w": np.array([{"a": 1}], dtype=object)}),
     "weight 'w' has dtype object; expected floats"),
    (dict(params={"w": np.array([1, 2])}), "weight 'w' has dtype int64; expected floats"),
    (dict(params={"w": np.array([np.nan, 1.0])}), "weight 'w' has 1 NaN or Inf value"),
    (dict(params=P, opt_state={"step": "abc"}), "optimizer state 'step' has dtype <U3"),
    (dict(params=P, state=np.zeros((1, 2, 4))),
     "state must be a tuple of arrays or None, got ndarray"),
    (dict(params=P, meta={"when": object()}), "meta is not JSON"),
    (dict(params=[P]), "params must be a dict of arrays, got list"),
    (dict(params={"": np.ones(2)}), "weight name '' is not a non-empty string"),
], ids=["object", "int", "nan", "opt-str", "state-array", "meta-json",
        "params-list", "empty-name"])
def test_save_refuses_what_load_would_refuse(tmp_path, kwargs, words):
    """Each was written (object arrays pickled), over the previous good checkpoint,
    and then refused by load; or raised a TypeError from json or NumPy."""
    path = tmp_path / "last.npz"
    checkpoint.save(path, P, meta={"epoch": 1})
    before = path.read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match=words) as e:
        checkpoint.save(path, **kwargs)
    assert str(e.value).startswith(f"not writing checkpoint {path}: ")
    assert "previous checkpoint (if any) is left intact" in str(e.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "last.npz"]
    assert checkpoint.load(path)["meta"]["epoch"] == 1


def test_save_writes_its_own_format_and_version_over_a_copied_meta(tmp_path):
    """A loaded checkpoint's meta, saved again (as the apps do), keeps the file's
    format and version: kind= and this version, not the copies'."""
    checkpoint.save(tmp_path / "a.npz", P, meta={"format": "rnnlab-x", "version": 0}, kind="music")
    meta = checkpoint.load(tmp_path / "a.npz", kind="music")["meta"]
    assert (meta["format"], meta["version"]) == ("rnnlab-music", checkpoint.VERSION)


def test_save_then_load_round_trips(tmp_path):
    state = (np.zeros((1, 2, 4)),)
    opt = make("adam").init(P)
    checkpoint.save(tmp_path / "c.npz", P, opt, state, {"a": [1, 2]}, kind="music")
    ck = checkpoint.load(tmp_path / "c.npz", kind="music")
    assert all(np.array_equal(ck["params"][k], v) for k, v in P.items())
    assert set(ck["opt_state"]) == set(opt) and ck["meta"]["a"] == [1, 2]


# ================================================================ 8. the gradient checker

def test_rel_error_refuses_shapes_that_broadcast():
    """rel_error(ones(3), ones((2, 3))) was 0.0: a gradient of the wrong shape
    checked as exact."""
    with pytest.raises(ValueError, match=r"one shape, got \(3,\) and \(2, 3\)"):
        gc.rel_error(np.ones(3), np.ones((2, 3)))
    assert gc.rel_error([2.0], [1.0]) == pytest.approx(0.5)


def _square(inputs):
    return float((inputs["a"] ** 2).sum()), {"a": 2 * inputs["a"]}


@pytest.mark.parametrize("check", [gc.check_grads, gc.check_directional])
@pytest.mark.parametrize("f, inputs, kw, words", [
    (lambda i: (float(i["a"].sum()), {"a": np.ones(1)}), {"a": np.ones(3)}, {},
     r"f's gradient for 'a' has shape \(1,\); expected \(3,\)"),
    (lambda i: (0.0, {}), {"a": np.ones(3)}, {}, r"f's gradients lack 'a'"),
    (lambda i: 0.0, {"a": np.ones(3)}, {}, r"f must return \(loss, \{name: gradient\}\)"),
    (_square, [np.ones(3)], {}, "inputs must be a dict of arrays, got list"),
    (_square, {"a": np.ones(3)}, dict(eps=0.0), "eps must be a finite number > 0"),
], ids=["broadcast", "missing", "scalar", "list", "eps-0"])
def test_checkers_name_what_f_got_wrong(check, f, inputs, kw, words):
    """A (1,) gradient of a (3,) input with equal entries passed check_grads; a
    missing one was a KeyError, eps=0 a ZeroDivisionError."""
    with pytest.raises(ValueError, match=words):
        check(f, inputs, **kw)
    assert max(check(_square, {"a": np.ones(3)}).values()) < 1e-7


@pytest.mark.parametrize("kw, words", [
    (dict(tol=-1.0), "tol must be a finite number > 0"),
    (dict(seed=-1), "seed must be None, an integer >= 0"),
])
def test_check_layer_arguments(kw, words):
    """tol=-1 failed every tensor; seed=-1 was NumPy's 'expected non-negative integer'."""
    with pytest.raises(ValueError, match=words):
        gc.check_layer("rnn", **kw)


# ================================================================ 9. converters

def test_from_state_dict_arguments():
    torch = pytest.importorskip("torch")
    from rnnlab.engine.convert import from_state_dict, to_state_dict
    model = torch.nn.ModuleDict({"rnn": torch.nn.GRU(3, 4), "rnn2": torch.nn.GRU(3, 4)})
    sd = model.state_dict()
    assert sorted(from_state_dict(sd, "rnn")) == sorted(from_state_dict(sd, "rnn."))
    assert sorted(from_state_dict(sd, "rnn")) == sorted(torch.nn.GRU(3, 4).state_dict())
    with pytest.raises(ValueError, match="state_dict must be a dict of arrays"):
        from_state_dict(model)
    with pytest.raises(ValueError, match="prefix must be a string"):
        from_state_dict(sd, None)
    with pytest.raises(ValueError, match="params must be a dict of arrays"):
        to_state_dict([P])
    half = {"weight_ih_l0": torch.zeros(12, 3, dtype=torch.bfloat16)}
    with pytest.raises(ValueError, match=r"state_dict\['weight_ih_l0'\] cannot become a NumPy "
                                         r"array \(torch.bfloat16"):
        from_state_dict(half)


def test_to_torch_refuses_a_layer_with_params():
    pytest.importorskip("torch")
    from rnnlab import to_torch
    with pytest.raises(ValueError, match="to_torch takes a layer alone"):
        to_torch(LSTM(3, 4), P)


def test_from_config_of_another_cell_and_load_of_no_path_are_named():
    cfg = RNNConfig("gru", 3, 4)
    params = init_params(cfg, np.random.default_rng(0))
    with pytest.raises(ValueError, match="LSTM.from_config: the config is a 'gru' layer's; "
                                         "use GRU.from_config"):
        LSTM.from_config(cfg, params)                      # returned a GRU
    assert type(GRU.from_config(cfg, params)) is GRU
    with pytest.raises(ValueError, match="path must be a file name .* got NoneType"):
        checkpoint.load(None)                               # os.fspath's TypeError
