"""Training speed of the Bernoulli frame model: rnnlab against torch, same run.

Both sides train the same model (one recurrent layer, 88 sigmoid outputs,
float32) on the same minibatches of whole pieces, in the same order, with the
same step: weight noise σ = 0.075, the gradient of the NLL per frame, clipping
to norm 1, RMSProp. torch runs ``nn.<RNN|GRU|LSTM>`` on packed sequences
(``pack_padded_sequence``, its fast path for pieces of different lengths),
``BCEWithLogitsLoss`` and ``torch.optim.RMSprop``. Both on one thread. The
figure is frames per second over one pass through the training pieces
(after one warm-up step each).

    python benchmarks/speed_music.py [--set jsb] [--cells rnn gru lstm] [--batch 1 8]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rnnlab import optim                                                # noqa: E402
from rnnlab.music import data, train                                    # noqa: E402


def _batches(rolls, batch, seed=0):
    order = np.random.default_rng([seed, 0]).permutation(len(rolls))
    return [[rolls[j] for j in order[i:i + batch]] for i in range(0, len(rolls), batch)]


def time_rnnlab(cell, units, rolls, batch):
    cfg = train.MusicOptions(data="x", mode=cell, hidden_size=units, batch_size=batch,
                             progress=False, out="/tmp/unused")
    task = train.MusicTask(cfg, cfg.model_config(), {"train": rolls, "valid": rolls[:1]})
    params = train.model.init_params(cfg.model_config(), 0, np.float32)
    opt, rng = optim.make("rmsprop"), np.random.default_rng(0)
    state = opt.init(params)

    def step(i):
        nonlocal params, state
        loss, n, grads = task.loss_and_grads(params, 0, i, rng)
        grads, _, _ = optim.clip_by_global_norm(grads, 1.0)
        params, state = opt.update(params, grads, state, 1e-3)
        return n
    step(0)                                                      # warm-up (numba compile)
    t0 = time.perf_counter()
    frames = sum(step(i) for i in range(task.steps(0)))
    return frames / (time.perf_counter() - t0)


def time_torch(cell, units, rolls, batch):
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    rnn, out = cls(88, units), torch.nn.Linear(units, 88)
    params = list(rnn.parameters()) + list(out.parameters())
    opt = torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-8)
    lossf = torch.nn.BCEWithLogitsLoss(reduction="sum")
    pack = torch.nn.utils.rnn.pack_padded_sequence
    batches = []
    for group in _batches(rolls, batch):
        lengths = torch.tensor([len(r) for r in group])
        v = torch.zeros(int(lengths.max()), len(group), 88)
        for b, r in enumerate(group):
            v[:len(r), b] = torch.from_numpy(r.astype(np.float32))
        x = torch.cat([torch.zeros(1, len(group), 88), v[:-1]])
        batches.append((pack(x, lengths, enforce_sorted=False),
                        pack(v, lengths, enforce_sorted=False).data, int(lengths.sum())))

    def step(b):
        x, y, n = b
        clean = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p) * 0.075)
        h, _ = rnn(x)
        loss = lossf(out(h.data), y) / n
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p, c in zip(params, clean):
                p.copy_(c)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return n
    step(batches[0])
    t0 = time.perf_counter()
    frames = sum(step(b) for b in batches)
    return frames / (time.perf_counter() - t0)


def compare(name, cell, units, rolls, batch=1):
    ours, theirs = time_rnnlab(cell, units, rolls, batch), time_torch(cell, units, rolls, batch)
    return {"kind": "speed", "set": name, "cell": cell, "units": units, "batch": batch,
            "output": f"bernoulli-b{batch}", "rnnlab": ours, "torch": theirs,
            "ratio": ours / theirs}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--set", default="jsb", choices=sorted(data.DATASETS))
    p.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    args = p.parse_args(argv)
    import music_chung                                                  # benchmarks/
    rolls = data.load(args.set)["train"]
    command = "python benchmarks/speed_music.py " + " ".join(argv or sys.argv[1:])
    for batch in args.batch:
        for cell in args.cells:
            rec = compare(args.set, cell, music_chung.UNITS[cell], rolls, batch)
            music_chung.stamp(rec, command)
            music_chung.write_table()
            print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
