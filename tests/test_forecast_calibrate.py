"""Calibrated prediction intervals (issue 10, round two): split-conformal factors
per horizon step cover their level on Gaussian data whatever the network's own
spread, and the calibration at an origin reads nothing after it."""
import numpy as np
import pytest

from rnnlab.forecast import backtest, data, heads, train


def _gaussian_forecasts(rng, N, Hz, sigma_model):
    """Targets y ~ N(0, s_h^2) with s_h = sqrt(h) (error growing with the step),
    quantiles of a miscalibrated model that believes N(0, sigma_model^2)."""
    s = np.sqrt(np.arange(1, Hz + 1))
    y = rng.standard_normal((N, Hz)) * s
    q = np.broadcast_to(sigma_model * heads.Z, (N, Hz, len(heads.QUANTILES)))
    return q, y


@pytest.mark.parametrize("sigma_model", [0.3, 0.6, 1.0])
def test_calibrated_intervals_cover_their_level_on_gaussian_data(sigma_model):
    """Calibrate on 200 windows x 6 steps, check on 20,000 fresh windows: each
    level's coverage within 2.5 points of nominal (its Monte Carlo error over the
    fresh windows is < 0.3 points; the conformal quantile of n = 200-600 scores
    moves coverage by about sqrt(level (1 - level) / n) < 3 points, 2.5 is loose
    enough to fail only with a real bias). The model's spread is too narrow at
    every step but the first (sigma_model < sqrt(h)); uncalibrated it misses."""
    rng = np.random.default_rng(0)
    Hz = 6
    f = heads.factors(heads.scores(*_gaussian_forecasts(rng, 200, Hz, sigma_model)))
    assert f.shape == (Hz, len(heads.QUANTILES))
    assert np.all(np.diff(f[:, heads.LEVELS[0.8][1]]) >= -0.15 / sigma_model)  # grows with h
    q, y = _gaussian_forecasts(rng, 20000, Hz, sigma_model)
    qc = heads.widen(q, f)
    for level, (lo, hi) in heads.LEVELS.items():
        cover = np.mean((qc[..., lo] <= y) & (y <= qc[..., hi]))
        raw = np.mean((q[..., lo] <= y) & (y <= q[..., hi]))
        assert abs(cover - level) < 0.025, (level, cover)
        assert raw < level - 0.04


def test_widened_intervals_stay_nested():
    """A level's factor far above the next wider level's would cross their ends:
    the wider interval is widened to the narrower one's end, which keeps its own
    calibration where nothing crosses; random factors never give crossing
    quantiles."""
    q = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_array_equal(heads.widen(q, [1.0, 3.0, 1.0, 3.0, 1.0]),
                                  [-3.0, -3.0, 0.0, 3.0, 3.0])
    np.testing.assert_array_equal(heads.widen(q, [2.0, 1.5, 1.0, 0.5, 0.9]),
                                  [-4.0, -1.5, 0.0, 0.5, 1.8])            # nothing to mend
    # the case that crossed in a sunspots backtest: lower quantiles bunched at zero
    bunched = np.array([0.0, 0.05, 9.1, 30.0, 45.0])
    w = heads.widen(bunched, [0.91, 0.97, 1.0, 1.0, 1.0])
    assert np.all(np.diff(w) >= 0) and w[1] == pytest.approx(9.1 - 0.97 * 9.05)
    rng = np.random.default_rng(3)
    qs = np.sort(rng.standard_normal((500, 6, len(heads.QUANTILES))), axis=-1)
    w = heads.widen(qs, rng.uniform(0.0, 3.0, (6, len(heads.QUANTILES))))
    assert np.all(np.diff(w, axis=-1) >= 0)
    np.testing.assert_array_equal(w[..., heads.MEDIAN], qs[..., heads.MEDIAN])


def test_factors_never_narrow_the_networks_own_intervals():
    """A model four times too wide keeps its intervals (FLOOR): they overcover."""
    rng = np.random.default_rng(1)
    f = heads.factors(heads.scores(*_gaussian_forecasts(rng, 200, 3, 8.0)))
    np.testing.assert_array_equal(f, np.ones_like(f))


def test_band_pools_neighbouring_steps_until_enough_scores():
    assert heads.band(np.full(12, 12), 0) == (0, 4)          # 4 steps x 12 windows = 48 >= 40
    assert heads.band(np.full(12, 12), 5) == (3, 8)          # 5 x 12 = 60
    assert heads.band(np.full(12, 40), 7) == (7, 8)          # one step suffices
    assert heads.band(np.array([30, 10, 0, 0]), 3) == (0, 4)  # counts what is observed
    assert heads.conformal_quantile(np.arange(1.0, 10.0), 0.8) == 8.0   # ceil(10 * 0.8)
    r = np.concatenate([np.arange(1.0, 10.0), np.full(5, np.nan)])
    assert heads.conformal_quantile(r, 0.8) == 8.0                      # NaN: not observed
    assert heads.conformal_quantile(np.full(3, np.nan), 0.8) == 0.0


def test_scores_of_targets_not_observed_yet_are_left_out():
    """Windows whose last steps are NaN (not observed yet) give the same factors as
    the observed part alone; ACI skips them too."""
    rng = np.random.default_rng(3)
    q, y = _gaussian_forecasts(rng, 60, 4, 0.5)
    s = heads.scores(q, y)
    partial = np.concatenate([s, s[:10]])
    partial[60:, 1:] = np.nan                                  # only step 1 observed there
    assert np.isnan(partial).sum() == 10 * 3 * len(heads.LEVELS)
    f, ref = heads.factors(partial), heads.factors(s)
    np.testing.assert_array_equal(f[2:], ref[2:])             # bands of >= 40 without step 1
    pooled = np.concatenate([s[:, 0, 0], s[:10, 0, 0]])               # step 1, the 80% scores
    assert f[0, 1] == max(heads.FLOOR, heads.conformal_quantile(pooled, 0.8))
    nan_own = np.concatenate([s[:, 0, 0], np.full(5, np.nan)])
    assert len(heads.aci(s[:, :1, 0], s[:, 0, 0], 0.8, 0.1)[1]) == \
        len(heads.aci(np.concatenate([s[:, :1, 0], np.full((5, 1), np.nan)]), nan_own, 0.8,
                      0.1)[1])


def test_no_scores_no_widening():
    f = heads.factors(np.zeros((0, 3, len(heads.LEVELS))))
    np.testing.assert_array_equal(f, np.ones((3, len(heads.QUANTILES))))


def _tiny_backtest(tmp_path, s, name):
    opts = train.ForecastOptions(horizon=6, input_len=13, hidden_size=4, epochs=3, valid=6,
                                 out=str(tmp_path / name))
    net = train.Network(opts)
    return backtest.run(s, {"rnn": net}, 6, 1, 4), net


def test_calibration_uses_nothing_after_the_origin(tmp_path):
    """Train once, forecast from 4 consecutive origins. Changing every value after
    the second origin must leave the first two forecasts (training, the held-out
    calibration and the windows seen since) exactly as they were."""
    s = data.airline().head(100)
    bt_a, net = _tiny_backtest(tmp_path, s, "a")
    cut = bt_a.origins[1]
    values = s.values.copy()
    values[cut + 1:] *= 3.0
    bt_b, _ = _tiny_backtest(tmp_path, data.Series(s.name, s.time, values, s.period), "b")
    for k in (0, 1):
        np.testing.assert_array_equal(bt_a.models["rnn"].q[k], bt_b.models["rnn"].q[k])
    assert not np.allclose(bt_a.models["rnn"].q[3], bt_b.models["rnn"].q[3])
    # trained once at the first origin o_0: a later forecast recalibrates on every
    # value observed since, from each window that forecast it (origins o_0 - 5 ..
    # o_0 + 1 forecast o_0 + 2 at steps 7 .. 1), not only on fully observed windows
    f = net.forecaster
    end = bt_a.origins[0]
    assert f.ends == [end]
    held_only = heads.factors(f.held)
    np.testing.assert_array_equal(f.factors(s.head(end + 1)), held_only)
    later, y = f.observed_since(s.head(end + 3))
    np.testing.assert_array_equal(later, np.arange(end - 5, end + 2))
    observed = ~np.isnan(y)                                   # (7, 6): o + h in end+1 .. end+2
    np.testing.assert_array_equal(observed, [[end < o + h <= end + 2 for h in range(1, 7)]
                                             for o in later])
    assert not np.array_equal(f.factors(s.head(end + 7)), held_only)


def test_mean_se_of_independent_values_is_the_plain_one():
    x = np.random.default_rng(0).standard_normal(400)
    assert backtest.mean_se(x, 0) == pytest.approx(np.std(x) / np.sqrt(400))
    assert backtest.mean_se(np.repeat(x[:100], 4), 3) > 1.5 * backtest.mean_se(
        np.repeat(x[:100], 4), 0)


def test_aci_miss_rate_tracks_the_level_whatever_the_sequence():
    """Gibbs & Candes' bound: over T updates the miss rate is within
    (max(alpha, 1 - alpha) + gamma) / (gamma T) of alpha, even when the scores
    triple halfway; split conformal on the same sequence misses far more often."""
    rng = np.random.default_rng(0)
    x = np.abs(np.concatenate([rng.standard_normal(400), 3 * rng.standard_normal(400)]))
    for level in (0.8, 0.95):
        for gamma in (0.02, 0.1):
            at, err = heads.aci(x[:, None], x, level, gamma)
            alpha = 1 - level
            assert abs(err.mean() - alpha) <= (max(alpha, 1 - alpha) + gamma) / (gamma * len(err))
            assert 0.0 <= at <= 1.0
        split = np.mean([x[t] > heads.conformal_quantile(x[:t], level) for t in range(40, 800)])
        assert split > (1 - level) + 0.05


def test_aci_widens_after_a_run_of_misses_and_gamma_zero_is_split_conformal():
    rng = np.random.default_rng(2)
    q, y = _gaussian_forecasts(rng, 120, 4, 1.0)
    y = y * np.where(np.arange(120) >= 90, 3.0, 1.0)[:, None]       # the last windows miss
    s = heads.scores(q, y)
    split, adaptive = heads.factors(s), heads.factors(s, gamma=0.05)
    assert np.all(adaptive >= split) and np.any(adaptive > split)
    np.testing.assert_array_equal(heads.factors(s, gamma=0.0), split)


def test_calibration_windows_are_the_factors_windows_in_the_series_units(tmp_path):
    """Seasonal differencing without log maps each window's targets to values by a
    line with positive slope, and the scores are ratios, so the windows
    ``calibration_windows`` gives in the series' units score exactly as the
    network's own windows do; the held-out targets are the observed values, and
    the targets of later windows are NaN where they are in the training part or
    not observed yet."""
    s = data.airline().head(100)
    _, net = _tiny_backtest(tmp_path, s, "w")
    f = net.forecaster
    end = f.ends[0]
    now = s.head(end + 4)
    at, q, y = f.calibration_windows(now)
    later, y_later = f.observed_since(now)
    np.testing.assert_array_equal(at, np.concatenate([np.arange(end - 11, end - 5), later]))
    assert q.shape == (len(at), 6, len(heads.QUANTILES)) and np.all(np.diff(q, axis=-1) >= 0)
    np.testing.assert_array_equal(y[:6], [s.values[o + 1:o + 7] for o in at[:6]])
    np.testing.assert_array_equal(np.isnan(y[6:]), np.isnan(y_later))
    x, cov, _ = train.windows(now, f.scalings[0], f.L, 6, later)
    own = np.concatenate([f.held, heads.scores(train.raw_quantiles(f.mcfg, f.members, x, cov),
                                               y_later)])
    np.testing.assert_allclose(heads.scores(q, y), own, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f.predict(now, calibrated=False)[:, heads.MEDIAN],
                               f.predict(now)[:, heads.MEDIAN], rtol=1e-12)
    loaded = train.Forecaster(f.mcfg, f.members, f.scalings, f.L, f.held, f.ends)
    with pytest.raises(ValueError, match="kept no held-out quantiles"):
        loaded.calibration_windows(now)


class _Fixed:
    """A fitted member with given calibration windows and forecast."""

    def __init__(self, q_cal, y, q):
        self.q_cal, self.y, self.q = q_cal, y, q

    def fitted(self, s, horizon):
        return self

    def calibration_windows(self, s):
        return np.arange(len(self.y)), self.q_cal, self.y

    def predict(self, s, calibrated=True):
        return self.q


def test_joint_calibration_narrows_a_combination_of_calibrated_members():
    """Nine members each err by their own N(0, 1) draw on top of the N(0, 1) noise
    of the target, and each says so (spread sqrt 2, calibrated alone). Their mean
    errs only by N(0, 1 + 1/9), so combining the calibrated members over-covers
    (by 11 points at 80%); calibrated jointly, on the same 600 windows, the
    combination narrows by sqrt(1.11 / 2) = 0.745 and covers its level on fresh
    windows (within 2.5 points, as above)."""
    rng = np.random.default_rng(0)
    M, N, Hz = 9, 600, 4
    spread = np.sqrt(2.0) * heads.Z                                          # (P,)

    def draw(n):
        y = rng.standard_normal((n, Hz))
        return y, rng.standard_normal((M, n, Hz))[..., None] + spread     # (M, n, Hz, P)

    y, q = draw(N)
    members = [_Fixed(q[k], y, np.tile(spread, (Hz, 1))) for k in range(M)]
    out = backtest.Combination(members, "mean", joint=True)(None, Hz)
    f = out[:, heads.LEVELS[0.8][1]] / spread[heads.LEVELS[0.8][1]]
    np.testing.assert_allclose(f, np.sqrt((1 + 1 / M) / 2), rtol=0.08)
    y, q = draw(20000)
    for level, (lo, hi) in heads.LEVELS.items():
        alone = np.mean((q.mean(0)[..., lo] <= y) & (y <= q.mean(0)[..., hi]))
        joint = np.mean((q.mean(0)[..., heads.MEDIAN] + out[:, lo] <= y) &
                        (y <= q.mean(0)[..., heads.MEDIAN] + out[:, hi]))
        assert alone > level + min(0.09, (1 - level) / 2) - 0.01, (level, alone)
        assert abs(joint - level) < 0.025, (level, joint)
    with pytest.raises(ValueError, match="members calibrate on different windows"):
        backtest.Combination([members[0], _Fixed(q[0, :5], y[:5], members[0].q)],
                             joint=True)(None, Hz)


def test_same_windows_tells_whether_members_can_be_calibrated_jointly():
    """``backtest.same_windows``: the members' calibration windows are the same
    origins (members of different --valid hold out different ones); the benchmark's
    choice skips the joint calibration of such a combination."""
    y = np.zeros((6, 2))
    q = np.zeros((6, 2, len(heads.QUANTILES)))
    w = (np.arange(6), q, y)
    assert backtest.same_windows([w, (np.arange(6), q + 1, y)])
    assert not backtest.same_windows([w, (np.arange(2, 8), q, y)])
    assert not backtest.same_windows([w, (np.arange(3), q[:3], y[:3])])
    assert backtest.same_windows([w])
