"""Corpus-level scores from sacrebleu (BLEU, chrF, TER, with signatures) and rouge-score.

BLEU is sacreBLEU's default: cased, detokenized input, the 13a tokenizer.
"""

from __future__ import annotations

from typing import Sequence

from s2s.errors import DataError

SACREBLEU = ("bleu", "chrf", "ter")
ROUGE = ("rouge1", "rouge2", "rougeL")
METRICS = SACREBLEU + ROUGE


def parse_metrics(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise DataError(f"--metrics: unknown metric(s) {unknown or text!r}; expected a comma list of {', '.join(METRICS)}")
    return names


def _sacrebleu(name: str):
    from sacrebleu.metrics import BLEU, CHRF, TER

    return {"bleu": BLEU, "chrf": CHRF, "ter": TER}[name]()


def _rouge(names: list[str], hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(names, use_stemmer=True)
    totals = {n: 0.0 for n in names}
    for hyp, ref in zip(hyps, refs):
        for n, score in scorer.score(ref, hyp).items():
            totals[n] += score.fmeasure
    return {n: 100.0 * totals[n] / max(len(hyps), 1) for n in names}


def score(hyps: Sequence[str], refs: Sequence[str], metrics: Sequence[str] = ("bleu",)) -> dict:
    """Scores keyed by metric name, plus ``signatures`` for the sacrebleu metrics.

    ROUGE values are mean F1 over sentences (Porter stemming), in percent like the others.
    """
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
    result["signatures"] = signatures
    return result
