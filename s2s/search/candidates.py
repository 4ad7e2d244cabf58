"""Candidate selection: each sentence's top k, and the choice of one beam step's survivors.

Candidates arrive sorted (values largest first, ties to the lower index), as a backend's top k
over each sentence's K*V scores: an index ``i`` is beam row ``i // V`` continued by token ``i % V``.
Those that end in EOS within the first k join the sentence's finished hypotheses; the first k
that are neither EOS nor -inf live on.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from s2s.search.constraints import NEG_INF
from s2s.search.hypotheses import CoveragePenalty, Hypothesis, normalized_score

SMALL_ROWS = 32  # beam steps with at most this many candidate rows choose in plain Python


def top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row, largest first, ties to the lower index: (values, indices)."""
    if k == 1:  # argmax returns the first of equal maxima
        index = values.argmax(1)[:, None]
        return np.take_along_axis(values, index, 1), index
    if k < values.shape[1]:
        part = np.argpartition(-values, k - 1, axis=1)[:, :k]
        # argpartition may cut a tie at the k-th value arbitrarily: widen to every index tied with it
        kth = np.take_along_axis(values, part, 1).min(1, keepdims=True)
        if (np.sum(values >= kth, axis=1) > k).any():
            part = np.argsort(-values, axis=1, kind="stable")[:, :k]
    else:
        part = np.broadcast_to(np.arange(values.shape[1]), values.shape)
    picked = np.take_along_axis(values, part, 1)
    order = np.lexsort((part, -picked), axis=1)
    index = np.take_along_axis(part, order, 1)
    return np.take_along_axis(values, index, 1), index


def survivors(top_scores: np.ndarray, banned: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best candidates of each row that are not ``banned`` (finished or impossible):
    (scores, positions), as ``top_k(np.where(banned, -inf, top_scores), k)`` would return them.

    ``top_scores`` comes sorted (largest first, ties to the lower index), so the survivors are
    simply the first k unbanned positions in order, then banned ones as -inf: one stable sort of
    a boolean row instead of a partition and two sorts per step.
    """
    order = np.argsort(banned, axis=1, kind="stable")[:, :k]
    at = (np.arange(len(order))[:, None], order)  # plain indexing: take_along_axis costs more per call
    return np.where(banned[at], NEG_INF, top_scores[at]), order


def drop_eos(values: np.ndarray, index: np.ndarray, vocab: int, k: int, eos: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k candidates of each sorted row whose token is not EOS. A row's top list widened
    by its block's number of rows holds at most one EOS per row, so this is the top k that the
    same scores with EOS masked to -inf would give, in the same order."""
    is_eos = index % vocab == eos
    if not is_eos.any():
        return values[:, :k], index[:, :k]
    kept, order = survivors(values, is_eos, k)
    return kept, index[np.arange(len(order))[:, None], order]


class StepChoice:
    """What one beam step decides, given each sentence's sorted candidates (see :func:`choose`).
    With a ``coverage`` penalty, the choice also receives ``attended`` (N, S): each candidate
    row's attention summed over its steps, this one included; when the search keeps attention,
    ``trail`` (N, t, S): each row's attention at each of its steps, this one included."""

    def __init__(self, vocab: int, k: int, eos: int, length_penalty: float, coverage: CoveragePenalty | None = None):
        self.vocab, self.k, self.eos, self.length_penalty, self.coverage = vocab, k, eos, length_penalty, coverage

    def __call__(self, values, index, width, alive, finished, history, step, eos_only, attended=None, trail=None):
        choice = choose_small if len(alive) * self.k <= SMALL_ROWS else choose
        return choice(self, values, index, width, alive, finished, history, step, eos_only, attended, trail)

    def finish(self, finished: list, sentence: int, row: int, history: np.ndarray, log_prob: float, step: int,
               attended: np.ndarray | None, trail: np.ndarray | None = None) -> bool:
        """Add the hypothesis of ``row`` ending in EOS at ``step`` to its sentence, unless the
        sentence already has k: scored log P / lp(Y), plus the coverage penalty if there is one."""
        if len(finished[sentence]) >= self.k:
            return False
        score = normalized_score(log_prob, step + 1, self.length_penalty)
        if self.coverage is not None:
            score += self.coverage(sentence, attended[row])
        hyp = Hypothesis(history[row].tolist(), score, log_prob)
        if trail is not None:
            hyp.attention = trail[row]
        finished[sentence].append(hyp)
        return True


def choose(c: StepChoice, values: np.ndarray, index: np.ndarray, width: int, alive: np.ndarray,
           finished: list, history: np.ndarray, step: int, eos_only: bool, attended: np.ndarray | None = None,
           trail: np.ndarray | None = None):
    """One beam step's choice over each sentence's sorted candidates, in numpy: the hypotheses
    that end in EOS among the first k join ``finished``, and the first k candidates that are
    neither EOS nor -inf live on. Returns (rows, tokens, scores (B, k), done or None)."""
    vocab, k, eos = c.vocab, c.k, c.eos
    if eos_only:
        values, index = drop_eos(values, index, vocab, 2 * k, eos)
    head_beam, head_token = np.divmod(index[:, :k], vocab)
    # the common step: no EOS among each sentence's k best, so all k live on, in order. (An -inf
    # candidate among them, when fewer than k tokens are allowed, sorts last and stays at -inf,
    # as survivors() would keep it.)
    if not (head_token == eos).any():
        return (_row_base(len(alive), width, k) + head_beam).reshape(-1), head_token.reshape(-1), values[:, :k], None
    top_beam, top_token = index // vocab, index % vocab
    is_eos = (top_token == eos) | np.isinf(values)
    ends = (top_token[:, :k] == eos) & np.isfinite(values[:, :k])
    for block, rank in zip(*np.nonzero(ends)):
        row = block * width + int(top_beam[block, rank])
        c.finish(finished, int(alive[block]), row, history, float(values[block, rank]), step, attended, trail)
    done = np.array([len(finished[s]) >= k for s in alive.tolist()])
    keep_scores, keep = survivors(values, is_eos, k)
    blocks = np.arange(len(alive))[:, None]
    rows = (blocks * width + top_beam[blocks, keep]).reshape(-1)
    return rows, top_token[blocks, keep].reshape(-1), keep_scores, done


@lru_cache(maxsize=16)
def _row_base(sentences: int, width: int, k: int) -> np.ndarray:
    """Each sentence's first row, repeated k times: a continued hypothesis's row is base + beam."""
    base = np.repeat(np.arange(sentences) * width, k).reshape(-1, k)
    base.flags.writeable = False
    return base


def choose_small(c: StepChoice, values: np.ndarray, index: np.ndarray, width: int, alive: np.ndarray,
                 finished: list, history: np.ndarray, step: int, eos_only: bool, attended: np.ndarray | None = None,
                 trail: np.ndarray | None = None):
    """:func:`choose` in plain Python, for few sentences, with the same result, except that rows
    is None when they are 0, 1, 2, ... (nothing to reorder).

    With ``eos_only`` the candidates were widened by one per row and EOS is dropped from them
    (:func:`drop_eos`). At batch 1 with beam 5, each numpy call costs several microseconds after a
    step graph has run (its caches are cold), and this replaces about a dozen of them.
    """
    vocab, k, eos = c.vocab, c.k, c.eos
    rows, tokens, scores = [], [], []
    any_finished = False
    for block, (vals, idx) in enumerate(zip(values.tolist(), index.tolist())):
        pairs = zip(vals, idx)
        if eos_only:
            pairs = ((v, i) for v, i in pairs if i % vocab != eos)
        live, banned = [], []
        for rank, (v, i) in enumerate(pairs):
            beam_of, token = divmod(i, vocab)
            row = block * width + beam_of
            if token != eos and v != -np.inf:
                live.append((v, row, token))
                if len(live) == k:
                    break  # the first k ranks are seen: later candidates would not be kept
                continue
            banned.append((row, token))
            if rank < k and token == eos and v != -np.inf:
                any_finished |= c.finish(finished, int(alive[block]), row, history, v, step, attended, trail)
        for v, row, token in live:  # at most k: the loop stops at the k-th
            rows.append(row), tokens.append(token), scores.append(v)
        for row, token in banned[:k - len(live)]:
            rows.append(row), tokens.append(token), scores.append(-np.inf)
    done = np.array([len(finished[s]) >= k for s in alive.tolist()]) if any_finished else None
    # rows None: every hypothesis continues its own row (a common step), so no reordering
    unchanged = len(rows) == len(alive) * width and rows == list(range(len(rows)))
    return (None if unchanged else np.array(rows, dtype=np.int64),
            np.array(tokens, dtype=np.int64), np.array(scores, dtype=np.float32).reshape(-1, k), done)
