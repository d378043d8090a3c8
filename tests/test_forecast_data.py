"""Forecasting inputs: readers refuse bad files with clear messages; scaling,
differencing and targets invert exactly; calendar covariates."""
from pathlib import Path

import numpy as np
import pytest

from rnnlab.forecast import data, transform

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "timeseries"


def _csv(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_monthly_csv(tmp_path):
    s = data.read_csv(_csv(tmp_path, "Date,Passengers\n1949-01,112\n1949-02,118\n1949-03,132\n"))
    assert s.unit == "M" and s.period == 12
    np.testing.assert_array_equal(s.values, [112, 118, 132])
    assert str(s.time[-1]) == "1949-03"


def test_year_and_month_columns_make_the_time(tmp_path):
    s = data.read_csv(_csv(tmp_path, "YEAR,MONTH,SUN\n1749,12,1.0\n1750,1,2.5\n"))
    assert [str(t) for t in s.time] == ["1749-12", "1750-01"]


@pytest.mark.parametrize("body, words", [
    ("2000-01,1\n2000-02,\n2000-03,3\n", "1 missing value(s), the first at 2000-02 (line 3); "
                                         "pass --interpolate"),
    ("2000-01,1\n2000-02,nan\n2000-03,3\n", "missing value"),
    ("2000-01,1\n2000-03,2\n2000-02,3\n", "line 4: time 2000-02 goes backwards"),
    ("2000-01,1\n2000-02,2\n2000-02,3\n", "line 4: time 2000-02 repeats"),
    ("2000-01,1\n2000-02,2\n2000-04,3\n", "a step of 2 where the series steps by 1"),
    ("2000-01,1\n2000-02,abc\n", "line 3, column v: expected a number, found 'abc'"),
    ("2000-01,1\nJan 2000,2\n", "line 3, column t: expected a date"),
    ("2000-01,\n2000-02,2\n", "the first value is missing"),
    ("2000-01,1\n2000-02,2,3\n", "expected 2 fields"),
    # lines counted as in the file: past blank lines and a quoted field's newline
    ("\n2000-01,1\n\n2000-03,2\n2000-02,3\n", "line 6: time 2000-02 goes backwards (line 5"),
    ("2000-01,1\n\n2000-02,\n2000-03,3\n", "the first at 2000-02 (line 4)"),
    ('2000-01,"1\n"\n2000-02,abc\n', "line 4, column v: expected a number, found 'abc'"),
    # quoting: a stray quote is refused, not read around
    ('2000-01,1\n"2000-02,2\n2000-03,3\n', 'line 3: expected a CSV, found a quoted field '
                                             'that opens on this line and never closes'),
    ('2000-01,1\n2000-02,"2"5\n', "line 3: expected a CSV, found a line the CSV reader refuses"),
])
def test_bad_files_are_refused_by_line(tmp_path, body, words):
    p = _csv(tmp_path, "t,v\n" + body)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        data.read_csv(p)


def test_interpolation_on_request_fills_linearly(tmp_path):
    s = data.read_csv(_csv(tmp_path, "t,v\n2000-01,1\n2000-02,\n2000-03,\n2000-04,4\n"),
                      interpolate=True)
    np.testing.assert_allclose(s.values, [1, 2, 3, 4])


def test_missing_file_and_column_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        data.read_csv(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="no column 'x'"):
        data.read_csv(_csv(tmp_path, "t,v\n2000-01,1\n"), value_col="x")


def test_too_short_series_is_refused():
    with pytest.raises(ValueError, match="12 observations, but .* needs at least 40"):
        data.check_length(data.airline().head(12), 40, "input + horizon")


def test_weekly_to_monthly_means_fill_empty_months_from_the_previous():
    time = np.array(["2000-01-05", "2000-01-12", "2000-02-02", "2000-03-01"], dtype="datetime64[D]")
    s = data.Series("w", time, np.array([1.0, 3.0, np.nan, 5.0]))
    m = data.monthly_mean(s)
    np.testing.assert_allclose(m.values, [2.0, 2.0, 5.0])
    assert m.period == 12


def test_embedded_airline_matches_the_shared_file():
    s = data.airline()
    assert len(s) == 144 and s.values[0] == 112 and s.values[-1] == 432
    path = SHARED / "airline" / "Airline.csv"
    if not path.exists():
        pytest.skip(f"{path} absent (shared data folder not present)")
    f = data.read_csv(path)
    np.testing.assert_array_equal(f.values, s.values)
    np.testing.assert_array_equal(f.time, s.time)


@pytest.mark.parametrize("lag", [1, 2, 12])
def test_difference_round_trip_is_exact(lag):
    x = np.random.default_rng(lag).standard_normal(40).cumsum()
    d = transform.difference(x, lag)
    # (a - b) + b can differ from a in the last bit; on integers it is exact
    np.testing.assert_allclose(transform.undifference(d, x[:lag]), x, rtol=0, atol=1e-13)
    k = np.round(x * 1000)
    np.testing.assert_array_equal(transform.undifference(transform.difference(k, lag), k[:lag]), k)


@pytest.mark.parametrize("log, lag", [(False, 0), (False, 1), (True, 12), (False, 12)])
def test_targets_invert_exactly_for_every_horizon(log, lag):
    y = data.airline().values
    sc = transform.Scaling.fit(y[:100], log, lag)
    origin, horizon = 99, 30
    z = sc.targets(y, origin, horizon)
    np.testing.assert_allclose(sc.invert(z, y[:origin + 1]), y[origin + 1:origin + 1 + horizon],
                               rtol=1e-12)


def test_seasonal_target_is_the_deviation_from_seasonal_naive():
    y = np.arange(1.0, 49.0)
    sc = transform.Scaling(False, 12, 0.0, 1.0, 1.0)
    # origin 35: h = 1..12 refer to 24..35 and h = 13 to 24 again (two seasons back)
    np.testing.assert_array_equal(transform.reference_index(35, 13, 12), list(range(24, 36)) + [24])
    np.testing.assert_array_equal(sc.targets(y, 35, 12), np.full(12, 12.0))


@pytest.mark.parametrize("log, lag", [(False, 12), (True, 12), (False, 1)])
def test_drift_targets_invert_exactly_for_every_horizon(log, lag):
    y = data.airline().values
    sc = transform.Scaling.fit(y[:100], log, lag, drift=True)
    assert sc.drift
    for origin in (lag, 99, 110):
        z = sc.targets(y, origin, 30)
        np.testing.assert_allclose(sc.invert(z, y[:origin + 1]), y[origin + 1:origin + 31],
                                   rtol=1e-12)


def test_drift_target_is_the_deviation_from_arima_010_010():
    """On a line plus a period-12 pattern the reference w_r(h) + ceil(h/12) (w_o - w_o-12)
    (the forecast of ARIMA(0,1,0)(0,1,0)12) is exact two seasons ahead, the plain
    seasonal naive one is off by the year's growth, and the scale is that of the
    change of the seasonal difference."""
    t = np.arange(72.0)
    w = 5.0 + 0.25 * t + np.sin(2 * np.pi * t / 12) + (t % 12 == 7)
    sc = transform.Scaling(False, 12, 0.0, 1.0, 1.0, drift=True)
    np.testing.assert_allclose(sc.targets(w, 47, 24), 0.0, atol=1e-12)
    plain = transform.Scaling(False, 12, 0.0, 1.0, 1.0)
    np.testing.assert_allclose(plain.targets(w, 47, 24), np.repeat([3.0, 6.0], 12), atol=1e-12)
    noise = np.random.default_rng(0).normal(size=72)
    fitted = transform.Scaling.fit(w + noise, False, 12, drift=True)
    d = (w + noise)[12:] - (w + noise)[:-12]
    assert fitted.scale == pytest.approx(np.std(d[1:] - d[:-1]))


def test_log_needs_positive_values():
    with pytest.raises(ValueError, match="log scaling needs positive values"):
        transform.Scaling.fit(np.array([1.0, 0.0, 2.0]), True, 1)


def counts(n=160, seed=0):
    """A count series with zeros whose spread grows with its level (sunspots-like)."""
    level = 40 * (1 + np.sin(2 * np.pi * np.arange(n) / 60))
    return np.random.default_rng(seed).poisson(level).astype(np.float64)


@pytest.mark.parametrize("lag, window", [(0, 0), (1, 0), (12, 0), (0, 24)])
def test_sqrt_targets_invert_exactly_for_every_horizon(lag, window):
    y = counts()
    assert (y == 0).any()
    sc = transform.Scaling.fit(y[:120], False, lag, window=window, period=12, sqrt=True)
    assert sc.sqrt and not sc.log
    for origin in (max(lag, window - 1, 1), 99, 130):
        z = sc.targets(y, origin, 24)
        np.testing.assert_allclose(sc.invert(z, y[:origin + 1]), y[origin + 1:origin + 25],
                                   rtol=1e-12, atol=1e-12)


def test_sqrt_scaling_works_on_square_roots_and_clips_below_zero():
    y = counts()
    sc = transform.Scaling.fit(y, False, 0, sqrt=True)
    assert sc.center == pytest.approx(np.mean(np.sqrt(y)))
    assert sc.spread == pytest.approx(np.std(np.sqrt(y)))
    # quantiles of the square root map to quantiles of the value: monotone, and a
    # square root below zero is a count of zero, never a positive value
    z = np.linspace(-8, 8, 101)
    v = sc.invert(z, y)                                             # (101,)
    assert (np.diff(v) >= 0).all() and v[0] == 0.0
    np.testing.assert_allclose(v[z * sc.spread + sc.center >= 0],
                               (z * sc.spread + sc.center)[z * sc.spread + sc.center >= 0] ** 2)


def test_sqrt_needs_values_of_zero_or_more_and_excludes_log():
    with pytest.raises(ValueError, match=r"square-root scaling needs values >= 0; found 1 "
                                         r"negative value\(s\) \(use --no-sqrt\)"):
        transform.Scaling.fit(np.array([1.0, -0.5, 2.0]), False, 1, sqrt=True)
    with pytest.raises(ValueError, match="at most one of the two transforms"):
        transform.Scaling.fit(np.array([1.0, 3.0, 2.0]), True, 1, sqrt=True)


def test_calendar_covariates_encode_the_month():
    time = np.arange("2000-01", "2001-01", dtype="datetime64[M]")
    c = transform.calendar(time, "M")
    assert c.shape == (12, 2)
    np.testing.assert_allclose(c[0], [0.0, 1.0], atol=1e-15)            # January
    np.testing.assert_allclose(c[3], [1.0, 0.0], atol=1e-15)            # April
    assert transform.calendar(time, "Y").shape == (12, 0)


@pytest.mark.parametrize("log, L", [(False, 14), (True, 24), (True, 36)])
def test_window_targets_invert_exactly_for_every_horizon(log, L):
    y = data.airline().values
    sc = transform.Scaling.fit(y[:100], log, 0, window=L, period=12)
    for origin in (L - 1, 99, 120):
        z = sc.targets(y, origin, 12)
        np.testing.assert_allclose(sc.invert(z, y[:origin + 1]),
                                   y[origin + 1:origin + 13], rtol=1e-12)


def test_window_fit_recovers_a_line_plus_any_periodic_pattern():
    """On w = a + b t + S_(t mod 12) the window's decomposition is exact, so the
    zero target forecasts the pattern carried forward and the inputs are zeros."""
    t = np.arange(60.0)
    w = 2.0 + 0.5 * t + 3 * np.sin(2 * np.pi * t / 12) + (t % 12 == 3)
    past, future = transform.window_fit(w, 47, 24, 12, 12)
    np.testing.assert_allclose(past, w[24:48], atol=1e-12)
    np.testing.assert_allclose(future, w[48:60], atol=1e-12)
    sc = transform.Scaling(False, 0, 0.0, 1.0, 1.0, window=24, period=12)
    np.testing.assert_allclose(sc.targets(w, 47, 12), 0.0, atol=1e-12)
    feats = sc.features(w, np.arange("2000-01", "2005-01", dtype="datetime64[M]"), "M")
    np.testing.assert_allclose(sc.inputs(feats, w, 47, 24)[:, 0], 0.0, atol=1e-12)


def test_window_needs_the_period_plus_two():
    with pytest.raises(ValueError, match="--input-len: per-window normalisation needs"):
        transform.Scaling.fit(np.arange(1.0, 50.0), False, 0, window=13, period=12)


def test_discounted_window_fit_follows_the_recent_slope_and_inverts():
    """A slope that doubles in the window's last year: the discounted fit's
    forecast is nearer the recent slope than plain least squares; it still
    recovers a line plus a pattern exactly, and the targets invert exactly."""
    t = np.arange(60.0)
    season = np.sin(2 * np.pi * t / 12)
    w = 0.1 * t + season + np.where(t > 35, 0.1 * (t - 35), 0.0)
    plain = transform.window_fit(w, 47, 36, 12, 12)[1]
    recent = transform.window_fit(w, 47, 36, 12, 12, halflife=6.0)[1]
    truth = w[48:60]
    assert np.mean(np.abs(recent - truth)) < 0.7 * np.mean(np.abs(plain - truth))
    line = 2.0 + 0.3 * t + season
    np.testing.assert_allclose(transform.window_fit(line, 47, 24, 12, 12, halflife=6.0)[1],
                               line[48:60], atol=1e-10)
    y = data.airline().values
    sc = transform.Scaling.fit(y[:100], True, 0, window=36, period=12, halflife=12.0)
    assert sc.halflife == 12.0
    z = sc.targets(y, 99, 12)
    np.testing.assert_allclose(sc.invert(z, y[:100]), y[100:112], rtol=1e-12)
