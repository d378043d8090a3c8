"""Polyphonic music: piano-roll data, MIDI, frame models (Bernoulli, RNN-NADE), sampling."""
