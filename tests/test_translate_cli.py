"""``rnnlab translate``: train, resume exactly, eval, translate (n-best, scoring),
and bad input as one-line errors."""
import io
import sys

import numpy as np
import pytest

from rnnlab.cli.command import main
from rnnlab.io import checkpoint

TINY = ["--max-train", "256", "--emb-size", "8", "--enc-hidden", "8", "--dec-hidden", "8",
        "--batch-size", "32", "--bleu-sentences", "16", "--no-progress", "--lr", "0.01"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tr") / "run"
    assert main(["translate", "train", "--out", str(out), "--epochs", "2"] + TINY) == 0
    return out


def test_train_writes_checkpoints_page_and_pictures(trained):
    for f in ("best.npz", "last.npz", "metrics.jsonl", "report.html", "attention_0.png"):
        assert (trained / f).exists(), f
    html = (trained / "report.html").read_text()
    assert "data:image/png;base64" in html and "test_exact" in html


def test_resume_is_bit_identical(trained, tmp_path):
    out = tmp_path / "r"
    assert main(["translate", "train", "--out", str(out), "--epochs", "1"] + TINY) == 0
    assert main(["translate", "train", "--resume", str(out / "last.npz"), "--epochs", "2",
                 "--no-progress"]) == 0
    a = checkpoint.load(str(out / "last.npz"), kind="translate")["params"]
    b = checkpoint.load(str(trained / "last.npz"), kind="translate")["params"]
    assert all(np.array_equal(a[k], b[k]) for k in b)


def test_eval_prints_both_bleu_conventions(trained, capsys):
    assert main(["translate", "eval", str(trained / "best.npz"), "--split", "valid",
                 "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "BLEU (lowercased tokens" in out and "sacreBLEU" in out and "nrefs:1" in out


def test_translate_nbest_and_score(trained, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.txt"
    src.write_text("3 march 1998\n12/11/2031\n")
    ck = str(trained / "best.npz")
    assert main(["translate", "translate", ck, "--input", str(src), "--beam", "3",
                 "--nbest", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("0 ||| ") and lines[3].startswith("1 ||| ")
    monkeypatch.setattr(sys, "stdin", io.StringIO("3 march 1998\n"))
    assert main(["translate", "translate", ck]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    tgt = tmp_path / "t.txt"
    tgt.write_text("1998-03-03\n2031-11-12\n")
    assert main(["translate", "translate", ck, "--input", str(src), "--score", str(tgt)]) == 0
    scores = [float(x.split("|||")[-1]) for x in capsys.readouterr().out.splitlines()]
    assert len(scores) == 2 and all(s < 0 for s in scores)


@pytest.mark.parametrize("argv, words", [
    (["translate", "translate", "{ck}", "--input", "{empty}"], "line 2 is empty"),
    (["translate", "translate", "{ck}", "--input", "{src}", "--score", "{empty}"],
     "--score .*: 2 lines, but --input has 1"),
    (["translate", "translate", "{ck}", "--input", "{src}", "--beam", "2", "--nbest", "3"],
     "expected 1 <= nbest <= beam"),
    (["translate", "train", "--resume", "{ck}", "--src-lang", "de", "--no-progress"],
     "cannot resume with different settings"),
    (["translate", "eval", "{missing}"], "no such checkpoint"),
    (["translate", "translate", "{ck}", "--input", "{src}", "--src-lang", "de"],
     "checkpoint translates src->tgt, not de->tgt"),
    (["translate", "train", "--data", "{missing}"], "expected dates, multi30k, tatoeba or a prefix"),
    (["translate", "train", "--teacher-forcing", "1.5"], "--teacher-forcing: expected a number"),
])
def test_bad_input_is_one_line_error(trained, tmp_path, capsys, argv, words):
    (tmp_path / "empty.txt").write_text("1 may 2001\n\n")
    (tmp_path / "src.txt").write_text("1 may 2001\n")
    fill = {"ck": str(trained / "best.npz"), "empty": str(tmp_path / "empty.txt"),
            "src": str(tmp_path / "src.txt"), "missing": str(tmp_path / "nothing")}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnlab translate: error:") and len(err.strip().splitlines()) == 1
    import re
    assert re.search(words, err), err


def test_checkpoint_for_another_language_pair_is_refused(trained):
    from rnnlab.translate import train
    meta = train.load_model(str(trained / "best.npz"))[3]
    with pytest.raises(ValueError, match="translates src->tgt, not de->en"):
        train.check_pair(meta, "de", "en", "best.npz")


def test_keep_epochs_and_average(tmp_path, capsys):
    out = tmp_path / "k"
    assert main(["translate", "train", "--out", str(out), "--epochs", "3", "--keep-epochs",
                 "2"] + TINY) == 0
    assert sorted(p.name for p in out.glob("epoch*.npz")) == ["epoch2.npz", "epoch3.npz"]
    cks = [str(out / f"epoch{k}.npz") for k in (2, 3)]
    assert main(["translate", "average"] + cks + ["--out", str(tmp_path / "avg.npz")]) == 0
    a, b, avg = (checkpoint.load(p, kind="translate")["params"]
                 for p in cks + [str(tmp_path / "avg.npz")])
    assert avg.keys() == a.keys()
    assert all(np.allclose(avg[k], (a[k].astype(np.float64) + b[k]) / 2, atol=1e-7) for k in a)
    assert not np.array_equal(a["out.bias"], b["out.bias"])
    assert main(["translate", "eval", str(tmp_path / "avg.npz"), "--split", "valid"]) == 0
    assert "BLEU (lowercased tokens" in capsys.readouterr().out
    ck = checkpoint.load(cks[0], kind="translate")
    ck["meta"]["app"]["tgt_vocab"][-1] += "x"                  # another run's vocabulary
    checkpoint.save(tmp_path / "other.npz", ck["params"], None, None, ck["meta"], "translate")
    other = [cks[1], str(tmp_path / "other.npz"), "--out", str(tmp_path / "x.npz")]
    assert main(["translate", "average"] + other) == 2
    assert "expected the same model" in capsys.readouterr().err
    ck = checkpoint.load(cks[0], kind="translate")                # same meta, a cut array
    ck["params"]["out.bias"] = ck["params"]["out.bias"][:-1]
    checkpoint.save(tmp_path / "cut.npz", ck["params"], None, None, ck["meta"], "translate")
    cut = [cks[1], str(tmp_path / "cut.npz"), "--out", str(tmp_path / "x.npz")]
    assert main(["translate", "average"] + cut) == 2
    assert "out.bias is float32" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()
