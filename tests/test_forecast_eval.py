"""Metrics against hand-computed cases, baselines by their formulas, the
backtest's origins, and a network that forecasts a noisy sine within the noise."""
import numpy as np
import pytest

from rnnlab.forecast import backtest, baselines, data, heads, metrics, train


def test_metrics_by_hand():
    y, f = np.array([10.0, 20.0]), np.array([12.0, 18.0])
    train_part = np.array([1.0, 2.0, 4.0, 7.0])          # m = 2: |4-1|, |7-2| -> scale 4
    assert metrics.mase(y, f, train_part, 2) == pytest.approx(2.0 / 4.0)
    assert metrics.mape(y, f) == pytest.approx((0.2 + 0.1) / 2)
    assert metrics.smape(y, f) == pytest.approx((2 * 2 / 22 + 2 * 2 / 38) / 2)
    assert metrics.rmse(y, f) == pytest.approx(2.0)
    assert metrics.coverage(y, np.array([9.0, 21.0]), np.array([11.0, 22.0])) == 0.5
    assert metrics.width(np.array([9.0, 21.0]), np.array([11.0, 22.0])) == 1.5


def test_mase_is_one_for_the_seasonal_naive_forecast_of_a_repeating_drift():
    # a series whose seasonal difference is constant: the in-sample seasonal naive
    # error equals the out-of-sample one, so MASE of seasonal naive is exactly 1
    y = np.arange(60.0)
    q = baselines.seasonal_naive(y[:48], 12, 12)
    assert metrics.mase(y[48:], q[:, heads.MEDIAN], y[:48], 12) == pytest.approx(1.0)


def test_pinball_by_hand():
    q = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    y = np.array([2.5])
    taus = np.array(heads.QUANTILES)
    u = 2.5 - q[0]
    want = np.mean(np.maximum(taus * u, (taus - 1) * u))
    assert metrics.pinball(y, q) == pytest.approx(want)
    by_hand = (0.025 * 2.5 + 0.1 * 1.5 + 0.5 * 0.5 + 0.1 * 0.5 + 0.025 * 1.5) / 5
    assert want == pytest.approx(by_hand)


def test_baselines_follow_their_formulas():
    y = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 6.0])
    np.testing.assert_allclose(baselines.naive(y, 3, 1)[:, heads.MEDIAN], [6, 6, 6])
    np.testing.assert_allclose(baselines.seasonal_naive(y, 3, 2)[:, heads.MEDIAN], [5, 6, 5])
    np.testing.assert_allclose(baselines.drift(y, 2, 1)[:, heads.MEDIAN], [7, 8])
    q = baselines.naive(y, 4, 1)
    sigma = np.sqrt(np.mean(np.diff(y) ** 2))
    np.testing.assert_allclose(q[:, 4] - q[:, 2], 1.959963984540054 * sigma * np.sqrt([1, 2, 3, 4]))


def test_origins_end_exactly_one_horizon_before_the_end():
    assert backtest.origins(100, 12, 12, 3) == [63, 75, 87]
    with pytest.raises(ValueError, match="lower --origins"):
        backtest.origins(30, 12, 12, 3)


def test_backtest_scores_every_model_on_the_same_origins():
    s = data.airline()
    bt = backtest.run(s, backtest.baseline_forecasters(), 12, 12, 2)
    assert bt.origins == [119, 131]
    r = bt.models["snaive"]
    want = np.mean([metrics.mape(s.values[o + 1:o + 13], s.values[o - 11:o + 1])
                    for o in bt.origins])
    assert r.mean()["mape"] == pytest.approx(want)
    assert bt.models["naive"].per_horizon(bt.actual, bt.scales).shape == (12,)


def test_network_forecasts_a_noisy_sine_within_the_noise(tmp_path):
    """y_t = 5 + sin(2 pi t / 12) + e_t, e_t ~ N(0, s^2), s = 0.1.

    The ideal forecaster predicts 5 + sin(...) and errs by the noise alone, so over
    the n = 48 forecast values (4 origins x 12 steps) its RMSE is s * sqrt(X / n),
    X ~ chi2(n); with probability 0.999 X < 84.04, so RMSE < 1.323 s. We allow
    the network 20% above that ideal bound: RMSE <= 1.2 * 1.323 * s = 0.159.
    (The mean of per-origin RMSEs, which the backtest reports, is at most the
    pooled RMSE.) Seasonal naive errs by two noise terms, sqrt(2) s = 0.141 in
    expectation, and the unconditional spread is 0.71: the bound needs the
    network to have learnt the cycle, not just to copy last year.
    """
    s_noise, n = 0.1, 240
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = 5.0 + np.sin(2 * np.pi * t / 12) + s_noise * rng.standard_normal(n)
    time = np.datetime64("2000-01") + t.astype("timedelta64[M]")
    s = data.Series("sine", time, y, 12)
    opts = train.ForecastOptions(horizon=12, input_len=24, hidden_size=8, epochs=25, diff="none",
                                 batch_size=32, out=str(tmp_path / "run"), lr=0.01)
    bt = backtest.run(s, {"rnn": train.Network(opts)}, 12, 12, 4)
    assert bt.models["rnn"].mean()["rmse"] <= 1.2 * 1.323 * s_noise


def test_same_seed_same_forecast(tmp_path):
    s = data.airline().head(80)
    opts = dict(horizon=6, input_len=13, hidden_size=4, epochs=3, valid=6, refit=False)
    a = train.fit(train.ForecastOptions(out=str(tmp_path / "a"), **opts), [s], log=lambda *x: None)
    b = train.fit(train.ForecastOptions(out=str(tmp_path / "b"), **opts), [s], log=lambda *x: None)
    np.testing.assert_array_equal(a.predict(s), b.predict(s))


def test_global_model_over_two_series(tmp_path):
    a, b = data.airline().head(80), data.airline().head(90)
    b = data.Series("other", b.time, b.values * 3.0 + 100, 12)
    f = train.fit(train.ForecastOptions(horizon=6, input_len=13, hidden_size=4, epochs=2,
                                        valid=6, out=str(tmp_path / "g")), [a, b],
                  log=lambda *x: None)
    assert len(f.scalings) == 2
    qa, qb = f.predict(a, 0), f.predict(b, 1)
    assert qa.shape == qb.shape == (6, len(heads.QUANTILES))
    assert np.all(np.diff(qb, axis=1) >= 0) and qb[:, 2].mean() > 2 * qa[:, 2].mean()


def test_classical_baselines_in_the_same_harness():
    pytest.importorskip("statsmodels")
    from rnnlab.forecast import classical
    y = data.airline().values
    spec = dict(p=1, d=1, q=0, P=0, D=1, Q=0, m=12, log=False)
    assert classical.describe("arima", spec) == "ARIMA(1,1,0)(0,1,0)12"
    q = classical.arima_forecast(y[:108], 36, 12, spec)
    assert q.shape == (36, len(heads.QUANTILES)) and np.all(np.diff(q, axis=1) > 0)
    assert metrics.mape(y[108:], q[:, heads.MEDIAN]) < 0.045          # sktime: 0.0436
    ets = {"error": "mul", "trend": "add", "damped_trend": False, "seasonal": "mul"}
    q1 = classical.ets_forecast(y[:120], 12, 12, ets)
    q2 = classical.ets_forecast(y[:120], 12, 12, ets)
    np.testing.assert_array_equal(q1, q2)                               # seeded simulation
    snaive = baselines.seasonal_naive(y[:120], 12, 12)[:, heads.MEDIAN]
    assert metrics.mape(y[120:132], q1[:, heads.MEDIAN]) < metrics.mape(y[120:132], snaive)


def test_window_normalised_and_adaptive_forecaster_round_trips(tmp_path):
    """--diff window and --aci train, forecast in the series' units, and survive
    saving and loading."""
    s = data.airline().head(100)
    opts = train.ForecastOptions(horizon=6, input_len=14, hidden_size=4, epochs=2, valid=6,
                                 diff="window", log=True, aci=0.05, out=str(tmp_path / "w"))
    f = train.fit(opts, [s], log=lambda *x: None)
    q = f.predict(s)
    assert q.shape == (6, len(heads.QUANTILES)) and np.all(np.diff(q, axis=1) >= 0)
    assert 0.5 * s.values[-12:].mean() < q[:, heads.MEDIAN].mean() < 2 * s.values[-12:].mean()
    train.save_forecaster(str(tmp_path / "f.npz"), f, [s.name])
    g, _ = train.load_forecaster(str(tmp_path / "f.npz"))
    assert g.aci == 0.05 and g.scalings[0].window == 14
    np.testing.assert_array_equal(g.predict(s), q)


def test_square_root_forecaster_forecasts_counts_and_round_trips(tmp_path):
    """--sqrt on a count series with zeros (which --log refuses): quantiles >= 0 in
    the series' units, sorted, and the same after saving and loading."""
    t = np.arange(150)
    y = np.random.default_rng(1).poisson(30 * (1 + np.sin(2 * np.pi * t / 40))).astype(float)
    assert (y == 0).any()
    s = data.Series("counts", np.arange("1900-01", "1912-07", dtype="datetime64[M]"), y, 12)
    opts = train.ForecastOptions(horizon=6, input_len=14, hidden_size=4, epochs=2, valid=6,
                                 diff="none", sqrt=True, out=str(tmp_path / "s"))
    f = train.fit(opts, [s], log=lambda *x: None)
    assert f.scalings[0].sqrt and not f.scalings[0].log
    q = f.predict(s)
    assert q.shape == (6, len(heads.QUANTILES)) and (q >= 0).all() and np.all(np.diff(q, axis=1) >= 0)
    train.save_forecaster(str(tmp_path / "f.npz"), f, [s.name])
    g, _ = train.load_forecaster(str(tmp_path / "f.npz"))
    assert g.scalings[0].sqrt
    np.testing.assert_array_equal(g.predict(s), q)
    with pytest.raises(ValueError, match="at most one of --log and --sqrt"):
        train.ForecastOptions(log=True, sqrt=True)


def test_combination_takes_the_median_or_mean_of_its_members_quantiles():
    """Three members whose quantiles are 1x, 2x and 6x a sorted row: the median is
    the 2x row, the mean the 3x row; both stay sorted, and the combination runs in
    the backtest like any forecaster."""
    row = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    members = [lambda s, h, k=k: np.tile(k * row, (h, 1)) for k in (1.0, 2.0, 6.0)]
    s = data.airline()
    med = backtest.Combination(members, "median")
    np.testing.assert_array_equal(med(s, 4), np.tile(2 * row, (4, 1)))
    np.testing.assert_array_equal(backtest.Combination(members, "mean")(s, 4),
                                  np.tile(3 * row, (4, 1)))
    bt = backtest.run(s, {"median": med}, 6, 12, 2)
    assert len(bt.models["median"].q) == 2
    with pytest.raises(ValueError, match="combination: expected one of median, mean"):
        backtest.Combination(members, "mode")
