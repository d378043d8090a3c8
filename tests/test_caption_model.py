"""The captioner's gradients: float64 finite differences for the whole model
(CNN, both decoders, attention regulariser) and torch autograd for the decoder."""
import numpy as np
import pytest

from rnnlab.caption import model
from rnnlab.lab.gradcheck import check_grads

V = 7


def _case(decoder, seed=0, alpha_c=0.3, **kw):
    cfg = model.ModelConfig(decoder, V, channels=(2, 3), embed=3, hidden=4, attention=3,
                            alpha_c=alpha_c, image=8, **kw)
    r = np.random.default_rng(seed)
    params = model.init_params(cfg, seed, np.float64)
    params = {k: v + 0.1 * r.standard_normal(v.shape) for k, v in params.items()}
    images = r.random((2, 3, 8, 8))
    ids = np.array([[model.BOS, 3, 4, 5, model.EOS], [model.BOS, 6, model.EOS, 0, 0]])
    return cfg, params, images, ids


def _loss(cfg, images, ids, seed=None):
    def f(p):                                    # the same dropout masks at every call
        rng = None if seed is None else np.random.default_rng(seed)
        loss, _, caches = model.loss_forward(cfg, p, images, ids, rng)
        return loss, model.backward(cfg, p, caches)
    return f


@pytest.mark.parametrize("decoder", model.DECODERS)
def test_every_gradient_matches_finite_differences(decoder):
    cfg, params, images, ids = _case(decoder)
    errors = check_grads(_loss(cfg, images, ids), params)
    assert set(errors) == set(params)
    assert max(errors.values()) < 1e-7, {k: e for k, e in errors.items() if e > 1e-7}


def test_gradients_with_word_and_context_dropout_and_two_streams():
    cfg, params, images, ids = _case("attend", ctx_dropout=0.5, word_dropout=0.5,
                                     colour_channels=2)
    assert {"colour.weight", "colour.bias"} <= set(params)
    errors = check_grads(_loss(cfg, images, ids, seed=3), params)
    assert max(errors.values()) < 1e-7, {k: e for k, e in errors.items() if e > 1e-7}
    _, _, (_, dec, _, _) = model.loss_forward(cfg, params, images, ids, np.random.default_rng(3))
    assert (dec.keep == 0).any() and (dec.inputs[:, 1:] == model.PAD).any()
    assert (dec.inputs[:, 0] == model.BOS).all()


def test_dropout_only_in_training():
    cfg, params, images, ids = _case("attend", ctx_dropout=0.5, word_dropout=0.5)
    plain = model.ModelConfig(**{**cfg.to_dict(), "ctx_dropout": 0.0, "word_dropout": 0.0})
    assert model.loss_forward(cfg, params, images, ids)[0] == \
        model.loss_forward(plain, params, images, ids, np.random.default_rng(0))[0]


def test_padding_steps_do_not_count():
    cfg, params, images, ids = _case("attend")
    loss, parts, _ = model.loss_forward(cfg, params, images, ids)
    ids2 = ids.copy()
    ids2[1, 3:] = 0                                   # already padding: same loss
    loss2, parts2, _ = model.loss_forward(cfg, params, images, np.concatenate([ids2, np.zeros((2, 1), int)], 1))
    assert parts["tokens"] == parts2["tokens"] == 6
    assert abs(loss - loss2) < 1e-12


@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_decoder_and_attention_against_torch_autograd(dropout):
    torch = pytest.importorskip("torch")
    cfg, params, images, ids = _case("attend", seed=4, ctx_dropout=dropout, word_dropout=dropout)
    feats, _ = model.encode(cfg, params, images)
    loss, _, caches = model.loss_forward(cfg, params, images, ids, np.random.default_rng(1))
    grads = model.backward(cfg, params, caches)
    dec = caches[1]
    assert (dec.keep is not None and (dec.keep == 0).any()) == bool(dropout)
    keep = torch.ones(ids.shape[1] - 1, 2, cfg.feat, dtype=torch.float64) if dec.keep is None \
        else torch.tensor(dec.keep)
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
        z = (a[:, :, None] * f).sum(1)
        x = torch.cat([t["embed.weight"][torch.tensor(dec.inputs[:, s])], z * keep[s]], 1)
        gates = x @ t["lstm.weight_ih"].T + t["lstm.bias_ih"] + h @ t["lstm.weight_hh"].T + t["lstm.bias_hh"]
        i, fg, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(fg) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        logits = h @ t["out.weight"].T + t["out.bias"] + z @ t["out_ctx.weight"].T
        ce = ce + torch.nn.functional.cross_entropy(logits, tgt[:, s], ignore_index=0, reduction="sum")
        alphas.append(a * (tgt[:, s] != 0)[:, None])
    ce = ce / (tgt != 0).sum()
    reg = cfg.alpha_c * ((1 - torch.stack(alphas).sum(0)) ** 2).sum(1).mean()
    (ce + reg).backward()
    assert abs((ce + reg).item() - loss) < 1e-12
    for k, v in t.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)
