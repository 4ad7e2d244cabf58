"""``s2s serve``: the HTTP API over a tiny exported bundle, served by uvicorn on a loopback port.

The server's answers must be the runtime's own (batching changes no sentence's output), every
bad request gets its status and the one JSON error shape, and one failing request, a flood or a
SIGTERM never costs the other requests their answers.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import Mock

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
uvicorn = pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Path:
    """The session's tiny bundle (tests/conftest.py): 20 training steps of a hidden-8/16 LSTM, exported."""
    return tiny_bundle


@pytest.fixture(scope="module")
def lines(multi30k_slice) -> list[str]:
    return multi30k_slice["test.en"].read_text(encoding="utf-8").splitlines()[:12]


def load(bundle: Path):
    from s2s.runtime import Translator

    return Translator.load(bundle, "fp32", providers=None, threads=1, tune_allocator=False)


@contextmanager
def serving(translators: dict, **limits):
    """An httpx client of a uvicorn server running the app in a background thread."""
    from s2s.serve import Limits, create_app

    app = create_app(translators, Limits(**limits))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def translator(bundle):
    return load(bundle)


@pytest.fixture(scope="module")
def client(translator):
    with serving({"tiny": translator}, max_texts=8, max_chars=400, max_tokens=120, max_beam=6) as c:
        yield c


def translate(client, **body):
    return client.post("/v1/translate", json=body)


def metric(client, name: str, **labels) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.startswith(name) and (sample == name or sample.startswith(name + "{")):
            found = ",".join(sorted(re.findall(r'(\w+="[^"]*")', sample)))
            if found == want:
                return float(value)
    return 0.0


def slowed(translator, seconds: float):
    """``translator`` with each search ``seconds`` slower."""
    search = translator.hypotheses

    def hypotheses(lines, **options):
        time.sleep(seconds)
        return search(lines, **options)

    translator.hypotheses = hypotheses
    return translator


# --------------------------------------------------------------------------- answers
@pytest.mark.parametrize("options", [{"beam": 1}, {"beam": 3}, {"beam": 3, "n_best": 2}])
def test_translations_are_the_runtimes(client, translator, lines, options):
    texts = lines[:5] + ["", "   "] + lines[5:6]
    response = translate(client, text=texts, **options)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny"
    got = body["translations"]
    want = translator.hypotheses(texts, **options)
    assert [t["text"] for t in got] == [translator.text(h[0]) for h in want]
    assert [t["score"] for t in got] == pytest.approx([h[0].score for h in want], abs=1e-6)
    assert got[5] == got[6] == ({"text": "", "score": 0.0, "n_best": [{"text": "", "score": 0.0}]}
                                if options.get("n_best", 1) > 1 else {"text": "", "score": 0.0})
    if options.get("n_best", 1) > 1:
        assert [[c["text"] for c in t["n_best"]] for t in got[:5]] == [[translator.text(h) for h in hyps]
                                                                       for hyps in want[:5]]
    else:
        assert all(set(t) == {"text", "score"} for t in got)


def test_a_single_string_and_the_models_default_beam(client, translator, lines):
    response = translate(client, text=lines[0])
    assert response.status_code == 200
    assert response.json()["translations"] == [{"text": translator.translate([lines[0]])[0], "score": pytest.approx(
        translator.hypotheses([lines[0]])[0][0].score, abs=1e-6)}]


def test_attention_and_alignment_when_asked(client, translator, lines):
    """Needs ``Translator.attention_of`` / ``alignment_of`` in the shared translator."""
    response = translate(client, text=[lines[0], ""], beam=2, attention=True, alignment=True)
    assert response.status_code == 200, response.text
    first, empty = response.json()["translations"]
    attention = first["attention"]
    assert len(attention["weights"]) == len(attention["target"]) > 0
    assert all(len(row) == len(attention["source"]) for row in attention["weights"])
    assert re.fullmatch(r"(\d+-\d+( \d+-\d+)*)?", first["alignment"])
    assert empty == {"text": "", "score": 0.0, "attention": {"source": [], "target": [], "weights": []},
                     "alignment": ""}
    assert "attention" not in translate(client, text=lines[0], alignment=True).json()["translations"][0]


def test_a_server_with_the_search_graph_answers_as_the_python_search(bundle, translator, lines, tmp_path):
    """``s2s serve --search auto``: a bundle with search.onnx decodes each batch in one run of
    it, with the Python search's results; requests for attention still get it (Python search)."""
    import shutil

    from s2s.export.bundle import add_search_graphs
    from s2s.runtime import Translator

    with_graph = tmp_path / "with-graph"
    shutil.copytree(bundle, with_graph)
    add_search_graphs(with_graph)
    graph = Translator.load(with_graph, "fp32", providers=None, threads=1, search="auto")
    graph.search_graph = counted = Mock(wraps=graph.search_graph)  # the graph session, its runs counted
    with serving({"graph": graph, "python": translator}) as client:
        searches = {m["name"]: m["search"] for m in client.get("/v1/models").json()["models"]}
        assert searches == {"graph": "graph", "python": "python"}
        for beam in (1, 3):
            body = {"text": lines[:6], "beam": beam}
            got = [t["text"] for t in translate(client, model="graph", **body).json()["translations"]]
            assert got == [t["text"] for t in translate(client, model="python", **body).json()["translations"]]
        assert counted.run.call_count == 2  # one run of search.onnx per batch
        first = translate(client, model="graph", text=lines[0], beam=2, attention=True).json()["translations"][0]
        assert len(first["attention"]["weights"]) == len(first["attention"]["target"]) > 0
        assert counted.run.call_count == 2  # attention came from the Python search


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(translator, lines):
    expected = translator.translate(lines, beam=2)
    with serving({"tiny": translator}, max_wait_ms=200, max_batch=16) as client:
        def ask(i):
            texts = [lines[i % len(lines)], lines[(i + 1) % len(lines)]] if i % 2 else lines[i % len(lines)]
            return i, translate(client, text=texts, beam=2)

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(16)))
        for i, response in answers:
            assert response.status_code == 200, response.text
            got = [t["text"] for t in response.json()["translations"]]
            want = [expected[i % len(lines)], expected[(i + 1) % len(lines)]] if i % 2 else [expected[i % len(lines)]]
            assert got == want, i
        searches = metric(client, "s2s_batch_sentences_count", model="tiny")
        assert 1 <= searches < 16  # 24 sentences in fewer searches than requests
        assert metric(client, "s2s_batch_sentences_bucket", model="tiny", le="1.0") < searches
        assert metric(client, "s2s_requests_total", model="tiny", status="200") == 16
        assert metric(client, "s2s_source_tokens_total", model="tiny") > 0
        assert metric(client, "s2s_target_tokens_total", model="tiny") > 0
        assert metric(client, "s2s_queue_sentences", model="tiny") == 0


def test_a_lone_request_does_not_wait_for_company(translator, lines):
    with serving({"tiny": translator}, max_wait_ms=3000) as client:
        for line in lines[:2]:  # one client, one request after the other
            start = time.monotonic()
            assert translate(client, text=line, beam=1).status_code == 200
            assert time.monotonic() - start < 2.5


def test_without_batching_each_request_is_searched_alone(translator, lines):
    with serving({"tiny": translator}, max_wait_ms=200, batching=False) as client:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda i: translate(client, text=[lines[i], lines[i + 1]], beam=2), range(6)))
        assert [r.status_code for r in answers] == [200] * 6
        assert metric(client, "s2s_batch_sentences_count", model="tiny") == 6
        assert metric(client, "s2s_batch_sentences_sum", model="tiny") == 12


class SlowSearch:
    """A stand-in translator whose searches take ``seconds``; it records each search's size, start
    and end (monotonic seconds)."""

    def __init__(self, seconds: float):
        self.seconds, self.sizes, self.starts, self.ends = seconds, [], [], []

    def hypotheses(self, lines, **options):
        from types import SimpleNamespace

        self.sizes.append(len(lines))
        self.starts.append(time.monotonic())
        time.sleep(self.seconds)
        self.ends.append(time.monotonic())
        return [[SimpleNamespace(tokens=[7])] for _ in lines]


@contextmanager
def running_batcher(translator, **limits):
    """A started :class:`~s2s.serve.batching.Batcher` over ``translator``, with a greedy key and a
    renderer that returns the line itself; stopped on exit."""
    from s2s.serve import Limits
    from s2s.serve.batching import Batcher, DecodeKey
    from s2s.serve.metrics import Metrics

    batcher = Batcher("m", translator, Limits(**limits), Metrics())
    batcher.start()
    try:
        yield batcher, DecodeKey(beam=1, n_best=1, max_len=0), (lambda line, hyps: line)
    finally:
        batcher.stop(timeout=5)


def test_requests_that_came_during_a_search_wait_for_the_answered_clients():
    """Under steady load the clients answered by one search send again a few milliseconds after it
    ends; the requests that queued during that search must wait for them (``max_wait_ms`` from the
    search's end), not go alone because their own arrival is long past: two half batches merge."""
    slow = SlowSearch(0.4)
    with running_batcher(slow, max_wait_ms=150, max_batch=4) as (batcher, key, render):
        first = [batcher.submit([f"a{i}"], [1], key, render) for i in range(2)]
        time.sleep(0.25)  # the first search starts after 150 ms and lasts 400
        during = batcher.submit(["b"], [1], key, render)  # queued during the first search

        def client_again():  # an answered client's next request, 20 ms after its answer
            first[0].future.result(timeout=5)
            time.sleep(0.02)
            return batcher.submit(["c"], [1], key, render)

        with ThreadPoolExecutor(1) as pool:
            again = pool.submit(client_again).result(timeout=5)
        assert during.future.result(timeout=5) == ["b"] and again.future.result(timeout=5) == ["c"]
        assert [f.future.result(timeout=5) for f in first] == [["a0"], ["a1"]]
        assert slow.sizes == [2, 2]  # counted from its arrival, "b" would have been searched alone


def test_the_wait_ends_when_the_answered_clients_are_back():
    """After a search, the next one waits for the clients it answered (at most ``max_wait_ms``),
    but no longer than it takes them to send again: once as many requests arrived as the search
    answered, it starts, far before the deadline and without a full batch."""
    slow = SlowSearch(0.3)
    with running_batcher(slow, max_wait_ms=1500, max_batch=16) as (batcher, key, render):
        first = [batcher.submit([f"a{i}"], [1], key, render) for i in range(2)]
        deadline = time.monotonic() + 5
        while not slow.starts and time.monotonic() < deadline:  # the first search waits its 1.5 s
            time.sleep(0.01)
        during = batcher.submit(["b"], [1], key, render)  # queued during the first search

        def client_again(job, i):  # each answered client sends again 20 ms after its answer
            job.future.result(timeout=5)
            time.sleep(0.02)
            return batcher.submit([f"c{i}"], [1], key, render)

        with ThreadPoolExecutor(2) as pool:
            again = [f.result(timeout=5) for f in [pool.submit(client_again, job, i) for i, job in enumerate(first)]]
        assert during.future.result(timeout=5) == ["b"]
        assert [job.future.result(timeout=5) for job in again] == [["c0"], ["c1"]]
        assert slow.sizes == [2, 3]
        assert slow.starts[1] - slow.ends[0] < 0.5  # well before the 1.5 s wait from the first search's end


# --------------------------------------------------------------------------- bad requests
LONG = "word " * 100  # 500 characters, more than the client fixture's 400


@pytest.mark.parametrize("body, status, field", [
    (b'{"text": "a man",', 400, None),
    (b'{"text": ["a", 3]}', 422, "text[1]"),
    (b'{"text": 5}', 422, "text"),
    (b'{"beam": 2}', 422, "text"),
    (b'{"text": []}', 422, "text"),
    (b'{"text": "a", "colour": "red"}', 422, "colour"),
    (b'{"text": "a", "beam": "3"}', 422, "beam"),
    (b'{"text": "a", "beam": 0}', 422, "beam"),
    (b'{"text": "a", "beam": 7}', 422, "beam"),
    (b'{"text": "a", "beam": 2, "n_best": 3}', 422, "n_best"),
    (b'{"text": "a", "max_len": 0}', 422, "max_len"),
    (b'{"text": "a", "max_len": 513}', 422, "max_len"),
    (b'{"text": "a", "attention": 1}', 422, "attention"),
    (b'[{"text": "a"}]', 422, None),
    (json.dumps({"text": ["a"] * 9}).encode(), 413, "text"),
    (json.dumps({"text": ["a", LONG]}).encode(), 413, "text[1]"),
    (json.dumps({"text": LONG}).encode(), 413, "text"),
    (json.dumps({"text": ["", " y" * 180]}).encode(), 413, "text[1]"),  # 180+ tokens in 360 characters
    (b'{"text": "a", "model": "nope"}', 404, "model"),
])
def test_bad_requests_get_their_status_and_a_json_error(client, body, status, field):
    response = client.post("/v1/translate", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"]
    assert error.get("field") == field


def test_other_errors_share_the_json_shape(client):
    plain = client.post("/v1/translate", content=b"text=a", headers={"Content-Type": "text/plain"})
    for response, status in ((client.get("/nope"), 404), (client.get("/v1/translate"), 405), (plain, 415)):
        assert response.status_code == status
        assert response.json()["error"]["status"] == status


def test_a_flood_beyond_the_queue_gets_503_with_retry_after_then_service_resumes(bundle, lines):
    with serving({"tiny": slowed(load(bundle), 0.3)}, max_queue=2, max_wait_ms=0) as client:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: translate(client, text=lines[i % 4], beam=1), range(12)))
        statuses = sorted(r.status_code for r in answers)
        assert set(statuses) == {200, 503} and statuses.count(503) >= 3, statuses
        for r in answers:
            if r.status_code == 503:
                assert int(r.headers["Retry-After"]) >= 1 and r.json()["error"]["status"] == 503
        assert translate(client, text=lines[:2], beam=1).status_code == 200


def test_a_failing_search_fails_only_its_own_request(bundle, lines):
    broken = load(bundle)
    search = broken.hypotheses

    def hypotheses(texts, **options):
        if any("BOOM" in t for t in texts):
            raise RuntimeError("this sentence breaks the model")
        if texts == ["WAIT"]:  # holds the worker while the four requests below queue up
            time.sleep(0.5)
        return search(texts, **options)

    broken.hypotheses = hypotheses
    expected = broken.translate(lines[:3], beam=2)
    with serving({"tiny": broken}, max_wait_ms=1000, max_batch=4) as client:
        bodies = [lines[0], lines[1], "BOOM goes the model", lines[2]]
        with ThreadPoolExecutor(5) as pool:
            held = pool.submit(translate, client, text="WAIT", beam=2)
            time.sleep(0.1)
            answers = list(pool.map(lambda text: translate(client, text=text, beam=2), bodies))
        assert held.result().status_code == 200
        assert [r.status_code for r in answers] == [200, 200, 500, 200]
        assert [answers[i].json()["translations"][0]["text"] for i in (0, 1, 3)] == expected
        error = answers[2].json()["error"]
        assert error["status"] == 500 and "breaks the model" in error["message"]
        assert metric(client, "s2s_batch_sentences_bucket", model="tiny", le="2.0") == 5  # WAIT, then 4 alone
        assert metric(client, "s2s_batch_sentences_count", model="tiny") == 6  # and the batch of 4
        assert translate(client, text=lines[0], beam=2).status_code == 200


def test_a_request_past_the_timeout_gets_504(bundle, lines):
    with serving({"tiny": slowed(load(bundle), 0.6)}, timeout=0.2) as client:
        response = translate(client, text=lines[0])
        assert response.status_code == 504
        assert response.json()["error"]["status"] == 504
        assert metric(client, "s2s_requests_total", model="tiny", status="504") == 1


# --------------------------------------------------------------------------- the other endpoints
def test_models_health_metrics_and_openapi(client, translator):
    assert client.get("/health").json() == {"status": "ok"}
    (model,) = client.get("/v1/models").json()["models"]
    assert model["name"] == "tiny" and model["variant"] == "fp32"
    assert model["decode"]["beam"] == translator.options.beam
    assert model["limits"]["max_beam"] == 6 and model["limits"]["max_n_best"] == 6
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "s2s_request_seconds_bucket" in metrics.text and "s2s_queue_sentences" in metrics.text
    schema = client.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert components["TranslateRequest"]["examples"] and components["TranslateResponse"]["examples"]
    assert components["TranslateRequest"]["additionalProperties"] is False
    assert {"413", "422", "503", "504"} <= set(schema["paths"]["/v1/translate"]["post"]["responses"])
    assert client.get("/docs").status_code == 200


def test_two_models_are_chosen_by_name(translator, lines):
    with serving({"a": translator, "b": translator}) as client:
        assert [m["name"] for m in client.get("/v1/models").json()["models"]] == ["a", "b"]
        for name in ("a", "b"):
            response = translate(client, text=lines[0], model=name, beam=1)
            assert response.status_code == 200 and response.json()["model"] == name
            assert metric(client, "s2s_requests_total", model=name, status="200") == 1
        missing = translate(client, text=lines[0])
        assert missing.status_code == 422 and missing.json()["error"]["field"] == "model"


def test_model_names_and_limits_are_checked():
    from s2s.errors import ConfigError
    from s2s.serve import Limits, parse_model_specs

    specs = parse_model_specs(["exported/en-de", "fr=/models/x"])
    assert [(s.name, str(s.path)) for s in specs] == [("en-de", "exported/en-de"), ("fr", "/models/x")]
    for bad in (["a=x", "a=y"], [], ["a b=x"]):
        with pytest.raises(ConfigError):
            parse_model_specs(bad)
    with pytest.raises(ConfigError, match="max_n_best"):
        Limits(max_beam=4, max_n_best=5)
    with pytest.raises(ConfigError, match="timeout"):
        Limits(timeout=0)


# --------------------------------------------------------------------------- the process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(bundle, lines):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "s2s", "serve", f"tiny={bundle}", "--port", str(port),
                                "--threads", "1", "--log-level", "warning"],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        # long sources (the tiny model's outputs run to the length limit): two searches of a second or so
        texts = [" ".join(lines[i % 12: i % 12 + 10]) for i in range(64)]
        done = {}

        def slow_request():
            done["response"] = httpx.post(f"{url}/v1/translate", json={"text": texts, "beam": 2}, timeout=60)
            done["at"] = time.monotonic()

        thread = threading.Thread(target=slow_request)
        thread.start()
        with httpx.Client(base_url=url) as client:  # the first of its two searches (32 texts each) has begun
            while not metric(client, "s2s_batch_sentences_count", model="tiny") and thread.is_alive():
                time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        thread.join(60)
        assert process.wait(30) == 0, process.stderr.read()
        assert done["response"].status_code == 200
        assert len(done["response"].json()["translations"]) == 64
        assert done["at"] > signalled  # the request was still in flight when the signal came
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_bench_serve_runs_and_writes_its_rows(bundle, multi30k_slice, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_serve.py"), str(bundle), "--seconds", "1",
                           "--clients", "1,2", "--offline-lines", "16", "--source", str(multi30k_slice["test.en"]),
                           "--threads", "1", "--search", "auto", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert {(r["batching"], r["clients"]) for r in rows} == {(b, c) for b in (True, False) for c in (1, 2)}
    for row in rows:
        assert row["errors"] == 0 and row["requests"] > 0 and row["sentences_per_s"] > 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert report["offline"]["sentences_per_s"] > 0 and report["direct"]["p50_ms"] > 0
    assert set(report["ratios"]) == {"batching_speedup", "served_vs_offline", "latency_vs_direct"}
    assert report["meta"]["search"] == "auto" and report["meta"]["tune_allocator"] is True


@pytest.mark.parametrize("flags, tuned", [([], True), (["--no-tune-allocator"], False), (["--tune-allocator"], True)])
def test_s2s_serve_tunes_the_allocator_of_its_own_process_unless_told_not(monkeypatch, flags, tuned):
    """``s2s serve`` owns its process, as ``s2s translate`` does: it keeps freed pages (the batched
    search's reordered caches) unless ``--no-tune-allocator``; ``serve()`` called from a host app
    does not unless asked."""
    import inspect

    from s2s.cli.main import build_parser
    from s2s.serve import server

    assert inspect.signature(server.serve).parameters["tune_allocator"].default is False
    seen = {}
    monkeypatch.setattr(server, "serve", lambda *a, **k: seen.update(args=a) or 0)
    args = build_parser().parse_args(["serve", "some/bundle", *flags])
    assert args.run(args) == 0
    assert seen["args"][6] is tuned


def test_bench_serve_ratios_take_the_latency_goal_from_one_client_only():
    """The latency goal is one client's p50 against the direct p50: a run without a 1-client row
    reports it as not measured instead of comparing another client count's latency."""
    from tools.bench_serve import ratios

    def row(batching, clients, sent, p50):
        return {"batching": batching, "clients": clients, "sentences_per_s": sent, "p50_ms": p50}

    offline, direct = {"sentences_per_s": 200.0}, {"p50_ms": 10.0}
    rows = [row(True, 32, 180.0, 180.0), row(False, 32, 60.0, 400.0)]
    assert ratios(rows, offline, direct) == {"batching_speedup": pytest.approx(3.0),
                                             "served_vs_offline": pytest.approx(0.9), "latency_vs_direct": None}
    rows += [row(True, 1, 80.0, 12.0), row(False, 1, 80.0, 11.0)]
    assert ratios(rows, offline, direct)["latency_vs_direct"] == pytest.approx(1.2)


def test_the_standard_library_client_translates_through_the_server(translator, lines):
    """exported/clients/http_client.py: stdin lines out as translations, in order, in requests
    of --batch lines; it is run where only the standard library is importable from it."""
    with serving({"tiny": translator}) as client:
        url = str(client.base_url).rstrip("/")
        done = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "exported" / "clients" / "http_client.py"),
                               "--url", url, "--batch", "5", "--beam", "2"],
                              input="\n".join(lines[:11] + [""]) + "\n", capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == translator.translate(lines[:11] + [""], beam=2)
        bad = subprocess.run([sys.executable, "-S", "-I", str(ROOT / "exported" / "clients" / "http_client.py"),
                              "--url", url, "--beam", "99"], input="A dog.\n", capture_output=True, text=True,
                             timeout=60)
        assert bad.returncode == 1 and "HTTP 422: beam: 99 is more than this server allows" in bad.stderr
