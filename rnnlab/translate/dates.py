"""The embedded task: dates written many ways -> ISO 8601, generated and seeded.

    "tuesday, 3 march 1998" -> "1998-03-03"      "03.03.98" -> "1998-03-03"

Characters are the tokens on both sides (a space is the token ``_``). Dates
are drawn uniformly from 1950-01-01 .. 2049-12-31; two-digit years mean
1950-1999 for 50-99 and 2000-2049 for 00-49. Numeric formats are day first
(European), so no date is ambiguous. The weekday, when written, is the true one,
so the model must read the date, not the weekday. The held-out dates are
disjoint from the training dates.
"""
import datetime as dt

import numpy as np

FORMATS = (
    "{d} {B} {Y}", "{dd} {B} {Y}", "{B} {d}, {Y}", "{b} {d} {Y}", "{d} {b} {Y}",
    "{A}, {d} {B} {Y}", "{a} {d} {b} {Y}", "{A} {B} {d} {Y}", "{dd}.{mm}.{Y}",
    "{dd}.{mm}.{y}", "{d}/{m}/{Y}", "{dd}/{mm}/{y}", "{Y}-{mm}-{dd}", "{Y}/{m}/{d}",
    "{d} {B}, {Y}", "{dd}-{b}-{y}", "{B} {Y}, {d}", "{d}.{m}.{y}", "{dd} {b} {y}",
)
SIZES = {"train": 20000, "valid": 500, "test": 1000}
FIRST, DAYS = dt.date(1950, 1, 1), 36524                   # to 2049-12-31


def render(date, fmt, upper=False):
    """One written form of ``date`` (a datetime.date)."""
    text = fmt.format(d=date.day, dd=f"{date.day:02d}", m=date.month, mm=f"{date.month:02d}",
                      Y=date.year, y=f"{date.year % 100:02d}", B=date.strftime("%B").lower(),
                      b=date.strftime("%b").lower(), A=date.strftime("%A").lower(),
                      a=date.strftime("%a").lower())
    return text.upper() if upper else text


def chars(text):
    return ["_" if c == " " else c for c in text]


def sample(n, rng, exclude=frozenset()):
    """n (source chars, target chars) pairs with day numbers not in ``exclude``."""
    days = set()
    while len(days) < n:
        d = int(rng.integers(0, DAYS))
        if d not in exclude:
            days.add(d)
    pairs = []
    for d in sorted(days):
        date = FIRST + dt.timedelta(days=d)
        fmt = FORMATS[int(rng.integers(len(FORMATS)))]
        src = render(date, fmt, upper=bool(rng.random() < 0.1))
        pairs.append((chars(src), chars(date.isoformat())))
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order], days


def splits(seed=0, sizes=None):
    """{"train", "valid", "test"}: disjoint dates, the same for the same seed."""
    sizes = sizes or SIZES
    rng = np.random.default_rng([seed, 2026])
    test, used = sample(sizes["test"], rng)
    valid, v = sample(sizes["valid"], rng, used)
    train, _ = sample(sizes["train"], rng, used | v)
    return {"train": train, "valid": valid, "test": test}
