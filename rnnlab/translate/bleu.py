"""BLEU as the field reports it, in two conventions that must not be mixed up.

- ``sacrebleu_score``: sacreBLEU (Post 2018) on detokenised text against the
  references as written, with its signature (``nrefs:1|case:...|tok:13a|...``),
  the number to compare across papers.
- ``token_bleu``: corpus BLEU-4 on lower-cased tokens as they are (no further
  tokenisation), the convention of multi-bleu.perl on Multi30k's ``tok/`` files
  and of torchtext's ``bleu_score`` in the popular PyTorch notebooks; labelled
  "BLEU (lowercased tokens)" wherever it is printed.
"""
import html
import re


def detokenize(tokens):
    """Rule-based detokeniser for Moses-style tokens (English, German, French).

    >>> detokenize(["a", "man", "&apos;s", "hat", ",", "(", "red", ")", "."])
    "a man's hat, (red)."
    """
    text = " ".join(html.unescape(t) for t in tokens)
    text = re.sub(r" ([.,!?;:%)\]}]|'s|'re|n't|'m|'ll|'ve|'d)(?=\s|$)", r"\1", text)
    text = re.sub(r"([(\[{$]) ", r"\1", text)
    return re.sub(r" ' ", "'", text)


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        raise ValueError("BLEU needs sacrebleu: pip install 'rnnlab[translate]'") from None
    return sacrebleu


def sacrebleu_score(hyps, refs, lowercase=False):
    """(score, signature) for detokenised hypothesis and reference strings."""
    metric = _sacrebleu().metrics.BLEU(lowercase=lowercase)
    return float(metric.corpus_score(list(hyps), [list(refs)]).score), str(metric.get_signature())


def token_bleu(hyp_tokens, ref_tokens):
    """Corpus BLEU-4 on lower-cased tokens (lists of token lists), 0..100."""
    metric = _sacrebleu().metrics.BLEU(tokenize="none", lowercase=True, force=True)
    hyps = [" ".join(t) for t in hyp_tokens]
    refs = [" ".join(t) for t in ref_tokens]
    return float(metric.corpus_score(hyps, [refs]).score)
