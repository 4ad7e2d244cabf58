"""How often attention-based word alignments agree with a bilingual dictionary.

A coarse check of alignment quality that needs no gold alignments: take a small dictionary of
frequent words (English word -> its German forms); a target word is *checked* when it is one of
an entry's forms and that entry's English word occurs in the source sentence, and it *agrees*
when the source word it is aligned to is such an English word. The share that agrees is a
precision on the words the dictionary can judge (words are compared lowercased, without the
punctuation that sentencepiece leaves attached to them).
"""

from __future__ import annotations

from typing import Mapping, Sequence

PUNCTUATION = ".,;:!?\"'()[]"


def plain(word: str) -> str:
    """``"Hund."`` -> ``"hund"``."""
    return word.strip(PUNCTUATION).lower()


def dictionary_agreement(pairs: Sequence[tuple[int, int]], src_words: Sequence[str], tgt_words: Sequence[str],
                         dictionary: Mapping[str, set[str]]) -> tuple[int, int]:
    """(agreeing, checked) target words of one sentence pair.

    ``pairs``: (source word, target word) indices, as :func:`s2s.search.alignment.word_alignment`
    gives them; ``dictionary``: lowercase English word -> lowercase German forms."""
    source = {plain(w) for w in src_words}
    agreeing = checked = 0
    for i, j in pairs:
        translations = {en for en, forms in dictionary.items() if plain(tgt_words[j]) in forms and en in source}
        if translations:
            checked += 1
            agreeing += plain(src_words[i]) in translations
    return agreeing, checked
