"""Alignment quality on a known pair: do attention alignments link dictionary translations?

On the first 50 sentences of Multi30k's ``test_2016_flickr`` (English -> German), a target word
that the 30-word dictionary below gives as the translation of a word of its source sentence is
*checked*; it *agrees* when the model's hard word alignment (``s2s translate --alignment``) links
it to that source word (:func:`s2s.evaluation.alignment.dictionary_agreement`). The reference
transformer bundle is held to a floor well above what a monotone (diagonal) alignment reaches on
the same words. Run this file as a script on any run or bundle to print its figure:
``python tests/unit/test_alignment_quality.py RUN_OR_BUNDLE [...]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from s2s.evaluation.alignment import dictionary_agreement, plain
from s2s.search.alignment import word_alignment, words

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

from tests.conftest import DATA  # noqa: E402

SENTENCES = 50
# 30 frequent English words of Multi30k and their German forms (lowercase; adjectives inflected)
DICTIONARY = {
    "man": {"mann"}, "men": {"männer", "männern"}, "woman": {"frau"}, "women": {"frauen"},
    "people": {"menschen", "leute", "personen"}, "person": {"person"}, "girl": {"mädchen"},
    "boy": {"junge", "jungen"}, "boys": {"jungen"}, "child": {"kind"}, "children": {"kinder", "kindern"},
    "dog": {"hund"}, "dogs": {"hunde"}, "two": {"zwei"}, "three": {"drei"}, "group": {"gruppe"},
    "shirt": {"hemd", "t-shirt", "shirt"}, "red": {"rot", "rote", "roten", "roter", "rotes"},
    "blue": {"blau", "blaue", "blauen", "blauer", "blaues"},
    "white": {"weiß", "weiße", "weißen", "weißer", "weißes"},
    "black": {"schwarz", "schwarze", "schwarzen", "schwarzer", "schwarzes"},
    "water": {"wasser"}, "street": {"straße"}, "beach": {"strand"}, "building": {"gebäude", "gebäudes"},
    "table": {"tisch"}, "ball": {"ball"}, "grass": {"gras"}, "standing": {"steht", "stehen", "stehend"},
    "sitting": {"sitzt", "sitzen", "sitzend"},
}
BUNDLE = ROOT / "exported" / "multi30k-en-de"
SOURCE = DATA / "multi30k" / "test_2016_flickr.en.gz"


def diagonal(n_src: int, n_tgt: int) -> list[tuple[int, int]]:
    """The monotone alignment: target word j to the source word at the same relative position."""
    return [(min(n_src - 1, round(j * n_src / n_tgt)), j) for j in range(n_tgt)]


def agreement(translator, lines: list[str]) -> dict:
    """Agreeing and checked target words over ``lines`` (beam 5), for the model's alignments and
    for the diagonal baseline on the same translations."""
    counts = {"agree": 0, "diagonal_agree": 0, "checked": 0}
    for line, hyps in zip(lines, translator.hypotheses(lines, attention=True, beam=5)):
        labelled = translator.attention_of(line, hyps[0])
        src_pieces, tgt_pieces = labelled["source"][:-1], labelled["target"][:-1]
        src_words, tgt_words = words(src_pieces), words(tgt_pieces)
        pairs = word_alignment(np.array(labelled["weights"]), src_pieces, tgt_pieces)
        agree, checked = dictionary_agreement(pairs, src_words, tgt_words, DICTIONARY)
        counts["agree"] += agree
        counts["checked"] += checked
        if tgt_words:
            baseline = diagonal(len(src_words), len(tgt_words))
            counts["diagonal_agree"] += dictionary_agreement(baseline, src_words, tgt_words, DICTIONARY)[0]
    return counts


def open_model(path: str):
    from s2s.bundle import is_bundle

    if is_bundle(path):
        from s2s.runtime import Translator

        return Translator.load(path)
    import s2s.models  # noqa: F401
    from s2s.decoding.translator import Translator

    return Translator.from_run(path)


def test_the_dictionary_has_30_lowercase_entries():
    assert len(DICTIONARY) == 30
    assert all(plain(en) == en and all(plain(f) == f for f in forms) for en, forms in DICTIONARY.items())


def test_agreement_counts_dictionary_words_by_hand():
    src = ["Two", "men", "walk", "a", "dog."]
    tgt = ["Zwei", "Männer", "führen", "einen", "Hund", "aus."]
    # Zwei-Two, Männer-men: right; Hund-walk: wrong; führen/einen/aus. are not dictionary forms
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (2, 4), (2, 5)]
    assert dictionary_agreement(pairs, src, tgt, DICTIONARY) == (2, 3)
    # a dictionary word whose English word is not in the source is not checked
    assert dictionary_agreement([(0, 0)], ["A", "cat."], ["Hund"], DICTIONARY) == (0, 0)


def test_reference_transformer_links_dictionary_translations():
    if not SOURCE.is_file():
        pytest.skip(f"test data not found under {DATA} (set S2S_DATA)")
    from s2s.textio import read_lines

    counts = agreement(open_model(str(BUNDLE)), read_lines(SOURCE)[:SENTENCES])
    share, diagonal_share = counts["agree"] / counts["checked"], counts["diagonal_agree"] / counts["checked"]
    assert counts["checked"] >= 60, counts
    assert share >= 0.75, counts  # 0.89 when the bundle was made
    assert share >= diagonal_share + 0.15, counts


def main(paths: list[str]) -> None:
    from s2s.textio import read_lines

    lines = read_lines(SOURCE)[:SENTENCES]
    print(f"{'model':<40} {'checked':>8} {'agree %':>8} {'diagonal %':>11}")
    for path in paths:
        c = agreement(open_model(path), lines)
        print(f"{path:<40} {c['checked']:>8} {100 * c['agree'] / c['checked']:>8.1f} "
              f"{100 * c['diagonal_agree'] / c['checked']:>11.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
