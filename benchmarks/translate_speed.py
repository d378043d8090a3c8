"""Training speed of the attention translation model: rnnlab against the same model in torch.

Same model (the bentrevett/pytorch-seq2seq notebook 3 architecture: embeddings ->
bidirectional GRU encoder -> additive-attention GRU decoder, output from
[h; context; embedding]), same weights, same Multi30k de->en batches (or
random ids of Multi30k's lengths when the shared data is absent), same step
(forward, cross-entropy over real tokens, backward, clip to norm 1, Adam),
teacher forcing 1 so both do exactly the same work. The two are timed in
alternating blocks in one process, so load from other jobs hits both alike;
training tokens/s = real target tokens / median step time.

    python benchmarks/translate_speed.py --steps 10                      # full size
    python benchmarks/translate_speed.py --emb 64 --hidden 128 --steps 20
"""
import argparse
import datetime
import os
import statistics
import sys
import time

import numpy as np

from rnnlab import optim
from rnnlab.translate import data, loss as tloss, model
from translate_multi30k import cpu_model


def rnnlab_stepper(cfg, params):
    opt = optim.make("adam")
    box = {"p": params, "o": opt.init(params)}

    def step(b):
        loss, n, grads = tloss.loss_and_grads(cfg, box["p"], b)
        grads, _, _ = optim.clip_by_global_norm(grads, 1.0)
        box["p"], box["o"] = opt.update(box["p"], grads, box["o"], 1e-3)
        return n
    return step


def torch_stepper(cfg, params):
    import torch
    F = torch.nn.functional
    P = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()}
    enc = torch.nn.GRU(cfg.emb_size, cfg.enc_hidden, bidirectional=True)
    enc.load_state_dict({k[8:]: P[k].data for k in P if k.startswith("encoder.")})
    cell = torch.nn.GRUCell(cfg.dec_input, cfg.dec_hidden)
    cell.load_state_dict({k[8:]: P[k].data for k in P if k.startswith("decoder.")})
    rest = [v for k, v in P.items() if not k.startswith(("encoder.", "decoder."))]
    ps = rest + list(enc.parameters()) + list(cell.parameters())
    opt = torch.optim.Adam(ps, lr=1e-3)

    def step(b):
        src, src_len, tgt = (torch.from_numpy(a) for a in b)
        x = F.embedding(src, P["src_emb.weight"])
        out, h_n = enc(torch.nn.utils.rnn.pack_padded_sequence(x, src_len, enforce_sorted=False))
        keys = torch.nn.utils.rnn.pad_packed_sequence(out)[0].transpose(0, 1)    # (B, S, C)
        mask = torch.arange(keys.shape[1])[None] < src_len[:, None]
        pk = keys @ P["attention.key.weight"].T
        h = torch.tanh(torch.cat([h_n[-2], h_n[-1]], 1) @ P["bridge.weight"].T + P["bridge.bias"])
        outs = []
        for t in range(tgt.shape[0] - 1):
            e = F.embedding(tgt[t], P["tgt_emb.weight"])
            en = torch.tanh(pk + (h @ P["attention.query.weight"].T)[:, None])
            a = torch.softmax((en @ P["attention.energy.weight"]).masked_fill(~mask, -1e30), 1)
            ctx = torch.einsum("bs,bsh->bh", a, keys)
            h = cell(torch.cat([e, ctx], 1), h)
            outs.append(torch.cat([h, ctx, e], 1))
        logits = torch.stack(outs) @ P["out.weight"].T + P["out.bias"]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[1:].reshape(-1),
                               ignore_index=0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        opt.step()
        return int((tgt[1:] != 0).sum())
    return step


def batches(n, B, seed=0):
    """Multi30k de->en batches (min count 2) and the vocabulary sizes."""
    try:
        pairs = data.load_pair("multi30k", "de", "en")["train"]
    except FileNotFoundError:
        r = np.random.default_rng(seed)
        pairs = [([str(i) for i in r.integers(0, 7000, r.integers(5, 25))],
                  [str(i) for i in r.integers(0, 5000, r.integers(5, 25))]) for _ in range(n * B)]
    vs = data.build_vocab((s for s, _ in pairs), 2), data.build_vocab((t for _, t in pairs), 2)
    order = data.bucket_order(pairs, B, seed, 0)[:n]
    return [data.make_batch([pairs[i] for i in idx], *vs) for idx in order], vs


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps per library")
    p.add_argument("--block", type=int, default=2, help="steps per alternating block")
    p.add_argument("--batch", type=int, default=128, help="B")
    p.add_argument("--emb", type=int, default=256, help="E")
    p.add_argument("--hidden", type=int, default=512, help="He = Hd")
    p.add_argument("--threads", type=int, default=1, help="BLAS and torch threads")
    p.add_argument("--out", help="append the result to this markdown file")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    bs, vs = batches(a.steps + 2, a.batch)
    cfg = model.Seq2SeqConfig(len(vs[0]), len(vs[1]), a.emb, a.hidden, dec_hidden=a.hidden)
    params = model.init_params(cfg, 0)
    steppers = {"rnnlab": rnnlab_stepper(cfg, dict(params)), "torch": torch_stepper(cfg, params)}
    times, toks = {k: [] for k in steppers}, {k: [] for k in steppers}
    for s in steppers.values():                              # warm-up (JIT, allocators)
        s(bs[0])
    i = 0
    while min(len(t) for t in times.values()) < a.steps:
        for name, s in steppers.items():
            for k in range(a.block):
                b = bs[1 + (i + k) % (len(bs) - 1)]
                t0 = time.perf_counter()
                toks[name].append(s(b))
                times[name].append(time.perf_counter() - t0)
        i += a.block
    rate = {k: statistics.median(np.array(toks[k]) / np.array(times[k])) for k in times}
    lines = [f"date {datetime.date.today()}, machine: {cpu_model()}, {os.cpu_count()} cpus (shared), "
             f"numpy {np.__version__}, torch {torch.__version__}, {a.threads} thread(s)",
             f"command: python {' '.join(sys.argv)}",
             f"model: E={a.emb} He=Hd={a.hidden} additive attention, V={len(vs[0])}/{len(vs[1])}, "
             f"B={a.batch}, {a.steps} timed steps each"]
    lines += [f"{k:7s} median {statistics.median(times[k]):7.3f} s/step {rate[k]:9,.0f} "
              f"target tokens/s" for k in rate]
    lines.append(f"ratio rnnlab/torch: {rate['rnnlab'] / rate['torch']:.2f}x (target >= 1.0x)")
    print("\n".join(lines))
    if a.out:
        with open(a.out, "a") as f:
            f.write("\n```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
