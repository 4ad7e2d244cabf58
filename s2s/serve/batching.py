"""Dynamic batching: concurrent requests for one model and the same decoding settings become one
batched search, run off the event loop by one worker thread per model.

A request is a :class:`Job` of sentences (its non-empty texts, tokenized at admission). The
worker takes the oldest waiting sentence, waits at most ``max_wait_ms`` for more sentences with
the same :class:`DecodeKey`, counted from the sentence's arrival or from the end of the worker's
last search, whichever is later (not when it is alone and no two requests were in flight for a
second: a lone client is not kept waiting), then takes them first come first served within
``max_batch`` sentences and ``max_batch_tokens`` source tokens (at least one sentence) and runs
``translator.hypotheses(lines, batch_size=len(lines), ...)``, which sorts the batch by length
itself. A job larger than one batch is split over several; it completes when its last sentence
is done. onnxruntime releases the GIL while a graph runs, so the event loop keeps accepting
requests during a search.

Counting the wait from the end of the last search matters under steady load: the clients
answered by one search send their next requests a few milliseconds after it ends. Counted from
arrival only, the requests that came in during the search are already past their deadline and
go alone, and the clients settle into two alternating half batches; waiting for the answered
clients lets the two halves meet in one full batch. The wait also ends as soon as as many
requests have arrived since that search ended as it answered: the answered clients are back,
and waiting longer would only add latency.

If a batched search raises, each job of that batch is searched again alone: only the job whose
sentences fail again gets the error; the others get their results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Callable

from s2s.serve.config import Limits
from s2s.serve.metrics import Metrics

log = logging.getLogger("s2s.serve")


LONE_S = 1.0  # seconds with at most one request in flight after which a request does not wait


class QueueFull(Exception):
    """More sentences than ``max_queue`` would be waiting."""


class ShuttingDown(Exception):
    """The batcher was stopped: no new work."""


@dataclass(frozen=True)
class DecodeKey:
    """The decoding settings a batch shares: only requests with equal keys are batched together."""

    beam: int
    n_best: int
    max_len: int  # 0: the bundle's length ratio only
    attention: bool = False

    def overrides(self) -> dict:
        """Keyword arguments for ``Translator.hypotheses``; ``attention`` only when asked (it makes
        the search fetch the step graph's attention)."""
        extra = {"attention": True} if self.attention else {}
        return {"beam": self.beam, "n_best": self.n_best, "max_len": self.max_len, **extra}


@dataclass(eq=False)
class Job:
    """One request's sentences. ``render(line, hypotheses)`` turns a sentence's n-best list into its
    result (run on the worker thread); ``future`` gets the results in input order, or the error."""

    lines: list[str]
    lengths: list[int]  # source tokens of each line
    key: DecodeKey
    render: Callable[[str, list], Any]
    arrived: float = field(default_factory=time.monotonic)
    future: Future = field(default_factory=Future)
    taken: int = 0  # lines[:taken] have gone to a search
    remaining: int = -1  # lines without a result yet

    def __post_init__(self) -> None:
        self.results: list[Any] = [None] * len(self.lines)
        self.remaining = len(self.lines)

    @property
    def waiting(self) -> int:
        return len(self.lines) - self.taken


def settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future`` unless it is already done (cancelled by a timeout, or failed)."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


Batch = list[tuple[Job, list[int]]]  # each job with the indices of its lines in this search


class Batcher:
    """The queue and worker thread of one model: :meth:`submit` from the event loop,
    :meth:`start` and :meth:`stop` from the app's lifespan."""

    def __init__(self, name: str, translator, limits: Limits, metrics: Metrics):
        self.name, self.translator, self.limits, self.metrics = name, translator, limits, metrics
        self._pending: deque[Job] = deque()
        self._waiting = 0  # sentences of pending jobs not yet taken
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._in_flight = 0  # jobs submitted and not yet settled
        self._crowded_at = float("-inf")  # when more than one job was last in flight
        self._free_at = float("-inf")  # when the worker's last search ended
        self._answered = 0  # requests that search answered (0: none to wait for)

    # ------------------------------------------------------------------ event loop side
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"s2s-serve-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Serve what is already queued, then end the thread (the app stops it at lifespan
        shutdown, after uvicorn has let the requests in flight finish)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def submit(self, lines: list[str], lengths: list[int], key: DecodeKey, render: Callable) -> Job:
        """Queue a request's sentences; raises :class:`QueueFull` or :class:`ShuttingDown`."""
        with self._cond:
            if self._stopping or self._thread is None:
                raise ShuttingDown(f"model {self.name!r} is not accepting work")
            if self._waiting + len(lines) > self.limits.max_queue:
                raise QueueFull(f"{self._waiting} sentences are waiting for model {self.name!r} "
                                f"(at most {self.limits.max_queue}); retry later")
            job = Job(list(lines), list(lengths), key, render)
            self._in_flight += 1
            if self._in_flight > 1:
                self._crowded_at = job.arrived
            job.future.add_done_callback(self._finished)
            self._pending.append(job)
            self._count(len(lines))
            self._cond.notify_all()
        return job

    def cancel(self, job: Job) -> None:
        """Give up on ``job`` (its request timed out): its waiting sentences leave the queue."""
        job.future.cancel()
        with self._cond:
            self._drop_done()

    @property
    def waiting(self) -> int:
        return self._waiting

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._search(batch)
            with self._cond:
                self._free_at, self._answered = time.monotonic(), len(batch)

    def _gather(self) -> Batch | None:
        """Wait for the next batch; None once stopped. Under the lock."""
        with self._cond:
            while True:
                self._drop_done()
                if not self._pending:
                    if self._stopping:
                        return None
                    self._cond.wait()
                    continue
                first = self._pending[0]
                if self.limits.batching and not self._alone(first):
                    deadline = max(first.arrived, self._free_at) + self.limits.max_wait_ms / 1000
                    while not self._stopping and not self._full(first.key) and not self._answered_back():
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._cond.wait(left):
                            break
                batch = self._take(first)
                if batch:
                    return batch

    def _finished(self, future: Future) -> None:
        with self._cond:
            self._in_flight -= 1

    def _alone(self, job: Job) -> bool:
        """Whether ``job`` is queued alone and no two requests were in flight for ``LONE_S``: a
        lone client's request, searched at once instead of waiting for company that a client
        sending one request after the other cannot send."""
        return len(self._pending) == 1 and job.arrived - self._crowded_at > LONE_S

    def _answered_back(self) -> bool:
        """Whether as many requests arrived since the last search ended as it answered: under
        closed-loop load, its clients have all sent their next request."""
        return bool(self._answered) and sum(job.arrived >= self._free_at for job in self._pending) >= self._answered

    def _full(self, key: DecodeKey) -> bool:
        sentences = tokens = 0
        for job in self._pending:
            if job.key == key and not job.future.done():
                sentences += job.waiting
                tokens += sum(job.lengths[job.taken:])
        return sentences >= self.limits.max_batch or tokens >= self.limits.max_batch_tokens

    def _take(self, first: Job) -> Batch:
        """Sentences with ``first``'s key, first come first served, within the batch budgets
        (without batching: ``first``'s sentences only)."""
        batch: Batch = []
        sentences = tokens = 0
        jobs = list(self._pending) if self.limits.batching else [first]
        for job in jobs:
            if job.key != first.key or job.future.done():
                continue
            indices = []
            while job.taken < len(job.lines):
                n = job.lengths[job.taken]
                if sentences and (sentences + 1 > self.limits.max_batch
                                  or tokens + n > self.limits.max_batch_tokens):
                    break
                indices.append(job.taken)
                job.taken, sentences, tokens = job.taken + 1, sentences + 1, tokens + n
            if indices:
                batch.append((job, indices))
                self._count(-len(indices))
            if job.waiting:
                break  # the budget is spent
        self._drop_done()
        return batch

    def _drop_done(self) -> None:
        """Remove fully taken, cancelled and failed jobs from the queue. Under the lock."""
        kept = deque()
        for job in self._pending:
            if job.future.done():
                self._count(-job.waiting)
                job.taken = len(job.lines)
            elif job.waiting:
                kept.append(job)
        self._pending = kept

    def _count(self, change: int) -> None:
        self._waiting += change
        self.metrics.queue.labels(self.name).set(self._waiting)

    def _search(self, batch: Batch) -> None:
        """One batched search; on failure each job again alone, so that only a bad one fails."""
        key = batch[0][0].key
        lines = [job.lines[i] for job, indices in batch for i in indices]
        self.metrics.batch.labels(self.name).observe(len(lines))
        try:
            hypotheses = self.translator.hypotheses(lines, batch_size=len(lines), **key.overrides())
        except Exception as err:  # noqa: BLE001 - any failure of one request must not reach the others
            if len(batch) == 1:
                log.exception("model %s: search failed for a request of %d sentences", self.name, len(lines))
                settle(batch[0][0].future, error=err)
                return
            log.warning("model %s: a batched search of %d requests failed (%s); retrying each alone",
                        self.name, len(batch), err)
            for part in batch:
                self._search([part])
            return
        start = 0
        for job, indices in batch:
            self._deliver(job, indices, hypotheses[start: start + len(indices)])
            start += len(indices)

    def _deliver(self, job: Job, indices: list[int], hypotheses: list[list]) -> None:
        if job.future.done():
            return
        try:
            for i, hyps in zip(indices, hypotheses):
                job.results[i] = job.render(job.lines[i], hyps)
        except Exception as err:  # noqa: BLE001 - a rendering failure fails this request only
            log.exception("model %s: rendering a result failed", self.name)
            settle(job.future, error=err)
            return
        self.metrics.target_tokens.labels(self.name).inc(sum(len(h[0].tokens) for h in hypotheses if h))
        job.remaining -= len(indices)
        if job.remaining == 0:
            settle(job.future, job.results)
