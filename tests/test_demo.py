"""``rnnlab demo``: runs, is deterministic, and its gradient-flow table is exact."""
import io
import re
import sys

import numpy as np
import pytest

from rnnlab import cli, nn
from rnnlab.cli import demo
from rnnlab.engine import layers
from rnnlab.engine.layers import as_hx
from rnnlab.lab import experiment, tasks


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
    """The table's entry at d is the mean over rows of ||dL/dh_{T-d}||, the real
    loss's gradient, as a run restarted at step T-d computes it."""
    tc = experiment.TrainConfig(cell=mode, hidden=3)
    cfg = experiment.rnn_config(tc, tasks.get_task("adding"))
    model = experiment.init_model(tc, tasks.get_task("adding"), np.random.default_rng(0))
    model = {k: v.astype(np.float64) for k, v in model.items()}
    x, y = (a.astype(np.float64) for a in tasks.adding(np.random.default_rng(1), 6, 2))
    curve = demo.gradient_flow(None, cfg, model, x, y).curve.mean
    dh_last = experiment.last_step_gradient(tasks.get_task("adding"), cfg, model, x, y)
    assert curve[0] == pytest.approx(np.linalg.norm(dh_last, axis=-1).mean(), rel=1e-12)
    for d in range(1, 6):
        want = np.linalg.norm(_suffix_grad(cfg, model, x, y, d), axis=-1).mean()
        assert curve[d] == pytest.approx(want, rel=1e-10), d


def test_table_rate_is_the_verdict_rate(capsys):
    """One decay metric: the table's factor/step is the number the verdicts print."""
    out = _run_quick(capsys)
    table = [float(v) for v in re.search(r"^factor/step((\s+\d\.\d{3}){3})$", out,
                                         flags=re.M).group(1).split()]
    verdicts = [float(v) for v in re.findall(r"^  .*: x(\d\.\d{3}) per step", out, flags=re.M)]
    assert table == verdicts and len(table) == 3


def test_progress_bar_shows_rate_and_loss(monkeypatch):
    """The one bar (rnnlab.io.progress), as the lab's training loop drives it;
    tqdm hidden so the plain line, whose format is ours, is what is drawn."""
    monkeypatch.setitem(sys.modules, "tqdm", None)
    buf = io.StringIO()
    res, _ = experiment.train(experiment.TrainConfig(cell="rnn", length=8, steps=5, batch=4, hidden=4,
                                           eval_batch=8, record_every=0), progress=buf)
    line = buf.getvalue().split("\r")[-3]            # the last drawn state (then: cleared)
    m = re.fullmatch(r"adding rnn T=8  5/5  (\d+\.\d) step/s  loss=(\d\.\d{4})", line)
    assert m, buf.getvalue()
    assert float(m.group(1)) > 0 and float(m.group(2)) == pytest.approx(res["losses"][-1], abs=1e-4)
