"""Exact resume: a real ``python -m rnnlab train`` killed with SIGKILL after a
checkpoint, then resumed, ends with the same weights bit for bit as a run that
never stopped."""
import signal
import subprocess
import sys
import time

import numpy as np

from rnnlab.io import checkpoint


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
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


def test_killed_run_resumes_bit_identical(tmp_path):
    corpus = _corpus(tmp_path / "text.txt")
    _run(_cmd(corpus, tmp_path / "full"))

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(corpus, killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = killed / "last.npz"
    deadline = time.time() + 60
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.2)                                  # somewhere after that checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    at_kill = checkpoint.load(str(last))["meta"]
    assert not at_kill["finished"]
    r = _run(_cmd(corpus, killed, "--resume", str(last)))
    assert "resumed from" in r.stdout

    a = checkpoint.load(str(tmp_path / "full" / "last.npz"))
    b = checkpoint.load(str(last))
    assert a["meta"]["finished"] and b["meta"]["finished"]
    for k in a["params"]:
        np.testing.assert_array_equal(a["params"][k], b["params"][k], err_msg=k)
    for k in a["opt_state"]:
        np.testing.assert_array_equal(a["opt_state"][k], b["opt_state"][k], err_msg=k)
    assert a["meta"]["rng"] == b["meta"]["rng"]
