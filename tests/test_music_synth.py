"""The built-in synthesiser: the right pitch, the right length, a valid WAV."""
import wave

import numpy as np

from rnnlab.music import synth


def test_a4_sounds_at_440_hz_for_its_duration(tmp_path):
    roll = np.zeros((8, 88), bool)
    roll[2:6, 69 - 21] = True                                  # A4 for four quarter-second steps
    x = synth.render(roll, step_seconds=0.25)
    rate = synth.RATE
    assert len(x) == 8 * rate // 4 + rate // 10
    assert not x[:2 * rate // 4].any() and np.abs(x).max() == np.float64(0.8)
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * rate / len(x) - 440.0) < 2.0
    path = synth.write_wav(tmp_path / "a.wav", x)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (rate, 1, 2)
        assert w.getnframes() == len(x)


def test_silence_stays_silent():
    assert not synth.render(np.zeros((3, 88), bool)).any()
