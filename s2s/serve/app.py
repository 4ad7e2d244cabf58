"""The ASGI app: routes, the request-metrics middleware and the lifespan that runs the batchers.

    app = create_app({"en-de": Translator.load("exported/multi30k-en-de")}, Limits())
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from s2s import __version__
from s2s.serve.config import Limits
from s2s.serve.errors import install_error_handlers
from s2s.serve.metrics import Metrics
from s2s.serve.schemas import ErrorResponse, Health, ModelInfo, ModelsResponse, TranslateRequest, TranslateResponse
from s2s.serve.translate import Serving, resolve_model, translate

DESCRIPTION = """Translate with exported s2s bundles (onnxruntime, no torch).

Concurrent requests for one model with the same decoding settings are batched into one search.
Every error has the body `{"error": {"status": N, "message": "...", "field": "text[3]"}}`."""

ERRORS = {status: {"model": ErrorResponse, "description": what} for status, what in (
    (400, "malformed JSON"), (404, "unknown model"), (413, "too many texts, or a text too long"),
    (415, "the body is not JSON"),
    (422, "invalid request: wrong types, unknown fields, settings out of range"),
    (500, "the search failed for this request"), (503, "the queue is full: retry after Retry-After seconds"),
    (504, "the request took longer than the server's timeout"))}


class RequestMetrics:
    """ASGI middleware: counts ``/v1/translate`` requests by model and status, and their latency.
    The route names the model in ``request.state.model`` (empty when it was never resolved)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/v1/translate":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            model = str(scope.get("state", {}).get("model", ""))
            self.metrics.requests.labels(model, str(status[0])).inc()
            self.metrics.latency.labels(model).observe(time.perf_counter() - started)


def model_info(name: str, translator, serving: Serving) -> dict:
    meta = translator.bundle.meta
    languages = meta.get("languages") if isinstance(meta.get("languages"), dict) else {}
    return {"name": name, "path": serving.paths.get(name, str(translator.bundle.path)),
            "variant": translator.variant,
            "search": "graph" if getattr(translator, "search_graph", None) is not None else "python",
            "model_family": meta.get("model_family"),
            "architecture": meta.get("architecture"),
            "source_language": meta.get("source_language") or languages.get("source"),
            "target_language": meta.get("target_language") or languages.get("target"),
            "decode": translator.options.to_dict(), "limits": serving.limits.to_dict()}


def create_app(translators: dict[str, Any], limits: Limits, paths: dict[str, str] | None = None) -> FastAPI:
    """An app serving ``translators`` (name -> loaded runtime Translator) under ``limits``."""
    serving = Serving(dict(translators), limits, Metrics(), dict(paths or {}))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        for batcher in serving.batchers.values():
            batcher.start()
        try:
            yield
        finally:  # uvicorn has let the requests in flight finish: nothing is left to serve
            for batcher in serving.batchers.values():
                await asyncio.to_thread(batcher.stop)

    app = FastAPI(title="s2s", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.serving = serving
    install_error_handlers(app)
    app.add_middleware(RequestMetrics, metrics=serving.metrics)
    add_routes(app, serving)
    return app


def add_routes(app: FastAPI, serving: Serving) -> None:
    @app.post("/v1/translate", response_model=TranslateResponse, response_model_exclude_none=True,
              responses=ERRORS, summary="Translate one text or a list of texts")
    async def translate_route(body: TranslateRequest, request: Request) -> dict:
        started = time.monotonic()
        request.state.model = name = resolve_model(serving, body.model)
        return await translate(serving, name, body, started)

    @app.get("/v1/models", response_model=ModelsResponse, summary="The models served, their defaults and limits")
    async def models_route() -> dict:
        return {"models": [ModelInfo(**model_info(n, t, serving)) for n, t in serving.translators.items()]}

    @app.get("/health", response_model=Health, summary="200 once the models are loaded")
    async def health_route() -> dict:
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics_route() -> Response:
        return Response(serving.metrics.render(), media_type=serving.metrics.content_type)
