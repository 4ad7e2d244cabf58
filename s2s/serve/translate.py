"""``POST /v1/translate`` from request to response: admission checks (model, sizes, decoding
settings, source tokens), the batcher, and each sentence's result rendered on the worker thread."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from s2s.errors import ConfigError
from s2s.serve.batching import Batcher, DecodeKey, QueueFull, ShuttingDown
from s2s.serve.config import Limits
from s2s.serve.errors import ApiError
from s2s.serve.metrics import Metrics
from s2s.serve.schemas import TranslateRequest

RETRY_AFTER_S = 1  # what a 503 tells the client to wait


@dataclass
class Serving:
    """What the routes need: the translators and their batchers by model name, limits, metrics."""

    translators: dict[str, Any]
    limits: Limits
    metrics: Metrics
    paths: dict[str, str] = field(default_factory=dict)
    batchers: dict[str, Batcher] = field(init=False)

    def __post_init__(self) -> None:
        self.batchers = {name: Batcher(name, t, self.limits, self.metrics) for name, t in self.translators.items()}


def resolve_model(serving: Serving, name: str | None) -> str:
    if name is None:
        if len(serving.translators) == 1:
            return next(iter(serving.translators))
        raise ApiError(422, f"model: required when several models are served ({', '.join(serving.translators)})",
                       "model")
    if name not in serving.translators:
        raise ApiError(404, f"no model named {name!r}; served: {', '.join(serving.translators)}", "model")
    return name


def check_texts(texts: list[str], single: bool, limits: Limits) -> None:
    if not texts:
        raise ApiError(422, "text: an empty list; send at least one text", "text")
    if len(texts) > limits.max_texts:
        raise ApiError(413, f"text: {len(texts)} texts in one request; at most {limits.max_texts}", "text")
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            where = "text" if single else f"text[{i}]"
            raise ApiError(413, f"{where} has {len(text)} characters; at most {limits.max_chars}", where)


def decode_key(request: TranslateRequest, defaults, limits: Limits) -> DecodeKey:
    """The request's decoding settings over the model's defaults, within the limits."""
    beam = request.beam or defaults.beam
    n_best = request.n_best or 1
    for name, value, cap in (("beam", request.beam, limits.max_beam), ("n_best", request.n_best, limits.n_best_cap),
                             ("max_len", request.max_len, limits.max_len)):
        if value is not None and value > cap:
            raise ApiError(422, f"{name}: {value} is more than this server allows ({cap})", name)
    if n_best > beam:
        raise ApiError(422, f"n_best: {n_best} hypotheses need a beam at least as large (beam is {beam})", "n_best")
    max_len = request.max_len or defaults.max_len
    try:
        defaults.with_overrides(beam=beam, n_best=n_best, max_len=max_len)
    except ConfigError as err:
        raise ApiError(422, str(err)) from None
    return DecodeKey(beam, n_best, max_len, request.attention or request.alignment)


def count_tokens(translator, texts: list[str], todo: list[int], single: bool, limits: Limits) -> list[int]:
    """Source tokens of the texts at indices ``todo`` (tokenized at admission: the limit and the
    batch budget)."""
    lengths = [len(ids) for ids in translator.encode_lines([texts[i] for i in todo])] if todo else []
    for i, n in zip(todo, lengths):
        if n > limits.max_tokens:
            where = "text" if single else f"text[{i}]"
            raise ApiError(413, f"{where} has {n} source tokens; at most {limits.max_tokens}", where)
    return lengths


def renderer(translator, key: DecodeKey, attention: bool, alignment: bool):
    """``render(line, hypotheses) -> dict``: one translation as the response shows it."""
    def render(line: str, hyps: list) -> dict:
        best = hyps[0]
        out: dict[str, Any] = {"text": translator.text(best), "score": float(best.score)}
        if key.n_best > 1:
            out["n_best"] = [{"text": translator.text(h), "score": float(h.score)} for h in hyps]
        if attention:
            out["attention"] = translator.attention_of(line, best)
        if alignment:
            out["alignment"] = translator.alignment_of(line, best)
        return out
    return render


def empty_translation(key: DecodeKey, attention: bool, alignment: bool) -> dict:
    out: dict[str, Any] = {"text": "", "score": 0.0}
    if key.n_best > 1:
        out["n_best"] = [{"text": "", "score": 0.0}]
    if attention:
        out["attention"] = {"source": [], "target": [], "weights": []}
    if alignment:
        out["alignment"] = ""
    return out


async def translate(serving: Serving, name: str, request: TranslateRequest, started: float) -> dict:
    """The response body of one request to model ``name`` (:func:`resolve_model`); every failure
    is an :class:`ApiError`."""
    translator, limits = serving.translators[name], serving.limits
    single = isinstance(request.text, str)
    texts = [request.text] if single else list(request.text)
    check_texts(texts, single, limits)
    key = decode_key(request, translator.options, limits)
    todo = [i for i, text in enumerate(texts) if text.strip()]  # empty texts never reach a search
    lengths = count_tokens(translator, texts, todo, single, limits)
    results = [empty_translation(key, request.attention, request.alignment) for _ in texts]
    if todo:
        serving.metrics.source_tokens.labels(name).inc(sum(lengths))
        found = await run_job(serving.batchers[name], [texts[i] for i in todo], lengths, key,
                              renderer(translator, key, request.attention, request.alignment),
                              started + limits.timeout)
        for i, result in zip(todo, found):
            results[i] = result
    return {"model": name, "translations": results}


async def run_job(batcher: Batcher, lines: list[str], lengths: list[int], key: DecodeKey, render,
                  deadline: float) -> list:
    try:
        job = batcher.submit(lines, lengths, key, render)
    except (QueueFull, ShuttingDown) as err:
        raise ApiError(503, str(err), headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    try:
        return await asyncio.wait_for(asyncio.wrap_future(job.future), max(deadline - time.monotonic(), 0.001))
    except asyncio.TimeoutError:
        batcher.cancel(job)
        raise ApiError(504, f"the translation took longer than {batcher.limits.timeout:g} s; send fewer or shorter "
                            "texts, or a smaller beam") from None
    except asyncio.CancelledError:
        batcher.cancel(job)  # the client went away
        raise
    except Exception as err:  # noqa: BLE001 - the search failed for this request alone
        raise ApiError(500, f"translation failed: {type(err).__name__}: {err}") from None
