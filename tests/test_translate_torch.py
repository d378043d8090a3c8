"""The translation model against the same model written in torch with the same
weights: loss and every gradient (float64, variable source lengths)."""
import numpy as np
import pytest

from rnnlab.translate import loss as tloss

from test_translate_model import VARIANTS, batch, tiny

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_loss(cfg, p, b, smoothing=0.0):
    """The seq2seq of ``model``'s docstring in torch (nn.GRU/LSTM, packed sequences)."""
    src, src_len, tgt = (torch.tensor(a) for a in b)
    rnn = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cfg.enc_mode](
        cfg.emb_size, cfg.enc_hidden, cfg.enc_layers, bidirectional=True).double()
    call = torch.func.functional_call
    x = F.embedding(src, p["src_emb.weight"])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, src_len, enforce_sorted=False)
    out, h_n = call(rnn, {k: p["encoder." + k] for k, _ in rnn.named_parameters()},
                    (packed,))
    h_n = h_n[0] if cfg.enc_mode == "lstm" else h_n
    keys = torch.nn.utils.rnn.pad_packed_sequence(out)[0].transpose(0, 1)   # (B, S, C)
    mask = torch.arange(keys.shape[1])[None] < src_len[:, None]
    h = torch.tanh(torch.cat([h_n[-2], h_n[-1]], 1) @ p["bridge.weight"].T + p["bridge.bias"])
    c = torch.zeros_like(h)
    feed = torch.zeros_like(h)
    cell = (torch.nn.GRUCell if cfg.dec_mode == "gru" else torch.nn.LSTMCell)(
        cfg.dec_input, cfg.dec_hidden).double()
    cp = {k: p["decoder." + k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}

    def attend(q):
        if cfg.attention == "additive":
            e = torch.tanh(keys @ p["attention.key.weight"].T + (q @ p["attention.query.weight"].T)[:, None])
            s = e @ p["attention.energy.weight"]
        elif cfg.attention == "general":
            s = torch.einsum("bsh,bh->bs", keys @ p["attention.key.weight"].T, q)
        else:
            s = torch.einsum("bsh,bh->bs", keys, q)
        a = torch.softmax(s.masked_fill(~mask, float("-inf")), 1)
        return torch.einsum("bs,bsh->bh", a, keys)

    outs = []
    for t in range(tgt.shape[0] - 1):
        e = F.embedding(tgt[t], p["tgt_emb.weight"])
        if cfg.style == "bahdanau":
            ctx = attend(h) if cfg.attends else None
            xin = torch.cat([e, ctx], 1) if cfg.attends else e
        else:
            xin = torch.cat([e, feed], 1) if cfg.input_feed else e
        if cfg.dec_mode == "gru":
            h = call(cell, cp, (xin, h))
        else:
            h, c = call(cell, cp, (xin, (h, c)))
        if cfg.style == "bahdanau":
            outs.append(torch.cat([h, ctx, e] if cfg.attends else [h, e], 1))
        else:
            feed = torch.tanh(torch.cat([attend(h), h], 1) @ p["combine.weight"].T)
            outs.append(feed)
    W = p["tgt_emb.weight" if cfg.tie_embeddings else "out.weight"]
    logits = torch.stack(outs) @ W.T + p["out.bias"]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[1:].reshape(-1),
                           ignore_index=0, label_smoothing=smoothing)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_loss_and_every_gradient_match_torch_autograd(name):
    cfg, p = tiny(**VARIANTS[name])
    b = batch(2, B=5, S=6, T=5)
    loss, _, grads = tloss.loss_and_grads(cfg, p, b, smoothing=0.1)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in p.items()}
    tl = torch_loss(cfg, tp, b, smoothing=0.1)
    tl.backward()
    assert abs(tl.item() - loss) < 1e-12
    for k, v in tp.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
