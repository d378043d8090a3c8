"""Gradient checks of every cell variant (issue 2, items 4-5), and of the checker.

Full BPTT is compared with central finite differences in float64; per-term
truncation with the brute-force nested-loop reference.
"""
import argparse
import doctest
import functools
import json

import numpy as np
import pytest

from rnnlab import cli
from rnnlab.cli import gradcheck as gradcheck_cli
from rnnlab.lab import gradcheck as gc
from rnnlab.engine import layers, truncation
from rnnlab.engine.layers import as_hx


def expected_names(cfg):
    return set(layers.param_shapes(cfg)) | {"input"} | {f"{n}_0" for n in cfg.cell.STATE}


@pytest.mark.parametrize("lengths", [False, True], ids=["same-length", "lengths"])
@pytest.mark.parametrize("truncate", [None, 1], ids=["full", "truncate1"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["L1", "L2"])
def test_layer_gradients(variant, num_layers, bidirectional, truncate, lengths):
    T, B = 3, 3                                  # truncate=1 < T - 1: truncation bites
    lens = gc.variable_lengths(T, B, seed=1) if lengths else None
    report = gc.check_layer(variant["mode"], variant["nonlinearity"], num_layers, bidirectional,
                            truncate, lens, variant["reset_after"], T=T, B=B, I=2, H=2, seed=3)
    cfg = layers.RNNConfig(input_size=2, hidden_size=2, num_layers=num_layers,
                           bidirectional=bidirectional, **variant)
    assert set(report.errors) == expected_names(cfg)
    assert report.reference == ("finite differences" if truncate is None else "per-term reference")
    assert report.passed, report.errors
    assert max(report.errors.values()) < 1e-7


def test_directional_check_on_a_larger_layer(variant):
    # eps 1e-5, near the float64 optimum cbrt(eps64) ~ 5e-6 for central differences:
    # with 1e-6 the rounding noise of the two loss sums (~1e-16 |L| / eps) reached
    # 1.4e-7 on the relu RNN's input on the reference path (truncation: ~eps^2).
    report = gc.check_layer(variant["mode"], variant["nonlinearity"], num_layers=2,
                            reset_after=variant["reset_after"], T=6, B=3, I=5, H=8,
                            directional=True, eps=1e-5)
    assert report.reference == "directional"
    assert report, report.errors


def test_check_layer_takes_a_config():
    """The demo's call: an RNNConfig's architecture, checked in float64."""
    report = gc.check_layer(layers.RNNConfig("lstm", 2, 3, num_layers=2, bias=False), seed=1)
    assert "bias_ih_l0" not in report.errors and "c_0" in report.errors
    assert report


def test_dropout_between_layers_backpropagates_through_its_mask(variant):
    cfg = layers.RNNConfig(input_size=2, hidden_size=3, num_layers=3, dropout=0.5, **variant)
    case = gc.layer_case(cfg, T=3, B=2, seed=8)
    train = functools.partial(gc.layer_loss, cfg, upstream=case.upstream, dropout_seed=4)
    errors = gc.check_grads(train, case.inputs)
    assert max(errors.values()) < 1e-7, errors
    evaluate = functools.partial(gc.layer_loss, cfg, upstream=case.upstream)
    assert train(case.inputs)[0] != pytest.approx(evaluate(case.inputs)[0])   # masks act


# ---------------------------------------------------------------- the checker itself

def _sine_loss(inputs, wrong=0.0):
    """L = sum(w * sin(x)) + sum(w^2 / 2); wrong adds an error to dL/dx."""
    x, w = inputs["x"], inputs["w"]
    return float(np.sum(w * np.sin(x)) + 0.5 * np.sum(w * w)), {
        "x": w * np.cos(x) + wrong, "w": np.sin(x) + w}


def test_check_grads_accepts_right_and_rejects_wrong_gradients():
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((3, 2)), "w": rng.standard_normal((3, 2))}
    assert max(gc.check_grads(_sine_loss, inputs).values()) < 1e-8
    errors = gc.check_grads(lambda i: _sine_loss(i, wrong=1e-4), inputs)
    assert errors["x"] > 1e-5 and errors["w"] < 1e-8


def test_check_directional_accepts_right_and_rejects_wrong_gradients():
    rng = np.random.default_rng(1)
    inputs = {"x": rng.standard_normal(50), "w": rng.standard_normal(50)}
    assert max(gc.check_directional(_sine_loss, inputs).values()) < 1e-8
    errors = gc.check_directional(lambda i: _sine_loss(i, wrong=1e-3), inputs, seed=2)
    assert errors["x"] > 1e-5 and errors["w"] < 1e-8


def test_rel_error_is_normwise():
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(np.zeros(0), np.zeros(0)) == 0.0
    # a tiny element off by 100% does not count against a large gradient
    assert gc.rel_error([1.0, 1e-12], [1.0, 2e-12]) == pytest.approx(1e-12)
    assert gc.rel_error([2.0], [1.0]) == pytest.approx(0.5)


def test_a_broken_backward_fails_the_layer_check(monkeypatch):
    """The check has teeth: a sign error in one bias gradient is caught."""
    real = layers.backward

    def broken(*a, **k):
        dx, ds0, grads = real(*a, **k)
        grads["bias_hh_l0"] = -grads["bias_hh_l0"]
        return dx, ds0, grads

    monkeypatch.setattr(layers, "backward", broken)
    report = gc.check_layer("gru", T=3, B=2, I=2, H=2)
    assert not report
    assert [k for k, e in report.errors.items() if e > 1e-7] == ["bias_hh_l0"]


# ---------------------------------------------------------------- truncated_reference

@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_reference_without_truncation_is_full_bptt(mode):
    """k=None walks every term to step 0: exactly the (finite-difference checked) full BPTT."""
    cfg = layers.RNNConfig(mode, 2, 3, num_layers=2, bidirectional=True)
    lens = [4, 1, 3]
    case = gc.layer_case(cfg, T=4, B=3, seed=5)
    _, full = gc.layer_loss(cfg, case.inputs, case.upstream, lengths=lens)
    ref = gc.case_reference(case, None, lens)
    assert set(ref) == set(full)
    assert max(gc.rel_error(full[k], ref[k]) for k in full) < 1e-12


def test_reference_with_k0_is_the_hand_derivation():
    """k=0 for a tanh RNN: every term stops after its own step, so
    dx_t = (dout_t (1 - h_t^2)) W_ih and only step 0's term reaches h_0."""
    cfg = layers.RNNConfig("rnn", 2, 3)
    case = gc.layer_case(cfg, T=4, B=2, seed=6)
    params = {k: case.inputs[k] for k in layers.param_shapes(cfg)}
    x, h0, dout = case.inputs["input"], case.inputs["h_0"], case.upstream["output"]
    zero = np.zeros_like(h0)
    ref = gc.truncated_reference(cfg, params, x, (h0,), dout, (zero,), 0)
    out, _, _ = layers.forward(cfg, params, x, as_hx((h0,)))
    da = dout * (1.0 - out ** 2)                                   # (T, B, H)
    np.testing.assert_allclose(ref["input"], da @ params["weight_ih_l0"], rtol=1e-13)
    np.testing.assert_allclose(ref["h_0"][0], da[0] @ params["weight_hh_l0"], rtol=1e-13)
    np.testing.assert_allclose(ref["bias_hh_l0"], da.sum(axis=(0, 1)), rtol=1e-13)


@pytest.mark.parametrize("module", [gc, truncation])
def test_docstring_examples(module):
    assert doctest.testmod(module, raise_on_error=True).attempted > 0


# ---------------------------------------------------------------- rnnlab gradcheck

def _cli(argv):
    parser = argparse.ArgumentParser()
    gradcheck_cli.register(parser.add_subparsers())
    args = parser.parse_args(["gradcheck", *argv])
    return args.func(args)


def test_cli_table_passes_for_every_cell(capsys):
    assert _cli([]) == 0
    out = capsys.readouterr().out
    for cell in ("rnn-tanh", "lstm", "gru"):
        assert f"{cell} " in out
    assert "FAIL" not in out and out.count("PASS") == 6 + 7 + 6


def test_cli_json_with_all_options(capsys):
    argv = ["--cell", "gru", "lstm", "--layers", "2", "--bidirectional", "--lengths",
            "--bptt-truncate", "1", "--gru-reset-before", "--seq-len", "3", "--batch", "3",
            "--input-size", "2", "--hidden-size", "2", "--seed", "4", "--json"]
    assert _cli(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["tol"] == 1e-7
    assert {r["cell"] for r in report["results"]} == {"gru-reset-before", "lstm"}
    assert {r["reference"] for r in report["results"]} == {"per-term reference"}
    assert all(r["passed"] and r["rel_error"] < 1e-7 for r in report["results"])


def test_cli_directional_on_a_larger_layer(capsys):
    assert _cli(["--cell", "lstm", "--hidden-size", "16", "--seq-len", "8", "--directional"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("reference: directional") and "7/7 tensors pass" in out


def test_cli_fails_above_tolerance(capsys):
    assert _cli(["--cell", "rnn", "--nonlinearity", "relu", "--tol", "1e-30"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "rnn-relu" in out and "0/6 tensors pass" in out


def test_rnnlab_command_runs_gradcheck(capsys):
    assert cli.main(["gradcheck", "--cell", "lstm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"]
    assert cli.main(["gradcheck", "--layers", "0"]) == 2           # bad config: usage error
    assert "--layers: expected an integer from 1 to 64" in capsys.readouterr().err
