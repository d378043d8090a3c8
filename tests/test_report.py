"""Plots, the HTML report and the gradflow/tasks commands (issue 4)."""
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab.lab import experiment, gradflow, init
from rnnlab.engine import layers

pytest.importorskip("matplotlib")


def _flows(T=12):
    x = np.random.default_rng(0).uniform(0, 1, (T, 4, 2))
    out = {}
    for mode, label in (("rnn", "RNN (tanh)"), ("lstm", "LSTM"), ("gru", "GRU")):
        cfg = layers.RNNConfig(mode, 2, 6)
        out[label] = gradflow.measure(cfg, init.initialize(cfg, rng=0), x, last_only=True)[(0, 0)]
    return out


def test_report_embeds_figures_numbers_and_reading(tmp_path):
    from rnnlab.lab import plots, report
    flows = _flows()
    figs = {"distance": plots.distance(flows, tmp_path / "d.png"),
            "jacobians": plots.jacobians(flows, tmp_path / "j.png")}
    res, _ = experiment.train(experiment.TrainConfig(task="adding", cell="gru", length=6, steps=4,
                                           hidden=4, eval_batch=8, record_every=2),
                         progress=None)
    figs["training"] = plots.training([res], tmp_path / "t.png")
    figs["clipping"] = plots.clipping([res], tmp_path / "c.png")
    for p in figs.values():
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = Path(report.write(tmp_path / "r.html", flows, figs, [res], {"T": 12})).read_text()
    assert page.count("data:image/png;base64,") == 4
    assert "src=\"http" not in page and "<script" not in page            # self-contained
    for label, f in flows.items():
        assert f.verdict.kind in page and f"{f.verdict.rate:.3f}" in page
    assert "orders of magnitude" in page and "baseline" in page


def test_exploding_model_is_reported_not_drawn_as_nan(tmp_path):
    from rnnlab.lab import plots, report
    cfg = layers.RNNConfig("rnn", 2, 4, nonlinearity="relu")
    p = {k: v.astype(np.float64) for k, v in init.initialize(cfg, "orthogonal", 0).items()}
    p["weight_hh_l0"] = p["weight_hh_l0"] * 1e80
    f = gradflow.measure(cfg, p, np.ones((20, 2, 2)), last_only=True)[(0, 0)]
    flows = {"IRNN": f}
    plots.distance(flows, tmp_path / "d.png")
    page = Path(report.write(tmp_path / "r.html", flows, {})).read_text()
    assert "exploding" in page and "overflowed" in page


def test_missing_matplotlib_is_a_clear_value_error(monkeypatch):
    from rnnlab.lab import plots
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ValueError, match=r"rnnlab\[plot\]"):
        plots._plt()


def test_gradflow_command_end_to_end(tmp_path, capsys):
    from rnnlab import cli
    html = tmp_path / "out.html"
    code = cli.main(["gradflow", "--cells", "rnn,lstm", "--length", "10", "--batch", "3",
                     "--hidden", "5", "--steps", "3", "--record-every", "1",
                     "--report", str(html), "--plots", str(tmp_path / "png")])
    assert code == 0
    out = capsys.readouterr().out
    assert "RNN (tanh)" in out and "after 3 training steps" in out
    assert html.read_text().count("data:image/png;base64,") == 6
    assert (tmp_path / "png" / "distance_init.png").exists()


def test_tasks_command_and_sweep(tmp_path, capsys):
    from rnnlab import cli
    assert cli.main(["tasks", "adding", "--cell", "irnn", "--length", "6", "--steps", "3",
                     "--hidden", "4", "--json", str(tmp_path / "r.json")]) == 0
    assert "adding irnn T=6" in capsys.readouterr().out
    table = tmp_path / "s.csv"
    assert cli.main(["tasks", "sweep", "--task", "adding", "--cells", "rnn,lstm", "--lengths",
                     "4,6", "--seeds", "0", "--steps", "2", "--hidden", "3",
                     "--table", str(table), "--plots", str(tmp_path)]) == 0
    assert len(table.read_text().splitlines()) == 5 and (tmp_path / "sweep.png").exists()


@pytest.mark.parametrize("argv,match", [
    (["gradflow", "--cells", "rnn,transformer"], "unknown cell transformer"),
    (["gradflow", "--length", "0"], "length"),
    (["gradflow", "--task", "chess"], "unknown task 'chess'"),
    (["tasks", "chess"], "unknown task"),
    (["tasks", "adding", "--length", "-5"], "length"),
    (["tasks", "sweep", "--lengths", "10,0"], "lengths"),
    (["tasks", "adding", "--cell", "lstm", "--init", "identity"], "irnn"),
])
def test_bad_input_exits_2_with_message(argv, match, capsys):
    from rnnlab import cli
    assert cli.main(argv) == 2
    assert match in capsys.readouterr().err


def test_gradflow_on_a_language_model_checkpoint(tmp_path, capsys):
    from rnnlab.io import checkpoint
    from rnnlab import cli
    from rnnlab.lm import model as lm
    cfg = lm.LMConfig(vocab_size=7, emb_size=3, hidden_size=4, num_layers=2, mode="gru")
    path = tmp_path / "m.npz"
    checkpoint.save(path, lm.init_params(cfg, 0), meta={"model_config": cfg.to_dict()})
    assert cli.main(["gradflow", "--model", str(path), "--length", "6", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "GRU checkpoint layer 0" in out and "GRU checkpoint layer 1" in out


def test_gradflow_refuses_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    from rnnlab import cli
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    assert cli.main(["gradflow", "--model", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err
