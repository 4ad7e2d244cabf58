"""The one search of s2s, torch-free: numpy and the standard library only.

=================  ==========================================================================
``options``        :class:`DecodeOptions`, the only place a decoding default is set; the recipe's
                   ``decode`` section, the CLI flags, ``bundle.json`` and both translators read it
``hypotheses``     :class:`Hypothesis`, :class:`SpecialIds`, the GNMT length and coverage penalties
``constraints``    length limits, minimum length and no-repeat n-grams as one additive mask
``candidates``     each sentence's top k, and the choice of the survivors of one beam step
``sampling``       the token one sampling step draws (temperature, top-k, nucleus)
``loops``          the greedy, beam and sampling loops over a :class:`~s2s.search.loops.Decoder`
``translator``     lines of text in, n-best hypotheses out, for any backend
=================  ==========================================================================

A backend (the PyTorch model in :mod:`s2s.decoding`, onnxruntime sessions in
:mod:`s2s.runtime`) supplies only what must run where the weights are: one decoder step followed
by each sentence's top k candidates, and the reordering of its state. Everything else, and so
every decision of the search, is written once, here.

This ``__init__`` imports nothing, so :mod:`s2s.config` can read :mod:`s2s.search.options`
without loading numpy.
"""
