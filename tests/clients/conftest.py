"""Shared by the reference clients' tests: the bundle with a search graph, the Python runtime's
translations to compare with, and skipping (failing under CI) when a tool is missing."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from tests.conftest import MULTI30K, ROOT

INSTALL = "bash .ci/install-clients (Debian's chromium, npm ci in exported/clients/node and exported/clients/web)"


def _need(ok: bool, what: str, how: str = INSTALL) -> None:
    if ok:
        return
    message = f"{what} missing: install with {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def need():
    """``need(ok, what[, how])``: skip when ``ok`` is false, saying how to install ``what``; under CI
    (CI=true) fail instead, since CI installs every tool the clients need."""
    return _need


@pytest.fixture(scope="session")
def search_bundle() -> Path:
    """$S2S_SEARCH_BUNDLE, else the reference bundle exported/multi30k-en-de, which must have a
    search graph in its default variant."""
    path = Path(os.environ.get("S2S_SEARCH_BUNDLE") or ROOT / "exported" / "multi30k-en-de").resolve()
    variants = json.loads((path / "bundle.json").read_text(encoding="utf-8"))["graphs"]["variants"]
    variant = "fp32" if "fp32" in variants else next(iter(variants))
    if "search" not in variants[variant]:
        pytest.fail(f"{path}: variant {variant} has no search graph (add one with s2s export --model {path} --search)")
    return path


@pytest.fixture(scope="session")
def python_translator(search_bundle):
    """The Python runtime on the same bundle: the translations the clients must reproduce."""
    from s2s.runtime.translator import Translator

    return Translator.load(search_bundle)


@pytest.fixture(scope="session")
def flickr_lines() -> list[str]:
    """The first 50 English lines of Multi30k's test_2016_flickr."""
    source = MULTI30K / "test_2016_flickr.en.gz"
    if not source.is_file():
        pytest.skip(f"{source} not found (set S2S_DATA)")
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for line, _ in zip(handle, range(50))]
