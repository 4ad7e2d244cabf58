"""exported/clients/web: the static page (onnxruntime-web, wasm) served from exported/ and driven
in headless Chromium translates as the Python runtime does. With S2S_SCREENSHOT=FILE it saves a
screenshot of the page after translating."""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT

EXPORTED = ROOT / "exported"
CLIENT = EXPORTED / "clients" / "web"
CHROMIUM = Path("/usr/bin/chromium")
SENTENCE = "A little girl in a pink dress is climbing the stairs of a wooden playground."
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 120_000


class Handler(SimpleHTTPRequestHandler):
    """exported/ as a static site; a bundle outside it is mounted at /mounted/NAME/."""

    bundle: Path | None = None

    def translate_path(self, path: str) -> str:
        mount = f"/mounted/{self.bundle.name}/" if self.bundle else None
        if mount and path.startswith(mount):
            return str(self.bundle / path.removeprefix(mount).split("?")[0].split("#")[0])
        return super().translate_path(path)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def page_url(search_bundle):
    """The page's URL on a static server of exported/ on a free loopback port."""
    outside = not search_bundle.is_relative_to(EXPORTED)
    handler = type("BundleHandler", (Handler,), {"bundle": search_bundle if outside else None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(EXPORTED)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    bundle = f"/mounted/{search_bundle.name}/" if outside else os.path.relpath(search_bundle, CLIENT) + "/"
    try:
        yield f"http://127.0.0.1:{server.server_port}/clients/web/?bundle={bundle}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def browser_page(need, tmp_path):
    need(CHROMIUM.is_file(), f"{CHROMIUM} (Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    need(sync_playwright is not None, "playwright (pip install -e '.[dev]')")
    need((CLIENT / "node_modules" / "onnxruntime-web" / "dist").is_dir()
         and (CLIENT / "node_modules" / "@sctg" / "sentencepiece-js").is_dir(),
         f"the npm packages of {CLIENT.relative_to(ROOT)}")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            yield page, errors
        finally:
            context.close()


def load_page(page, url, errors) -> None:
    page.goto(url)
    page.wait_for_function("!document.getElementById('status').textContent.startsWith('Loading')", timeout=WAIT_MS)
    status = page.text_content("#status")
    assert status.startswith("Ready"), (status, errors)


def translate_on_page(page, errors, text: str) -> str:
    page.fill("#source", text)
    page.click("#translate")
    page.wait_for_function("/^(Done|Error)/.test(document.getElementById('status').textContent)", timeout=WAIT_MS)
    status = page.text_content("#status")
    assert status.startswith("Done"), (status, errors)
    return page.text_content("#translation")


def test_page_translates_as_the_python_runtime(browser_page, page_url, python_translator):
    page, errors = browser_page
    load_page(page, page_url, errors)
    assert page.input_value("#beam") == str(python_translator.options.beam)  # bundle.json's decode
    got = translate_on_page(page, errors, SENTENCE)
    if os.environ.get("S2S_SCREENSHOT"):
        page.screenshot(path=os.environ["S2S_SCREENSHOT"])
    assert got == python_translator.translate([SENTENCE])[0]
    assert not errors, errors


def test_the_beam_set_on_the_page_is_the_one_searched(browser_page, page_url, python_translator):
    """The page feeds the search graph's settings itself (onnxruntime-web will not override a
    graph input's default): beam 1 gives the Python runtime's greedy translation, then the
    bundle's beam its beam search's again, in one page."""
    page, errors = browser_page
    load_page(page, page_url, errors)
    greedy, beam = python_translator.translate([SENTENCE], beam=1)[0], python_translator.translate([SENTENCE])[0]
    assert greedy != beam  # the sentence tells the two apart
    page.fill("#beam", "1")
    assert translate_on_page(page, errors, SENTENCE) == greedy
    page.fill("#beam", str(python_translator.options.beam))
    assert translate_on_page(page, errors, SENTENCE) == beam
    page.fill("#beam", "")  # a cleared field: the page says which setting is wrong
    page.click("#translate")
    page.wait_for_function("/^(Done|Error)/.test(document.getElementById('status').textContent)", timeout=WAIT_MS)
    assert page.text_content("#status") == 'Error: setting beam: expected a number, got ""'
    assert not errors, errors
