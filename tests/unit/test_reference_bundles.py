"""The reference bundles under ``exported/``: each does what its model card says.

Each committed bundle must be int8-only and small, its card must name the recipe (which must
exist), the commands that reproduce it and the score that the runtime reproduces here on the
test set, and it must still give the translations recorded in ``tests/golden/NAME.json`` when it
was made (``tools/golden_bundle.py`` writes that file). int8 kernels may round differently on
another CPU, so the golden check allows one line in ten to differ and the score 0.3 points.
The README's serving example is run as written: ``s2s serve`` in a subprocess, the README's
``curl`` body, and the answer the README shows.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[2]
EXPORTED = ROOT / "exported"
GOLDEN = ROOT / "tests" / "golden"
MAX_BYTES = 25 * 10**6
NAMES = ["multi30k-en-de", "debian-descriptions"]


def golden(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def test_source_pairs(name: str) -> tuple[list[str], list[str]]:
    """The test split the card scores: text files, or two fields of a JSONL file."""
    spec = golden(name)["test"]
    if "jsonl" in spec:
        from s2s.data.corpus import read_jsonl

        return read_jsonl(DATA / spec["jsonl"], *spec["fields"])
    from s2s.textio import read_lines

    return read_lines(DATA / spec["source"]), read_lines(DATA / spec["ref"])


test_source_pairs.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module", params=NAMES)
def name(request) -> str:
    spec = golden(request.param)["test"]
    if not (DATA / (spec.get("jsonl") or spec["source"])).is_file():
        pytest.skip(f"test data not found under {DATA} (set S2S_DATA)")
    return request.param


@pytest.fixture(scope="module")
def translator(name):
    from s2s.runtime import Translator

    return Translator.load(EXPORTED / name, threads=2)


def test_the_bundle_is_int8_only_and_at_most_25_mb(name):
    from s2s.bundle import read_bundle

    bundle = read_bundle(EXPORTED / name)
    assert sorted(bundle.variants) == ["int8"]
    assert bundle.default_variant == "int8"
    files = [p for p in (EXPORTED / name).iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= MAX_BYTES
    assert not [p.name for p in files if p.suffix == ".onnx" and ".int8." not in p.name]


def test_the_model_card_names_recipe_commands_score_size_speed_and_licence(name):
    card = (EXPORTED / name / "README.md").read_text(encoding="utf-8")
    record = golden(name)
    recipe = record["recipe"]
    assert (ROOT / recipe).is_file(), recipe
    assert f"s2s train {recipe}" in card
    assert f"s2s export --model" in card and "--quantize int8 --no-fp32" in card
    assert f"{record['score']:.2f}" in card, f"the card does not quote {record['metric']} {record['score']:.2f}"
    assert re.search(r"\d+(\.\d+)? MB", card) and re.search(r"(sentences|summaries)/s", card)
    assert re.search(r"licen[cs]e", card, re.IGNORECASE)


def test_the_bundle_gives_its_golden_outputs(name, translator):
    record = golden(name)
    sources = [pair[0] for pair in record["examples"]]
    got = translator.translate(sources)
    same = sum(g == pair[1] for g, pair in zip(got, record["examples"]))
    assert same >= 0.9 * len(sources), list(zip(got, (p[1] for p in record["examples"])))


def test_the_test_set_score_is_the_cards(name, translator):
    from s2s.evaluation.metrics import score

    record = golden(name)
    src, refs = test_source_pairs(name)
    hyps = translator.translate(src)
    assert score(hyps, refs, [record["metric"]])[record["metric"]] == pytest.approx(record["score"], abs=0.3)


# --------------------------------------------------------------------------- the README's example
def readme_serving_example() -> tuple[str, dict, dict]:
    """The README's serve command, the JSON body of its curl call and the answer it shows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Serving over HTTP"):]
    block = section[section.index("```bash"):]
    block = block[:block.index("\n```", 7)]
    serve = re.search(r"^s2s serve (\S+)", block, re.MULTILINE).group(1)
    body = json.loads(re.search(r"-d '(\{.*?\})'", block, re.DOTALL).group(1))
    answer = json.loads(re.search(r"^# (\{\"model\".*\})$", block, re.MULTILINE).group(1))
    return serve, body, answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_readme_serving_example_answers_what_it_shows():
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    bundle, body, answer = readme_serving_example()
    assert bundle == f"exported/{NAMES[0]}"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "s2s", "serve", bundle, "--port", str(port), "--threads", "2"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the server did not answer /health within 60 s"
            time.sleep(0.2)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/translate", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            got = json.loads(response.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert got["model"] == answer["model"]
    assert [t["text"] for t in got["translations"]] == [t["text"] for t in answer["translations"]]
    assert [t["score"] for t in got["translations"]] == pytest.approx([t["score"] for t in answer["translations"]],
                                                                       abs=0.01)
