"""Every error the server sends has one JSON shape:
``{"error": {"status": N, "message": "...", "field": "text[3]"}}`` (``field`` where one is at
fault). FastAPI's own handlers for validation errors and HTTP exceptions are replaced, and a
catch-all turns anything unexpected into a 500 of the same shape."""

from __future__ import annotations

import logging

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from s2s.serve.schemas import TranslateRequest

log = logging.getLogger("s2s.serve")

# a field whose type is a union: pydantic reports one error per member, the user wants one line
UNION_HINTS = {"text": "must be a string or a list of strings"}


class ApiError(Exception):
    """An error answered with ``status`` and the JSON body above; ``headers`` go with it."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


def error_response(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"status": status, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def field_of(loc: tuple) -> str | None:
    """``("body", "text", "list[str]", 3)`` -> ``"text[3]"``: list indices kept, the union member
    tags pydantic inserts (``str``, ``list[str]``) left out; None for the body as a whole."""
    parts = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    if not parts or not isinstance(parts[0], str):
        return None
    return parts[0] + "".join(f"[{p}]" for p in parts[1:] if isinstance(p, int))


def describe(errors: list[dict]) -> tuple[str, str | None]:
    """One message (and the first field at fault) from pydantic's error list."""
    by_field: dict[str | None, list[dict]] = {}
    for error in errors:
        by_field.setdefault(field_of(tuple(error.get("loc", ()))), []).append(error)
    # a union member's error at a list index says more than the other members' "wrong type"
    for name in [f for f in by_field if f and "[" in f]:
        by_field.pop(name.split("[")[0], None)
    messages = []
    for name, found in by_field.items():
        if found[0].get("type") == "extra_forbidden":
            messages.append(f"unknown field {name!r} (known: {', '.join(TranslateRequest.model_fields)})")
        elif len(found) > 1 and name in UNION_HINTS:
            messages.append(f"{name}: {UNION_HINTS[name]}")
        elif name is None:
            messages.append("the body must be a JSON object with a 'text' field")
        elif found[0].get("type") == "missing":
            messages.append(f"{name}: required")
        else:
            messages.append(f"{name}: {found[0].get('msg', 'invalid')}")
    return "; ".join(dict.fromkeys(messages)), next(iter(by_field), None)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if broken is not None:
        where = broken.get("loc", ("body", "?"))[-1]
        reason = (broken.get("ctx") or {}).get("error", "invalid JSON")
        return error_response(400, f"malformed JSON: {reason} (at character {where})")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and kind != "application/json" and not kind.endswith("+json"):
        return error_response(415, f"the body must be JSON (Content-Type: application/json), got {kind}")
    message, field = describe(errors)
    return error_response(422, message, field)


async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.field, exc.headers)


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's HTTP exceptions (no route: 404, wrong method: 405, ...)."""
    status, detail, headers = exc.status_code, getattr(exc, "detail", ""), getattr(exc, "headers", None)
    message = detail if isinstance(detail, str) and detail else HTTPStatus(status).phrase
    if status == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405:
        allowed = (headers or {}).get("Allow", "")
        message = f"{request.url.path} does not take {request.method}" + (f" (allowed: {allowed})" if allowed else "")
    return error_response(status, message, headers=headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); see the server's log")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ApiError, on_api_error)
    # by status code, which Starlette consults for its HTTPException (and FastAPI's) before any
    # handler by class: the web stack's own errors, in our shape, without importing Starlette
    for status in HTTPStatus:
        if status >= 400:
            app.add_exception_handler(int(status), on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
