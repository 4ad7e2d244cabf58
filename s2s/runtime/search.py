"""Batched greedy and beam search in numpy over a step function, twin of :mod:`s2s.decoding`.

``step(tokens (N,), state, memory) -> log_probs (N, V) float32, state, attention`` with state and
memory as dicts of batch-first arrays. The control flow, tie-breaking (lower index first) and
float32 arithmetic follow the PyTorch searches so that both pick the same tokens; a parity test
over a real test set holds them to it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

BOS, EOS = 2, 3
NEG_INF = np.float32(-np.inf)

Step = Callable[[np.ndarray, dict, dict], tuple[np.ndarray, dict, np.ndarray]]


@dataclass
class Hypothesis:
    """A finished translation: ``tokens`` exclude BOS and EOS; ``score`` is length-normalised."""

    tokens: list[int]
    score: float
    log_prob: float


def normalized_score(log_prob: float, length: int, alpha: float) -> float:
    """log P(Y|X) / ((5 + |Y|) / 6) ** alpha (Wu et al., 2016, eq. 14)."""
    return log_prob / ((5.0 + length) / 6.0) ** alpha


def max_lengths(src_lengths: np.ndarray, ratio: float, offset: int, cap: int = 1024, minimum: int = 0,
                maximum: int = 0) -> np.ndarray:
    """Tokens allowed before EOS: floor(ratio * |src|) + offset, within [minimum, cap] (at least
    1); ``maximum`` > 0 lowers the cap to it."""
    if maximum > 0:
        cap = min(cap, maximum)
    limit = np.floor(src_lengths.astype(np.float32) * np.float32(ratio)).astype(np.int64) + offset
    return np.clip(limit, min(max(minimum, 1), cap), cap)


class Constraints:
    """Minimum and maximum length and no-repeat n-grams, as an additive mask over the vocabulary.

    The mask is 0 where a token is allowed and -inf where it is banned, so ``log_probs + mask``
    equals what the PyTorch processors produce (adding 0 changes no value). ``max_lens`` holds each
    row's limit: at it, only EOS is allowed.
    """

    def __init__(self, max_lens: np.ndarray, min_len: int = 0, no_repeat_ngram: int = 0):
        if min_len > int(max_lens.min(initial=min_len)):
            raise ValueError(f"min_len ({min_len}) exceeds a maximum length ({int(max_lens.min())})")
        self.max_lens, self.min_len, self.n = max_lens, min_len, no_repeat_ngram
        # the smallest limit: below it no row is at its limit, which plan() checks without numpy
        self.lowest = int(max_lens.min()) if len(max_lens) else 0
        self.uniform = len(max_lens) > 0 and self.lowest == int(max_lens.max())

    def select(self, rows: np.ndarray) -> "Constraints":
        if self.uniform and len(rows) == len(self.max_lens):  # every row has the same limit: reordering changes nothing
            return self
        return Constraints(self.max_lens[rows], self.min_len, self.n)

    def _ngram_bans(self, step: int, history: np.ndarray) -> dict[int, list[int]]:
        n, bans = self.n, {}
        if n <= 0 or step + 1 < n:
            return bans
        for row, tokens in enumerate(history.tolist()):
            prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
            banned = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i:i + n - 1]) == prefix}
            if banned:
                bans[row] = sorted(banned)
        return bans

    def mask(self, step: int, history: np.ndarray, vocab: int) -> np.ndarray | None:
        """(1, V) when every row shares the mask, (N, V) when rows differ, None when nothing is banned."""
        return self._mask(step, self.max_lens <= step, self._ngram_bans(step, history), vocab)

    def plan(self, step: int, history: np.ndarray, vocab: int) -> tuple[np.ndarray | None, bool]:
        """(mask, eos_only) for this step. When EOS is the only banned token (below ``min_len``, no
        row at its limit, no n-gram ban) no mask is built and ``eos_only`` is True: the search
        then widens its top list by one candidate per row and drops EOS from it (:func:`drop_eos`),
        instead of adding an (N, V) mask whose only -inf is one column."""
        if step < self.lowest and (self.n <= 0 or step + 1 < self.n):  # no row at its limit, no n-gram
            return None, step < self.min_len  # the common cases, decided without touching arrays
        at_limit, bans = self.max_lens <= step, self._ngram_bans(step, history)
        if step < self.min_len and not at_limit.any() and not bans:
            return None, True
        return self._mask(step, at_limit, bans, vocab), False

    def _mask(self, step: int, at_limit: np.ndarray, bans: dict, vocab: int) -> np.ndarray | None:
        if step >= self.min_len and not at_limit.any() and not bans:
            return None
        per_row = bool(bans) or not (at_limit.all() or not at_limit.any())
        mask = np.zeros((len(at_limit) if per_row else 1, vocab), dtype=np.float32)
        if step < self.min_len:
            mask[:, EOS] = NEG_INF
        for row, banned in bans.items():
            mask[row, banned] = NEG_INF
        if at_limit.any():
            limited = at_limit if per_row else slice(None)
            mask[limited] = NEG_INF
            mask[limited, EOS] = 0.0
        return mask


def drop_eos(values: np.ndarray, index: np.ndarray, vocab: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first k candidates of each sorted row whose token is not EOS. A row's top list widened
    by its block's number of rows holds at most one EOS per row, so this is the top k that the
    same scores with EOS masked to -inf would give, in the same order."""
    is_eos = index % vocab == EOS
    if not is_eos.any():
        return values[:, :k], index[:, :k]
    kept, order = survivors(values, is_eos, k)
    return kept, index[np.arange(len(order))[:, None], order]


PARALLEL_BYTES = 1 << 20  # take() splits its copies between two threads above this many bytes
_helper: ThreadPoolExecutor | None = None


def take(arrays: dict, rows: np.ndarray) -> dict:
    """The given rows of every array (beam reordering, finished sentences leaving).

    Large states (a transformer's caches at batch 32, beam 5: tens of MB per step) are copied by
    two threads, a helper taking about half the bytes: numpy releases the GIL while it copies,
    and onnxruntime's workers are idle between two steps. On the benchmark transformer's six
    caches at 12 positions this measured 250 µs against 437 µs on one thread.
    """
    if len(arrays) < 2 or sum(value.nbytes for value in arrays.values()) < PARALLEL_BYTES:
        return {name: value[rows] for name, value in arrays.items()}  # plain indexing: least overhead per call
    items = sorted(arrays.items(), key=lambda item: -item[1].nbytes)
    global _helper
    if _helper is None:
        _helper = ThreadPoolExecutor(1, thread_name_prefix="s2s-take")
    mine, theirs, load = [], [], [0, 0]
    for item in items:  # largest first, each to the lighter side
        side = 0 if load[0] <= load[1] else 1
        (mine, theirs)[side].append(item)
        load[side] += item[1].nbytes
    helped = _helper.submit(lambda: {name: np.take(value, rows, axis=0) for name, value in theirs})
    out = {name: np.take(value, rows, axis=0) for name, value in mine}
    out.update(helped.result())
    return {name: out[name] for name in arrays}


def greedy(select: "Select", memory: dict, state: dict, constraints: Constraints, vocab: int,
           length_penalty: float = 0.0) -> list[Hypothesis]:
    """The most probable token at each step, through the same ``select`` as :func:`beam` with
    one candidate per row (k = 1, each row its own block): with a search head the argmax is
    taken inside the step graph and the (N, V) log-probabilities never leave it."""
    batch = len(constraints.max_lens)
    tokens = np.full(batch, BOS, dtype=np.int64)
    history = np.empty((batch, 0), dtype=np.int64)
    log_prob = np.zeros(batch, dtype=np.float32)
    done = np.zeros(batch, dtype=bool)
    zeros = np.zeros((batch, 1), dtype=np.float32)
    for t in range(int(constraints.max_lens.max()) + 1):
        mask, eos_only = constraints.plan(t, history, vocab)
        best, index, state = select(tokens, state, memory, zeros, batch, 2 if eos_only else 1, mask)
        if eos_only:
            best, index = drop_eos(best, index, vocab, 1)
        tokens = np.where(done, EOS, index[:, 0])
        log_prob = log_prob + np.where(done, np.float32(0.0), best[:, 0])
        history = np.concatenate([history, tokens[:, None]], 1)
        done |= tokens == EOS
        if done.all():
            break
    out = []
    for row, lp in zip(history.tolist(), log_prob.tolist()):
        length = row.index(EOS) if EOS in row else len(row)
        out.append(Hypothesis(row[:length], normalized_score(lp, length + 1, length_penalty), lp))
    return out


def _top(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
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
    (scores, positions), as ``_top(np.where(banned, -inf, top_scores), k)`` would return them.

    ``top_scores`` comes sorted (largest first, ties to the lower index), so the survivors are
    simply the first k unbanned positions in order, then banned ones as -inf: one stable sort of
    a boolean row instead of a partition and two sorts per step.
    """
    order = np.argsort(banned, axis=1, kind="stable")[:, :k]
    at = (np.arange(len(order))[:, None], order)  # plain indexing: take_along_axis costs more per call
    return np.where(banned[at], NEG_INF, top_scores[at]), order


Select = Callable[[np.ndarray, dict, dict, np.ndarray, int, int, "np.ndarray | None"],
                  tuple[np.ndarray, np.ndarray, dict]]


def numpy_select(step: Step) -> Select:
    """A beam selection over a plain step function: (log_probs + mask + scores), each sentence's top k."""

    def select(tokens, state, memory, scores, blocks, k, mask):
        log_probs, state, _ = step(tokens, state, memory)
        if mask is not None:
            log_probs = log_probs + mask
        values, index = _top((log_probs + scores).reshape(blocks, -1), k)
        return values, index, state

    return select


def choose(values: np.ndarray, index: np.ndarray, vocab: int, k: int, width: int, alive: np.ndarray,
           finished: list, history: np.ndarray, step: int, length_penalty: float, eos_only: bool):
    """One beam step's choice over each sentence's sorted candidates, in numpy: the hypotheses
    that end in EOS among the first k join ``finished``, and the first k candidates that are
    neither EOS nor -inf live on. Returns (rows, tokens, scores (B, k), done or None)."""
    if eos_only:
        values, index = drop_eos(values, index, vocab, 2 * k)
    head_beam, head_token = np.divmod(index[:, :k], vocab)
    # the common step: no EOS among each sentence's k best, so all k live on, in order. (An -inf
    # candidate among them, when fewer than k tokens are allowed, sorts last and stays at -inf,
    # as survivors() would keep it.)
    if not (head_token == EOS).any():
        return (_row_base(len(alive), width, k) + head_beam).reshape(-1), head_token.reshape(-1), values[:, :k], None
    top_beam, top_token = index // vocab, index % vocab
    is_eos = (top_token == EOS) | np.isinf(values)
    eos = (top_token[:, :k] == EOS) & np.isfinite(values[:, :k])
    for block, rank in zip(*np.nonzero(eos)):
        sentence = int(alive[block])
        if len(finished[sentence]) >= k:
            continue
        row = block * width + int(top_beam[block, rank])
        lp = float(values[block, rank])
        finished[sentence].append(Hypothesis(history[row].tolist(), normalized_score(lp, step + 1, length_penalty), lp))
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


SMALL_ROWS = 32  # beam steps with at most this many candidate rows choose in plain Python


def choose_small(values: np.ndarray, index: np.ndarray, vocab: int, k: int, width: int, alive: np.ndarray,
                 finished: list, history: np.ndarray, step: int, length_penalty: float, eos_only: bool):
    """:func:`choose` in plain Python, for few sentences, with the same result, except that rows
    is None when they are 0, 1, 2, ... (nothing to reorder).

    ``values``/``index`` are each sentence's sorted candidates. With ``eos_only`` they were widened
    by one per row and EOS is dropped from them (:func:`drop_eos`). Candidates among the first k
    that end in EOS with a finite score finish hypotheses (at most k per sentence); the k
    survivors are the first k candidates that are neither EOS nor -inf, then banned ones at -inf
    (:func:`survivors`). At batch 1 with beam 5, each numpy call costs several microseconds after
    a step graph has run (its caches are cold), and this replaces about a dozen of them.
    """
    rows, tokens, scores = [], [], []
    any_finished = False
    for block, (vals, idx) in enumerate(zip(values.tolist(), index.tolist())):
        pairs = zip(vals, idx)
        if eos_only:
            pairs = ((v, i) for v, i in pairs if i % vocab != EOS)
        live, banned = [], []
        for rank, (v, i) in enumerate(pairs):
            beam_of, token = divmod(i, vocab)
            row = block * width + beam_of
            if token != EOS and v != -np.inf:
                live.append((v, row, token))
                if len(live) == k:
                    break  # the first k ranks are seen: later candidates would not be kept
                continue
            banned.append((row, token))
            if rank < k and token == EOS and v != -np.inf:
                sentence = int(alive[block])
                if len(finished[sentence]) < k:
                    finished[sentence].append(Hypothesis(history[row].tolist(), normalized_score(v, step + 1, length_penalty), v))
                    any_finished = True
        for v, row, token in live:  # at most k: the loop stops at the k-th
            rows.append(row), tokens.append(token), scores.append(v)
        for row, token in banned[:k - len(live)]:
            rows.append(row), tokens.append(token), scores.append(-np.inf)
    done = np.array([len(finished[s]) >= k for s in alive.tolist()]) if any_finished else None
    # rows None: every hypothesis continues its own row (a third of the steps of the benchmark
    # transformer, an eighth of a trained one's), so the state needs no reordering
    unchanged = len(rows) == len(alive) * width and rows == list(range(len(rows)))
    return (None if unchanged else np.array(rows, dtype=np.int64),
            np.array(tokens, dtype=np.int64), np.array(scores, dtype=np.float32).reshape(-1, k), done)


def beam(select: Select, memory: dict, state: dict, constraints: Constraints, vocab: int, beam_size: int = 5,
         n_best: int = 1, length_penalty: float = 0.0, memory_per_sentence: bool = False) -> list[list[Hypothesis]]:
    """``select(tokens, state, memory, scores (R, 1), sentences, k, mask)`` runs one decoder step and
    returns each sentence's k best candidates, sorted (values largest first, ties to the lower
    index; indices into its K*V), and the next state. With ``memory_per_sentence`` (the bundle's
    flag) the memory keeps one row per sentence instead of one per hypothesis."""
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be within 1..beam ({beam_size}), got {n_best}")
    k = beam_size
    batch = len(constraints.max_lens)
    # Every sentence starts from one live hypothesis, so the first step runs on one row per
    # sentence (width 1) and the survivors then fill K rows each: the K - 1 rows the first step
    # would score at -inf are never computed. Too small a vocabulary for 2K candidates per row
    # starts at width K as before.
    width = 1 if vocab >= 2 * k else k
    if width > 1:
        expand = np.repeat(np.arange(batch), k)
        memory = memory if memory_per_sentence else take(memory, expand)
        state, constraints = take(state, expand), constraints.select(expand)
    alive = np.arange(batch)
    scores = np.full((batch, width), NEG_INF, dtype=np.float32)
    scores[:, 0] = 0.0
    history = np.empty((batch * width, 0), dtype=np.int64)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    tokens = np.full(batch * width, BOS, dtype=np.int64)
    for t in range(int(constraints.max_lens.max()) + 1):
        mask, eos_only = constraints.plan(t, history, vocab)
        wanted = min(2 * k + width, width * vocab) if eos_only else 2 * k
        top_scores, top_index, state = select(tokens, state, memory, scores.reshape(-1, 1), len(alive), wanted, mask)
        # rows (the hypotheses continued), tokens, scores (B, k), and which sentences are done
        # (None: no sentence finished a hypothesis at this step, so none can be done)
        choice = choose_small if len(alive) * k <= SMALL_ROWS else choose
        rows, tokens, scores, done = choice(top_scores, top_index, vocab, k, width, alive, finished, history, t,
                                            length_penalty, eos_only)
        if done is not None and done.all():
            break
        if done is not None and done.any():  # finished sentences leave the batch
            rows = np.arange(len(tokens)) if rows is None else rows
            live = np.flatnonzero(~done)
            alive, scores = alive[live], scores[live]
            rows = rows.reshape(-1, k)[live].reshape(-1)
            tokens = tokens.reshape(-1, k)[live].reshape(-1)
            per_sentence = memory_per_sentence or width == 1
            memory = take(memory, live if per_sentence else (live[:, None] * k + np.arange(k)).reshape(-1))
        if width == 1 and not memory_per_sentence:  # memory rows follow the state rows from now on
            memory = take(memory, np.repeat(np.arange(len(alive)), k))
        width = k
        if rows is not None:
            state, constraints, history = take(state, rows), constraints.select(rows), history[rows]
        history = np.concatenate([history, tokens[:, None]], 1)
    return [sorted(hyps, key=lambda h: -h.score)[:n_best] for hyps in finished]
