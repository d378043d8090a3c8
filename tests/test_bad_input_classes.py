"""Bad input, grouped by the classes of issue 14. Every command-line case exits
with code 2, prints one ``rnnlab <command>: error: ...`` line that names the
culprit (file, option, tensor) and what was expected, and no traceback; every
Python API case raises the named exception type with such a message.

1. tracebacks instead of a message   2. values that make no sense
3. runaway resources                 4. silently wrong results
5. small data losses                 6. the API trusting params=
7. mutation after forward
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from rnnlab import GRU, LSTM, RNN, cli
from rnnlab.engine import layers
from rnnlab.io import checkpoint, metrics
from rnnlab.lm import evaluate, generate, model as lm, train
from rnnlab.training import limits, trainer

TINY = ("--level", "char", "--hidden-size", "8", "--emb-size", "4", "--num-layers", "1",
        "--batch-size", "2", "--bptt", "5", "--epochs", "1", "--max-steps", "3",
        "--samples", "0", "--no-progress")


def _text(path, n=3000, seed=1):
    rng = np.random.default_rng(seed)
    path.write_text(" ".join(rng.choice(["ab", "ba", "cab", "abc"], n // 3)) + "\n")
    return path


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.err, cap.out


def refused(cli_error, *argv, words=()):
    """The command is refused (the ``cli_error`` fixture: exit 2, one error line, no
    traceback) with a message naming every word; returns that message."""
    msg = cli_error(argv)
    for w in words:
        assert str(w) in msg, f"{w!r} not in {msg!r}"
    return msg


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny trained run: (corpus path, OUT folder)."""
    root = tmp_path_factory.mktemp("run")
    src = _text(root / "t.txt")
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["train", str(src), *TINY, "--out", str(root / "run")]) == 0
    return src, root / "run"


def rewrite(src, dst, meta=None, arrays=None, extra=None):
    """Copy a checkpoint with its metadata changed by meta(m), arrays replaced
    ({member: array}) and extra raw members added ({name: bytes})."""
    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    m = checkpoint.load(src)["meta"]
    m = meta(m) if meta is not None else m
    for name, a in {"meta.npy": np.frombuffer(json.dumps(m).encode(), np.uint8),
                    **(arrays or {})}.items():
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=True)
        members[name] = buf.getvalue()
    members.update(extra or {})
    with zipfile.ZipFile(dst, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    return dst


def without(*dotted):
    def edit(m):
        for key in dotted:
            d, *path = m, *key.split(".")
            for p in path[:-1]:
                d = d[p]
            del d[path[-1]]
        return m
    return edit


def setting(key, value):
    def edit(m):
        d, path = m, key.split(".")
        for p in path[:-1]:
            d = d[p]
        d[path[-1]] = value
        return m
    return edit


@contextlib.contextmanager
def read_only(folder):
    """A folder nobody may write into: chmod for users, chattr +i for root (which
    ignores modes); skips where neither works."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield
        finally:
            os.chmod(folder, 0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a read-only folder for root here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


# ================================================================ 1. tracebacks -> messages

@pytest.mark.parametrize("edit, words", [
    (without("train_config"), ["train_config", "has no"]),
    (without("rng"), ["'rng'", "has no"]),
    (without("position"), ["position.epoch", "has no"]),
    (setting("position.step", "4"), ["position.step", "integer >= 0", "'4'"]),
    (setting("rng", {"bit_generator": "PCG64", "state": 5}), ["'rng'", "random-generator"]),
    (setting("history", "lots"), ["'history'", "list of JSON objects"]),
    (setting("version", "1"), ["'version'", "integer >= 1", "'1'"]),
    (setting("train_config.lr", -5), ["--lr", "got -5"]),
    (without("app.vocab"), ["'vocab'", "has no"]),
], ids=["no-train-config", "no-rng", "no-position", "step-as-string", "bad-rng",
        "history-string", "version-string", "config-value", "no-vocab"])
def test_resume_from_damaged_metadata(run_dir, tmp_path, cli_error, edit, words):
    _, out = run_dir
    bad = rewrite(out / "last.npz", tmp_path / "bad.npz", meta=edit)
    refused(cli_error, "train", "--resume", bad, "--no-progress", words=[bad, *words])


@pytest.mark.parametrize("command", ["eval", "generate", "resume", "gradflow"])
@pytest.mark.parametrize("damage, words", [
    ({"extra": {"notes.txt": b"hello"}}, ["not .npy", "notes.txt"]),
    ({"extra": {"state/9.npy": b"no header"}}, ["state/9.npy", "not a .npy array"]),
    ({"arrays": {"param/decoder.bias.npy": np.array([1, "a"], object)}}, ["pickled"]),
    ({"arrays": {"param/decoder.bias.npy": np.zeros(5, np.int64)}},
     ["'decoder.bias'", "int64", "expected floats"]),
    ({"meta": setting("version", 1.5)}, ["'version'", "found 1.5"]),
    ({"meta": lambda m: ["not", "an", "object"]}, ["not an rnnlab language-model checkpoint"]),
], ids=["txt-member", "no-npy-header", "pickle", "int-weights", "version-float", "meta-list"])
def test_damaged_checkpoint_files(run_dir, tmp_path, cli_error, command, damage, words):
    _, out = run_dir
    bad = rewrite(out / "last.npz", tmp_path / "bad.npz", **damage)
    argv = {"eval": ["eval", bad], "generate": ["generate", bad],
            "resume": ["train", "--resume", bad], "gradflow": ["gradflow", "--model", bad]}
    refused(cli_error, *argv[command], words=[bad, *words])


def test_a_folder_or_missing_file_as_checkpoint(run_dir, cli_error):
    _, out = run_dir
    refused(cli_error, "eval", out, words=[out, "is a folder", ".npz"])
    refused(cli_error, "generate", out / "nope.npz", words=["nope.npz", "no such checkpoint"])


def test_out_is_a_file_or_under_one(run_dir, tmp_path, cli_error):
    src, _ = run_dir
    (tmp_path / "f").write_text("x")
    refused(cli_error, "train", src, *TINY, "--out", tmp_path / "f",
            words=["--out", "exists and is not a folder"])
    refused(cli_error, "train", src, *TINY, "--out", tmp_path / "f" / "sub" / "run",
            words=["--out", "is a file"])


def test_read_only_out_fails_before_the_first_step(run_dir, tmp_path, cli_error, monkeypatch):
    src, _ = run_dir
    steps = []
    real = train.LMTask.loss_and_grads
    monkeypatch.setattr(train.LMTask, "loss_and_grads",
                        lambda self, *a: steps.append(a) or real(self, *a))
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked):
        refused(cli_error, "train", src, *TINY, "--out", locked / "run",
                words=["--out", "cannot write", "locked"])
        refused(cli_error, "train", src, *TINY, "--out", locked,
                words=["--out", "cannot write there"])
    assert steps == [] and os.listdir(locked) == []


@pytest.mark.parametrize("argv, words", [
    (["train", "{src}", *TINY, "--init-scale", "nan"], ["--init-scale", "got nan"]),
    (["train", "{src}", *TINY, "--init-scale", "inf"], ["--init-scale", "got inf"]),
    (["eval", "{ck}", "--bptt", "-1"], ["--bptt", ">= 1", "got -1"]),
    (["train", "{src}", *TINY, "--config", "{dir}"], ["--config", "cannot read"]),
    (["train", "{dir}/nothing-here", *TINY], ["nothing-here", "no such file"]),
    (["eval", "{ck}", "--corpus", "{dir}/empty"], ["empty", "no files"]),
], ids=["init-scale-nan", "init-scale-inf", "eval-bptt", "config-folder", "corpus-missing",
        "corpus-empty-folder"])
def test_bad_values_and_paths_are_one_line(run_dir, tmp_path, cli_error, argv, words):
    src, out = run_dir
    (tmp_path / "empty").mkdir()
    fill = dict(src=src, ck=out / "last.npz", dir=tmp_path)
    argv = [a.format(**fill) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "o")]
    refused(cli_error, *argv, words=words)


def test_unreadable_corpus_is_named(run_dir, tmp_path, cli_error, monkeypatch):
    src, _ = run_dir
    import builtins
    real_open = builtins.open

    def deny(path, *a, **k):
        if str(path) == str(src):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", deny)
    refused(cli_error, "train", src, *TINY, "--out", tmp_path / "o",
            words=[src, "cannot read it", "Permission denied"])


BOOM = """
def register(subparsers):
    p = subparsers.add_parser("boom")
    p.add_argument("--kind")
    p.set_defaults(func=run)

def run(args):
    if args.kind == "perm":
        raise PermissionError(13, "Permission denied", "/data/x.txt")
    if args.kind == "isdir":
        raise IsADirectoryError(21, "Is a directory", "/data")
    if args.kind == "disk":
        raise OSError(28, "No space left on device", "/runs/last.npz")
    raise RuntimeError("unexpected")
"""


@pytest.mark.parametrize("kind, code, words", [
    ("perm", 2, ["/data/x.txt", "Permission denied"]),
    ("isdir", 2, ["/data", "Is a directory"]),
    ("disk", 2, ["/runs/last.npz", "No space left"]),
    ("bug", 1, ["internal error", "RuntimeError", "RNNLAB_TRACEBACK"]),
])
def test_any_os_error_is_the_last_line_of_defence(monkeypatch, capsys, kind, code, words):
    import types
    from rnnlab.cli import command
    mod = types.ModuleType("boom")
    exec(BOOM, mod.__dict__)
    monkeypatch.setattr(command, "COMMAND_MODULES", (mod,))
    monkeypatch.delenv("RNNLAB_TRACEBACK", raising=False)
    rc, err, _ = run_cli(capsys, "boom", "--kind", kind)
    assert rc == code and err.startswith("rnnlab boom: ") and "Traceback" not in err
    assert all(w in err for w in words), err


def test_no_traceback_in_a_real_process(run_dir, tmp_path):
    """The same, end to end: a separate interpreter, stderr as the user sees it."""
    _, out = run_dir
    bad = rewrite(out / "last.npz", tmp_path / "bad.npz", meta=without("position"))
    for argv in (["train", "--resume", str(bad)], ["eval", str(out / "last.npz"), "--bptt", "-1"],
                 ["generate", str(out / "last.npz"), "--beam", "-1"]):
        r = subprocess.run([sys.executable, "-m", "rnnlab", *argv], capture_output=True,
                           text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(
                               os.path.abspath(__file__))))
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith(f"rnnlab {argv[0]}: error: ")


# ================================================================ 2. values that make no sense

@pytest.mark.parametrize("flag, value", [
    ("--clip", "-1"), ("--lr-decay", "-0.5"), ("--lr-decay", "0"), ("--max-steps", "-1"),
    ("--patience", "-1"), ("--decay-start", "-1"), ("--early-stop", "-1"),
    ("--sample-len", "-1"), ("--samples", "-1"), ("--dropout", "1"), ("--dropout", "nan"),
    ("--dropout", "-0.1"), ("--lr", "0"), ("--lr", "nan"), ("--momentum", "1"),
    ("--eval-batch-size", "0"), ("--max-eval-tokens", "-1"), ("--bptt", "0"),
    ("--seed", "-1"), ("--checkpoint-every", "-1"), ("--min-count", "0"),
    ("--max-vocab", "1"), ("--epochs", "0"),
])
def test_train_option_ranges(run_dir, tmp_path, cli_error, flag, value):
    src, _ = run_dir
    refused(cli_error, "train", src, *TINY, flag, value, "--out", tmp_path / "o",
            words=[flag, "expected"])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command, flag, value", [
    ("eval", "--batch-size", "0"), ("eval", "--bptt", "0"), ("eval", "--max-tokens", "-1"),
    ("generate", "--top-k", "-1"), ("generate", "--max-len", "-1"),
    ("generate", "--temperature", "0"), ("generate", "--temperature", "-2"),
    ("generate", "--top-p", "0"), ("generate", "--top-p", "1.5"), ("generate", "-n", "0"),
])
def test_eval_and_generate_option_ranges(run_dir, cli_error, command, flag, value):
    _, out = run_dir
    name = "--num-samples" if flag == "-n" else flag
    refused(cli_error, command, out / "last.npz", flag, value, words=[name, "expected"])


@pytest.mark.parametrize("kw, words", [
    (dict(clip=-1.0), "--clip"), (dict(lr_decay=-0.5), "--lr-decay"),
    (dict(dropout=float("nan")), "--dropout"), (dict(max_steps=-1), "--max-steps"),
    (dict(init_scale=float("nan")), "--init-scale"), (dict(sample_len=-1), "--sample-len"),
    (dict(tie_weights=True, emb_size=4, hidden_size=8), "--tie-weights"),
])
def test_the_same_rule_for_api_and_toml(tmp_path, cli_error, run_dir, kw, words):
    with pytest.raises(ValueError, match=words):
        train.LMTrainConfig(**kw)
    src, _ = run_dir
    toml = tmp_path / "run.toml"
    def toml_value(v):
        return str(v).lower() if isinstance(v, bool) else "nan" if v != v else repr(v)
    toml.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in kw.items()))
    refused(cli_error, "train", src, "--config", toml, "--no-progress", "--out", tmp_path / "o",
            words=[toml, words])


def test_api_sampling_arguments_are_checked(run_dir):
    _, out = run_dir
    cfg, params, vocab, _ = lm.load_model(out / "last.npz")
    for kw, words in [(dict(temperature=0.0), "--temperature"), (dict(top_p=0.0), "--top-p"),
                      (dict(top_k=-1), "--top-k"), (dict(n=0), "--num-samples"),
                      (dict(max_len=0), "--max-len")]:
        with pytest.raises(ValueError, match=words):
            generate.sample(cfg, params, vocab, **kw)
    with pytest.raises(ValueError, match="--batch-size"):
        evaluate.EvalOptions(checkpoint="x", batch_size=0)


# ================================================================ 3. runaway resources

@pytest.mark.parametrize("value, words", [
    ("-1", [">= 0"]), ("1000000", ["<= 1000"]), ("6", ["from 1 to 5", "vocabulary 5"])])
def test_beam_is_bounded_by_the_vocabulary(run_dir, cli_error, value, words):
    _, out = run_dir
    refused(cli_error, "generate", out / "last.npz", "--beam", value, words=["--beam", *words])


def test_sample_count_and_length_are_capped(run_dir, cli_error):
    _, out = run_dir
    refused(cli_error, "generate", out / "last.npz", "-n", "1000000",
            words=["--num-samples", "<= 1000"])
    refused(cli_error, "generate", out / "last.npz", "--max-len", "100000000",
            words=["--max-len", "<= 10000"])


def test_many_samples_are_drawn_in_bounded_groups(run_dir, monkeypatch):
    _, out = run_dir
    cfg, params, vocab, _ = lm.load_model(out / "last.npz")
    widths = []
    real = generate._step                                             # one token per row
    monkeypatch.setattr(generate, "GROUP_CELLS", 4 * len(vocab))     # 4 rows per group
    monkeypatch.setattr(generate, "_step",
                        lambda m, p, tok, s: widths.append(tok.shape[0]) or real(m, p, tok, s))
    s = generate.sample(cfg, params, vocab, n=10, max_len=3, rng=0)
    assert len(s) == 10 and max(widths) == 4


def test_memory_estimate_refuses_what_cannot_fit():
    with pytest.raises(ValueError, match="needs about 2.0 GB .* lower --hidden-size"):
        limits.check_memory(2 << 30, "a model", "lower --hidden-size", total=1 << 30)
    limits.check_memory(1 << 20, "a model", "x", total=1 << 30)


def test_huge_model_is_refused_before_allocating(run_dir, tmp_path, cli_error):
    src, _ = run_dir
    refused(cli_error, "train", src, *TINY, "--hidden-size", "65536", "--emb-size", "65536",
            "--num-layers", "64", "--out", tmp_path / "o", words=["memory", "--hidden-size"])


def test_validation_is_capped_and_shows_progress(run_dir, tmp_path, capsys):
    src, _ = run_dir
    rc, err, out = run_cli(capsys, "train", src, *TINY[:-1], "--progress",
                           "--max-eval-tokens", "20", "--out", tmp_path / "o")
    assert rc == 0
    assert "the first 20 of" in out and "--max-eval-tokens" in out
    assert "validation" in err                          # the progress bar, on stderr
    data = np.arange(200).reshape(50, 4) % 5
    cfg, params, _, _ = lm.load_model(tmp_path / "o" / "last.npz")
    calls = []
    real = lm.logits_forward
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lm, "logits_forward", lambda *a: calls.append(a[2].shape) or real(*a))
        evaluate.evaluate(cfg, params, data, 5, max_tokens=20)
    assert sum(t for t, b in calls) * 4 == 20           # 5 rows of 4 streams


# ================================================================ 4. silently wrong results

def _nan_checkpoint(out, tmp_path):
    bias = checkpoint.load(out / "last.npz")["params"]["decoder.bias"].copy()
    bias[2] = np.nan
    return rewrite(out / "last.npz", tmp_path / "nan.npz",
                   arrays={"param/decoder.bias.npy": bias})


@pytest.mark.parametrize("command", ["eval", "generate", "resume"])
def test_nan_weights_are_refused_at_load(run_dir, tmp_path, cli_error, command):
    _, out = run_dir
    bad = _nan_checkpoint(out, tmp_path)
    argv = {"eval": ["eval", bad], "generate": ["generate", bad],
            "resume": ["train", "--resume", bad]}[command]
    refused(cli_error, *argv, words=[bad, "'decoder.bias'", "NaN or Inf"])


def test_divergence_gets_the_trainers_message(run_dir, tmp_path, cli_error):
    src, _ = run_dir
    msg = refused(cli_error, "train", src, *TINY, "--lr", "1e30", "--clip", "0",
                  "--max-steps", "20", "--out", tmp_path / "o",
                  words=["training diverged", "lower --lr"])
    assert "doutput" not in msg and not (tmp_path / "o").exists()


def test_generation_never_emits_unknown_from_a_broken_model(run_dir):
    _, out = run_dir
    cfg, params, vocab, _ = lm.load_model(out / "last.npz")
    broken = {k: v.copy() for k, v in params.items()}
    broken["decoder.bias"][1] = np.nan
    with pytest.raises(ValueError, match="not finite"):
        generate.sample(cfg, broken, vocab, n=2, max_len=5, rng=0)
    with pytest.raises(ValueError, match="not finite"):
        generate.beam_search(cfg, broken, vocab, beam=2, max_len=5)
    for s in generate.sample(cfg, params, vocab, n=20, max_len=30, rng=1):
        assert "<unk>" not in s


# ================================================================ 5. small data losses

def test_failed_starts_leave_no_folder(tmp_path, cli_error, run_dir):
    src, _ = run_dir
    target = tmp_path / "a" / "b" / "run"
    refused(cli_error, "train", tmp_path / "missing.txt", *TINY, "--out", target)
    refused(cli_error, "train", src, *TINY, "--lr", "1e30", "--clip", "0", "--max-steps", "20",
            "--out", target)
    assert not (tmp_path / "a").exists()


def test_stale_temporary_files_are_removed(run_dir, tmp_path, capsys):
    src, _ = run_dir
    out = tmp_path / "o"
    out.mkdir()
    dead = 2 ** 22 + 12345                               # above any pid_max default
    for name in ("last.npz", "best.npz", "metrics.jsonl"):
        (out / f".{name}.tmp-{dead}").write_bytes(b"half")
    rc, _, _ = run_cli(capsys, "train", src, *TINY, "--out", out)
    assert rc == 0 and sorted(os.listdir(out)) == ["best.npz", "last.npz", "metrics.jsonl"]


class Kill(BaseException):
    """A stand-in for SIGKILL that no except clause of rnnlab catches."""


@pytest.mark.parametrize("where", ["before-last", "after-last", "mid-epoch"])
def test_metrics_agree_with_the_checkpoint_after_a_kill(run_dir, tmp_path, monkeypatch, where):
    """Killed around the end-of-epoch saves (where the old code appended the row
    before saving), then resumed: one row per epoch in the checkpoint, always."""
    src, _ = run_dir
    cfg = train.LMTrainConfig(corpus=str(src), level="char", emb_size=4, hidden_size=8,
                              num_layers=1, batch_size=2, bptt=5, epochs=3, max_steps=4,
                              checkpoint_every=2, samples=0, progress=False,
                              out=str(tmp_path / "o"))
    real_save, real_last, at_end_of_2 = trainer.save, trainer.save_last, []

    def save(path, *a, **k):
        if where == "before-last" and at_end_of_2 and str(path).endswith("last.npz"):
            raise Kill                                     # metrics written, not renamed
        real_save(path, *a, **k)

    def save_last(cfg_, st, *a, **k):
        if st.epoch == 2 and st.step == 0:
            at_end_of_2.append(True)
        real_last(cfg_, st, *a, **k)
        if (where == "after-last" and st.epoch == 2 and st.step == 0) or (
                where == "mid-epoch" and st.epoch == 1 and st.step == 2):
            raise Kill
    monkeypatch.setattr(trainer, "save", save)
    monkeypatch.setattr(trainer, "save_last", save_last)
    with pytest.raises(Kill):
        train.fit(cfg, log=lambda *a: None)
    monkeypatch.undo()
    last, mpath = tmp_path / "o" / "last.npz", tmp_path / "o" / "metrics.jsonl"
    meta = checkpoint.load(last)["meta"]
    assert metrics.read(mpath) == json.loads(json.dumps(meta["history"]))
    assert len(meta["history"]) == meta["position"]["epoch"]
    r = train.fit(resume=str(last), log=lambda *a: None)
    rows = metrics.read(mpath)
    assert [row["epoch"] for row in rows] == [1, 2, 3] and len(r.history) == 3
    assert not [p for p in os.listdir(tmp_path / "o") if ".tmp-" in p]


# ================================================================ 6. the API trusts params=

CFG = layers.RNNConfig("lstm", 3, 4)
P = layers.init_params(CFG, 0, np.float64)


@pytest.mark.parametrize("params, words", [
    ({k: v for k, v in P.items() if k != "bias_ih_l0"}, ["missing ['bias_ih_l0']"]),
    ({**P, "extra": np.zeros(3)}, ["unexpected ['extra']"]),
    ({**P, "bias_hh_l0": P["bias_hh_l0"].astype(np.float32)}, ["all be float32 or all float64",
                                                              "bias_hh_l0: float32"]),
    ({**P, "weight_ih_l0": P["weight_ih_l0"].T}, ["'weight_ih_l0'", "(16, 3)", "transposed"]),
    ({**P, "weight_hh_l0": P["weight_hh_l0"][None]}, ["'weight_hh_l0'", "(1, 16, 4)"]),
    ({**P, "weight_hh_l0": P["weight_hh_l0"][:, :3]}, ["'weight_hh_l0'", "(16, 3)"]),
    ({**P, "bias_ih_l0": P["bias_ih_l0"].tolist()}, ["'bias_ih_l0'", "must be an array"]),
    ({k: v.astype(np.int64) for k, v in P.items()}, ["float32 or all float64", "int64"]),
], ids=["missing-bias", "extra-key", "mixed-dtype", "transposed", "extra-dim", "wrong-size",
        "list", "integer"])
def test_params_are_checked_everywhere(params, words):
    x = np.zeros((5, 2, 3))
    for call in (lambda: LSTM(3, 4, params=params), lambda: layers.forward(CFG, params, x)):
        with pytest.raises(ValueError) as e:
            call()
        for w in words:
            assert w in str(e.value), (w, str(e.value))
    cache = layers.forward(CFG, P, x)[2]
    with pytest.raises(ValueError):
        layers.backward(CFG, params, cache, np.ones((5, 2, 4)))


def test_converters_share_the_check():
    torch = pytest.importorskip("torch")
    from rnnlab import to_torch
    with pytest.raises(ValueError, match="transposed"):
        to_torch(CFG, {**P, "weight_ih_l0": P["weight_ih_l0"].T})
    assert isinstance(to_torch(CFG, P), torch.nn.LSTM)


def test_nonfinite_params_at_construction():
    with pytest.raises(ValueError, match=r"params\['weight_hh_l0'\] contains 64 NaN"):
        LSTM(3, 4, params={**P, "weight_hh_l0": P["weight_hh_l0"] * np.nan})


@pytest.mark.parametrize("dh_n, words", [
    (lambda h, c: (h,), "got a tuple of 1"), (lambda h, c: (h, c, h), "got a tuple of 3"),
    (lambda h, c: h, "got ndarray")])
def test_lstm_backward_wants_two_state_gradients(dh_n, words):
    m = LSTM(3, 4, dtype=np.float64, seed=0)
    out, (h, c) = m(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"dh_n must be a tuple \(dh_n, dc_n\)") as e:
        m.backward(np.ones_like(out), dh_n(h, c))
    assert words in str(e.value)


@pytest.mark.parametrize("kw, words", [
    (dict(dtype=np.int32), "dtype must be float32 or float64, got int32"),
    (dict(dtype="banana"), "dtype must be float32 or float64"),
    (dict(dtype=np.float16), "got float16"),
    (dict(params=[("weight_ih_l0", 1)]), "params must be a dict"),
    (dict(bias="no"), "bias must be True or False"),
    (dict(num_layers=2, dropout="0.5"), "dropout must be a number"),
    (dict(seed=-1), "seed must be None"),
])
def test_constructor_arguments(kw, words):
    with pytest.raises(ValueError, match=words):
        GRU(3, 4, **kw)


def test_integer_dtype_through_init_params():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        layers.init_params(CFG, 0, np.int64)


# ================================================================ 7. mutation after forward

@pytest.mark.parametrize("cls, kw", [(LSTM, {}), (GRU, dict(batch_first=True)),
                                     (RNN, dict(num_layers=2, bidirectional=True))])
def test_editing_input_or_output_after_forward_leaves_gradients_alone(cls, kw):
    rng = np.random.default_rng(0)
    m = cls(3, 4, dtype=np.float64, seed=1, **kw)
    x = rng.standard_normal((5, 2, 3))
    out, _ = m(x.copy())
    dout = rng.standard_normal(out.shape)
    want_dx, _ = m.backward(dout)
    want = {k: g.copy() for k, g in m.grads.items()}

    x2 = x.copy()
    out2, _ = m(x2)
    x2 *= 7.0                                            # the caller edits both in place
    out2 += 3.0
    dx, _ = m.backward(dout)
    np.testing.assert_array_equal(dx, want_dx)
    for k in want:
        np.testing.assert_array_equal(m.grads[k], want[k], err_msg=k)


def test_the_returned_output_is_the_callers_own():
    m = LSTM(3, 4, dtype=np.float64, seed=0)
    x = np.ones((5, 2, 3))
    out, (h, c) = m(x)
    cache = m._cache.seq[0][0]
    for a in (out, h, c):
        for b in (cache.x, *cache.states):
            assert not np.shares_memory(a, b)
    assert not np.shares_memory(x, cache.x)


# ---------------------------------------------------------------- the lab's commands

@pytest.mark.parametrize("argv, words", [
    (("tasks", "adding", "--clip", "-1"), ("--clip", ">= 0", "-1")),
    (("tasks", "adding", "--lr", "nan"), ("--lr", "> 0", "nan")),
    (("tasks", "adding", "--lr", "-0.1"), ("--lr", "> 0")),
    (("tasks", "adding", "--batch", "0"), ("--batch", ">= 1")),
    (("tasks", "adding", "--steps", "-5"), ("--steps", ">= 1")),
    (("tasks", "adding", "--record-every", "-1"), ("--record-every", ">= 0")),
    (("tasks", "adding", "--forget-bias", "inf", "--cell", "lstm"), ("--forget-bias",)),
    (("tasks", "nope"), ("unknown task", "nope", "adding")),
    (("tasks", "adding", "--cell", "lstmm"), ("--cell", "lstm")),
    (("tasks", "sweep", "--seeds", "-1"), ("--seeds",)),
    (("gradflow", "--steps", "-3"), ("--steps", ">= 0")),
    (("gradflow", "--batch", "0"), ("--batch",)),
    (("gradflow", "--cells", "foo"), ("foo", "rnn, lstm")),
    (("gradflow", "--length", "1"), ("--length",)),
    (("gradflow", "--seed", "-1"), ("--seed", ">= 0")),
    (("demo", "--seed", "-1"), ("--seed", ">= 0")),
])
def test_lab_commands_check_every_value(cli_error, argv, words):
    refused(cli_error, *argv, words=words)


def test_lab_divergence_names_the_fix(cli_error):
    refused(cli_error, "tasks", "adding", "--cell", "irnn", "--lr", "1e9", "--clip", "0",
            "--optimizer", "sgd", "--steps", "60", "--hidden", "8", "--length", "10",
            "--record-every", "0", words=("training diverged", "lower --lr"))
