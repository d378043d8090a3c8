"""Forecasting heads and models: every backward against finite differences
(float64) and, where torch has the operation, against torch autograd."""
import numpy as np
import pytest

from rnnlab.forecast import heads, model
from rnnlab.lab.gradcheck import check_grads, rel_error


def _away_from_kinks(rng, shape, y, taus):
    """Quantile forecasts at least 0.05 from y, where the pinball loss is smooth."""
    out = rng.standard_normal(shape)
    u = y[..., None] - out
    return np.where(np.abs(u) < 0.05, out + 0.2, out)


@pytest.mark.parametrize("head", sorted(heads.HEADS))
def test_head_gradients_match_finite_differences(head):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((3, 4))
    K = heads.HEADS[head]
    out = (_away_from_kinks(rng, (3, 4, K), y, heads.QUANTILES) if head == "quantile"
           else rng.standard_normal((3, 4, K)))
    errors = check_grads(lambda d: (lambda l, g: (l, {"out": g}))(*heads.loss(head, d["out"], y)),
                         {"out": out})
    assert errors["out"] < 1e-7, errors


def test_gaussian_nll_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    out, y = rng.standard_normal((5, 3, 2)), rng.standard_normal((5, 3))
    loss, dout = heads.gaussian_nll(out, y)
    t = torch.tensor(out, requires_grad=True)
    sigma = torch.nn.functional.softplus(t[..., 1]) + heads.SIGMA_MIN
    ref = torch.nn.GaussianNLLLoss(full=True, eps=1e-12)(t[..., 0], torch.tensor(y), sigma ** 2)
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12
    assert rel_error(dout, t.grad.numpy()) < 1e-12


def test_pinball_matches_its_definition_by_hand():
    # y = 1, q = (0, 2) at taus (0.1, 0.9): u = (1, -1) -> (0.1 * 1, 0.1 * 1) -> mean 0.1
    loss, dout = heads.pinball(np.array([[0.0, 2.0]]), np.array([1.0]), taus=(0.1, 0.9))
    assert loss == pytest.approx(0.1)
    np.testing.assert_allclose(dout, [[-0.1 / 2, 0.1 / 2]])


def test_gaussian_quantiles_are_mean_plus_z_sigma():
    out = np.array([[2.0, 0.5]])
    sigma = np.log1p(np.exp(0.5)) + heads.SIGMA_MIN
    q = heads.quantiles("gaussian", out)
    np.testing.assert_allclose(q[0], 2.0 + sigma * heads.Z)
    np.testing.assert_allclose(q[0, [0, 4]], [2 - 1.959964 * sigma, 2 + 1.959964 * sigma],
                               rtol=1e-6)


@pytest.mark.parametrize("arch", ["direct", "seq2seq"])
@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("head, ar", [("gaussian", 0), ("quantile", 0), ("gaussian", 2)])
def test_model_gradients_match_finite_differences(arch, mode, head, ar):
    cfg = model.ForecastConfig(n_features=3, n_covariates=2, horizon=3, arch=arch, mode=mode,
                               hidden_size=3, head=head, ar=ar)
    rng = np.random.default_rng(2)
    params = model.init_params(cfg, rng)
    params["head.weight"] *= 10                      # a head far from zero exercises more
    if ar:
        params["ar.weight"] = rng.standard_normal(params["ar.weight"].shape)
    B, L = 2, 4
    x, cov = rng.standard_normal((B, L, 3)), rng.standard_normal((B, 3, 2))
    y = rng.standard_normal((B, 3)) * 3

    def f(p):
        return model.loss_and_grads(cfg, p, x, cov, y)
    errors = check_grads(f, params)
    assert max(errors.values()) < 1e-6, errors
    _, grads = f(params)
    assert set(grads) == set(params)
    assert all(grads[k].shape == params[k].shape for k in params)


def test_seq2seq_model_against_torch_autograd():
    torch = pytest.importorskip("torch")
    cfg = model.ForecastConfig(n_features=3, n_covariates=2, horizon=3, arch="seq2seq",
                               mode="lstm", hidden_size=4, head="gaussian")
    rng = np.random.default_rng(3)
    params = model.init_params(cfg, rng)
    x, cov, y = (rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 3, 2)),
                 rng.standard_normal((2, 3)))
    loss, grads = model.loss_and_grads(cfg, params, x, cov, y)
    enc, dec = torch.nn.LSTM(3, 4).double(), torch.nn.LSTM(3, 4).double()
    for net, prefix in ((enc, "encoder."), (dec, "decoder.")):
        net.load_state_dict({k[len(prefix):]: torch.tensor(v) for k, v in params.items()
                             if k.startswith(prefix)})
    W = torch.tensor(params["head.weight"], requires_grad=True)
    b = torch.tensor(params["head.bias"], requires_grad=True)
    _, state = enc(torch.tensor(x.transpose(1, 0, 2)))
    h, _ = dec(torch.tensor(model.decoder_inputs(cov, 3)), state)
    out = (h @ W.T + b).permute(1, 0, 2)
    sigma = torch.nn.functional.softplus(out[..., 1]) + heads.SIGMA_MIN
    ref = torch.nn.GaussianNLLLoss(full=True, eps=1e-12)(out[..., 0], torch.tensor(y), sigma ** 2)
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12
    assert rel_error(grads["head.weight"], W.grad.numpy()) < 1e-10
    assert rel_error(grads["encoder.weight_hh_l0"], enc.weight_hh_l0.grad.numpy()) < 1e-10
    assert rel_error(grads["decoder.weight_ih_l0"], dec.weight_ih_l0.grad.numpy()) < 1e-10


@pytest.mark.parametrize("arch", ["direct", "seq2seq"])
@pytest.mark.parametrize("head", sorted(heads.HEADS))
def test_least_squares_start_reproduces_an_exact_linear_rule(arch, head):
    """Targets that are an exact linear function of the highway's inputs plus a
    constant per step: with the recurrent part silenced, the started model's
    forecast (the mean, the median) is that function, and the quantile levels
    collapse on it (no residual). seq2seq shares one bias over the steps, so its
    constant is the same at every step here."""
    p, Hz, N, L = 3, 4, 200, 5
    cfg = model.ForecastConfig(n_features=2, n_covariates=0, horizon=Hz, arch=arch,
                               hidden_size=4, head=head, ar=p)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, L, 2))
    A = rng.standard_normal((Hz, p))
    c = 0.7 if arch == "seq2seq" else rng.standard_normal(Hz)
    y = x[:, -p:, 0] @ A.T + c                                           # (N, Hz)
    params = model.fit_highway(cfg, model.init_params(cfg, 1), x, y)
    params["head.weight"][:] = 0.0
    out, _ = model.forward(cfg, params, x, np.zeros((N, Hz, 0)))
    med = heads.quantiles(head, out)[..., heads.MEDIAN]
    np.testing.assert_allclose(med, y, atol=0.02 * np.abs(y).max())     # ridge shrinks a little
    if head == "quantile":
        assert np.ptp(heads.quantiles(head, out), axis=-1).max() < 0.1


def test_least_squares_start_on_an_ar_process_lowers_the_first_loss():
    """y_{t+h} of a noisy AR(2): the started model's loss is far below the zero
    start's and its Gaussian scale matches the noise it cannot explain."""
    rng = np.random.default_rng(3)
    z = np.zeros(3000)
    for t in range(2, len(z)):
        z[t] = 0.6 * z[t - 1] - 0.3 * z[t - 2] + 0.1 * rng.standard_normal()
    L, Hz = 6, 1
    x = np.stack([z[t - L + 1:t + 1] for t in range(L, len(z) - 1)])[..., None]
    y = np.array([z[t + 1:t + 1 + Hz] for t in range(L, len(z) - 1)])
    cfg = model.ForecastConfig(n_features=1, horizon=Hz, hidden_size=4, head="gaussian", ar=2)
    zero = model.init_params(cfg, 0)
    ls = model.fit_highway(cfg, zero, x, y)
    cov = np.zeros((len(y), Hz, 0))
    l0, _ = heads.loss("gaussian", model.forward(cfg, zero, x, cov)[0], y)
    l1, _ = heads.loss("gaussian", model.forward(cfg, ls, x, cov)[0], y)
    assert l1 < l0 - 0.5
    np.testing.assert_allclose(ls["ar.weight"][0], [-0.3, 0.6], atol=0.05)
    sigma = heads.softplus(ls["head.bias"][1]) + heads.SIGMA_MIN
    assert abs(sigma - 0.1) < 0.01


def test_softplus_inv_inverts_softplus():
    s = np.array([1e-3, 0.1, 1.0, 30.0])
    np.testing.assert_allclose(heads.softplus(heads.softplus_inv(s)), s, rtol=1e-12)
