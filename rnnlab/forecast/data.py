"""Time series in: CSV readers with clear errors, the shared data sets, the
embedded airline series.

A ``Series`` is a regular, gap-free, strictly increasing run of observations:
``time`` (N,) as ``numpy.datetime64`` (month, day or year resolution),
``values`` (N,) float64 with no NaN, and ``period``, the seasonal period m
(12 for monthly series, 1 when there is none).

What is refused, never dropped silently: a value that is not a number, a
missing value (NaN or an empty field) inside the series (unless
``interpolate=True``, which fills it linearly between its neighbours; missing
values at either end are always an error), timestamps that go backwards or
repeat, gaps in the time axis, and a series shorter than a model needs
(``check_length``).
"""
import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Box, Jenkins & Reinsel, Series G: monthly international airline passengers
# (thousands), January 1949 - December 1960; the same numbers as R's AirPassengers.
AIRLINE = (
    112, 118, 132, 129, 121, 135, 148, 148, 136, 119, 104, 118, 115, 126, 141, 135, 125, 149,
    170, 170, 158, 133, 114, 140, 145, 150, 178, 163, 172, 178, 199, 199, 184, 162, 146, 166,
    171, 180, 193, 181, 183, 218, 230, 242, 209, 191, 172, 194, 196, 196, 236, 235, 229, 243,
    264, 272, 237, 211, 180, 201, 204, 188, 235, 227, 234, 264, 302, 293, 259, 229, 203, 229,
    242, 233, 267, 269, 270, 315, 364, 347, 312, 274, 237, 278, 284, 277, 317, 313, 318, 374,
    413, 405, 355, 306, 271, 306, 315, 301, 356, 348, 355, 422, 465, 467, 404, 347, 305, 336,
    340, 318, 362, 348, 363, 435, 491, 505, 404, 359, 310, 337, 360, 342, 406, 396, 420, 472,
    548, 559, 463, 407, 362, 405, 417, 391, 419, 461, 472, 535, 622, 606, 508, 461, 390, 432)

# the shared data folder, relative to a checkout: <repo>/../shared/data/timeseries
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "timeseries"
DATASETS = {"airline": "airline/Airline.csv", "co2": "co2/co2.csv",
            "sunspots": "sunspots/sunspots_monthly.csv", "sunspots-yearly": "sunspots/sunspots.csv"}
_PERIOD = {"M": 12, "D": 1, "Y": 1, "W": 52}
_FREQUENCY = {"M": "monthly", "D": "daily", "Y": "yearly", "W": "weekly"}


def frequency(unit, period=1):
    """How a series steps, in words: 'monthly', 'weekly' (days, period 52), 'daily',
    'yearly' (for messages: a model trained on one and given another)."""
    unit = "W" if unit == "D" and period == 52 else unit
    return _FREQUENCY.get(unit, f"{unit!r}-step")


@dataclass
class Series:
    """One univariate series: time (N,) datetime64, values (N,) float64, period m."""
    name: str
    time: np.ndarray
    values: np.ndarray
    period: int = 1

    def __len__(self):
        return len(self.values)

    @property
    def unit(self):
        """'M' (months), 'D' (days) or 'Y' (years): the time axis' resolution."""
        return np.datetime_data(self.time.dtype)[0]

    def head(self, n):
        """The first n observations (the training part before an origin)."""
        return Series(self.name, self.time[:n], self.values[:n], self.period)


def airline():
    """The embedded airline series (144 months), needing no file."""
    time = np.arange("1949-01", "1961-01", dtype="datetime64[M]")
    return Series("airline", time, np.array(AIRLINE, dtype=np.float64), 12)


def _parse_time(text, where):
    """'1949-01' -> month, '19580329' or '1958-03-29' -> day, '1700' -> year."""
    t = text.strip()
    try:
        if len(t) == 8 and t.isdigit():
            return np.datetime64(f"{t[:4]}-{t[4:6]}-{t[6:]}", "D")
        if t.isdigit():
            return np.datetime64(t.zfill(4), "Y")
        return np.datetime64(t)
    except ValueError:
        raise ValueError(f"{where}: expected a date (YYYY, YYYY-MM, YYYY-MM-DD or "
                         f"YYYYMMDD), found {text!r}") from None


def _parse_value(text, where):
    t = text.strip()
    if t == "" or t.lower() in ("nan", "na"):
        return np.nan
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{where}: expected a number, found {text!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{where}: expected a finite number, found {text!r}")
    return v


def _column(header, name, default, path):
    if name is None:
        return default
    names = [h.strip().lower() for h in header]
    if name.lower() not in names:
        raise ValueError(f"{path}: no column {name!r}; the header has {header}")
    return names.index(name.lower())


def _rows(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        raw = f.read().removeprefix(b"\xef\xbb\xbf")          # a UTF-8 byte-order mark
    # decoded whole, so that a byte that is not UTF-8 (another encoding, a binary
    # file such as an .npz) is named by its line
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: expected a UTF-8 CSV, found byte "
                         f"0x{raw[e.start]:02x}, which is not UTF-8 (a binary file or another "
                         "encoding; save the table as UTF-8 CSV)") from None
    # strict: a stray quote ("11"8) is an error, not a field silently read as 118
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, start = [], 1                        # (line the record starts on, fields)
    try:
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append((start, r))
            start = reader.line_num + 1        # blank lines and quoted newlines counted
    except csv.Error as e:                     # bad quoting, a field over the module's limit
        if "unexpected end of data" in str(e):
            raise ValueError(f'{path}, line {start}: expected a CSV, found a quoted field that '
                             'opens on this line and never closes (a stray ")') from None
        raise ValueError(f"{path}, line {start}: expected a CSV, found a line the CSV reader "
                         f"refuses ({e})") from None
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header line and data rows, found {len(rows)} line(s)")
    return rows[0][1], rows[1:]


def read_csv(path, time_col=None, value_col=None, *, name=None, period=None,
             interpolate=False, allow_missing=False):
    """A Series from a CSV file with a header line.

    time_col / value_col: column names (default: the first and the last column;
    a file with YEAR and MONTH columns has its time made of both). Line numbers
    in errors count the header as line 1. ``allow_missing`` keeps NaN in the
    values (for ``monthly_mean``); otherwise see the module docstring.
    """
    path = str(path)
    header, rows = _rows(path)
    lower = [h.strip().lower() for h in header]
    ym = time_col is None and "year" in lower and "month" in lower
    ti = _column(header, time_col, 0, path)
    vi = _column(header, value_col, len(header) - 1, path)
    times, values = [], []
    for n, r in rows:
        where = f"{path}, line {n}"
        if len(r) != len(header):
            raise ValueError(f"{where}: expected {len(header)} fields as the header, "
                             f"found {len(r)}")
        text = f"{r[lower.index('year')].strip()}-{int(r[lower.index('month')]):02d}" if ym \
            else r[ti]
        times.append(_parse_time(text, f"{where}, column {header[ti] if not ym else 'YEAR/MONTH'}"))
        values.append(_parse_value(r[vi], f"{where}, column {header[vi].strip()}"))
    time, lines = np.array(times), [n for n, _ in rows]
    _check_time(time, path, lines)
    values = np.array(values, dtype=np.float64)
    label = name or Path(path).stem
    if not allow_missing:
        values = fill_missing(values, time, path, interpolate, lines)
    unit = np.datetime_data(time.dtype)[0]
    if unit == "D" and len(time) > 1 and int((time[1] - time[0]).astype(int)) == 7:
        unit = "W"
    return Series(label, time, values, period or _PERIOD.get(unit, 1))


def _check_time(time, path, lines):
    """Strictly increasing and evenly spaced; errors name the offending lines
    (``lines``: the file's line of each time)."""
    if len(time) < 2:
        return
    step = np.diff(time).astype(np.int64)
    bad = np.flatnonzero(step <= 0)
    if bad.size:
        i = int(bad[0])
        what = "repeats" if step[i] == 0 else "goes backwards"
        raise ValueError(f"{path}, line {lines[i + 1]}: time {time[i + 1]} {what} (line "
                         f"{lines[i]} has {time[i]}); timestamps must be strictly increasing")
    gap = np.flatnonzero(step != step[0])
    if gap.size:
        i = int(gap[0])
        raise ValueError(f"{path}, line {lines[i + 1]}: time {time[i + 1]} follows {time[i]}, "
                         f"a step of {step[i]} where the series steps by {step[0]}; fill the gap "
                         "in the file (an empty value, with --interpolate) or resample it")


def fill_missing(values, time, where, interpolate, lines=None):
    """NaN inside -> error, or linear interpolation when asked; NaN at an end -> error.
    ``lines``: the file's line of each value (default: a header, then one per line)."""
    miss = np.isnan(values)
    if not miss.any():
        return values
    i = int(np.flatnonzero(miss)[0])
    if miss[0] or miss[-1]:
        end = "first" if miss[0] else "last"
        raise ValueError(f"{where}: the {end} value is missing; trim the series so it starts "
                         "and ends with a number (interpolation needs both neighbours)")
    if not interpolate:
        line = i + 2 if lines is None else lines[i]
        raise ValueError(f"{where}: {int(miss.sum())} missing value(s), the first at "
                         f"{time[i]} (line {line}); pass --interpolate to fill them linearly")
    idx = np.arange(len(values))
    out = values.copy()
    out[miss] = np.interp(idx[miss], idx[~miss], values[~miss])
    return out


def monthly_mean(s, name=None):
    """Average a daily or weekly series by calendar month, ignoring missing values;
    a month with none at all takes the previous month's mean (pandas'
    ``resample("MS").mean().ffill()``, as the data README suggests for CO2)."""
    months = s.time.astype("datetime64[M]")
    grid = np.arange(months[0], months[-1] + 1)
    idx = (months - grid[0]).astype(np.int64)
    ok = ~np.isnan(s.values)
    total = np.bincount(idx[ok], weights=s.values[ok], minlength=len(grid))
    count = np.bincount(idx[ok], minlength=len(grid))
    if count[0] == 0:
        raise ValueError(f"{s.name}: the first month {grid[0]} has no value to carry forward")
    out = np.empty(len(grid))
    for k in range(len(grid)):
        out[k] = total[k] / count[k] if count[k] else out[k - 1]
    return Series(name or s.name, grid, out, 12)


def load(name_or_path, **kw):
    """'airline' (embedded), 'co2' (weekly -> monthly means), 'sunspots' (monthly),
    'sunspots-yearly' from the shared folder, or any CSV path."""
    if name_or_path in (None, "", "airline-embedded"):
        return airline()
    if name_or_path in DATASETS:
        path = SHARED / DATASETS[name_or_path]
        if not path.exists():
            if name_or_path == "airline":
                return airline()
            raise FileNotFoundError(f"{path}: the shared data file for {name_or_path!r} is "
                                    "missing (see shared/data/README.md, timeseries/)")
        if name_or_path == "co2":
            return monthly_mean(read_csv(path, name="co2", allow_missing=True))
        return read_csv(path, name=name_or_path, **kw)
    return read_csv(name_or_path, **kw)


def check_length(s, need, what):
    """Refuse a series shorter than ``need`` (e.g. input + horizon) with a clear message."""
    if len(s) < need:
        raise ValueError(f"{s.name}: {len(s)} observations, but {what} needs at least {need}")
