"""Torch-free inference over an exported bundle: numpy + onnxruntime + sentencepiece only.

    from s2s.runtime import Translator
    translator = Translator.load("exported/multi30k-en-de")
    translator.translate(["A man rides a bike."], beam=5)
"""

from s2s.runtime.translator import Translator

__all__ = ["Translator"]
