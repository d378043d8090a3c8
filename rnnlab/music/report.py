"""``rnnlab music sample``: MIDI, piano rolls, WAVs and one HTML page per run.

The page (the shared ``rnnlab.io.page.Page``) shows the NLL table of the
checkpoint (valid and test), its training curves, the real piece that primed
each sample next to the sample itself, and audio players for all of them.
"""
import os

from rnnlab.io.atomic import check_writable
from rnnlab.io.page import Page
from rnnlab.music import generate, midi, plots, synth, train

BPM = 100


def _primers(spec, sets, num, steps, spb):
    """For each sample k: (primer roll or None, the real piece it came from or
    None, its label). A MIDI file is read once, here, before anything is written."""
    if spec == "none":
        return [(None, None, "no primer")] * num
    if spec == "test":
        tests = sets["test"]
        return [(tests[k % len(tests)][:steps], tests[k % len(tests)],
                 f"test piece {k % len(tests)}") for k in range(num)]
    if not os.path.exists(spec):
        raise ValueError(f"--primer {spec}: no such file; expected test, none or a MIDI file")
    try:                  # midi's own errors (a folder, an empty or corrupt file), named
        piece = midi.read_midi(spec, spb)
    except (OSError, ValueError) as e:
        raise ValueError(f"--primer {e}") from None
    return [(piece[:steps], piece, os.path.basename(spec))] * num


def _write_piece(roll, stem, spb, title):
    """stem.mid, stem.png, stem.wav for one roll; returns the WAV's path."""
    midi.write_midi(roll, stem + ".mid", spb, BPM)
    plots.piano_roll(roll, stem + ".png", title, _step_label(spb))
    return synth.write_wav(stem + ".wav", synth.render(roll, 60.0 / BPM / spb))


def _step_label(spb):
    return "time step (one beat)" if spb == 1 else f"time step (1/{spb} beat)"


def sample_run(path, out, num, length, temperature, primer, primer_steps, seed):
    """Write samples and OUT/report.html for checkpoint ``path``; returns the page path.

    Every argument, the checkpoint, the data, the primer and ``out`` are checked
    before the first file is written: bad input leaves nothing behind."""
    generate.SampleOptions(checkpoint=path, out=out, num=num, length=length,
                           temperature=temperature, primer=primer,
                           primer_steps=primer_steps, seed=seed)           # the checks
    mcfg, params, meta = train.load_model(path)
    sets, source = train.data_of(meta)
    spb = int(meta["app"].get("steps_per_beat", 2))
    primers = _primers(primer, sets, num, primer_steps, spb)
    generate.check_primer(max(len(p) if p is not None else 0 for p, _, _ in primers), length)
    check_writable("--out", out, folder=True)
    scores = {s: train.evaluate(mcfg, params, sets[s]) for s in ("valid", "test")}
    os.makedirs(out, exist_ok=True)
    page = Page(f"rnnlab music: {mcfg.mode} H={mcfg.hidden_size}, {mcfg.output} output, "
                f"{source}")
    page.text(f"checkpoint {path} (after epoch {len(meta.get('history') or [])}); samples of "
              f"{length} steps at temperature {temperature:g}, seed {seed}, primer {primer} "
              f"({primer_steps} steps).")
    page.heading("Negative log-likelihood per time step")
    page.table([[s, r["nll"], r["acc"], r["frames"]] for s, r in scores.items()],
               header=["split", "NLL (nats)", "frame accuracy", "frames"])
    history = meta.get("history") or []
    if history:
        noise = meta.get("train_config", {}).get("weight_noise")
        label = f"train (at noisy weights, σ = {noise:g})" if noise else "train"
        page.figure(plots.curves(history, os.path.join(out, "curves.png"), source, label),
                    "training curves (validation after every epoch)")
    page.heading("Real vs generated")
    for k, (prime, real, label) in enumerate(primers):
        roll = generate.sample(mcfg, params, length, prime, temperature, seed + k)[0]
        audio = [(_write_piece(roll, os.path.join(out, f"sample_{k}"), spb,
                               f"sample {k} (primer: {label})"), f"generated sample {k}")]
        if real is None:
            page.figure(os.path.join(out, f"sample_{k}.png"), f"generated sample {k}")
        else:
            audio.insert(0, (_write_piece(real[:length], os.path.join(out, f"real_{k}"), spb,
                                          label), f"real: {label}"))
            png = plots.real_vs_generated(
                real[:length], roll, os.path.join(out, f"pair_{k}.png"), len(prime),
                (f"real: {label}", f"generated sample {k}, primed with its first "
                 f"{len(prime)} steps"), _step_label(spb))
            page.figure(png, f"piece {k}: real (top) and generated (bottom)")
        for wav, caption in audio:
            page.audio(wav, caption)
    return page.write(os.path.join(out, "report.html"))
