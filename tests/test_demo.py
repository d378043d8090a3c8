"""``rnnlab demo``: runs, is deterministic, and its gradient-flow table is exact."""
import re

import numpy as np
import pytest

from rnnlab import cli, nn
from rnnlab.cli import demo
from rnnlab.engine import layers
from rnnlab.engine.layers import as_hx


def _run_quick(capsys, *extra, out=None):
    """The quick demo, without the report and the language model unless asked."""
    args = ["demo", "--quick", *extra]
    if out is None:
        args += ["--no-report", "--lm-steps", "0", "--out", "unused-demo-dir"]
    else:
        args += ["--out", str(out)]
    assert cli.main(args) == 0
    return capsys.readouterr().out


def test_quick_tour_writes_report_and_trains_a_language_model(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    out = _run_quick(capsys, out=tmp_path)
    for label in ("RNN (tanh)", "LSTM", "GRU"):
        assert re.search(rf"^  {re.escape(label)}\s+(vanishing|healthy|exploding)", out, flags=re.M)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "LSTM" in page
    assert (tmp_path / "distance.png").stat().st_size > 1000
    assert re.search(r"validation perplexity \d+\.\d\d per character", out)
    assert (tmp_path / "lm" / "last.npz").exists()


def test_quick_demo_prints_a_table_for_each_cell(capsys):
    out = _run_quick(capsys)
    table = out[out.index("||dL/dh_(T-d)||"):]
    header = table.splitlines()[1].split()
    assert header[0] == "d" and " ".join(header[1:]) == "RNN (tanh) LSTM GRU"
    assert [int(line.split()[0]) for line in table.splitlines()[2:7]] == [0, 1, 2, 5, 7]
    assert re.search(r"^factor/step(\s+\d\.\d{3}){3}$", table, flags=re.M)
    for label in ("RNN (tanh)", "LSTM", "GRU"):
        assert re.search(rf"^{re.escape(label)}\s+\d", out, flags=re.M)          # training row
        assert re.search(rf"^  {re.escape(label)}\s+worst relative error .* ok", out,
                         flags=re.M)                                           # gradient check


def test_same_seed_same_numbers(capsys):
    def numbers(out):     # everything but the timings (steps/s column)
        return [re.sub(r"^(\S+(?: \(tanh\))?)\s+[\d.]+ ", r"\1 ", line)
                for line in out.splitlines()]
    a, b = _run_quick(capsys, "--seed", "3"), _run_quick(capsys, "--seed", "3")
    assert numbers(a) == numbers(b)
    assert numbers(a) != numbers(_run_quick(capsys, "--seed", "4"))


def test_adding_batch_marks_one_step_in_each_half():
    x, y = demo.adding_batch(np.random.default_rng(0), T=10, B=64)
    assert x.shape == (10, 64, 2) and y.shape == (64, 1) and x.dtype == np.float32
    marks = x[..., 1]
    assert (marks[:5].sum(0) == 1).all() and (marks[5:].sum(0) == 1).all()
    np.testing.assert_allclose(y[:, 0], (x[..., 0] * marks).sum(0), rtol=1e-6)


@pytest.mark.parametrize("T,expected", [(2, [0, 1]), (8, [0, 1, 2, 5, 7]), (11, [0, 1, 2, 5, 10]),
                                        (40, [0, 1, 2, 5, 10, 20, 39])])
def test_distances(T, expected):
    assert demo.distances(T) == expected


def _suffix_grad(cfg, model, x, y, d):
    """dL/dh_{T-d} by an independent route: start a fresh run at step T-d from
    the state the prefix reached, and read the gradient of its initial state."""
    rnn = {k: model[k] for k in layers.param_shapes(cfg)}
    T = x.shape[0]
    _, state, _ = layers.forward(cfg, rnn, x[:T - d])             # state after the prefix
    out, _, cache = layers.forward(cfg, rnn, x[T - d:], as_hx(state))
    w = model["readout.weight"]
    _, dpred = nn.mse(nn.linear_forward(out[-1], w, model["readout.bias"]), y)
    dout = np.zeros_like(out)
    dout[-1] = nn.linear_backward(dpred, out[-1], w)[0]
    _, dstate0, _ = layers.backward(cfg, rnn, cache, dout)
    return dstate0[0][0]                                          # dL/dh, (B, H)


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_gradient_flow_equals_the_gradient_of_a_restarted_run(mode):
    cfg = layers.RNNConfig(mode, input_size=2, hidden_size=3)
    model = demo.init_model(cfg, np.random.default_rng(0), np.float64)
    x, y = demo.adding_batch(np.random.default_rng(1), T=6, B=2, dtype=np.float64)
    norms = demo.gradient_flow(cfg, model, x, y)
    w = model["readout.weight"]
    out, _, _ = layers.forward(cfg, {k: model[k] for k in layers.param_shapes(cfg)}, x)
    _, dpred = nn.mse(nn.linear_forward(out[-1], w, model["readout.bias"]), y)
    assert norms[0] == pytest.approx(np.linalg.norm(dpred @ w), rel=1e-12)
    for d in range(1, 6):
        want = np.linalg.norm(_suffix_grad(cfg, model, x, y, d))
        assert norms[d] == pytest.approx(want, rel=1e-10), d


def test_decay_factor_is_the_geometric_mean_ratio():
    assert demo.decay_factor(np.array([1.0, 0.5, 0.25])) == pytest.approx(0.5)
    assert np.isnan(demo.decay_factor(np.array([1.0, 0.0])))
