"""Scoring: ROUGE through rouge-score (mean F1 in percent, rougeLsum by lines), the ``rouge``
alias of ``--metrics`` and the signatures that state how each score was computed."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from rouge_score import rouge_scorer

from s2s.errors import DataError
from s2s.evaluation.metrics import ROUGE, parse_metrics, rouge_signature, score

HYPS = ["the cat sat on the mat", "police killed the gunman", "a b c", "running dogs",
        "the second line comes first\nthen the first line"]
REFS = ["the cat was sitting on the mat", "the gunman was shot dead by police", "x y z", "the dog runs",
        "the first line\nthe second line comes second"]


def test_rouge_is_rouge_scores_mean_f1_in_percent():
    scorer = rouge_scorer.RougeScorer(list(ROUGE), use_stemmer=True)
    pairs = [scorer.score(ref, hyp) for hyp, ref in zip(HYPS, REFS)]
    result = score(HYPS, REFS, list(ROUGE))
    for name in ROUGE:
        assert result[name] == pytest.approx(100 * sum(p[name].fmeasure for p in pairs) / len(pairs), abs=0.005)
    # Porter stemming: "running dogs" / "the dog runs" share run and dog: P = 1, R = 2/3, F1 = 0.8
    assert score(["running dogs"], ["the dog runs"], ["rouge1"])["rouge1"] == pytest.approx(80.0)


def test_rouge_lsum_takes_lines_as_sentences_and_a_single_line_as_one():
    single = score(HYPS[:4], REFS[:4], ["rougeL", "rougeLsum"])
    assert single["rougeLsum"] == single["rougeL"]
    multi = score(HYPS[4:], REFS[4:], ["rougeL", "rougeLsum"])
    assert multi["rougeLsum"] > multi["rougeL"]  # the union LCS over lines finds both lines' overlap


def test_rouge_alias_expands_to_every_variant_once_in_order():
    assert parse_metrics("rouge") == ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    assert parse_metrics("bleu, rougeL,rouge") == ["bleu", "rougeL", "rouge1", "rouge2", "rougeLsum"]
    with pytest.raises(DataError, match=r"--metrics: unknown metric\(s\) \['rogue'\].*rouge \(= rouge1"):
        parse_metrics("bleu,rogue")


def test_every_score_carries_its_signature():
    result = score(HYPS, REFS, ["bleu", "rouge1", "rougeLsum"])
    assert rouge_signature() == f"rouge|stem:porter|tok:rouge_score|sent:newline|agg:mean-f1|v:{version('rouge-score')}"
    assert result["signatures"] == {"bleu": result["signatures"]["bleu"], "rouge1": rouge_signature(),
                                    "rougeLsum": rouge_signature()}
    assert result["signatures"]["bleu"].startswith("nrefs:1|")


def test_repeat3_is_the_share_of_hypotheses_repeating_a_word_trigram():
    hyps = ["a b c a b c", "A b C x a B c", "a b c d e f", "a a a", "a a"]  # case-folded; "a a a" has no repeat
    result = score(hyps, ["ref"] * len(hyps), ["repeat3"])
    assert result["repeat3"] == pytest.approx(40.0)  # the first two of five
    assert result["signatures"]["repeat3"].startswith("repeat|n:3|")
    assert parse_metrics("rouge,repeat3")[-1] == "repeat3"
