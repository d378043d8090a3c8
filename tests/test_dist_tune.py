"""Sweeps through rnnlab.dist.tune: the same numbers as the sequential sweep,
in any order; failures reported without losing the others; finished trials
skipped on a restart; a cut language-model trial continues exactly; and a
4-trial sweep on a local Ray."""
import json
import os
from dataclasses import replace

import numpy as np
import pytest

from rnnlab.dist import tune
from rnnlab.io import checkpoint
from rnnlab.lab import experiment

BASE = experiment.TrainConfig(task="adding", length=8, steps=30, batch=8, hidden=8, eval_batch=40,
                         record_every=0, record_rows=2)
CONFIGS = [replace(BASE, cell=c, seed=s) for c, s in (("rnn", 0), ("gru", 0), ("gru", 1))]
SAME = ("task", "cell", "length", "seed", "score", "success", "losses", "grad_norms", "clip")


def _sweep(broken=False):
    sweep = tune.tasks_sweep(CONFIGS)
    if broken:
        sweep["broken"] = {**sweep["adding-rnn-T8-seed0"], "hidden": 0}   # fails its check
    return sweep


@pytest.fixture(scope="module")
def sequential():
    """The sequential sweep's results (rnnlab.lab.experiment.sweep), per trial name."""
    out = {}
    for cfg in CONFIGS:
        out.update(zip(tune.tasks_sweep([cfg]), experiment.sweep(cfg, [cfg.cell], [8], [cfg.seed],
                                                             progress=None)))
    return out


def _same(results, sequential):
    assert [r["name"] for r in results] == list(_sweep())               # the sweep's order
    for r in results:
        assert {k: r[k] for k in SAME} == {k: sequential[r["name"]][k] for k in SAME}


def test_in_turn_equals_the_sequential_sweep_and_failures_are_reported(tmp_path, sequential):
    logged = []
    results, failures, ran = tune.run("tasks", _sweep(broken=True), tmp_path, log=logged.append)
    _same(results, sequential)
    assert list(failures) == ["broken"]
    assert "--hidden: expected an integer >= 1" in failures["broken"]
    assert any(line.startswith("trial broken failed: ValueError") for line in logged)
    assert ran == list(_sweep(broken=True))
    t = tune.trial_dir(tmp_path, "adding-gru-T8-seed1")
    assert sorted(os.listdir(t)) == ["metrics.jsonl", "model.npz", "result.json"]
    assert checkpoint.load(os.path.join(t, "model.npz"), kind="tasks")["params"]
    experiment.write_table(results, tmp_path / "a.md")
    experiment.write_table(list(sequential.values()), tmp_path / "b.md")
    strip = [[c for i, c in enumerate(line.split("|")) if i != 9]      # all but seconds
             for line in (tmp_path / "a.md").read_text().splitlines()]
    assert strip == [[c for i, c in enumerate(line.split("|")) if i != 9]
                     for line in (tmp_path / "b.md").read_text().splitlines()]


def test_a_restarted_sweep_skips_finished_trials(tmp_path):
    first = dict(list(_sweep().items())[:2])
    tune.run("tasks", first, tmp_path, log=lambda s: None)
    stamps = {n: os.path.getmtime(tune.trial_dir(tmp_path, n) + "/result.json") for n in first}
    logged = []
    results, failures, ran = tune.run("tasks", _sweep(), tmp_path, log=logged.append)
    assert ran == ["adding-gru-T8-seed1"] and not failures and len(results) == 3
    assert "2 of 3 trials already finished" in logged[0]
    assert stamps == {n: os.path.getmtime(tune.trial_dir(tmp_path, n) + "/result.json")
                      for n in first}


def test_a_finished_trial_with_other_settings_is_an_error(tmp_path):
    sweep = dict(list(_sweep().items())[:1])
    tune.run("tasks", sweep, tmp_path, log=lambda s: None)
    (name, settings), = sweep.items()
    with pytest.raises(ValueError, match="finished with other settings"):
        tune.run("tasks", {name: {**settings, "steps": 31}}, tmp_path)


def test_a_cut_language_model_trial_continues_exactly(tmp_path):
    from rnnlab.lm import train
    text = " ".join(np.random.default_rng(0).choice(list("abcde fgh"), 3000))
    (tmp_path / "c.txt").write_text(text)
    base = train.LMTrainConfig(corpus=str(tmp_path / "c.txt"), level="char", num_layers=1,
                               batch_size=4, bptt=8, max_steps=6, epochs=2, checkpoint_every=0)
    (name, settings), = tune.lm_sweep(base, ["gru"], [8], [0.5], [0]).items()
    whole, _, _ = tune.run("lm", {name: settings}, tmp_path / "whole")
    cut = tmp_path / "cut"                         # one epoch done, then killed
    tune.lm_trial(name, {**settings, "epochs": 1}, cut, lambda r: None)
    again, _, ran = tune.run("lm", {name: settings}, cut)
    assert ran == [name] and again[0]["epochs"] == 2
    strip = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in whole[0]["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "tokens_per_s"}
                     for r in again[0]["history"]]
    a, b = (checkpoint.load(tune.trial_dir(d, name) + "/last.npz")["params"]
            for d in (tmp_path / "whole", cut))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.needs_ray
def test_four_trials_on_a_local_ray(tmp_path, sequential):
    import ray
    try:
        results, failures, ran = tune.run("tasks", _sweep(broken=True), tmp_path, ray=True,
                                          log=lambda s: None)
    finally:
        ray.shutdown()
    _same(results, sequential)                     # the order Ray ran them in is lost
    assert list(failures) == ["broken"]
    assert "--hidden: expected an integer >= 1" in failures["broken"]
    for name in _sweep():
        with open(tune.trial_dir(tmp_path, name) + "/result.json") as f:
            assert json.load(f)["name"] == name


def test_lm_sweep_command_writes_table_figure_and_page(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from rnnlab.cli.command import main
    (tmp_path / "c.txt").write_text("abc abd bca cab " * 200)
    out = tmp_path / "sweep"
    argv = ["dist", "lm-sweep", str(tmp_path / "c.txt"), "--level", "char", "--cells", "rnn",
            "--hidden", "4,8", "--epochs", "1", "--max-steps", "3", "--batch-size", "2",
            "--bptt", "4", "--out", str(out)]
    assert main(argv) == 0
    table = (out / "sweep.md").read_text()
    assert "| rnn-h4-lr1-seed0 | rnn | 4 |" in table and "| rnn-h8-lr1-seed0 |" in table
    assert (out / "sweep.png").stat().st_size > 0 and "<img" in (out / "sweep.html").read_text()
    assert main(argv) == 0 and "2 of 2 trials already finished" in capsys.readouterr().out
    assert main(argv[:-2] + ["--cells", "lstmx"]) == 2                     # a clear error
