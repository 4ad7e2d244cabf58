"""Load the bundles, build the app, run uvicorn until SIGINT/SIGTERM.

uvicorn's graceful shutdown stops accepting connections, lets the requests in flight finish
(within ``timeout + 5`` seconds), then runs the app's lifespan shutdown, which stops the batchers.
"""

from __future__ import annotations

import logging
import signal
import threading

import uvicorn

from s2s.runtime import Translator
from s2s.serve.app import create_app
from s2s.serve.config import Limits, ModelSpec, parse_model_specs

log = logging.getLogger("s2s.serve")


def load_translators(specs: list[ModelSpec], variant: str | None = None, threads: int | None = None,
                     tune_allocator: bool = False, search: str = "python") -> dict[str, Translator]:
    """Each bundle loaded once (its onnxruntime sessions use ``threads`` threads each)."""
    return {spec.name: Translator.load(spec.path, variant, providers=None, threads=threads,
                                       tune_allocator=tune_allocator, search=search) for spec in specs}


def serve(bundles: list[str], host: str = "127.0.0.1", port: int = 8080, limits: Limits | None = None,
          variant: str | None = None, threads: int | None = None, tune_allocator: bool = False,
          log_level: str = "info", http: str = "auto", loop: str = "auto", search: str = "python") -> int:
    """``s2s serve``: ``bundles`` are ``PATH`` or ``NAME=PATH``; returns 0 after a clean shutdown.
    ``http`` and ``loop`` pick uvicorn's HTTP parser and event loop; "auto" takes httptools and
    uvloop where installed. The serve extra installs neither: on the 2-core CPU at 32 clients,
    tools/bench_serve.py measured no gain from them (the search, not HTTP, bounds throughput)."""
    limits = limits or Limits()
    specs = parse_model_specs(bundles)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    translators = load_translators(specs, variant, threads, tune_allocator, search)
    app = create_app(translators, limits, {s.name: str(s.path) for s in specs})
    log.info("serving %s on http://%s:%d", ", ".join(translators), host, port)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on", http=http, loop=loop,
                            timeout_graceful_shutdown=int(limits.timeout) + 5)
    with exit_zero_on_sigterm():
        uvicorn.Server(config).run()
    return 0


class exit_zero_on_sigterm:  # noqa: N801 - reads as the context it sets up
    """uvicorn re-raises the signal it stopped on once its graceful shutdown is done, so that the
    handler installed before it runs; the default one for SIGTERM would end the process with
    -15. A shutdown asked for by SIGTERM is a clean one: ignore the re-raised signal, exit 0."""

    def __enter__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        return False
