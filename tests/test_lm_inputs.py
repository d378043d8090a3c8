"""Corpus readers and bad input: every failure is a clear message naming the file,
and a non-zero exit from the CLI."""
import errno
import os
import zipfile

import numpy as np
import pytest

from rnnlab.io import checkpoint
from rnnlab import cli
from rnnlab.lm import corpus, model as lm, vocab


def _main(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _text(path, n=3000):
    rng = np.random.default_rng(1)
    path.write_text(" ".join(rng.choice(["ab", "ba", "cab", "abc"], n // 3)) + "\n")
    return path


TINY = ("--level", "char", "--hidden-size", "8", "--emb-size", "4", "--num-layers", "1",
        "--batch-size", "2", "--bptt", "5", "--epochs", "1", "--max-steps", "3",
        "--samples", "0", "--no-progress")


@pytest.fixture
def trained(tmp_path):
    src = _text(tmp_path / "t.txt")
    rc = cli.main(["train", str(src), *TINY, "--out", str(tmp_path / "run")])
    assert rc == 0
    return src, tmp_path / "run" / "last.npz"


@pytest.mark.parametrize("content, message", [
    (None, "no such file"), (b"", "empty"), (b"  \n", "empty"),
    (b"abc\x00\x01\x02def", "binary"), (b"caf\xe9 au lait", "not valid UTF-8"),
    (b"abc", "too short for batch size")])
def test_bad_corpus_is_a_clear_error(tmp_path, capsys, content, message):
    path = tmp_path / "c.txt"
    if content is not None:
        path.write_bytes(content)
    rc, err = _main(capsys, "train", path, *TINY, "--out", tmp_path / "o")
    assert rc == 2
    assert message in err and str(path) in err


def test_csv_reader_reddit_form(tmp_path):
    path = tmp_path / "reddit.csv"
    path.write_text('body\n'
                    '"First line. Second one!\nThird, on a new line?"\n'
                    'plain comment without quotes\n'
                    '"He said ""hi"" &gt; me &amp; you."\n', encoding="utf-8")
    s = corpus.csv_sentences(str(path))
    assert s[0] == ["SENTENCE_START", "first", "line", ".", "SENTENCE_END"]
    assert s[1][-2:] == ["!", "SENTENCE_END"]
    assert s[2][1:4] == ["third", ",", "on"]
    assert s[3] == ["SENTENCE_START", "plain", "comment", "without", "quotes", "SENTENCE_END"]
    assert s[4][1:] == ["he", "said", '"', "hi", '"', ">", "me", "&", "you", ".", "SENTENCE_END"]


def test_csv_without_body_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text\nhello\n")
    with pytest.raises(ValueError, match="no 'body' column"):
        corpus.csv_sentences(str(path))


def test_ptb_layout_adds_eos_per_line(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text(" a b <unk> \n c \n")
    c = corpus.load(str(tmp_path))
    assert c.level == "word" and c.train == ["a", "b", "<unk>", "<eos>", "c", "<eos>"]


def test_vocab_caps_min_count_and_roundtrip(tmp_path):
    v = vocab.build(list("aaabbc"), "char", max_size=3, unk="<unk>")
    assert v.itos == ("<unk>", "a", "b")
    assert list(vocab.encode(v, list("abcz"))) == [1, 2, 0, 0]
    assert vocab.build(list("aaabbc"), "char", min_count=2).itos == ("<unk>", "a", "b")
    vocab.save(v, tmp_path / "v.json")
    assert vocab.load(tmp_path / "v.json") == v


def test_embedded_default_needs_no_download():
    c = corpus.load()
    assert c.level == "char" and len(c.train) > 100_000 and c.valid and c.test


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_checkpoint(trained, capsys, damage):
    _, ck = trained
    data = bytearray(ck.read_bytes())
    if damage == "truncate":
        data = data[:len(data) // 2]
    else:                                      # a byte inside an array's data: CRC fails
        with zipfile.ZipFile(ck) as z:
            info = z.getinfo("param/rnn.weight_hh_l0.npy")
        data[info.header_offset + 30 + len(info.filename) + info.file_size // 2] ^= 0xFF
    ck.write_bytes(bytes(data))
    rc, err = _main(capsys, "eval", ck)
    assert rc == 2 and "truncated or corrupt" in err and str(ck) in err


def test_resume_with_other_architecture_or_vocabulary(trained, capsys):
    src, ck = trained
    rc, err = _main(capsys, "train", "--resume", ck, "--hidden-size", "9")
    assert rc == 2 and "--hidden-size: checkpoint 8 vs given 9" in err
    src.write_text("xyz " * 500)                     # same path, other vocabulary
    rc, err = _main(capsys, "train", "--resume", ck)
    assert rc == 2 and "vocabulary" in err


def test_weights_that_do_not_fit_the_config(trained, capsys, tmp_path):
    _, ck = trained
    d = checkpoint.load(str(ck))
    d["params"]["encoder.weight"] = d["params"]["encoder.weight"][:-1]
    bad = tmp_path / "bad.npz"
    checkpoint.save(str(bad), d["params"], d["opt_state"], d["state"], d["meta"])
    rc, err = _main(capsys, "generate", bad)
    assert rc == 2 and "'encoder.weight'] must have shape" in err and str(bad) in err


def test_full_disk_keeps_previous_checkpoint(trained, monkeypatch):
    _, ck = trained
    before = ck.read_bytes()
    d = checkpoint.load(str(ck))

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(checkpoint.CheckpointError, match="No space left") as e:
        checkpoint.save(str(ck), d["params"], d["opt_state"], d["state"], d["meta"])
    assert str(ck) in str(e.value)
    assert ck.read_bytes() == before
    assert [p for p in os.listdir(ck.parent) if ".tmp-" in p] == []


def test_unknown_characters_in_prime(trained, capsys):
    _, ck = trained
    rc, err = _main(capsys, "generate", ck, "--prime", "abQ")
    assert rc == 2 and "'Q'" in err


def test_toml_config_sets_options(tmp_path, capsys):
    src = _text(tmp_path / "t.txt")
    (tmp_path / "run.toml").write_text('init_scale = 0.2\nmode = "gru"\nhidden_size = 6\n')
    rc = cli.main(["train", str(src), *TINY, "--config", str(tmp_path / "run.toml"),
                   "--out", str(tmp_path / "o")])
    assert rc == 0
    mcfg = lm.load_model(str(tmp_path / "o" / "last.npz")).config
    assert mcfg.init_scale == 0.2 and mcfg.mode == "gru"
    assert mcfg.hidden_size == 8                              # the command line wins
    (tmp_path / "bad.toml").write_text("hiden_size = 6\n")
    rc, err = _main(capsys, "train", src, "--config", tmp_path / "bad.toml")
    assert rc == 2 and "hiden_size" in err


def test_help_everywhere(capsys):
    for cmd in ("train", "eval", "generate"):
        assert cli.main([cmd, "--help"]) == 0
        assert "usage" in capsys.readouterr().out
