"""Round fourteen's audit of lm, music, translate, caption, gradflow, gradcheck: options
that the chosen mode never reads (refused, not ignored), a --config file named by
every train command, --monitor checked before the first epoch, and a --min-count
that would leave no token but <unk>."""
import re

import pytest

from rnnlab.caption import train as caption_train
from rnnlab.io import checkpoint
from rnnlab.lm import model as lm
from rnnlab.music import train as music_train
from rnnlab.training import trainer
from rnnlab.translate import train as translate_train


def test_options_the_optimiser_or_schedule_never_reads_are_refused(cli_error, tmp_path):
    out = tmp_path / "run"
    assert cli_error(["train", "--momentum", "0.9", "--optimizer", "adam", "--out", out]) == (
        "--momentum 0.9: read only with --optimizer sgd; with --optimizer adam it would be "
        "ignored")
    assert "--decay-start 2: read only with --schedule zaremba; with --schedule constant" in \
        cli_error(["train", "--schedule", "constant", "--decay-start", "2", "--out", out])
    assert "--patience 3: read only with --schedule plateau; with --schedule step" in cli_error(
        ["music", "train", "--schedule", "step", "--patience", "3", "--out", out])
    assert not out.exists()
    with pytest.raises(ValueError, match="--lr-decay 0.7: read only with --schedule step or "
                                         "plateau; with --schedule constant"):
        trainer.check_read(trainer.TrainOptions(lr_decay=0.7))
    trainer.check_read(trainer.TrainOptions(schedule="plateau", patience=3, lr_decay=0.7))
    # music's own default patience (2) is no choice of the user's: --schedule step keeps it
    trainer.check_read(music_train.MusicOptions(schedule="step"))


@pytest.mark.parametrize("app", ["music", "translate", "caption"])
def test_every_train_command_names_its_config_file(cli_error, tmp_path, app):
    toml = tmp_path / "run.toml"
    toml.write_text("lrr = 1\n")
    assert cli_error([app, "train", "--config", toml]) == f"--config {toml}: unknown option(s) lrr"
    toml.write_text("lr = -1\n")
    assert cli_error([app, "train", "--config", toml]).startswith(f"--config {toml}: --lr: ")
    assert cli_error([app, "train", "--lr", "-1"]).startswith("--lr: expected a number > 0")


@pytest.mark.parametrize("app, typo", [("music", "valid_loss"), ("translate", "valid_blue"),
                                       ("caption", "valid_exac")])
def test_monitor_is_checked_before_the_first_epoch(cli_error, tmp_path, app, typo):
    toml = tmp_path / "run.toml"
    toml.write_text(f'monitor = "{typo}"\n')
    msg = cli_error([app, "train", "--config", toml, "--out", tmp_path / "run"])
    assert msg.startswith(f"--config {toml}: --monitor: expected one of valid_") and typo in msg
    assert not (tmp_path / "run").exists()


def test_translate_refuses_what_its_data_or_validation_ignores(cli_error):
    assert cli_error(["translate", "train", "--src-lang", "de"]).startswith(
        "--src-lang/--tgt-lang: the generated dates task has no languages to choose")
    assert cli_error(["translate", "train", "--data", "multi30k", "--src-lang", "de",
                      "--tgt-lang", "en", "--no-short"]) == (
        "--no-short: only tatoeba has the short-sentence filter, got --data multi30k")
    assert cli_error(["translate", "train", "--monitor", "valid_bleu", "--bleu-sentences",
                      "0"]).startswith("--monitor valid_bleu: needs --bleu-sentences > 0")
    translate_train.TranslateOptions(data="tatoeba", src_lang="en", tgt_lang="fr", short=False)


def test_music_refuses_settings_it_would_ignore(cli_error):
    assert cli_error(["music", "train", "--nade-hidden", "10"]) == (
        "--nade-hidden 10: sizes the NADE output only; with --output bernoulli it would be "
        "ignored")
    assert cli_error(["music", "train", "--transpose-step", "12"]).startswith(
        "--transpose-step 12: the unit of --transpose's shifts; with --transpose 0 (off)")
    assert cli_error(["music", "train", "jsb", "--steps-per-beat", "4"]).startswith(
        "--steps-per-beat 4: for MIDI folders and .json files; jsb has its own (1)")
    music_train.MusicOptions(output="nade", nade_hidden=10, transpose=2, transpose_step=12,
                             data="x.json", steps_per_beat=4)


def test_show_tell_refuses_the_attention_options(cli_error):
    assert cli_error(["caption", "train", "--decoder", "show-tell", "--attention-size", "8",
                      "--ctx-dropout", "0.5"]) == (
        "--attention-size 8, --ctx-dropout 0.5: read by the attention only, which --decoder "
        "show-tell does not have")
    caption_train.CaptionOptions(attention_size=8, ctx_dropout=0.5)      # attend reads both


def test_gradcheck_refuses_flags_no_checked_cell_reads(cli_error):
    small = ["--seq-len", "2", "--batch", "1", "--input-size", "2", "--hidden-size", "2"]
    assert cli_error(["gradcheck", "--cell", "lstm", "gru", "--nonlinearity", "relu",
                      *small]) == ("--nonlinearity relu: read by the rnn cell only; --cell "
                                   "lstm gru would ignore it")
    assert cli_error(["gradcheck", "--cell", "rnn", "--gru-reset-before", *small]).startswith(
        "--gru-reset-before: read by the gru cell only")
    assert cli_error(["gradcheck", "--directional", "--bptt-truncate", "1", *small]).startswith(
        "--directional: finite differences only")


def _lm_checkpoint(path):
    cfg = lm.LMConfig(vocab_size=7, emb_size=3, hidden_size=4, num_layers=1, mode="gru")
    checkpoint.save(path, lm.init_params(cfg, 0), meta={"model_config": cfg.to_dict()})
    return path


def test_gradflow_refuses_what_model_or_no_training_ignores(cli_error, tmp_path):
    assert cli_error(["gradflow", "--model", tmp_path / "m.npz", "--cells", "rnn", "--steps",
                      "5", "--hidden", "8"]) == (
        "--cells, --steps, --hidden: not used with --model (the checkpoint is measured as "
        "trained; --length, --batch and --seed set its inputs)")
    assert cli_error(["gradflow", "--length", "4", "--lr", "0.1", "--clip", "0"]).startswith(
        "--lr, --clip: only with --steps N > 0")


def test_gradflow_report_of_a_checkpoint_describes_the_checkpoint(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from rnnlab.cli.command import main
    path, page = _lm_checkpoint(tmp_path / "m.npz"), tmp_path / "r.html"
    assert main(["gradflow", "--model", str(path), "--length", "5", "--batch", "2",
                 "--report", str(page)]) == 0
    assert "plots:" not in capsys.readouterr().out          # their folder is removed
    text = re.sub("<[^>]+>", " ", page.read_text())
    assert f"checkpoint: {path}, T: 5, batch: 2, seed: 0" in text
    assert "hidden: 64" not in text and "(init)" not in text and "initialisation" not in text


def test_min_count_that_leaves_only_unknown_tokens_is_named(cli_error, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcab " * 20)
    msg = cli_error(["train", corpus, "--min-count", "1000", "--out", tmp_path / "run"])
    assert re.fullmatch(r"--min-count: expected at most \d+ \(the count of the most frequent "
                        r"token in the training split of corpus (.*)\), got 1000; every token "
                        r"would be <unk>", msg).group(1) == str(corpus)


def test_lm_eval_says_how_many_tokens_its_streams_leave_unscored(tmp_path, capsys):
    from rnnlab.cli.command import main
    text, out = tmp_path / "t.txt", tmp_path / "run"
    text.write_text("abcab cabca bcabc " * 600)
    assert main(["train", str(text), "--level", "char", "--hidden-size", "4", "--emb-size",
                 "4", "--num-layers", "1", "--batch-size", "2", "--bptt", "4", "--epochs", "1",
                 "--max-steps", "1", "--samples", "0", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "best.npz"), "--batch-size", "1", "--no-progress"]) == 0
    assert "never scored" not in capsys.readouterr().err          # one stream: one token
    assert main(["eval", str(out / "best.npz"), "--batch-size", "100000", "--no-progress"]) == 0
    cap = capsys.readouterr()
    scored = int(re.search(r": ([\d,]+) tokens", cap.out).group(1).replace(",", ""))
    total = int(re.search(r"of the split's ([\d,]+) tokens", cap.err).group(1).replace(",", ""))
    assert f"note: {total - scored:,} of the split's {total:,} tokens are never scored" in cap.err
    assert 2 * scored <= total                    # streams of two tokens: half go unscored


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    from rnnlab.training.options import load_toml
    toml = tmp_path / "bom.toml"
    toml.write_bytes(b"\xef\xbb\xbfepochs = 3\nlr-decay = 0.5\n")       # as Notepad saves it
    assert load_toml(toml) == {"epochs": 3, "lr_decay": 0.5}
    toml.write_bytes(b'out = "\xe9"\n')                                  # Latin-1, not UTF-8
    with pytest.raises(ValueError, match=f"--config {re.escape(str(toml))}: invalid TOML "):
        load_toml(toml)

