"""``s2s serve BUNDLE [BUNDLE...]``: an HTTP server over exported bundles (see :mod:`s2s.serve`)."""

from __future__ import annotations

import argparse
import dataclasses

BATCHING_FLAGS = ("max_batch", "max_batch_tokens", "max_wait_ms", "max_queue", "batching")


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve exported bundles over HTTP (JSON API, dynamic batching)",
                       description="Serve bundles over HTTP: POST /v1/translate, GET /v1/models, /health, /metrics "
                                   "(Prometheus), /docs (OpenAPI). SIGTERM lets the requests in flight finish.")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE",
                   help="an exported bundle folder (served under the folder's name), or NAME=PATH")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads per model (default: $S2S_THREADS, else onnxruntime's choice)")
    p.add_argument("--variant", choices=["fp32", "int8"],
                   help="which graphs of each bundle (default: fp32, or the bundle's only variant)")
    p.add_argument("--search", choices=["python", "auto"], default="python",
                   help="where beam search and greedy run: in Python over the step graph (default), or auto: "
                        "inside each bundle's search.onnx in one onnxruntime call where it has one (s2s export "
                        "--search), requests for attention or alignment still in Python")
    p.add_argument("--tune-allocator", action=argparse.BooleanOptionalAction, default=True,
                   help="let the runtime tune glibc's allocator for the server's process, as s2s translate does: "
                        "glibc keeps freed pages, so the caches a batched search reorders at every step are not "
                        "faulted in again, and the weights sit on 2 MiB pages (default: on)")
    p.add_argument("--http", default="auto", choices=["auto", "httptools", "h11"],
                   help="uvicorn's HTTP parser (default: httptools where installed, else h11, pure Python)")
    p.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"],
                   help="uvicorn's event loop (default: uvloop where installed, else asyncio)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add_limit_flags(p)
    p.set_defaults(run=run)


def add_limit_flags(parser) -> None:
    """One flag per field of :class:`~s2s.serve.config.Limits`, its default and help from there."""
    from s2s.serve.config import Limits

    groups = {True: parser.add_argument_group("batching"), False: parser.add_argument_group("limits per request")}
    for f in dataclasses.fields(Limits):
        group, flag = groups[f.name in BATCHING_FLAGS], f"--{f.name.replace('_', '-')}"
        if f.name == "batching":
            group.add_argument("--no-batching", dest="batching", action="store_false",
                               help="decode each request alone (to compare against batching)")
            continue
        kind = float if f.name in ("timeout", "max_wait_ms") else int
        shown = "" if f.default is None else f" (default: {f.default:g})"
        group.add_argument(flag, dest=f.name, type=kind, default=f.default, help=f.metadata["help"] + shown)


def run(args) -> int:
    from s2s.serve import Limits, serve

    limits = Limits(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Limits)})
    return serve(args.bundles, args.host, args.port, limits, args.variant, args.threads, args.tune_allocator,
                 args.log_level, args.http, args.loop, args.search)
