"""Multi30k de->en with the popular PyTorch attention baseline, and its scores.

The reference is bentrevett/pytorch-seq2seq, notebook 3 ("Neural Machine
Translation by Jointly Learning to Align and Translate"): embeddings 256,
bidirectional GRU encoder 512, additive attention, GRU decoder 512 with output
from [h; context; embedding], dropout 0.5, Adam (lr 1e-3), clip 1, batch 128,
teacher forcing 0.5, vocabularies of tokens seen at least twice, 10 epochs,
best epoch by validation loss. Published: test perplexity 23-26 and BLEU 28.1 on
lower-cased tokens (torchtext's bleu_score, greedy decoding).

The defaults below are those settings. Differences that remain: the data's own
Moses tokens (``tok/``, lower-cased) instead of spaCy's, and rnnlab's U(-0.1,
0.1) initialisation instead of N(0, 0.01). The script trains with the shared
trainer (``rnnlab translate train`` underneath), then scores the best epoch on
test 2016: perplexity, greedy and beam BLEU on lower-cased tokens (labelled),
and sacreBLEU against the raw references with its signature. It appends one
record (date, machine, command, numbers) to ``benchmarks/results/translate_multi30k.md``.

    python benchmarks/translate_multi30k.py                       # the published setting
    python benchmarks/translate_multi30k.py --emb 128 --hidden 256 --epochs 3   # scaled
"""
import argparse
import datetime
import os
import platform
import sys
import time

from rnnlab.io import checkpoint
from rnnlab.translate import bleu, data, train

RESULTS = os.path.join(os.path.dirname(__file__), "results", "translate_multi30k.md")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=int, default=256)
    p.add_argument("--hidden", type=int, default=512, help="encoder (per direction) and decoder")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--teacher-forcing", type=float, default=0.5)
    p.add_argument("--max-train", type=int, default=0, help="first N training pairs (0: all)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--out", default="runs/multi30k")
    p.add_argument("--results", default=RESULTS)
    p.add_argument("--eval-only", metavar="CHECKPOINT",
                   help="skip training: score this checkpoint (e.g. a run stopped early)")
    a = p.parse_args(argv)
    cfg = train.TranslateOptions(
        data="multi30k", src_lang="de", tgt_lang="en", min_count=2, emb_size=a.emb,
        enc_hidden=a.hidden, dec_hidden=a.hidden, attention="additive", style="bahdanau",
        dropout=a.dropout, optimizer="adam", lr=1e-3, clip=1.0, epochs=a.epochs,
        batch_size=a.batch, teacher_forcing=a.teacher_forcing, monitor="valid_loss",
        bleu_sentences=0, max_train=a.max_train, out=a.out, progress=False)
    t0 = time.time()
    if not a.eval_only:
        train.run(cfg)
    minutes = (time.time() - t0) / 60
    best = a.eval_only or os.path.join(a.out, "best.npz")
    meta = checkpoint.load(best, kind=train.KIND)["meta"]
    history, tc = meta["history"], meta["train_config"]
    mcfg, params, vocabs, _ = train.load_model(best)
    test = data.load_pair("multi30k", "de", "en")["test"]
    res = train.evaluate(mcfg, params, test, vocabs, 64, 0)
    refs = [t for _, t in test]
    greedy = train.translate_pairs(mcfg, params, test, vocabs, 64)
    beam = train.translate_pairs(mcfg, params, test, vocabs, 64, a.beam, 1.0)
    raw = data.read_lines(data.DATA_ROOT / "multi30k" / "raw" / "test_2016_flickr.en")
    sacre, sig = bleu.sacrebleu_score([bleu.detokenize(h) for h in greedy], raw, lowercase=True)
    rate = sum(r["tok_per_s"] for r in history) / len(history)
    lines = [
        f"date {datetime.date.today()}, machine: {cpu_model()}, {os.cpu_count()} cpus "
        "(shared with other jobs)",
        f"command: python {' '.join(sys.argv)}",
        f"model: emb {mcfg.emb_size}, bi-GRU {mcfg.enc_hidden}, GRU decoder {mcfg.dec_hidden}, "
        f"additive attention, dropout {mcfg.dropout}, teacher forcing {tc['teacher_forcing']}, "
        f"batch {tc['batch_size']}, train pairs {tc['max_train'] or 29000:,}, vocab {len(vocabs[0]):,} / {len(vocabs[1]):,}",
        f"epochs run {len(history)}" + ("" if a.eval_only else f" in {minutes:.1f} min")
        + f" ({rate:,.0f} target tokens/s); valid loss per epoch "
        + ", ".join(f"{r['valid_loss']:.3f}" for r in history) + f"; scored: {best}",
        f"test 2016: loss {res['loss']:.4f}, ppl {res['ppl']:.2f}",
        f"BLEU (lowercased tokens, torchtext/multi-bleu convention), greedy: "
        f"{bleu.token_bleu(greedy, refs):.2f}",
        f"BLEU (lowercased tokens), beam {a.beam}, alpha 1: {bleu.token_bleu(beam, refs):.2f}",
        f"sacreBLEU greedy vs raw references: {sacre:.2f}  {sig}",
    ]
    print("\n".join(lines))
    os.makedirs(os.path.dirname(a.results), exist_ok=True)
    with open(a.results, "a") as f:
        f.write("\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
