"""Diagnosis only, never used for a choice: one network candidate on the test
origins of the backtest and on N validation origins before them, per seed.

    python benchmarks/forecast_test_probe.py co2 '{"head": "gaussian", "log": true, "ar": 12, "ar_init": "ls"}' --seeds 0,1 --valid 24

Reads the test origins, which the benchmark's choice (``forecast_backtest.py``)
never does; the README says which of its figures came from this probe. Prints
one line per seed: validation MASE and 80% coverage, test MASE and coverages.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forecast_backtest as fb                               # noqa: E402
from rnnlab.forecast import backtest, data                   # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("series", choices=sorted(fb.SETTINGS))
    ap.add_argument("candidate", help="JSON object of options over the benchmark's SETTINGS")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--valid", type=int, default=fb.VALID_ORIGINS,
                    help="consecutive validation origins (test spacing)")
    ap.add_argument("--out", default="/tmp/forecast-probe")
    args = ap.parse_args()
    cand = json.loads(args.candidate)
    s = data.load(args.series)
    step = fb.SETTINGS[args.series][2]
    first = backtest.origins(len(s), 12, step, 24)[0]
    fb.VALIDATION[args.series] = (args.valid, step)
    for sd in (int(x) for x in args.seeds.split(",")):
        v = fb.validate(args.series, cand, 12, first, f"{args.out}/v{sd}", sd).mean()
        net = fb.network(args.series, cand, sd, 12, f"{args.out}/t{sd}")[1]
        t = backtest.run(s, {"rnn": net}, 12, step, 24).models["rnn"].mean()
        print(f"seed {sd}: valid ({args.valid}) mase {v['mase']:.4f} cov80 {v['coverage_80']:.3f}"
              f" | test mase {t['mase']:.4f} cov80 {t['coverage_80']:.3f} "
              f"cov95 {t['coverage_95']:.3f}", flush=True)


if __name__ == "__main__":
    main()
