"""Training forecasters on the shared trainer, and forecasting with them.

Windows: for a series of N observations and an origin o (the last observed
index), the input is features[o-L+1 .. o] (L, F), the future covariates are
calendar[o+1 .. o+Hz] (Hz, C) and the target is ``Scaling.targets`` (Hz,). Every
origin whose targets lie inside the training part is used; the last ``valid``
origins are held out to pick the best epoch (``best.npz``) and to calibrate the
intervals (``heads.factors``). Several series train one global model: their windows are
pooled, each series scaled with its own statistics.
"""
import math
from dataclasses import dataclass

import numpy as np

from rnnlab.forecast import data, heads, model, transform
from rnnlab.io import checkpoint
from rnnlab.training import trainer
from rnnlab.training.options import option

KIND = "forecast"
MAX_ENSEMBLE = 100      # each member is a whole training run: more only waits longer


@dataclass
class ForecastOptions(trainer.TrainOptions):
    """Options of ``rnnlab forecast train`` (and the backtest's network)."""
    arch: str = option("direct", "direct (encoder + multi-horizon head) or seq2seq "
                       "(encoder-decoder)", choices=("direct", "seq2seq"))
    mode: str = option("gru", "recurrent cell", choices=("rnn", "lstm", "gru"))
    hidden_size: int = option(32, "hidden units H", lo=1)
    num_layers: int = option(1, "stacked recurrent layers", lo=1)
    head: str = option("gaussian", "output: point (MSE), gaussian (NLL) or quantile (pinball)",
                       choices=tuple(heads.HEADS))
    input_len: int = option(24, "input window L (observations)", lo=1)
    ar: int = option(0, "last differenced values also fed linearly to the output "
                     "(LSTNet's highway; 0: off, at most --input-len)", lo=0)
    ar_init: str = option("zero", "start of the highway: zero, or ls (least squares of the "
                          "targets on its inputs, so training starts at the linear forecast)",
                          choices=("zero", "ls"))
    horizon: int = option(12, "forecast horizon Hz", lo=1)
    log: bool = option(False, "model log values (positive series only)")
    sqrt: bool = option(False, "model square roots (series >= 0; counts such as sunspots, "
                        "whose spread grows with their level); not with --log; the network "
                        "only (a backtest's ETS and ARIMA read --log, not this)")
    diff: str = option("seasonal", "difference the series: seasonal (lag m), first (lag 1) "
                       "or none; or window: take each input window's own linear trend and "
                       "seasonal indices out of it and forecast the deviation from them "
                       "carried forward (ES-RNN-style); or both: seasonal, and the zero "
                       "target also carries the latest seasonal change forward (the "
                       "forecast of ARIMA(0,1,0)(0,1,0)m)",
                       choices=("seasonal", "first", "none", "window", "both"))
    halflife: float = option(0.0, "with --diff window: weight the window's fit by 0.5 ** "
                             "(age / halflife) (discounted least squares: the line follows "
                             "the recent level and slope, as Brown's double exponential "
                             "smoothing); 0: plain least squares", lo=0)
    valid: int = option(12, "last training origins held out for best epoch and calibration",
                        lo=0)
    calibrate: bool = option(True, "widen each interval, per horizon step, to its coverage "
                             "on windows the network never trained on: the held-out origins "
                             "and those observed since training (split conformal)")
    aci: float = option(0.0, "adaptive conformal step gamma (Gibbs & Candes 2021): the "
                        "calibration level follows the misses of the windows in time order "
                        "(0: plain split conformal)", lo=0)
    refit: bool = option(True, "after choosing the epoch count and the calibration on the "
                         "held-out origins, train again on every origin for that many epochs")
    ensemble: int = option(1, "seeds averaged (seed, seed+1, ...)", lo=1, hi=MAX_ENSEMBLE)
    lr: float = option(3e-3, "learning rate", lo=0, lo_open=True)
    epochs: int = option(150, "number of epochs", lo=1)
    batch_size: int = option(16, "windows per step", lo=1)
    clip: float = option(1.0, "clip gradients to this global norm (0: off)", lo=0)
    progress: bool = option(False, "show a progress bar on stderr")
    out: str = option("runs/forecast", "output folder: last.npz, best.npz, metrics.jsonl")

    def __post_init__(self):
        super().__post_init__()
        # pairs the ranges alone cannot refuse: settings that would be cut or ignored
        if self.ar > self.input_len:
            raise ValueError(f"--ar: expected an integer <= --input-len {self.input_len} (the "
                             f"highway reads the input window's last values), got {self.ar}")
        if self.log and self.sqrt:
            raise ValueError("--sqrt: expected at most one of --log and --sqrt (each is a "
                             "transform of the values), got both")
        if self.halflife and self.diff != "window":
            raise ValueError(f"--halflife: expected 0 unless --diff window (it weights the "
                             f"window's own fit), got {self.halflife:g} with --diff {self.diff}")


def lag_of(opts, series):
    return {"seasonal": series.period, "first": 1, "none": 0, "window": 0,
            "both": series.period}[opts.diff]


def windows(s, scaling, L, Hz, origins):
    """x (N, L, F), cov (N, Hz, C), y (N, Hz) for the given origins of series s."""
    feats = scaling.features(s.values, s.time, s.unit)                     # (T, F)
    cal = transform.calendar(np.concatenate([s.time, transform.future_time(s.time, Hz)]),
                             s.unit)                                         # (T+Hz, C)
    x = np.stack([scaling.inputs(feats, s.values, o, L) for o in origins])
    cov = np.stack([cal[o + 1:o + 1 + Hz] for o in origins])
    y = np.stack([scaling.targets(s.values, o, Hz) for o in origins]) if \
        origins[-1] + Hz < len(s) else None
    return x, cov, y


def first_origin(opts, lag):
    return opts.input_len - 1 + lag


def min_length(opts, s):
    """(the fewest observations of s that training needs, what needs them)."""
    lag = lag_of(opts, s)
    return (first_origin(opts, lag) + 1 + opts.horizon + opts.valid + 1,
            f"--input-len {opts.input_len}, --horizon {opts.horizon}, --valid {opts.valid} "
            f"and differencing at lag {lag}")


class Task:
    """Pooled training windows and held-out validation windows for ``trainer.fit``."""

    def __init__(self, opts, mcfg, train, valid):
        self.opts, self.mcfg, self.train, self.valid = opts, mcfg, train, valid

    def steps(self, epoch):
        return math.ceil(len(self.train[2]) / self.opts.batch_size)

    def loss_and_grads(self, params, epoch, i, rng):
        x, cov, y = self.train
        order = np.random.default_rng([self.opts.seed, epoch]).permutation(len(y))
        idx = order[i * self.opts.batch_size:(i + 1) * self.opts.batch_size]
        loss, grads = model.loss_and_grads(self.mcfg, params, x[idx], cov[idx], y[idx])
        return loss, len(idx), grads

    def evaluate(self, params):
        x, cov, y = self.valid if self.valid is not None else self.train
        out, _ = model.forward(self.mcfg, params, x, cov)
        loss, _ = heads.loss(self.mcfg.head, out, y)
        mae = float(np.mean(np.abs(heads.quantiles(self.mcfg.head, out)[..., heads.MEDIAN] - y)))
        return {"valid_loss": loss, "valid_mae": mae}


def build(opts, series_list):
    """Scalings, model config and the pooled (train, valid) windows."""
    if opts.ar_init == "ls" and not opts.ar:
        raise ValueError("--ar-init ls: expected a highway to start (--ar p > 0), got --ar 0")
    for s in series_list[1:]:
        # pooled windows need the same calendar covariates, forecasts the same steps
        if s.unit != series_list[0].unit:
            ref = series_list[0]
            raise ValueError(f"{s.name}: {data.frequency(s.unit, s.period)} data, but "
                             f"{ref.name} is {data.frequency(ref.unit, ref.period)}; "
                             "one global model needs series of one frequency (train one "
                             "model per frequency)")
    parts, scalings = {"train": [], "valid": []}, []
    for s in series_list:
        lag = lag_of(opts, s)
        first = first_origin(opts, lag)
        data.check_length(s, *min_length(opts, s))
        sc = transform.Scaling.fit(s.values, opts.log, lag,
                                   opts.input_len if opts.diff == "window" else 0, s.period,
                                   drift=opts.diff == "both", halflife=opts.halflife,
                                   sqrt=opts.sqrt)
        scalings.append(sc)
        last = len(s) - 1 - opts.horizon                                     # last origin
        cut = last - opts.valid
        parts["train"].append(windows(s, sc, opts.input_len, opts.horizon,
                                      np.arange(first, cut + 1)))
        if opts.valid:
            parts["valid"].append(windows(s, sc, opts.input_len, opts.horizon,
                                          np.arange(cut + 1, last + 1)))
    pool = {k: tuple(np.concatenate(a) for a in zip(*v)) if v else None
            for k, v in parts.items()}
    F, C = pool["train"][0].shape[2], pool["train"][1].shape[2]
    mcfg = model.ForecastConfig(F, C, opts.horizon, opts.arch, opts.mode, opts.hidden_size,
                                opts.num_layers, opts.head, opts.ar)
    return mcfg, scalings, pool


def raw_quantiles(mcfg, members, x, cov):
    """Uncalibrated quantiles (N, Hz, P) on the network's scale, the members' mean."""
    return np.mean([heads.quantiles(mcfg.head, model.forward(mcfg, p, x, cov)[0])
                    for p in members], axis=0)


def start(opts, mcfg, windows_):
    """Initial params for training on ``windows_`` (x, cov, y)."""
    params = model.init_params(mcfg, opts.seed)
    if opts.ar_init == "ls":
        params = model.fit_highway(mcfg, params, windows_[0], windows_[2])
    return params


def _member(opts, mcfg, pool, meta, log):
    """One trained network: (params, its uncalibrated quantiles (N, Hz, P) on the
    held-out windows from the weights that never trained on them, or None)."""
    from dataclasses import replace
    if pool["valid"] is None:
        st = trainer.fit(opts, Task(opts, mcfg, pool["train"], None),
                         start(opts, mcfg, pool["train"]), kind=KIND, app_meta=meta, log=log)
        return st.params, None
    st = trainer.fit(opts, Task(opts, mcfg, pool["train"], pool["valid"]),
                     start(opts, mcfg, pool["train"]), kind=KIND, app_meta=meta, log=log)
    params = checkpoint.load(f"{opts.out}/best.npz", kind=KIND)["params"]
    model.check_params(mcfg, params)
    held = raw_quantiles(mcfg, [params], *pool["valid"][:2])
    if opts.refit:
        values = [r[opts.monitor] for r in st.history]
        epochs = 1 + int(np.argmin(values) if not trainer.higher_is_better(opts.monitor)
                         else np.argmax(values))
        every = tuple(np.concatenate([a, b]) for a, b in zip(pool["train"], pool["valid"]))
        o = replace(opts, epochs=epochs, early_stop=0, out=f"{opts.out}/refit")
        params = trainer.fit(o, Task(o, mcfg, every, None), start(o, mcfg, every),
                             kind=KIND, app_meta=meta, log=log).params
    return params, held


def fit(opts, series_list, log=print):
    """Train ``opts.ensemble`` members; returns a calibrated ``Forecaster``."""
    from dataclasses import replace
    mcfg, scalings, pool = build(opts, series_list)
    meta = {"model": mcfg.to_dict(), "scalings": [s.to_dict() for s in scalings],
            "series": [s.name for s in series_list]}
    members, held = [], []
    for k in range(opts.ensemble):
        o = replace(opts, seed=opts.seed + k,
                    out=opts.out if opts.ensemble == 1 else f"{opts.out}/member{k}")
        params, q = _member(o, mcfg, pool, meta, log)
        members.append(params)
        held.append(q)
    V = len(heads.LEVELS)
    held_q = np.mean(held, axis=0) if held[0] is not None else None        # (N, Hz, P)
    scores = heads.scores(held_q, pool["valid"][2]) if held_q is not None \
        else np.zeros((0, opts.horizon, V))
    return Forecaster(mcfg, members, scalings, opts.input_len, scores,
                      [len(s) - 1 for s in series_list], opts.calibrate, opts.aci, held_q,
                      [s.unit for s in series_list])


class Forecaster:
    """A trained network (or an ensemble): ``predict(series, scaling_index)``.

    ``held`` (N, Hz, V): conformity scores of the held-out windows; ``ends``: per
    series, the last index of the training part; ``calibrate``: widen the
    intervals by ``heads.factors`` (else the network's own); ``held_q`` (N, Hz, P):
    the uncalibrated quantiles behind ``held`` (the last N / len(ends) origins of
    each series' training part whose targets it holds, series after series), kept
    after training for ``calibration_windows`` (not saved); ``units``: per series,
    the time axis' resolution ('M', 'D', 'Y'; None in files written before it was
    saved).
    """

    def __init__(self, mcfg, members, scalings, input_len, held, ends, calibrate=True, aci=0.0,
                 held_q=None, units=None):
        self.mcfg, self.members, self.scalings, self.L = mcfg, members, scalings, input_len
        self.held, self.ends, self.calibrate, self.aci = held, list(ends), calibrate, aci
        self.held_q, self.units = held_q, units

    def check_series(self, s, which=0, model="the model"):
        """Refuse a series of another frequency than the one the model trained on
        (other calendar covariates, another seasonal period): its windows would not
        fit the network, or would be differenced at the wrong lag."""
        sc = self.scalings[which]
        unit = self.units[which] if self.units else None
        same = transform.calendar(s.time[-1:], s.unit).shape[1] == self.mcfg.n_covariates
        if unit is not None:           # older files: no units, and their period may be absent
            same = same and unit == s.unit and sc.period == s.period
        if same:
            return
        trained = f"{data.frequency(unit, sc.period)} data (period {sc.period})" if unit else \
            "monthly data (month-of-year covariates)" if self.mcfg.n_covariates else \
            "non-monthly data (no month-of-year covariates)"
        given = data.frequency(s.unit, s.period)
        raise ValueError(f"{s.name}: {given} data (period {s.period}), but {model} was trained "
                         f"on {trained}; forecast it with a model trained on {given} data")

    def factors(self, s, which=0):
        """Widening factors (Hz, P) at the end of s: the held-out scores and those of
        every target of s after the training part, from each window that forecast it
        (``observed_since``)."""
        if not self.calibrate or self.mcfg.head == "point":
            return np.ones((self.mcfg.horizon, len(heads.QUANTILES)))
        _, y, q = self.since(s, which)
        return heads.factors(np.concatenate([self.held, heads.scores(q, y)]), gamma=self.aci)

    def since(self, s, which=0):
        """``observed_since``'s origins (N,) and targets (N, Hz), and the network's
        own quantiles (N, Hz, P) on their windows, on its scale (float64, as the
        params)."""
        later, y = self.observed_since(s, which)
        q = np.zeros((0, self.mcfg.horizon, len(heads.QUANTILES)))
        if len(later):
            x, cov, _ = windows(s, self.scalings[which], self.L, self.mcfg.horizon, later)
            q = raw_quantiles(self.mcfg, self.members, x, cov)
        return later, y, q

    def observed_since(self, s, which=0):
        """Origins (N,) whose windows forecast a value of s after the training part
        (it ends at ``ends[which]``), and their targets y (N, Hz): NaN where a target
        lies in the training part (the weights fitted it) or after the end of s."""
        sc, Hz, end = self.scalings[which], self.mcfg.horizon, self.ends[which]
        later = np.arange(max(end - Hz + 1, self.L - 1 + sc.lag), len(s) - 1)
        pad = np.concatenate([s.values, np.full(Hz, np.nan)])             # not observed yet
        y = np.array([sc.targets(pad, o, Hz) for o in later]).reshape(len(later), Hz)
        seen = later[:, None] + np.arange(1, Hz + 1) <= end                 # (N, Hz)
        return later, np.where(seen, np.nan, y)

    def predict(self, s, which=0, calibrated=True):
        """Quantiles (Hz, P) of the next Hz values after the end of s, in s's units
        (``calibrated=False``: the network's own)."""
        sc, Hz = self.scalings[which], self.mcfg.horizon
        self.check_series(s, which)
        data.check_length(s, self.L + sc.lag, f"an input window of {self.L} at lag {sc.lag}")
        x, cov, _ = windows(s, sc, self.L, Hz, np.array([len(s) - 1]))
        q = raw_quantiles(self.mcfg, self.members, x, cov)[0]                # (Hz, P)
        if calibrated:
            q = heads.widen(q, self.factors(s, which))
        return sc.invert(q.T, s.values).T

    def calibration_windows(self, s, which=0):
        """The windows ``factors`` reads, in s's units, for calibrating several
        networks as one (``backtest.Combination``): origins (N,), the network's own
        quantiles (N, Hz, P) and the targets (N, Hz), NaN where not usable. First
        the held-out origins (quantiles from the weights that never trained on
        them), then those observed since the training part (``observed_since``)."""
        if self.held_q is None:
            raise ValueError("calibration windows: this forecaster kept no held-out "
                             "quantiles (trained with --valid 0, or loaded from a file)")
        sc, Hz, end = self.scalings[which], self.mcfg.horizon, self.ends[which]
        n = len(self.held_q) // len(self.ends)
        held = np.arange(end - Hz - n + 1, end - Hz + 1)
        later, y_later, q_later = self.since(s, which)
        at = np.concatenate([held, later])
        q = np.concatenate([self.held_q[which * n:(which + 1) * n], q_later])
        pad = np.concatenate([s.values, np.full(Hz, np.nan)])
        y = np.stack([pad[o + 1:o + 1 + Hz] for o in at])                 # (N, Hz)
        y[n:][np.isnan(y_later)] = np.nan                 # in the training part or not observed
        values = np.stack([sc.invert(qo.T, s.values[:o + 1]).T for o, qo in zip(at, q)])
        return at, values, y


class Network:
    """A backtest forecaster ``(history, horizon) -> q``: trains on the history at
    the first origin, then forecasts from every later origin with the longer
    history as input and recalibrated on the windows seen since (darts'
    ``retrain=False``); ``retrain=k`` trains anew at every k-th origin
    (``True``: at every one)."""

    def __init__(self, opts, retrain=0, log=None, label=None):
        self.opts, self.every, self.log = opts, int(retrain), log or (lambda *a: None)
        self.label = label or f"{opts.mode.upper()} {opts.arch} {opts.head}" + (
            f" x{opts.ensemble}" if opts.ensemble > 1 else "")
        self.forecaster, self.calls = None, 0

    def fitted(self, s, horizon):
        """The Forecaster for the origin at the end of s (trained anew where due)."""
        from dataclasses import replace
        if self.forecaster is None or (self.every and self.calls % self.every == 0):
            o = replace(self.opts, horizon=horizon, out=f"{self.opts.out}/origin{self.calls}")
            self.forecaster = fit(o, [s], self.log)
        self.calls += 1
        return self.forecaster

    def __call__(self, s, horizon):
        return self.fitted(s, horizon).predict(s)


def save_forecaster(path, f, series_names):
    """One ``.npz`` (the shared checkpoint format): member k's weights as ``m<k>.<name>``,
    the held-out conformity scores as ``held``; the architecture, scalings, window
    length and training ends in the metadata."""
    params = {f"m{k}.{n}": v for k, p in enumerate(f.members) for n, v in p.items()}
    params["held"] = np.asarray(f.held, np.float64)
    meta = {"model": f.mcfg.to_dict(), "scalings": [s.to_dict() for s in f.scalings],
            "input_len": f.L, "members": len(f.members), "ends": f.ends,
            "calibrate": bool(f.calibrate), "aci": float(f.aci), "series": list(series_names)}
    if f.units:
        meta["units"] = list(f.units)
    checkpoint.save(path, params, meta=meta, kind=KIND)


def load_forecaster(path):
    """(Forecaster, series names) from a ``forecaster.npz``, every metadata field and
    array checked (``_check_file``): a CheckpointError naming the file otherwise."""
    ck = checkpoint.load(path, kind=KIND)
    m = ck["meta"]
    if isinstance(m, dict) and "train_config" in m and "members" not in m:
        raise checkpoint.CheckpointError(
            f"{path}: a training checkpoint (best.npz / last.npz), not a forecaster; --model "
            "expects the forecaster.npz that rnnlab forecast train writes in its --out folder")
    try:
        mcfg = model.ForecastConfig(**checkpoint.expect(m, "model", checkpoint.TABLE, path))
        members = _check_file(path, m, mcfg, ck["params"])
        scalings = [transform.Scaling(**s) for s in m["scalings"]]
        units = m.get("units")
        if units is not None and not (isinstance(units, list) and len(units) == len(scalings)
                                      and all(isinstance(u, str) for u in units)):
            raise TypeError(f"'units' is {units!r}, expected one time unit per series")
        return Forecaster(mcfg, members, scalings, m["input_len"], ck["params"]["held"],
                          m["ends"], m["calibrate"], float(m.get("aci", 0.0)),
                          units=units), m["series"]
    except checkpoint.CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as e:
        raise checkpoint.CheckpointError(
            f"{path}: not a forecaster file ({type(e).__name__}: {e}); --model expects the "
            "forecaster.npz that rnnlab forecast train writes") from None


_POSITIVE_INT = ("an integer >= 1", lambda v: checkpoint.is_int(v) and v >= 1)
_POSITIVE = ("a finite number > 0", lambda v: checkpoint.FINITE[1](v) and v > 0)
_NONNEG = ("a finite number >= 0", lambda v: checkpoint.FINITE[1](v) and v >= 0)
# a Scaling's fields (transform.Scaling), as Scaling.fit makes them
_SCALING = {"log": checkpoint.BOOL, "lag": checkpoint.NONNEG_INT, "center": checkpoint.FINITE,
            "spread": _POSITIVE, "scale": _POSITIVE, "window": checkpoint.NONNEG_INT,
            "period": _POSITIVE_INT, "drift": checkpoint.BOOL, "halflife": _NONNEG}
_SCALING_SINCE = {"sqrt": checkpoint.BOOL}     # fields that files of older rnnlab lack


def _per_series(n, words, ok):
    return (f"a list of {n} {words} (one per scaling)",
            lambda v: isinstance(v, list) and len(v) == n and all(map(ok, v)))


def _check_file(path, m, mcfg, params):
    """The members' weights (a list of dicts) of a forecaster file whose metadata
    ``m`` and arrays ``params`` agree: ``members`` networks of the architecture
    ``mcfg`` and no other array but ``held`` (the held-out scores (N, Hz, V), >= 0);
    an input window of at least the highway's ar; per series one scaling (its
    window 0 or the input window), training end and name."""
    E = checkpoint.expect

    def bad(why):
        return checkpoint.CheckpointError(f"{path}: {why}")
    n = E(m, "members", (f"an integer from 1 to {MAX_ENSEMBLE}", lambda v: checkpoint.is_int(v)
                         and 1 <= v <= MAX_ENSEMBLE), path)
    L = E(m, "input_len", (f"an integer >= max(1, the model's ar {mcfg.ar})",
                           lambda v: checkpoint.is_int(v) and v >= max(1, mcfg.ar)), path)
    scalings = E(m, "scalings", ("a non-empty list of JSON objects",
                                 lambda v: bool(v) and checkpoint.TABLES[1](v)), path)
    for i, sc in enumerate(scalings):
        for key, what in {**_SCALING, "window": (f"0 or the input_len {L}",
                                                 lambda v: checkpoint.is_int(v) and v in (0, L))
                          }.items():
            E({f"scalings[{i}]": sc}, f"scalings[{i}].{key}", what, path)
        for key, what in _SCALING_SINCE.items():
            if key in sc:
                E({f"scalings[{i}]": sc}, f"scalings[{i}].{key}", what, path)
        unknown = sorted(set(sc) - set(_SCALING) - set(_SCALING_SINCE))
        if unknown:
            raise bad(f"scalings[{i}] has unknown field(s) {unknown}; this rnnlab knows "
                      f"{sorted({**_SCALING, **_SCALING_SINCE})}")
        if sc.get("log") and sc.get("sqrt"):
            raise bad(f"scalings[{i}] has both log and sqrt true; a scaling has at most one")
    E(m, "ends", _per_series(len(scalings), "integers >= 0", checkpoint.NONNEG_INT[1]), path)
    E(m, "series", _per_series(len(scalings), "names", lambda v: isinstance(v, str)), path)
    E(m, "calibrate", checkpoint.BOOL, path)
    if "aci" in m:                                      # absent from older files
        E(m, "aci", _NONNEG, path)
    if mcfg.n_features != mcfg.n_covariates + 2:        # [dw, lv, calendar]
        raise bad(f"the model reads {mcfg.n_features} features per step; its "
                  f"{mcfg.n_covariates} covariates make {mcfg.n_covariates + 2}")
    names = {f"m{k}.{name}" for k in range(n) for name in model.param_shapes(mcfg)}
    extra = sorted(set(params) - names - {"held"})
    if extra:
        raise bad(f"arrays {extra[:4]} belong to none of the {n} member(s)")
    members = []
    for k in range(n):
        p = {name[len(f"m{k}."):]: v for name, v in params.items() if name.startswith(f"m{k}.")}
        try:
            model.check_params(mcfg, p)
        except ValueError as e:
            raise bad(f"member {k}: {e}") from None
        members.append(p)
    want = f"(N, {mcfg.horizon}, {len(heads.LEVELS)})"
    held = params.get("held")
    if held is None or held.ndim != 3 or held.shape[1:] != (mcfg.horizon, len(heads.LEVELS)):
        raise bad(f"'held' (the held-out scores) should have shape {want}, found "
                  + ("none" if held is None else f"{held.shape}"))
    if (held < 0).any():
        raise bad(f"'held' (the held-out scores) has {int((held < 0).sum())} negative "
                  "value(s); scores are >= 0")
    return members
