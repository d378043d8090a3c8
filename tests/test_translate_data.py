"""Translation data: readers with clear errors, vocabularies, batches, the date task,
and the shared data files when present."""
from pathlib import Path

import numpy as np
import pytest

from rnnlab.translate import data, dates

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "translation"


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return p


def test_parallel_files_refuse_mismatched_counts_and_empty_lines(tmp_path):
    a = _write(tmp_path, "a.de", ["ein hund", "zwei"])
    b = _write(tmp_path, "a.en", ["a dog"])
    with pytest.raises(ValueError, match=r"a.de has 2 lines but .*a.en has 1"):
        data.read_parallel(a, b)
    c = _write(tmp_path, "c.en", ["a dog", "  "])
    with pytest.raises(ValueError, match=r"c.en: line 2 is empty"):
        data.read_parallel(a, c)
    (tmp_path / "bad.en").write_bytes(b"ok\n\xff\n")
    with pytest.raises(ValueError, match="expected UTF-8"):
        data.read_parallel(tmp_path / "bad.en", a)
    with pytest.raises(FileNotFoundError, match="nope.en: no such file"):
        data.read_parallel(tmp_path / "nope.en", a)


def test_user_files_by_prefix(tmp_path):
    for split in ("train", "valid"):
        _write(tmp_path, f"c.{split}.xx", ["a b", "c"])
        _write(tmp_path, f"c.{split}.yy", ["d", "e f"])
    s = data.load_pair(str(tmp_path / "c"), "xx", "yy")
    assert s["valid"] == [(["a", "b"], ["d"]), (["c"], ["e", "f"])] and "test" not in s
    with pytest.raises(FileNotFoundError, match=r"c\.train\.zz: no such file"):
        data.load_pair(str(tmp_path / "c"), "xx", "zz")


def test_vocab_min_count_unknowns_and_decoding():
    v = data.build_vocab([["a", "b", "a"], ["c", "a", "b"]], min_count=2)
    assert v.itos == list(data.SPECIALS) + ["a", "b"]
    assert v.encode(["a", "c", "zzz"]) == [4, data.UNK_ID, data.UNK_ID]
    assert v.decode([4, data.UNK_ID, 5, data.EOS_ID, 4]) == ["a", "<unk>", "b"]
    with pytest.raises(ValueError, match="must start with"):
        data.Vocab(["a", "b"])


def test_batches_are_padded_time_major_with_bos_and_eos():
    v = data.build_vocab([["x", "y"]])
    b = data.make_batch([(["x", "y"], ["y"]), (["y"], ["x", "x", "q"])], v, v)
    assert b.src.shape == (2, 2) and list(b.src_len) == [2, 1] and b.src[1, 1] == data.PAD_ID
    assert list(b.tgt[:, 0]) == [data.BOS_ID, 5, data.EOS_ID, 0, 0]
    assert list(b.tgt[:, 1]) == [data.BOS_ID, 4, 4, data.UNK_ID, data.EOS_ID]


def test_bucketed_order_is_seeded_and_covers_every_pair():
    pairs = [(["w"] * (1 + i % 7), ["v"]) for i in range(103)]
    o1, o2 = data.bucket_order(pairs, 8, 0, 1), data.bucket_order(pairs, 8, 0, 1)
    assert all((a == b).all() for a, b in zip(o1, o2))
    assert sorted(np.concatenate(o1)) == list(range(103))
    assert any((a != b).any() for a, b in zip(o1, data.bucket_order(pairs, 8, 0, 2)))


def test_tutorial_normalisation_and_filter(tmp_path):
    assert data.normalize_tutorial("Je suis prête à partir !") == "je suis prete a partir !"
    f = _write(tmp_path, "fra.txt", ["I am cold.\tJ'ai froid.", "Go.\tVa !",
                                     "He's a very very very very very very very tall man.\tIl."])
    assert data.read_tatoeba(f) == [(["i", "am", "cold", "."], ["j", "ai", "froid", "."])]
    assert len(data.read_tatoeba(f, short=False)) == 3
    bad = _write(tmp_path, "bad.txt", ["one field only"])
    with pytest.raises(ValueError, match="line 1 has 1 tab-separated fields; expected 2"):
        data.read_tatoeba(bad)


def test_date_task_is_seeded_disjoint_and_correct():
    s = dates.splits(0, {"train": 300, "valid": 20, "test": 50})
    assert s == dates.splits(0, {"train": 300, "valid": 20, "test": 50})
    tgt = lambda split: {"".join(t) for _, t in s[split]}
    assert not tgt("train") & tgt("test") and not tgt("valid") & tgt("test")
    import datetime as dt
    d = dt.date(1998, 3, 3)
    assert dates.render(d, "{A}, {d} {B} {Y}") == "tuesday, 3 march 1998"
    assert dates.render(d, "{dd}.{mm}.{y}") == "03.03.98"


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared data {SHARED} absent")
def test_shared_corpora_have_the_documented_sizes():
    m = data.load_pair("multi30k", "de", "en")
    assert [len(m[k]) for k in ("train", "valid", "test")] == [29000, 1014, 1000]
    pairs = data.read_tatoeba(SHARED / "tatoeba-fra-eng" / "fra.txt")
    assert len(pairs) == 10922                                  # the README's filter count
    t = data.split_seeded(pairs, seed=0)
    assert [len(t[k]) for k in ("train", "valid", "test")] == [9830, 546, 546]
    assert t == data.split_seeded(pairs, seed=0) and t != data.split_seeded(pairs, seed=1)
    with pytest.raises(ValueError, match="multi30k has en and de"):
        data.load_pair("multi30k", "fr", "en")
