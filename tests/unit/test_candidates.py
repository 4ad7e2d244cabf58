"""The search's numpy parts on hand-made inputs: constraint masks, candidate selection, the
choice of a beam step's survivors, and row picking (:mod:`s2s.search`)."""

from __future__ import annotations

EOS = 3  # the search takes EOS as an argument (from the vocabulary or bundle.json), never a constant


def test_constraint_masks_are_shared_or_per_row():
    import numpy as np

    from s2s.search.constraints import Constraints

    c = Constraints(np.array([4, 6, 6]), EOS, min_len=2, no_repeat_ngram=2)
    history = np.array([[7, 8, 7], [5, 6, 9], [4, 5, 6]])
    shared = c.mask(1, history[:, :1], 10)  # before min_len: only EOS banned, for every row
    assert shared.shape == (1, 10) and np.isneginf(shared[0, EOS]) and (np.delete(shared[0], EOS) == 0).all()
    assert c.plan(1, history[:, :1], 10) == (None, True)  # the search drops EOS itself: no mask
    assert c.mask(2, history[:, :2], 10) is None
    assert c.plan(2, history[:, :2], 10) == (None, False)
    mask, eos_only = Constraints(np.array([4, 6, 6]), EOS, min_len=3, no_repeat_ngram=2).plan(2, np.array([[5, 5], [6, 7], [7, 8]]), 10)
    assert not eos_only and np.isneginf(mask[:, EOS]).all() and np.isneginf(mask[0, 5])  # an n-gram ban too
    assert np.isneginf(c.mask(2, np.array([[1, 2], [3, 4], [5, 5]]), 10)[2, 5])  # "5 5" again is banned
    rows = c.mask(3, history, 10)  # row 0 repeats "7 8": 8 banned; no row at its limit yet
    assert rows.shape == (3, 10) and np.isneginf(rows[0, 8]) and (rows[1:] == 0).all()
    limit = c.mask(4, np.zeros((3, 4), dtype=np.int64) + np.arange(4) + 10, 10)  # row 0 reaches its limit
    assert limit[0, EOS] == 0 and np.isneginf(np.delete(limit[0], EOS)).all() and (limit[1:] == 0).all()


def test_constraint_plan_shortcut_agrees_with_the_masks():
    """plan() decides the common steps (no row at its limit, no n-gram yet) without arrays; at
    every step of several settings it must still answer what the masks say, and selecting rows
    of uniform limits may reuse the object only because nothing changes."""
    import numpy as np

    from s2s.search.constraints import Constraints

    rng = np.random.default_rng(0)
    for limits, min_len, n in (([5, 5, 5], 0, 0), ([5, 5, 5], 3, 0), ([3, 6, 4], 2, 0), ([6, 6], 4, 2),
                               ([2, 7, 7, 5], 5 - 3, 3), ([4], 4, 0)):
        c = Constraints(np.array(limits), EOS, min_len, n)
        history = rng.integers(4, 7, size=(len(limits), max(limits) + 1))
        for step in range(max(limits) + 1):
            mask, eos_only = c.plan(step, history[:, :step], 10)
            full = c.mask(step, history[:, :step], 10)
            if eos_only:  # the only ban is EOS, for every row: what the full mask would hold
                assert mask is None and full is not None and full.shape == (1, 10)
                assert np.isneginf(full[0, EOS]) and (np.delete(full[0], EOS) == 0).all()
            elif mask is None:
                assert full is None
            else:
                assert np.array_equal(mask, full)
        rows = np.array([len(limits) - 1, *range(len(limits) - 1)])
        assert np.array_equal(c.select(rows).max_lens, np.array(limits)[rows])


def test_survivors_equal_a_full_top_k_of_the_unbanned_scores():
    """The beam keeps the first k unbanned candidates of the sorted step output; that must be
    what a full top-k over the scores with banned ones at -inf returns, ties included."""
    import numpy as np

    from s2s.search.candidates import survivors, top_k
    from s2s.search.constraints import NEG_INF

    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 6))
        raw = rng.integers(-6, 0, size=(4, 2 * k)).astype(np.float32)  # small integers: many ties
        raw[rng.random(raw.shape) < 0.1] = NEG_INF
        scores, _ = top_k(raw, 2 * k)  # sorted as the search head returns it, ties to the lower index
        banned = (rng.random(scores.shape) < 0.4) | np.isinf(scores)
        want_scores, want = top_k(np.where(banned, NEG_INF, scores), k)
        got_scores, got = survivors(scores, banned, k)
        np.testing.assert_array_equal(got_scores, want_scores)
        np.testing.assert_array_equal(got, want)


def test_dropping_eos_from_a_widened_top_list_equals_masking_it():
    """Below min_len the search asks for width more candidates and drops EOS instead of adding a
    mask: the result must be the masked top-k, values, indices and order, ties included."""
    import numpy as np

    from s2s.search.candidates import drop_eos, top_k
    from s2s.search.constraints import NEG_INF

    rng = np.random.default_rng(1)
    vocab = 6
    for _ in range(200):
        width, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        scores = rng.integers(-5, 0, size=(3, width * vocab)).astype(np.float32)  # many ties
        scores[rng.random(scores.shape) < 0.1] = NEG_INF
        masked = scores.copy()
        masked[:, EOS::vocab] = NEG_INF
        want = top_k(masked, k)
        values, index = top_k(scores, min(k + width, width * vocab))
        got = drop_eos(values, index, vocab, k, EOS)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_the_python_step_choice_equals_the_numpy_one():
    """choose_small (few sentences) and choose (numpy) give the same rows, tokens, scores, done
    flags and finished hypotheses on random sorted candidate lists with EOS, -inf and ties, with
    and without the widened list of eos_only, including sentences already holding hypotheses, and
    with or without a coverage penalty (read from the finishing row's summed attention)."""
    import numpy as np

    from s2s.search.candidates import StepChoice, choose, choose_small, top_k
    from s2s.search.constraints import NEG_INF
    from s2s.search.hypotheses import CoveragePenalty, normalized_score

    rng = np.random.default_rng(3)
    vocab, seen = 7, {"eos": 0, "done": 0, "padded": 0, "unchanged": 0, "covered": 0}
    for _ in range(400):
        k, width, sentences = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        eos_only = bool(rng.integers(0, 2))
        scores = rng.integers(-6, 0, size=(sentences, width * vocab)).astype(np.float32)  # many ties
        scores[rng.random(scores.shape) < 0.25] = NEG_INF
        if eos_only:
            scores[:, EOS::vocab] = rng.integers(-6, 0, size=(sentences, width)).astype(np.float32)
        wanted = min(2 * k + width, width * vocab) if eos_only else min(2 * k, width * vocab)
        values, index = top_k(scores, wanted)
        alive = np.sort(rng.choice(10, sentences, replace=False))
        history = rng.integers(4, vocab, size=(sentences * width, 3))
        history[:, 0] = np.arange(len(history)) + 10  # a hypothesis's first token names its row
        finished0 = [[None] * int(rng.integers(0, k)) for _ in range(10)]  # earlier hypotheses
        coverage, attended = None, None
        if rng.integers(0, 2):
            coverage = CoveragePenalty(0.4, rng.integers(1, 6, size=10))
            attended = rng.random((sentences * width, 5)).astype(np.float32) * 2
        results = []
        for choice in (choose, choose_small):
            finished = [list(f) for f in finished0]
            rows, tokens, kept, done = choice(StepChoice(vocab, k, EOS, 0.6, coverage), values.copy(), index.copy(),
                                              width, alive, finished, history, 5, eos_only, attended)
            results.append((rows, tokens, kept, done, finished))
        (r1, t1, s1, d1, f1), (r2, t2, s2, d2, f2) = results
        if r2 is None:  # no reordering: every hypothesis continues its own row
            seen["unchanged"] += 1
            r2 = np.arange(len(t2))
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(t1, t2)
        np.testing.assert_array_equal(s1, s2)
        assert s2.dtype == np.float32 and s2.shape == (sentences, k) and r2.dtype == t2.dtype == np.int64
        assert results[1][0] is not None or width == k  # rows 0, 1, 2, ... only when no row is new
        assert [[None if h is None else (h.tokens, h.score, h.log_prob) for h in f] for f in f1] == \
               [[None if h is None else (h.tokens, h.score, h.log_prob) for h in f] for f in f2]
        # numpy flags every sentence when any candidate among the first k is EOS or -inf; Python
        # only when one finished: the same sentences are done either way
        assert (d1 is not None and bool(d1.any())) == (d2 is not None and bool(d2.any()))
        if d2 is not None:
            np.testing.assert_array_equal(d1, d2)
        for sentence, (before, after) in enumerate(zip(finished0, f1)):
            for h in after[len(before):]:  # each new hypothesis: log P / lp, plus the penalty of its row's attention
                cp = 0.0 if coverage is None else coverage(sentence, attended[h.tokens[0] - 10])
                assert h.score == normalized_score(h.log_prob, 6, 0.6) + cp
                seen["covered"] += cp < 0
        seen["eos"] += f1 != finished0
        seen["done"] += d2 is not None and bool(d2.any())
        seen["padded"] += bool(np.isinf(s1).any())
    assert min(seen.values()) >= 10, seen  # the cases compared did occur


def test_take_splits_large_states_between_two_threads_without_changing_them():
    import numpy as np

    from s2s.search import arrays as search

    rng = np.random.default_rng(2)
    state = {f"cache.{i}": rng.standard_normal((40, 4, 3 + i, 64), dtype=np.float32) for i in range(6)}
    state["steps"] = np.arange(40)
    rows = rng.integers(0, 40, 60)
    assert sum(v.nbytes for v in state.values()) > search.PARALLEL_BYTES
    got = search.take(state, rows)
    assert list(got) == list(state) and search._helper is not None
    for name, value in state.items():
        np.testing.assert_array_equal(got[name], value[rows])
    small = search.take({"a": np.arange(6).reshape(3, 2)}, np.array([2, 0]))
    np.testing.assert_array_equal(small["a"], [[4, 5], [0, 1]])
