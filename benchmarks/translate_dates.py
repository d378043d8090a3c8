"""The embedded date task: the demo's exact match, and why attention helps, measured.

Trains the default model of ``rnnlab translate train`` (no download: dates
written 19 ways -> ISO; bidirectional GRU 48 encoder, additive-attention GRU 64
decoder, 3 epochs of Adam) and the same model without attention, reports both
models' held-out exact match, then measures the gradient paths
(``rnnlab translate paths``) on 100 held-out dates. Appends one record to
``benchmarks/results/translate_dates.md``; the pages are in ``--out``.

    python benchmarks/translate_dates.py
"""
import argparse
import datetime
import os
import sys
import time

from rnnlab.translate import demo, gradpaths, train
from translate_multi30k import cpu_model

RESULTS = os.path.join(os.path.dirname(__file__), "results", "translate_dates.md")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/dates")
    p.add_argument("--sentences", type=int, default=100)
    p.add_argument("--results", default=RESULTS)
    a = p.parse_args(argv)
    lines = [f"date {datetime.date.today()}, machine: {cpu_model()}, {os.cpu_count()} cpus "
             "(shared with other jobs)", f"command: python {' '.join(sys.argv)}"]
    runs = {}
    for name, extra in (("attention", {}), ("none", {"attention": "none"})):
        out = os.path.join(a.out, name)
        cfg = train.TranslateOptions(out=out, progress=False, **extra)
        t0 = time.time()
        st, task = train.run(cfg)
        minutes = (time.time() - t0) / 60
        res = demo.finish(cfg, st, task)
        runs[name] = os.path.join(out, "best.npz")
        lines.append(f"attention {name:9s}: {len(st.history)} epochs in {minutes:.1f} min, test "
                     f"exact match {res['test_exact']:.4f}, BLEU (characters as tokens) "
                     f"{res['test_bleu']:.2f}")
    page = gradpaths.run(runs["attention"], runs["none"], a.sentences, a.out)
    import html
    import re
    text = html.unescape(re.findall(r"<p>(.*?)</p>", open(page, encoding="utf-8").read())[0])
    lines += [f"gradient paths ({page}):", text]
    print("\n".join(lines))
    with open(a.results, "a") as f:
        f.write("\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
