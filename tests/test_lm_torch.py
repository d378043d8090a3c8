"""The language model's hand-written backward against torch autograd (float64):
embedding -> recurrent stack -> decoder (tied or not) -> mean cross-entropy."""
import numpy as np
import pytest

from rnnlab.lm import model as lm
from rnnlab import nn

torch = pytest.importorskip("torch")


def torch_loss(cfg, params, ids, targets):
    """The same model in torch, from rnnlab's params; returns (loss, {name: tensor})."""
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cfg.mode](
        cfg.emb_size, cfg.hidden_size, cfg.num_layers, dtype=torch.float64)
    names = [k[4:] for k in t if k.startswith("rnn.")]
    out, _ = torch.func.functional_call(rnn, {k: t["rnn." + k] for k in names},
                                        (t["encoder.weight"][torch.tensor(ids)],))
    w = t["encoder.weight"] if cfg.tie_weights else t["decoder.weight"]
    logits = out.reshape(-1, cfg.hidden_size) @ w.T + t["decoder.bias"]
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor(targets).reshape(-1))
    loss.backward()
    return loss.item(), t


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("tie", [False, True])
def test_lm_loss_and_every_gradient_match_torch(mode, tie):
    cfg = lm.LMConfig(11, 5, 5, 2, mode, tie_weights=tie, init_scale=0.3)
    params = lm.init_params(cfg, 0, np.float64)
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 11, (6, 3)), rng.integers(0, 11, (6, 3))  # (T, B)
    loss, _, cache = lm.loss_forward(cfg, params, ids, targets, None)
    grads = lm.backward(cfg, params, cache)
    t_loss, t = torch_loss(cfg, params, ids, targets)
    assert abs(loss - t_loss) <= 1e-12 * abs(t_loss)
    assert set(grads) == set(params)
    for k, g in grads.items():
        ref = t[k].grad.numpy()
        assert np.abs(g - ref).max() <= 1e-10 * max(1.0, np.abs(ref).max()), k


def test_softmax_cross_entropy_with_row_weights_matches_torch():
    rng = np.random.default_rng(2)
    logits, targets = rng.standard_normal((7, 5)) * 4, rng.integers(0, 5, 7)
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0, 3.0])
    loss, d = nn.softmax_cross_entropy(logits, targets, w)
    x = torch.tensor(logits, requires_grad=True)
    per_row = torch.nn.functional.cross_entropy(x, torch.tensor(targets), reduction="none")
    ref = (per_row * torch.tensor(w)).sum() / w.sum()
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12 and np.abs(d - x.grad.numpy()).max() < 1e-14
