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


def test_page_translates_as_the_python_runtime(browser_page, page_url, python_translator):
    page, errors = browser_page
    page.goto(page_url)
    status = page.locator("#status")
    page.wait_for_function("!document.getElementById('status').textContent.startsWith('Loading')", timeout=WAIT_MS)
    assert status.text_content().startswith("Ready"), (status.text_content(), errors)
    page.fill("#source", SENTENCE)
    page.click("#translate")
    page.wait_for_function("/^(Done|Error)/.test(document.getElementById('status').textContent)", timeout=WAIT_MS)
    assert status.text_content().startswith("Done"), (status.text_content(), errors)
    if os.environ.get("S2S_SCREENSHOT"):
        page.screenshot(path=os.environ["S2S_SCREENSHOT"])
    assert page.text_content("#translation") == python_translator.translate([SENTENCE])[0]
    assert not errors, errors
