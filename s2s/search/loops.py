"""The greedy, beam and sampling loops, written once for every backend.

A :class:`Decoder` runs where the weights are (PyTorch on CPU or GPU, onnxruntime sessions) and
does two things: ``select`` runs one decoder step and returns each sentence's top k candidates
of ``log_probs + mask + scores``, sorted (and the step's attention when asked);
``reorder``/``take_memory`` pick rows of its state and memory. The loops below decide everything
else in numpy: which hypotheses finish, which live on, when a sentence is done, which token a
sample draws. Batched: all sentences and their K beams advance together as one (B*K)-row batch,
and in beam search a sentence that is done leaves it, so its rows stop costing.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from s2s.search.candidates import StepChoice, drop_eos
from s2s.search.constraints import NEG_INF, Constraints, max_lengths
from s2s.search.hypotheses import CoveragePenalty, Hypothesis, normalized_score
from s2s.search.options import DecodeOptions
from s2s.search.sampling import draw


class Decoder(Protocol):
    """The backend half of a search. ``state``/``memory`` are the backend's own (dicts of tensors
    or arrays, batch first); tokens, scores, masks and rows are numpy."""

    bos: int
    memory_per_sentence: bool  # the step takes B memory rows for B * K state rows
    # How EOS alone is banned (below the minimum length): True, by asking for one more candidate
    # per row and dropping EOS here (no (N, V) mask leaves the graph); False, by ``ban_eos``.
    widens_for_eos: bool

    def select(self, tokens: np.ndarray, state: Any, memory: Any, scores: np.ndarray | None, blocks: int, k: int,
               mask: np.ndarray | None, ban_eos: bool,
               attention: bool = False) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]:
        """One step for tokens (N,), then each of ``blocks`` sentences' k best of
        ``log_probs + mask + scores`` over its (N / blocks) * V candidates: values (blocks, k) float32
        largest first (ties to the lower index), indices (blocks, k) into the sentence's rows * V,
        the next state, and with ``attention`` the step's attention (N, S) float32 over the
        source positions (None otherwise: a backend fetches it only when asked). ``scores``:
        (N, 1), or None for none (greedy, sampling); ``mask``: (1 or N, V) or None; ``ban_eos``:
        EOS at -inf too (only asked of a decoder that does not widen)."""

    def reorder(self, state: Any, rows: np.ndarray) -> Any: ...

    def take_memory(self, memory: Any, rows: np.ndarray) -> Any: ...


def greedy(decoder: Decoder, memory, state, constraints: Constraints, vocab: int, *,
           length_penalty: float, keep_attention: bool = False) -> list[Hypothesis]:
    """The most probable token at each step, through the same ``select`` as :func:`beam` with one
    candidate per row (k = 1, each row its own block): with a search head in the step graph the
    argmax is taken there and the (N, V) log-probabilities never leave it. The score is
    log P / lp(Y); the coverage penalty, which would only rescore the one hypothesis, is beam
    search's alone. With ``keep_attention`` each hypothesis keeps its steps' attention."""
    history, log_prob, trail = _token_by_token(decoder, memory, state, constraints, vocab, 1, None, keep_attention)
    return _hypotheses(history, log_prob, constraints.eos, length_penalty, trail)


def sample(decoder: Decoder, memory, state, constraints: Constraints, vocab: int, *, n_best: int,
           temperature: float, top_k: int, top_p: float, length_penalty: float,
           rng: np.random.Generator, keep_attention: bool = False) -> list[list[Hypothesis]]:
    """``n_best`` samples of each sentence, each token drawn from the model's distribution (with
    ``temperature``, among the ``top_k`` most probable tokens, 0 for all, then within the
    ``top_p`` nucleus; :func:`~s2s.search.sampling.draw`), under the same constraints as the
    searches. Each sentence is expanded to ``n_best`` rows that go through the same ``select``
    as :func:`greedy`, k = top_k (or the vocabulary) sorted candidates per row, so that a search
    head in the step graph does the sorting. A sample's ``log_prob`` is the model's own (without
    temperature or truncation) and its score log P / lp(Y); a sentence's samples come best score
    first, and may repeat. ``rng`` draws every token: the same generator state, the same samples.
    """
    rows = np.repeat(np.arange(len(constraints.max_lens)), n_best)
    if n_best > 1:
        memory = memory if decoder.memory_per_sentence else decoder.take_memory(memory, rows)
        state, constraints = decoder.reorder(state, rows), constraints.select(rows)
    k = min(top_k, vocab) if top_k else vocab
    history, log_prob, trail = _token_by_token(decoder, memory, state, constraints, vocab, k,
                                               lambda values: draw(values, temperature, top_p, rng), keep_attention)
    hyps = _hypotheses(history, log_prob, constraints.eos, length_penalty, trail)
    return [sorted(hyps[i: i + n_best], key=lambda h: -h.score) for i in range(0, len(hyps), n_best)]


def _token_by_token(decoder: Decoder, memory, state, constraints: Constraints, vocab: int, k: int,
                    pick: Callable[[np.ndarray], np.ndarray] | None,
                    keep_attention: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every row's tokens one step at a time, each row its own block: of its k best candidates
    the one at the position ``pick(values)`` chooses ((N, k) -> (N,)), or the first when pick is
    None, until all rows have reached EOS (then fed EOS) or their limits. Below the minimum
    length EOS is banned by ``ban_eos`` or, for a decoder that widens, by one more candidate
    dropped here. -> history (N, T), each row EOS from its first EOS on, each row's summed
    log-probabilities (N,) float32, and with ``keep_attention`` every step's attention (N, T, S)
    (else None)."""
    eos, rows = constraints.eos, len(constraints.max_lens)
    tokens = np.full(rows, decoder.bos, dtype=np.int64)
    history = np.empty((rows, 0), dtype=np.int64)
    log_prob = np.zeros(rows, dtype=np.float32)
    done = np.zeros(rows, dtype=bool)
    steps = []  # with keep_attention: each step's (N, S) attention
    for t in range(int(constraints.max_lens.max()) + 1):
        mask, eos_only = constraints.plan(t, history, vocab)
        widen = eos_only and decoder.widens_for_eos
        values, index, state, attention = decoder.select(tokens, state, memory, None, rows,
                                                         min(k + 1, vocab) if widen else k, mask,
                                                         eos_only and not widen, attention=keep_attention)
        if keep_attention:
            steps.append(np.asarray(attention, dtype=np.float32))
        if widen:
            values, index = drop_eos(values, index, vocab, k, eos)
        if pick is None:
            chosen, best = index[:, 0], values[:, 0]
        else:
            at = np.arange(rows), pick(values)
            chosen, best = index[at], values[at]
        tokens = np.where(done, eos, chosen)
        log_prob = log_prob + np.where(done, np.float32(0.0), best)
        history = np.concatenate([history, tokens[:, None]], 1)
        done |= tokens == eos
        if done.all():
            break
    return history, log_prob, np.stack(steps, 1) if keep_attention else None


def _hypotheses(history: np.ndarray, log_prob: np.ndarray, eos: int, length_penalty: float,
                trail: np.ndarray | None = None) -> list[Hypothesis]:
    """One hypothesis per row of :func:`_token_by_token`'s output, cut at its first EOS; with
    ``trail`` (N, T, S) it keeps the attention of its steps, EOS's included."""
    out = []
    for r, (row, lp) in enumerate(zip(history.tolist(), log_prob.tolist())):
        length = row.index(eos) if eos in row else len(row)
        hyp = Hypothesis(row[:length], normalized_score(lp, length + 1, length_penalty), lp)
        if trail is not None:
            hyp.attention = trail[r, : length + 1]
        out.append(hyp)
    return out


def beam(decoder: Decoder, memory, state, constraints: Constraints, vocab: int, *, beam_size: int, n_best: int,
         length_penalty: float, coverage: CoveragePenalty | None = None,
         keep_attention: bool = False) -> list[list[Hypothesis]]:
    """Batched beam search: for each sentence its ``n_best`` hypotheses, best first.

    At each step each sentence's 2K best continuations are taken; EOS candidates ranked within
    the top K become finished hypotheses (scored with the GNMT length penalty, plus the
    ``coverage`` penalty if given), and the K best others continue. A sentence is done once it
    has K finished hypotheses. With a coverage penalty each step also fetches the attention,
    summed per row over its steps and reordered with the rows; with ``keep_attention`` every
    step's attention is kept per row (N, t, S), reordered with the rows, and a finished
    hypothesis takes its row's (:attr:`Hypothesis.attention`).
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be within 1..beam ({beam_size}), got {n_best}")
    k, batch, per_sentence = beam_size, len(constraints.max_lens), decoder.memory_per_sentence
    choose = StepChoice(vocab, k, constraints.eos, length_penalty, coverage)
    # Every sentence starts from one live hypothesis, so the first step runs on one row per
    # sentence (width 1) and the survivors then fill K rows each: the K - 1 rows the first step
    # would score at -inf are never computed. Too small a vocabulary for 2K candidates per row
    # starts at width K.
    width = 1 if vocab >= 2 * k else k
    if width > 1:
        expand = np.repeat(np.arange(batch), k)
        memory = memory if per_sentence else decoder.take_memory(memory, expand)
        state, constraints = decoder.reorder(state, expand), constraints.select(expand)
    alive = np.arange(batch)
    scores = np.full((batch, width), NEG_INF, dtype=np.float32)
    scores[:, 0] = 0.0
    history = np.empty((batch * width, 0), dtype=np.int64)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    tokens = np.full(batch * width, decoder.bos, dtype=np.int64)
    attended = None  # with a coverage penalty: (N, S), each row's attention summed over its steps
    trail = None  # with keep_attention: (N, t, S), each row's attention at each of its steps
    fetch = coverage is not None or keep_attention
    for t in range(int(constraints.max_lens.max()) + 1):
        mask, eos_only = constraints.plan(t, history, vocab)
        widen = eos_only and decoder.widens_for_eos
        wanted = min(2 * k + width, width * vocab) if widen else 2 * k
        values, index, state, attention = decoder.select(tokens, state, memory, scores.reshape(-1, 1), len(alive),
                                                         wanted, mask, eos_only and not widen,
                                                         attention=fetch)
        if coverage is not None:
            attended = attention if attended is None else attended + attention
        if keep_attention:
            now = np.asarray(attention, dtype=np.float32)[:, None]
            trail = now if trail is None else np.concatenate([trail, now], 1)
        # rows (the hypotheses continued; None: each its own), tokens, scores (B, k), and which
        # sentences are done (None: no sentence finished a hypothesis at this step)
        rows, tokens, scores, done = choose(values, index, width, alive, finished, history, t, widen, attended, trail)
        if done is not None and done.all():
            break
        if done is not None and done.any():  # finished sentences leave the batch
            rows = np.arange(len(tokens)) if rows is None else rows
            live = np.flatnonzero(~done)
            alive, scores = alive[live], scores[live]
            rows = rows.reshape(-1, k)[live].reshape(-1)
            tokens = tokens.reshape(-1, k)[live].reshape(-1)
            one_row = per_sentence or width == 1
            memory = decoder.take_memory(memory, live if one_row else (live[:, None] * k + np.arange(k)).reshape(-1))
        if width == 1 and not per_sentence:  # memory rows follow the state rows from now on
            memory = decoder.take_memory(memory, np.repeat(np.arange(len(alive)), k))
        width = k
        if rows is not None:
            state, constraints, history = decoder.reorder(state, rows), constraints.select(rows), history[rows]
            attended = None if attended is None else attended[rows]
            trail = None if trail is None else trail[rows]
        history = np.concatenate([history, tokens[:, None]], 1)
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]


def search(decoder: Decoder, memory, state, constraints: Constraints, vocab: int, options: DecodeOptions, *,
           src_lengths: np.ndarray, rng: np.random.Generator, keep_attention: bool = False) -> list[list[Hypothesis]]:
    """Sampling with ``options.sample`` (its tokens drawn from ``rng``); greedy for beam 1 with
    one hypothesis (the same tokens for less work); else beam search, with the coverage penalty
    over each sentence's ``src_lengths`` (B,) real source positions when it is on. With
    ``keep_attention`` each hypothesis keeps its steps' attention (T + 1, S), EOS's step included,
    over the batch's S source positions."""
    if options.sample:
        return sample(decoder, memory, state, constraints, vocab, n_best=options.n_best,
                      temperature=options.temperature, top_k=options.top_k, top_p=options.top_p,
                      length_penalty=options.length_penalty, rng=rng, keep_attention=keep_attention)
    if options.greedy:
        return [[h] for h in greedy(decoder, memory, state, constraints, vocab, length_penalty=options.length_penalty,
                                    keep_attention=keep_attention)]
    coverage = CoveragePenalty(options.coverage_penalty, src_lengths) if options.coverage_penalty > 0 else None
    return beam(decoder, memory, state, constraints, vocab, beam_size=options.beam, n_best=options.n_best,
                length_penalty=options.length_penalty, coverage=coverage, keep_attention=keep_attention)


def limits_of(src_lengths: np.ndarray, options: DecodeOptions, eos: int) -> Constraints:
    """The constraints ``options`` put on a batch whose sources have ``src_lengths`` tokens (EOS included)."""
    max_lens = max_lengths(src_lengths, options.max_len_ratio, options.max_len_offset, minimum=options.min_len,
                           maximum=options.max_len)
    return Constraints(max_lens, eos, options.min_len, options.no_repeat_ngram)
