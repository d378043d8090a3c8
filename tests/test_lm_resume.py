"""Exact resume: a real ``python -m rnnlab train`` killed with SIGKILL again and
again (often in the middle of a checkpoint save), resumed each time, ends with
the same weights bit for bit as a run that never stopped; it resumes from the
saved position (it runs fewer steps than the whole run); after every kill
``metrics.jsonl`` holds exactly one row per epoch the checkpoint completed; and
the temporary files of killed saves are gone after the next successful save."""
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np

from rnnlab.io import checkpoint, metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _corpus(path, n=24000, seed=0):
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far"]
    text = " ".join(rng.choice(words, n // 4)) + "\n"
    path.write_text(text)
    return path


def _cmd(corpus, out, *extra):
    return [sys.executable, "-m", "rnnlab", "train", str(corpus), "--level", "char",
            "--hidden-size", "16", "--emb-size", "8", "--batch-size", "4", "--bptt", "8",
            "--epochs", "3", "--dropout", "0.2", "--checkpoint-every", "7", "--samples", "1",
            "--sample-len", "10", "--no-progress", "--seed", "5", "--out", str(out), *extra]


def _run(args):
    r = subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r


def _steps(stdout):
    return int(re.search(r"^([\d,]+) training steps in this run$", stdout, re.M)
               .group(1).replace(",", ""))


def _mtime(path):
    return path.stat().st_mtime_ns if path.exists() else 0


def _temporaries(folder, pids):
    return [p for p in os.listdir(folder) if ".tmp-" in p and int(p.rsplit("-", 1)[1]) in pids]


def test_killed_runs_resume_bit_identical(tmp_path):
    corpus = _corpus(tmp_path / "text.txt")
    whole = _steps(_run(_cmd(corpus, tmp_path / "full")).stdout)

    killed = tmp_path / "killed"
    last = killed / "last.npz"
    jitter, dead = random.Random(0), set()
    for attempt in range(4):
        args = _cmd(corpus, killed, *(["--resume", str(last)] if last.exists() else []))
        before = _mtime(last)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=ROOT)
        deadline = time.time() + 60
        while _mtime(last) == before and time.time() < deadline and proc.poll() is None:
            time.sleep(0.002)
        # this process saved once: no temporary file of an earlier kill is left
        assert _temporaries(killed, dead) == [], attempt
        time.sleep(jitter.uniform(0.0, 0.25))               # somewhere after that save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "training finished before it was killed"
        dead.add(proc.pid)
        meta = checkpoint.load(str(last))["meta"]
        assert not meta["finished"]
        rows = metrics.read(killed / "metrics.jsonl") if meta["history"] else []
        assert len(rows) == meta["position"]["epoch"] == len(meta["history"]), attempt
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))

    at_kill = checkpoint.load(str(last))["meta"]["position"]
    r = _run(_cmd(corpus, killed, "--resume", str(last)))
    m = re.search(r"resumed from .* at epoch (\d+), step (\d+)", r.stdout)
    assert (int(m.group(1)) - 1, int(m.group(2))) == (at_kill["epoch"], at_kill["step"])
    done = at_kill["epoch"] * (whole // 3) + at_kill["step"]      # equal epochs
    assert 0 < done and _steps(r.stdout) == whole - done < whole
    assert _temporaries(killed, dead) == []
    assert [x["epoch"] for x in metrics.read(killed / "metrics.jsonl")] == [1, 2, 3]

    a = checkpoint.load(str(tmp_path / "full" / "last.npz"))
    b = checkpoint.load(str(last))
    assert a["meta"]["finished"] and b["meta"]["finished"]
    for k in a["params"]:
        np.testing.assert_array_equal(a["params"][k], b["params"][k], err_msg=k)
    for k in a["opt_state"]:
        np.testing.assert_array_equal(a["opt_state"][k], b["opt_state"][k], err_msg=k)
    assert a["meta"]["rng"] == b["meta"]["rng"]
    timeless = [{k: v for k, v in row.items() if k != "tokens_per_s"}
                for row in metrics.read(tmp_path / "full" / "metrics.jsonl")]
    assert timeless == [{k: v for k, v in row.items() if k != "tokens_per_s"}
                        for row in metrics.read(killed / "metrics.jsonl")]
