"""After ``rnnlab translate train``: the best checkpoint on the test split, attention
pictures and ``OUT/report.html``.

On the default date task this is the embedded demo: a 1-layer bidirectional GRU
encoder and an additive-attention GRU decoder learn to rewrite dates written
19 ways into ISO form; the target is >= 99% exact match on 1,000 held-out dates.
"""
import os

from rnnlab.translate import data, decode, report, text, train


def finish(cfg, st, task, log=print, examples=4):
    """Test metrics of best.npz, attention pictures, the page; returns the results dict."""
    best = os.path.join(cfg.out, "best.npz")
    mcfg, params, vocabs, meta = train.load_model(best)
    splits = train.load_data(cfg)
    test = splits.get("test") or splits["valid"]
    res = train.evaluate(mcfg, params, test, vocabs, cfg.batch_size, None, "test_")
    tok = meta["tokenizer"]
    log(f"test ({len(test):,} sentences, greedy, best.npz): exact match "
        f"{res['test_exact']:.4f} | BLEU (lowercased tokens) {res['test_bleu']:.2f} | "
        f"ppl {res['test_ppl']:.3f}")
    pngs, shown = _attention_examples(mcfg, params, vocabs, test[:examples], tok, cfg.out)
    if shown:
        log("attention of the first test sentence (rows: output, columns: source):")
        log(shown)
    rows = [(k, v) for k, v in res.items()] + [("epochs", len(st.history))]
    intro = (f"{meta['data']} {meta['src_lang']}->{meta['tgt_lang']}: {mcfg.enc_mode} "
             f"bidirectional encoder {mcfg.enc_layers}x{mcfg.enc_hidden}, {mcfg.dec_mode} "
             f"decoder {mcfg.dec_hidden}, attention {mcfg.attention} ({mcfg.style}).")
    page = report.write_page(os.path.join(cfg.out, "report.html"), "rnnlab translate", intro,
                             rows, st.history, pngs)
    log(f"report: {page}")
    log(f"continue with: rnnlab translate train --resume {os.path.join(cfg.out, 'last.npz')} "
        f"--epochs {len(st.history) + 2}")
    return res


def _attention_examples(mcfg, params, vocabs, pairs, tok, out):
    if not mcfg.attends or not pairs:
        return [], ""
    b = data.make_batch(pairs, *vocabs)
    hyps = decode.greedy(mcfg, params, b.src, b.src_len)
    pngs, shown = [], ""
    for i, ((src, _), h) in enumerate(zip(pairs, hyps)):
        out_tokens = vocabs[1].decode(h.tokens) + ["<eos>"] * (h.tokens[-1:] == [data.EOS_ID])
        w = h.attention[:len(out_tokens), :len(src)]
        png = report.attention_png(w, src, out_tokens, os.path.join(out, f"attention_{i}.png"),
                                   f"{text.detokenize(src, tok)} -> "
                                   f"{text.detokenize(out_tokens[:-1], tok)}")
        pngs.append((png, f"test sentence {i + 1}"))
        if i == 0:
            shown = report.attention_ascii(w, src, out_tokens)
    return pngs, shown
