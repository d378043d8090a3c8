"""The language model's speed pieces (issue 12): the fused decoder + softmax
cross-entropy and the row-sparse embedding gradient, against the plain pieces,
finite differences and torch."""
import numpy as np
import pytest

from rnnlab import nn, optim
from rnnlab.lab.gradcheck import check_grads
from rnnlab.lm import model as lm


def _head(N=7, I=4, V=9, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, I)).astype(dtype), rng.standard_normal((V, I)).astype(dtype),
            rng.standard_normal(V).astype(dtype), rng.integers(0, V, N))


@pytest.mark.parametrize("block_rows", [None, 1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_cross_entropy_equals_the_plain_pieces(block_rows, bias):
    x, w, b, t = _head()
    b = b if bias else None
    loss, dx, dw, db = nn.linear_cross_entropy(x, w, b, t, block_rows)
    ref_loss, dlogits = nn.softmax_cross_entropy(nn.linear_forward(x, w, b), t)
    rdx, rdw, rdb = nn.linear_backward(dlogits, x, w, with_bias=bias)
    assert abs(loss - ref_loss) < 1e-12
    for a, r in ((dx, rdx), (dw, rdw)) + (((db, rdb),) if bias else ()):
        np.testing.assert_allclose(a, r, rtol=0, atol=1e-13)
    assert (db is None) == (not bias)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_cross_entropy_same_numbers_on_any_thread_count(dtype):
    """Blocks run on threads; each writes its own rows and column sum, and db adds
    the sums in block order: bit for bit the one-thread result."""
    x, w, b, t = _head(N=50, I=6, V=40, seed=2, dtype=dtype)
    one = nn.linear_cross_entropy(x, w, b, t, block_rows=3, threads=1)
    for threads in (2, 3, 8):
        many = nn.linear_cross_entropy(x, w, b, t, block_rows=3, threads=threads)
        assert many[0] == one[0]
        for a, r in zip(many[1:], one[1:]):
            np.testing.assert_array_equal(a, r)


def test_linear_cross_entropy_thread_count_setting(monkeypatch):
    monkeypatch.setenv("RNNLAB_THREADS", "3")
    assert nn.functional.softmax_threads() == 3
    monkeypatch.delenv("RNNLAB_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert nn.functional.softmax_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")                  # OpenMP's nested form: not ours
    assert nn.functional.softmax_threads() >= 1
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("RNNLAB_THREADS", bad)
        with pytest.raises(ValueError,
                           match=f"RNNLAB_THREADS must be a positive integer, got '{bad}'"):
            nn.functional.softmax_threads()


def test_linear_cross_entropy_finite_differences():
    x, w, b, t = _head(N=5, V=6)

    def f(d):
        loss, dx, dw, db = nn.linear_cross_entropy(d["x"], d["w"], d["b"], t, block_rows=2)
        return loss, {"x": dx, "w": dw, "b": db}
    errs = check_grads(f, {"x": x, "w": w, "b": b})
    assert max(errs.values()) < 1e-7, errs


@pytest.mark.needs_torch
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_linear_cross_entropy_against_torch(dtype, tol):
    torch = pytest.importorskip("torch")
    x, w, b, t = _head(N=40, I=8, V=300, seed=3, dtype=dtype)
    loss, dx, dw, db = nn.linear_cross_entropy(x, w, b, t, block_rows=16)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    tl = torch.nn.functional.cross_entropy(torch.nn.functional.linear(tx, tw, tb),
                                           torch.from_numpy(t))
    tl.backward()
    assert abs(loss - tl.item()) < tol * max(1.0, abs(loss))
    for a, ta in ((dx, tx), (dw, tw), (db, tb)):
        np.testing.assert_allclose(a, ta.grad.numpy(), rtol=0, atol=tol)


def test_row_grad_equals_the_dense_embedding_gradient_exactly():
    rng = np.random.default_rng(1)
    ids = np.array([[4, 1, 4], [1, 1, 7]])                        # repeats add up
    dy = rng.standard_normal((2, 3, 5)).astype(np.float32)
    g = nn.embedding_backward_rows(dy, ids, 9)
    assert list(g.rows) == [1, 4, 7] and g.shape == (9, 5)
    np.testing.assert_array_equal(g.to_dense(), nn.embedding_backward(dy, ids, 9))


def _sparse_and_dense(seed=2):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 12, (4, 3))
    dy = rng.standard_normal((4, 3, 5)).astype(np.float32)
    p = {"emb": rng.standard_normal((12, 5)).astype(np.float32),
         "w": rng.standard_normal((3, 5)).astype(np.float32)}
    gw = rng.standard_normal((3, 5)).astype(np.float32)
    sparse = {"emb": nn.embedding_backward_rows(dy, ids, 12), "w": gw}
    return p, sparse, {"emb": sparse["emb"].to_dense(), "w": gw}


def test_sgd_on_rows_is_bit_for_bit_the_dense_update():
    p, sparse, dense = _sparse_and_dense()
    opt = optim.sgd()
    a, _ = opt.update(p, sparse, opt.init(p), 0.7)
    b, _ = opt.update(p, dense, opt.init(p), 0.7)
    for k in p:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.shares_memory(a["emb"], p["emb"])               # pure: p untouched


def test_norm_and_clipping_read_the_rows_only():
    p, sparse, dense = _sparse_and_dense()
    assert optim.global_norm(sparse) == pytest.approx(optim.global_norm(dense), rel=1e-12)
    cs, ns, _ = optim.clip_by_global_norm(sparse, 1.0)
    cd, nd, _ = optim.clip_by_global_norm(dense, 1.0)
    assert isinstance(cs["emb"], nn.RowGrad)
    np.testing.assert_array_equal(cs["emb"].to_dense(), cd["emb"])


@pytest.mark.parametrize("name, kw", [("adam", {}), ("rmsprop", {}), ("adagrad", {}),
                                      ("sgd", {"momentum": 0.9})])
def test_stateful_rules_take_the_dense_gradient(name, kw):
    p, sparse, dense = _sparse_and_dense()
    opt = optim.make(name, **kw)
    a, sa = opt.update(p, sparse, opt.init(p), 0.1)
    b, sb = opt.update(p, dense, opt.init(p), 0.1)
    for k in p:
        np.testing.assert_array_equal(a[k], b[k])
    for k in sb:
        np.testing.assert_array_equal(sa[k], sb[k])


def test_lm_sparse_backward_equals_dense():
    cfg = lm.LMConfig(11, 6, 6, 2, "lstm")
    params = lm.init_params(cfg, 0)
    rng = np.random.default_rng(3)
    ids, targets = rng.integers(0, 11, (5, 2)), rng.integers(0, 11, (5, 2))
    _, _, cache = lm.loss_forward(cfg, params, ids, targets, None)
    dense = lm.backward(cfg, params, cache)
    sparse = lm.backward(cfg, params, cache, sparse=True)
    assert isinstance(sparse["encoder.weight"], nn.RowGrad)
    np.testing.assert_array_equal(sparse["encoder.weight"].to_dense(), dense["encoder.weight"])
    for k in params:
        if k != "encoder.weight":
            np.testing.assert_array_equal(sparse[k], dense[k])
