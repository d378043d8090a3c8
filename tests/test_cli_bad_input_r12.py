"""Round twelve's command-line audit (about 400 bad inputs, every command): what
it found in gradcheck, gradflow, tasks, demo, dist and caption, each now one
``rnnlab <command>: error: ...`` line with exit code 2 that names the option, and
found before any work. The shared check of output paths (``atomic.check_writable``)
is tested here too."""
import os

import numpy as np
import pytest

from rnnlab.cli import command, gradcheck
from rnnlab.cli.command import main
from rnnlab.io import atomic

FLOW = ["--length", "4", "--steps", "0", "--batch", "2", "--hidden", "2", "--cells", "rnn"]
TASK = ["--length", "4", "--steps", "1", "--batch", "2", "--hidden", "2"]


def test_check_writable_names_the_flag_and_creates_nothing(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ValueError, match="--report .*: is a folder; expected a file name"):
        atomic.check_writable("--report", tmp_path)
    with pytest.raises(ValueError, match="--out .*: exists and is not a folder"):
        atomic.check_writable("--out", afile, folder=True)
    with pytest.raises(ValueError, match="--json .*afile is a file, so no folder can be made"):
        atomic.check_writable("--json", afile / "sub" / "r.json")
    atomic.check_writable("--json", tmp_path / "new" / "deeper" / "r.json")
    atomic.check_writable("--out", tmp_path / "new2", folder=True)
    assert sorted(os.listdir(tmp_path)) == ["afile"]              # nothing made, no probe left


@pytest.mark.parametrize("tail, message", [
    (["--tol", "nan"], "--tol: expected a finite number > 0, got nan"),
    (["--tol", "0"], "--tol: expected a finite number > 0, got 0.0"),
    (["--layers", "100000"], "--layers: expected an integer from 1 to 64, got 100000"),
    (["--seq-len", "0"], "--seq-len: expected an integer from 1 to 4,096, got 0"),
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--input-size", "0"], "--input-size: expected an integer from 1 to 4,096, got 0"),
])
def test_gradcheck_names_its_flags(cli_error, tail, message):
    assert message in cli_error(["gradcheck", "--cell", "rnn", *tail])


def test_demo_bounds_and_out_before_training(cli_error, tmp_path):
    assert "--length: expected an integer from 2 to 100,000" in cli_error(
        ["demo", "--quick", "--length", "100000000"])
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "--out" in cli_error(["demo", "--quick", "--out", str(afile)])


def test_gradflow_checks_outputs_first_and_leaves_no_temporary_folder(cli_error, tmp_path,
                                                                      monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert "--plots" in cli_error(["gradflow", *FLOW, "--plots", str(afile)])
    assert "is a folder" in cli_error(["gradflow", *FLOW, "--report", str(tmp_path)])
    assert "--length: expected an integer from 2 to 100,000" in cli_error(
        ["gradflow", *FLOW, "--length", "100000000"])
    pytest.importorskip("matplotlib")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)                # TMPDIR read again
    assert main(["gradflow", *FLOW, "--report", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").stat().st_size > 0
    assert os.listdir(scratch) == []                              # the figures' folder removed


@pytest.mark.parametrize("argv, message", [
    (["tasks", *TASK, "adding", "--task", "copy"], "--task: only for 'rnnlab tasks sweep'"),
    (["tasks", *TASK, "adding", "--cells", "rnn"], "--cells: only for 'rnnlab tasks sweep'"),
    (["tasks", *TASK, "adding", "--ray"], "--ray: only for 'rnnlab tasks sweep'"),
    (["tasks", *TASK, "sweep", "--out", "elsewhere"], "--out: only with --ray"),
    (["tasks", *TASK, "sweep", "--lengths", "4,1000000000"], "--length"),
    (["tasks", *TASK, "sweep", "--table", "t.txt"], "--table t.txt: expected a .csv or .md"),
])
def test_tasks_refuses_what_it_would_ignore(cli_error, argv, message):
    assert message in cli_error(argv)


def test_tasks_has_no_report_flag_and_checks_json_first(capsys, cli_error, tmp_path):
    assert main(["tasks", *TASK, "adding", "--report", "x.html"]) == 2   # argparse: unknown
    assert "unrecognized arguments: --report" in capsys.readouterr().err
    assert "--json" in cli_error(["tasks", *TASK, "adding", "--json", str(tmp_path)])


@pytest.mark.parametrize("tail, message", [
    (["--hidden", "0"], "--hidden: expected integers from 1 to 65,536, got 0"),
    (["--lrs", "-1"], "--lrs: expected finite numbers > 0, got -1.0"),
    (["--seeds", "-1"], "--seeds: expected integers >= 0, got -1"),
    (["--layers", "0"], "--layers: expected an integer from 1 to 64, got 0"),
    (["--asha"], "--asha: only with --ray"),
])
def test_dist_sweep_checks_before_any_trial(cli_error, tmp_path, tail, message):
    assert message in cli_error(["dist", "lm-sweep", "--out", str(tmp_path / "o"), *tail])
    assert not (tmp_path / "o").exists()


def test_dist_sweep_reads_the_corpus_once_first(cli_error, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert "empty" in cli_error(["dist", "lm-sweep", str(empty), "--out", str(tmp_path / "o")])
    assert "no such file" in cli_error(["dist", "lm-sweep", str(tmp_path / "none.txt"),
                                        "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_caption_flags_and_files(cli_error, tmp_path):
    ck = str(tmp_path / "none.npz")                  # the flags are checked before the file
    assert "--seed: expected an integer >= 0" in cli_error(["caption", "eval", ck, "--seed", "-1"])
    assert "--images: expected an integer from 1 to 1,000" in cli_error(
        ["caption", "gallery", ck, "-n", "100000"])
    assert "--out" in cli_error(["caption", "gallery", ck, "--out", str(tmp_path)])
    assert "the attention regulariser needs --decoder attend" in cli_error(
        ["caption", "train", "--decoder", "show-tell", "--alpha-c", "1"])
    pytest.importorskip("PIL")
    from rnnlab.cli.caption import read_png
    with pytest.raises(ValueError, match="is a folder; expected a PNG file"):
        read_png(str(tmp_path))
    from PIL import Image
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(good)
    trunc = tmp_path / "t.png"
    trunc.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"t\.png: cannot read the image"):
        read_png(str(trunc))


def test_out_of_memory_points_at_the_subcommands_own_help(cli_error, monkeypatch):
    def boom(args):
        raise MemoryError
    monkeypatch.setattr(gradcheck, "run", boom)
    parser = command.build_parser
    monkeypatch.setattr(command, "build_parser", lambda: _with(parser(), boom))
    err = cli_error(["gradcheck"])
    assert "out of memory" in err and "`rnnlab gradcheck --help`" in err and "--bptt" not in err


def _with(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


def test_lm_eval_notes_unknown_tokens_and_names_a_recorded_corpus(capsys, cli_error, tmp_path,
                                                                  monkeypatch):
    text = tmp_path / "t.txt"
    text.write_text("abcab cabca bcabc " * 200)
    out = tmp_path / "run"
    assert main(["train", str(text), "--level", "char", "--hidden-size", "4", "--emb-size", "4",
                 "--num-layers", "1", "--batch-size", "2", "--bptt", "4", "--epochs", "1",
                 "--max-steps", "2", "--samples", "0", "--no-progress", "--out", str(out)]) == 0
    other = tmp_path / "o.txt"
    other.write_text("xyzzy " * 200)
    capsys.readouterr()
    assert main(["eval", str(out / "best.npz"), "--corpus", str(other), "--no-progress"]) == 0
    assert "outside the model's vocabulary" in capsys.readouterr().err
    text.unlink()                                          # the recorded corpus is gone
    assert "as recorded there; give --corpus" in cli_error(
        ["eval", str(out / "best.npz"), "--no-progress"])


def test_train_refuses_an_output_name_taken_by_a_folder_and_endless_epochs(cli_error, tmp_path):
    (tmp_path / "run" / "last.npz").mkdir(parents=True)
    assert "last.npz there is a folder" in cli_error(["train", "--out", str(tmp_path / "run")])
    assert "--epochs" in cli_error(["train", "--epochs", "100000000000000000000"])


@pytest.mark.parametrize("tail, message", [
    (["--beam", "2", "--top-k", "3"], "--top-k: sampling options, not used with --beam"),
    (["--beam", "2", "-n", "5"], "-n: sampling options, not used with --beam"),
    (["--score", "ab", "--beam", "2"], "--beam: not used with --score"),
])
def test_generate_refuses_options_its_mode_ignores(tail, message):
    from rnnlab.lm import generate
    with pytest.raises(ValueError, match=message):
        generate.GenerateOptions(checkpoint="x.npz", **_as_kw(tail))


def _as_kw(tail):
    names = {"--beam": "beam", "--top-k": "top_k", "-n": "num_samples", "--score": "score"}
    return {names[k]: (v if k == "--score" else int(v)) for k, v in zip(tail[::2], tail[1::2])}
