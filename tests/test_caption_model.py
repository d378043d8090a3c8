"""The captioner's gradients: float64 finite differences for the whole model
(CNN, both decoders, attention regulariser) and torch autograd for the decoder."""
import numpy as np
import pytest

from rnnlab.caption import model
from rnnlab.lab.gradcheck import check_grads

V = 7


def _case(decoder, seed=0, alpha_c=0.3):
    cfg = model.ModelConfig(decoder, V, channels=(2, 3), embed=3, hidden=4, attention=3,
                            alpha_c=alpha_c, image=8)
    r = np.random.default_rng(seed)
    params = model.init_params(cfg, seed, np.float64)
    params = {k: v + 0.1 * r.standard_normal(v.shape) for k, v in params.items()}
    images = r.random((2, 3, 8, 8))
    ids = np.array([[model.BOS, 3, 4, 5, model.EOS], [model.BOS, 6, model.EOS, 0, 0]])
    return cfg, params, images, ids


def _loss(cfg, images, ids):
    def f(p):
        loss, _, caches = model.loss_forward(cfg, p, images, ids)
        return loss, model.backward(cfg, p, caches)
    return f


@pytest.mark.parametrize("decoder", model.DECODERS)
def test_every_gradient_matches_finite_differences(decoder):
    cfg, params, images, ids = _case(decoder)
    errors = check_grads(_loss(cfg, images, ids), params)
    assert set(errors) == set(params)
    assert max(errors.values()) < 1e-7, {k: e for k, e in errors.items() if e > 1e-7}


def test_padding_steps_do_not_count():
    cfg, params, images, ids = _case("attend")
    loss, parts, _ = model.loss_forward(cfg, params, images, ids)
    ids2 = ids.copy()
    ids2[1, 3:] = 0                                   # already padding: same loss
    loss2, parts2, _ = model.loss_forward(cfg, params, images, np.concatenate([ids2, np.zeros((2, 1), int)], 1))
    assert parts["tokens"] == parts2["tokens"] == 6
    assert abs(loss - loss2) < 1e-12


def test_decoder_and_attention_against_torch_autograd():
    torch = pytest.importorskip("torch")
    cfg, params, images, ids = _case("attend", seed=4)
    feats, _ = model.encode(cfg, params, images)
    loss, _, caches = model.loss_forward(cfg, params, images, ids)
    grads = model.backward(cfg, params, caches)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()
         if not k.startswith("conv")}
    f = torch.tensor(feats)
    h = torch.tanh(f.mean(1) @ t["init_h.weight"].T + t["init_h.bias"])
    c = torch.tanh(f.mean(1) @ t["init_c.weight"].T + t["init_c.bias"])
    tgt = torch.tensor(ids[:, 1:])
    pk = f @ t["attention.key.weight"].T
    ce, alphas = 0.0, []
    for s in range(ids.shape[1] - 1):
        e = torch.tanh(pk + (h @ t["attention.query.weight"].T)[:, None])
        a = torch.softmax(e @ t["attention.energy.weight"], dim=1)
        x = torch.cat([t["embed.weight"][torch.tensor(ids[:, s])], (a[:, :, None] * f).sum(1)], 1)
        gates = x @ t["lstm.weight_ih"].T + t["lstm.bias_ih"] + h @ t["lstm.weight_hh"].T + t["lstm.bias_hh"]
        i, fg, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        logits = h @ t["out.weight"].T + t["out.bias"] + x[:, cfg.embed:] @ t["out_ctx.weight"].T
        ce = ce + torch.nn.functional.cross_entropy(logits, tgt[:, s], ignore_index=0, reduction="sum")
        alphas.append(a * (tgt[:, s] != 0)[:, None])
    ce = ce / (tgt != 0).sum()
    reg = cfg.alpha_c * ((1 - torch.stack(alphas).sum(0)) ** 2).sum(1).mean()
    (ce + reg).backward()
    assert abs((ce + reg).item() - loss) < 1e-12
    for k, v in t.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
