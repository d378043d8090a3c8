"""``rnnlab translate``: the twelfth round's audit of bad input. Every case is one
line ``rnnlab translate: error: ...`` with exit code 2 that names the option or
file, never a raw OS/NumPy message, a silently ignored option or an empty result."""
import io
import re
import sys

import pytest

from rnnlab.cli.command import main
from rnnlab.io import checkpoint
from rnnlab.translate import data, decode, train

TINY = ["--epochs", "1", "--max-steps", "1", "--emb-size", "2", "--enc-hidden", "2",
        "--dec-hidden", "2", "--bleu-sentences", "1", "--no-progress"]
SRC, TGT = "a b c\nb c\nc a\nd a b\n", "x y z\ny z\nz x\nw x y\n"


def write_data(prefix, train=(SRC, TGT), valid=("a b\n", "x y\n"), test=("c b\n", "z y\n")):
    for split, pair in (("train", train), ("valid", valid), ("test", test)):
        if pair is not None:
            for lang, body in zip(("src", "tgt"), pair):
                mode = "wb" if isinstance(body, bytes) else "w"
                with open(f"{prefix}.{split}.{lang}", mode) as f:
                    f.write(body)
    return str(prefix)


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """Two tiny models of one small data set: with attention and without."""
    root = tmp_path_factory.mktemp("r12")
    prefix = write_data(root / "t")
    out = {}
    for name, extra in (("att", []), ("none", ["--attention", "none"])):
        argv = ["translate", "train", "--data", prefix, "--out", str(root / name)] + TINY + extra
        assert main(argv) == 0
        out[name] = str(root / name / "best.npz")
    out["root"], out["prefix"] = root, prefix
    (root / "two.txt").write_text("a b\nc\n")
    out["two"] = str(root / "two.txt")
    return out


# 1 ------------------------------------------------------------------ --batch-size

@pytest.mark.parametrize("action", ["eval", "translate"])
def test_batch_size_zero_is_refused_by_its_range(ck, cli_error, action):
    extra = ["--input", ck["two"]] if action == "translate" else []
    msg = cli_error(["translate", action, ck["att"], "--batch-size", "0"] + extra)
    assert re.search("--batch-size: expected an integer >= 1, got 0", msg), msg


# 2 ------------------------------------------------------------------ paths

@pytest.mark.parametrize("n", ["0", "-1"])
def test_paths_sentences_must_be_at_least_one(ck, cli_error, n):
    msg = cli_error(["translate", "paths", ck["att"], ck["none"], "--sentences", n,
                     "--out", ck["root"] / "p"])
    assert re.search(f"--sentences: expected an integer >= 1, got {n}", msg), msg


def test_paths_checks_which_checkpoint_is_which(ck, cli_error, tmp_path):
    out = ["--out", tmp_path / "p", "--sentences", "1"]
    msg = cli_error(["translate", "paths", ck["none"], ck["att"]] + out)
    assert re.search("none/best.npz: expected a model with attention as the first checkpoint "
                     ".*swapped", msg), msg
    msg = cli_error(["translate", "paths", ck["att"], ck["att"]] + out)
    assert re.search("att/best.npz: expected a model with --attention none "
                     "as the second checkpoint", msg), msg
    other = checkpoint.load(ck["none"], kind="translate")          # another task's model
    other["meta"]["app"]["data"] = "dates"
    checkpoint.save(tmp_path / "other.npz", other["params"], None, None, other["meta"],
                    "translate")
    msg = cli_error(["translate", "paths", ck["att"], tmp_path / "other.npz"] + out)
    assert re.search("other.npz: expected a model of the same data as .* found dates src->tgt",
                     msg), msg
    assert not (tmp_path / "p").exists()
    assert main(["translate", "paths", ck["att"], ck["none"]] + [str(a) for a in out]) == 0
    assert (tmp_path / "p" / "paths.html").exists()


# 3 ------------------------------------------------------------------ decoding values

@pytest.mark.parametrize("flags, words", [
    (["--alpha", "nan", "--beam", "2"], "--alpha: expected a number >= 0, got nan"),
    (["--alpha", "-1", "--beam", "2"], "--alpha: expected a number >= 0, got -1"),
    (["--max-len-a", "-1"], "--max-len-a: expected a number >= 0"),
    (["--max-len-a", "nan"], "--max-len-a: expected a number >= 0 .*got nan"),
    (["--max-len-b", "-5"], "--max-len-b: expected a number >= 0"),
    (["--max-len-b", "1e300"], "--max-len-b: expected a number >= 0 and <= 10000"),
    (["--max-len-a", "0", "--max-len-b", "0"], "--max-len-a/--max-len-b: expected a \\+ b >= 2"),
    (["--alpha", "1"], "--alpha 1: ranks the hypotheses of a beam search.*--beam 1"),
])
@pytest.mark.parametrize("action", ["eval", "translate"])
def test_bad_decoding_values_are_refused(ck, cli_error, action, flags, words):
    extra = ["--input", ck["two"]] if action == "translate" else []
    msg = cli_error(["translate", action, ck["att"]] + flags + extra)
    assert re.search(words, msg), msg


def test_eval_uses_the_length_cap_it_is_given(ck, monkeypatch):
    """--max-len-a/-b were silently ignored by eval (only translate used them)."""
    seen = []
    real = train.translate_pairs

    def spy(*a, **kw):
        seen.append(a[7:9])
        return real(*a, **kw)
    monkeypatch.setattr(train, "translate_pairs", spy)
    assert main(["translate", "eval", ck["att"], "--max-len-a", "0", "--max-len-b", "2"]) == 0
    assert seen == [(0.0, 2.0)]
    mcfg, params, vocabs, _ = train.load_model(ck["att"])
    pairs = [(["a", "b", "c"], ["x"])] * 3
    hyps = train.translate_pairs(mcfg, params, pairs, vocabs, max_len_a=0, max_len_b=2)
    assert all(len(h) <= 1 for h in hyps)


# 4 ------------------------------------------------------------------ --beam cap

def test_beam_is_capped(ck, cli_error):
    msg = cli_error(["translate", "eval", ck["att"], "--beam", "100000"])
    assert re.search("--beam: expected an integer >= 1 and <= 1000, got 100000", msg), msg
    V = train.load_model(ck["att"])[0].tgt_vocab
    msg = cli_error(["translate", "translate", ck["att"], "--input", ck["two"], "--beam", V + 1])
    assert re.search(f"--beam: expected an integer from 1 to {V} for this model "
                     f"\\(target vocabulary {V} ", msg), msg
    assert main(["translate", "translate", ck["att"], "--input", ck["two"], "--beam", str(V)]) == 0


def test_wide_beams_run_a_few_sentences_at_a_time_with_the_same_result(ck, monkeypatch):
    mcfg, params, vocabs, _ = train.load_model(ck["att"])
    b = data.make_batch([(["a", "b"], ["x"]), (["c"], ["y"]), (["d", "a", "b"], ["z"])],
                        *vocabs)
    whole = decode.beam_search(mcfg, params, b.src, b.src_len, 3, 0.5, 2)
    monkeypatch.setattr(decode, "MAX_BEAM_CELLS", 3 * mcfg.tgt_vocab)    # one sentence a pass
    parts = decode.beam_search(mcfg, params, b.src, b.src_len, 3, 0.5, 2)
    assert [[h.tokens for h in x] for x in parts] == [[h.tokens for h in x] for x in whole]
    assert [h.score for x in parts for h in x] == pytest.approx(
        [h.score for x in whole for h in x])


# 5, 6 ---------------------------------------------------------------- training data

def test_empty_training_files_are_refused(tmp_path, cli_error):
    prefix = write_data(tmp_path / "et", train=("", ""))
    msg = cli_error(["translate", "train", "--data", prefix, "--out", tmp_path / "o"] + TINY)
    assert re.search("--data .*et: .*et.train.src and .*et.train.tgt are empty", msg), msg
    assert not (tmp_path / "o").exists()


def test_nul_bytes_are_refused_as_binary(ck, tmp_path, cli_error):
    prefix = write_data(tmp_path / "nul", train=(b"a\0b\nc\n", "x\ny\n"))
    msg = cli_error(["translate", "train", "--data", prefix, "--out", tmp_path / "o"] + TINY)
    assert re.search("nul.train.src: looks like a binary file \\(contains NUL bytes", msg), msg
    (tmp_path / "nul.txt").write_bytes(b"a b\n\0\n")
    msg = cli_error(["translate", "translate", ck["att"], "--input", tmp_path / "nul.txt"])
    assert re.search("--input .*nul.txt: looks like a binary file", msg), msg


def test_text_mode_line_ends_are_kept(tmp_path):
    (tmp_path / "crlf.txt").write_bytes("é a\r\nb\rc\n".encode())
    assert data.read_lines(tmp_path / "crlf.txt") == ["é a", "b", "c"]


# 7 ------------------------------------------------------------------ --input

def test_empty_input_file_stdin_and_folder_are_refused(ck, tmp_path, cli_error, monkeypatch):
    (tmp_path / "empty.txt").write_text("")
    msg = cli_error(["translate", "translate", ck["att"], "--input", tmp_path / "empty.txt"])
    assert re.search("--input .*empty.txt: file is empty; expected source sentences", msg), msg
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    msg = cli_error(["translate", "translate", ck["att"]])
    assert re.search("--input: standard input is empty", msg), msg
    msg = cli_error(["translate", "translate", ck["att"], "--input", tmp_path])
    assert re.search("--input .*: is a folder; expected a text file", msg), msg
    msg = cli_error(["translate", "translate", ck["att"], "--input", ck["two"],
                     "--score", tmp_path])
    assert re.search("--score .*: is a folder; expected a text file", msg), msg


def test_eval_on_a_split_the_data_lacks(ck, tmp_path, cli_error):
    prefix = write_data(tmp_path / "nt", test=None)
    ckpt = checkpoint.load(ck["att"], kind="translate")
    ckpt["meta"]["app"]["data"] = prefix
    checkpoint.save(tmp_path / "nt.npz", ckpt["params"], None, None, ckpt["meta"], "translate")
    msg = cli_error(["translate", "eval", tmp_path / "nt.npz"])
    assert re.search("--split test: .*nt has no test pairs; choose --split train or valid",
                     msg), msg


# 8 ------------------------------------------------------------------ --out

def test_output_paths_are_checked_before_any_work(ck, tmp_path, cli_error):
    (tmp_path / "afile").write_text("x")
    msg = cli_error(["translate", "average", ck["att"], "--out", tmp_path / "afile" / "x.npz"])
    assert re.search("--out .*afile/x.npz: .*afile is a file, "
                     "so no folder can be made under it", msg), msg
    msg = cli_error(["translate", "average", ck["att"], "--out", tmp_path])
    assert re.search("--out .*: is a folder; expected a file name", msg), msg
    msg = cli_error(["translate", "paths", ck["att"], ck["none"],
                     "--out", tmp_path / "afile" / "p"])
    assert re.search("--out .*afile/p: .*afile is a file", msg), msg
    msg = cli_error(["translate", "paths", ck["att"], ck["none"], "--out", tmp_path / "afile"])
    assert re.search("--out .*afile: exists and is not a folder", msg), msg


# 9, 10 -------------------------------------------------------------- model options

@pytest.mark.parametrize("flags, words", [
    (["--tie-embeddings", "--emb-size", "3"],
     "--tie-embeddings: .*--emb-size 3 .*with --style bahdanau it has 9 .*--dec-hidden \\+ 2 "
     "\\* --enc-hidden \\+ --emb-size.*--style luong"),
    (["--tie-embeddings", "--emb-size", "3", "--style", "luong"],
     "--emb-size: expected --dec-hidden \\(2\\), .*--style luong, for --tie-embeddings, got 3"),
    (["--input-feed", "--style", "bahdanau"], "--input-feed: .*no effect"),
    (["--attention", "none", "--attn-size", "5"], "--attn-size 5: .*--attention none .*no effect"),
    (["--attention", "dot", "--dec-hidden", "4", "--attn-size", "5"],
     "--attn-size 5: .*--attention dot .*no effect"),
    (["--attention", "dot", "--dec-hidden", "3"], "--dec-hidden: expected 2 \\* --enc-hidden = 4"),
])
def test_model_options_are_named_by_their_flags(tmp_path, cli_error, flags, words):
    prefix = write_data(tmp_path / "t")
    msg = cli_error(["translate", "train", "--data", prefix, "--out", tmp_path / "o"] + TINY
                    + flags)
    assert re.search(words, msg), msg
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags", [["--nbest", "2", "--beam", "2"], ["--beam", "2"],
                                   ["--alpha", "1", "--beam", "2"], ["--max-len-b", "5"]])
def test_score_with_search_options_is_refused(ck, capsys, cli_error, flags):
    msg = cli_error(["translate", "translate", ck["att"], "--input", ck["two"],
                     "--score", ck["two"]] + flags)
    assert re.search("--score: scores the given translations without a search, so --", msg), msg
    assert main(["translate", "translate", ck["att"], "--input", ck["two"], "--score",
                 ck["two"]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_paths_measures_on_the_runs_own_held_out_split(tmp_path, monkeypatch):
    """``translate paths`` reads the held-out pairs with the checkpoints' own seed
    (it used seed 0: a run of another seed was measured on its training pairs),
    and refuses two runs whose seeded splits differ."""
    from rnnlab.translate import data, gradpaths, train
    seen = []
    real = data.load_pair
    monkeypatch.setattr(data, "load_pair", lambda *a, **k: seen.append(k) or real(*a, **k))
    args = {"seed": 3, "short": True}
    monkeypatch.setattr(train, "split_args", lambda path: dict(args))
    monkeypatch.setattr(gradpaths, "collect", lambda path, pairs: (_ for _ in ()).throw(
        RuntimeError("stop after the split")))
    meta = {"data": "dates", "src_lang": "src", "tgt_lang": "tgt"}

    class M:
        attends, attention = True, "additive"

    class N:
        attends, attention = False, "none"
    monkeypatch.setattr(train, "load_model",
                        lambda p: (M if p == "a" else N, None, None, dict(meta)))
    with pytest.raises(RuntimeError, match="stop after the split"):
        gradpaths.run("a", "b", 2, str(tmp_path / "out"))
    assert seen and seen[-1] == {"seed": 3, "short": True}
    monkeypatch.setattr(train, "split_args",
                        lambda path: {"seed": 3 if path == "a" else 4, "short": True})
    with pytest.raises(ValueError, match="expected the held-out split of a"):
        gradpaths.run("a", "b", 2, str(tmp_path / "out"))


def test_length_caps_are_checked_for_the_python_api_too():
    assert decode.max_lengths([3], 1.5, 10).tolist() == [14]
    for a, b in ((float("nan"), 10), (1.5, -1), (float("inf"), 0)):
        with pytest.raises(ValueError, match="max_len_a, max_len_b: expected finite numbers"):
            decode.max_lengths([3], a, b)
