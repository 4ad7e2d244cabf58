"""Corpus-level scores from sacrebleu (BLEU, chrF, TER) and rouge-score (ROUGE), with signatures.

BLEU is sacreBLEU's default: cased, detokenized input, the 13a tokenizer. ROUGE is the mean
over sentence pairs of rouge-score's F1 with Porter stemming and its own tokenizer (lowercase,
non-alphanumerics as spaces). ``rougeLsum`` is the summary-level LCS: its sentences are the
lines of a text, so a text without a newline is one sentence (and scores as ``rougeL`` does);
no sentence splitter is run. ``repeat3`` is not a quality score but a diagnosis of the classic
summarization failure: the percentage of hypotheses in which some word 3-gram occurs twice
(lowercased, split on whitespace). Each score has a signature that states how it was computed.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Sequence

from s2s.errors import DataError

SACREBLEU = ("bleu", "chrf", "ter")
ROUGE = ("rouge1", "rouge2", "rougeL", "rougeLsum")
REPEATS = ("repeat3",)
METRICS = SACREBLEU + ROUGE + REPEATS
REPEAT_SIGNATURE = "repeat|n:3|tok:whitespace|case:lower|agg:percent-of-hypotheses"
ALIASES = {"rouge": ROUGE}  # --metrics rouge = every ROUGE variant


def parse_metrics(text: str) -> list[str]:
    """A comma list of metric names (an alias of :data:`ALIASES` expanded), in order, each once."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS and n not in ALIASES]
    if unknown or not names:
        raise DataError(f"--metrics: unknown metric(s) {unknown or text!r}; expected a comma list of "
                        f"{', '.join(METRICS)} or {', '.join(ALIASES)} (= {', '.join(ROUGE)})")
    expanded = [m for n in names for m in ALIASES.get(n, (n,))]
    return list(dict.fromkeys(expanded))


def _sacrebleu(name: str):
    from sacrebleu.metrics import BLEU, CHRF, TER

    return {"bleu": BLEU, "chrf": CHRF, "ter": TER}[name]()


def rouge_signature() -> str:
    """How :func:`score` computes ROUGE, stated the way sacrebleu states its signatures: Porter
    stemming, rouge-score's tokenizer, newline-separated sentences (rougeLsum), the mean of the
    sentence F1 scores, and the rouge-score version."""
    return f"rouge|stem:porter|tok:rouge_score|sent:newline|agg:mean-f1|v:{version('rouge-score')}"


def _rouge(names: list[str], hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(names, use_stemmer=True)
    totals = {n: 0.0 for n in names}
    for hyp, ref in zip(hyps, refs):
        for n, score in scorer.score(ref, hyp).items():
            totals[n] += score.fmeasure
    return {n: 100.0 * totals[n] / max(len(hyps), 1) for n in names}


def repeats_ngram(text: str, n: int = 3) -> bool:
    """Whether some word n-gram occurs twice in ``text`` (lowercased, split on whitespace)."""
    words = text.lower().split()
    grams = [tuple(words[i: i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) < len(grams)


def score(hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] = ("bleu",)) -> dict:
    """Scores keyed by metric name, in percent and rounded to 2 decimals, plus ``signatures``:
    metric name -> the sacrebleu signature, or :func:`rouge_signature` for a ROUGE metric."""
    if len(hyps) != len(refs):
        raise DataError(f"hypotheses and references differ in length: {len(hyps)} vs {len(refs)} lines")
    result: dict = {}
    signatures = {}
    for name in metrics:
        if name in SACREBLEU:
            metric = _sacrebleu(name)
            result[name] = round(metric.corpus_score(list(hyps), [list(refs)]).score, 2)
            signatures[name] = str(metric.get_signature())
    rouge = [n for n in metrics if n in ROUGE]
    if rouge:
        result.update({n: round(v, 2) for n, v in _rouge(rouge, hyps, refs).items()})
        signatures.update(dict.fromkeys(rouge, rouge_signature()))
    if "repeat3" in metrics:
        result["repeat3"] = round(100.0 * sum(map(repeats_ngram, hyps)) / max(len(hyps), 1), 2)
        signatures["repeat3"] = REPEAT_SIGNATURE
    result["signatures"] = signatures
    return result
