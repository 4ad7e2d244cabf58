"""``s2s serve``: an HTTP server over exported bundles (FastAPI + uvicorn), with dynamic batching.

    from s2s.serve import serve, Limits
    serve(["en-de=exported/multi30k-en-de"], port=8080, limits=Limits(max_beam=8))

Like the runtime under it, it imports no torch and no training code. Importing this package loads
nothing heavy: the web stack and the runtime load with the first name used (``s2s --help``
reads :class:`~s2s.serve.config.Limits` for its flags).
"""

from __future__ import annotations

import importlib

_WHERE = {"Limits": "s2s.serve.config", "parse_model_specs": "s2s.serve.config", "create_app": "s2s.serve.app",
          "serve": "s2s.serve.server"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 's2s.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
