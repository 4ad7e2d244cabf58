"""Throughput and latency of ``s2s serve`` on loopback, against the runtime it serves.

    python tools/bench_serve.py exported/multi30k-en-de --json bench-results/serve.json
    python tools/bench_serve.py BUNDLE --seconds 10 --clients 1,8,32 --beam 5 --threads 2
    python tools/bench_serve.py BUNDLE --soak 600          # 32 clients, good and bad requests

Starts ``s2s serve BUNDLE`` itself as a subprocess on a free loopback port, once with dynamic
batching and once with ``--no-batching``. For each ``--clients`` count, that many client threads
(one keep-alive ``http.client`` connection each) send single sentences of ``--source`` (default
Multi30k's test_2016_flickr.en.gz), one request after another, for ``--seconds``. Each row gives
requests/s, sentences/s, target tokens/s (the returned text re-tokenized on the client with the
bundle's target sentencepiece model, after the timed run), p50/p95/p99 latency and errors.

Before the servers start it times the runtime itself, in this process, with the same bundle,
beam and threads: offline throughput (``Translator.translate(lines, batch_size=32)`` over at most
``--offline-lines`` lines or ``--seconds``) and single-sentence latency (one sentence a call, p50
over at most 200 sentences or ``--seconds``). It prints the ratios the project's goals name:

- batching on / off, sentences/s at the largest client count (goal >= 3)
- served sentences/s at the largest client count / offline batch-32 sentences/s (goal >= 0.8)
- one client's p50 latency / direct p50 (goal <= 1.3)

``--soak SECONDS`` runs only a soak instead: the largest client count sends a mix of good requests
and bad ones (malformed JSON, wrong types, an oversized text, an unknown field, a beam above the
server's limit) against the batching server. It reports failures among the good requests (must
be 0), whether every bad one got a 4xx, and the server's resident memory (VmRSS) after a warm-up
(the first 10% of the time) and at the end; it exits 1 if a good request failed or a bad one got
no 4xx. Loopback only; every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data")
GOALS = {"batching_speedup": (">=", 3.0), "served_vs_offline": (">=", 0.8), "latency_vs_direct": ("<=", 1.3)}


def read_source(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


# --------------------------------------------------------------------------- the runtime alone
def time_runtime(bundle: str, lines: list[str], beam: int, threads: int, seconds: float,
                 limit: int, search: str = "python", tune_allocator: bool = True) -> tuple[dict, dict]:
    """Offline batch-32 throughput and single-sentence p50 latency of the runtime in this process, on
    the bundle's default variant (the one `s2s serve` loads), with the allocator as the servers
    have it."""
    from s2s.runtime import Translator

    translator = Translator.load(bundle, None, providers=None, threads=threads, tune_allocator=tune_allocator,
                                 search=search)
    translator.translate(lines[:32], beam=beam, batch_size=32)  # warm-up
    done, tokens, start = 0, 0, time.perf_counter()
    while done < limit and time.perf_counter() - start < seconds:
        chunk = lines[done % len(lines):][:32]
        hyps = translator.hypotheses(chunk, beam=beam, batch_size=32)
        done, tokens = done + len(chunk), tokens + sum(len(h[0].tokens) for h in hyps)
    elapsed = time.perf_counter() - start
    offline = {"sentences": done, "seconds": elapsed, "sentences_per_s": done / elapsed,
               "target_tokens_per_s": tokens / elapsed}
    latencies, start = [], time.perf_counter()
    for line in lines[:200]:
        if latencies and time.perf_counter() - start > seconds:
            break
        t = time.perf_counter()
        translator.translate([line], beam=beam, batch_size=1)
        latencies.append((time.perf_counter() - t) * 1000)
    direct = {"sentences": len(latencies), "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95)}
    return offline, direct


# --------------------------------------------------------------------------- the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``s2s serve`` in a subprocess on a free loopback port; stopped with SIGTERM."""

    def __init__(self, bundle: str, threads: int, batching: bool, extra: list[str] = ()):
        self.port = free_port()
        command = [sys.executable, "-m", "s2s", "serve", bundle, "--host", "127.0.0.1", "--port", str(self.port),
                   "--threads", str(threads), "--log-level", "warning", *extra]
        if not batching:
            command.append("--no-batching")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 120
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"s2s serve did not start (exit code {self.process.poll()})")
            time.sleep(0.1)

    def healthy(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def rss_kib(self) -> int:
        """The server's resident memory (VmRSS), KiB; 0 where /proc has no such field."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    connection.request("POST", "/v1/translate", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


def client_loop(port: int, next_body, until: float, record) -> None:
    """One client: requests back to back until ``until``; ``record(kind, status, ms, payload)``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.perf_counter() < until:
        kind, body = next_body()
        start = time.perf_counter()
        try:
            status, payload = post(connection, body)
        except (OSError, http.client.HTTPException):
            status, payload = 0, b""
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        record(kind, status, (time.perf_counter() - start) * 1000, payload)
    connection.close()


def run_clients(port: int, clients: int, seconds: float, next_body, record) -> float:
    until = time.perf_counter() + seconds
    threads = [threading.Thread(target=client_loop, args=(port, next_body, until, record)) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def sentences(lines: list[str], beam: int):
    """A thread-safe source of single-sentence request bodies, cycling through ``lines``."""
    lock, position = threading.Lock(), [0]

    def next_body() -> tuple[str, bytes]:
        with lock:
            line = lines[position[0] % len(lines)]
            position[0] += 1
        return "good", json.dumps({"text": line, "beam": beam}).encode()
    return next_body


def load_row(port: int, clients: int, seconds: float, lines: list[str], beam: int, target_vocab) -> dict:
    lock, latencies, texts, errors = threading.Lock(), [], [], [0]

    def record(kind, status, ms, payload):
        with lock:
            if status != 200:
                errors[0] += 1
                return
            latencies.append(ms)
            texts.append(json.loads(payload)["translations"][0]["text"])

    elapsed = run_clients(port, clients, seconds, sentences(lines, beam), record)
    tokens = sum(len(ids) for ids in target_vocab.encode(texts, out_type=int)) if texts else 0
    return {"clients": clients, "requests": len(latencies) + errors[0], "seconds": elapsed,
            "requests_per_s": len(latencies) / elapsed, "sentences_per_s": len(texts) / elapsed,
            "target_tokens_per_s": tokens / elapsed, "p50_ms": percentile(latencies, 50),
            "p95_ms": percentile(latencies, 95), "p99_ms": percentile(latencies, 99), "errors": errors[0]}


# --------------------------------------------------------------------------- the soak
BAD_BODIES = {
    "malformed_json": b'{"text": "A man rides a bike.",',
    "wrong_type": b'{"text": ["A dog.", 7], "beam": "five"}',
    "oversized_text": json.dumps({"text": "word " * 1000}).encode(),  # 5000 characters: above --max-chars 4000
    "unknown_field": b'{"text": "A dog.", "colour": "red"}',
    "beam_too_large": json.dumps({"text": "A dog.", "beam": 17}).encode(),  # --max-beam 16
}


def server_flags(args) -> list[str]:
    """The flags both servers (and the soak's) get from this tool's own."""
    allocator = "--tune-allocator" if args.tune_allocator else "--no-tune-allocator"
    return ["--search", args.search, allocator, *args.serve_args]


def soak(args, lines: list[str]) -> dict:
    server = Server(args.bundle, args.threads, True, [*server_flags(args), "--max-beam", "16", "--max-chars", "4000"])
    good, bad, rng_lock, rng = sentences(lines, args.beam), list(BAD_BODIES.items()), threading.Lock(), random.Random(0)
    counts = {"good": 0, "good_failed": 0, "bad": 0, "bad_not_4xx": 0}
    lock, failures = threading.Lock(), []

    def next_body():
        with rng_lock:
            pick = rng.random()
        return good() if pick < 0.7 else bad[int(pick * 1000) % len(bad)]

    def record(kind, status, ms, payload):
        with lock:
            counts[kind if kind == "good" else "bad"] += 1
            if kind == "good" and status != 200:
                counts["good_failed"] += 1
                failures.append(status)
            elif kind != "good" and not 400 <= status < 500:
                counts["bad_not_4xx"] += 1
                failures.append(f"{kind}: {status}")

    clients = max(args.clients)
    try:
        warm = run_clients(server.port, clients, args.soak * 0.1, next_body, record)
        rss_warm = server.rss_kib()
        rest = run_clients(server.port, clients, args.soak * 0.9, next_body, record)
        rss_end = server.rss_kib()
    finally:
        code = server.stop()
    return {"clients": clients, "seconds": warm + rest, **counts, "every_bad_got_4xx": counts["bad_not_4xx"] == 0,
            "rss_warm_kib": rss_warm, "rss_end_kib": rss_end, "rss_ratio": rss_end / rss_warm if rss_warm else None,
            "server_exit_code": code, "failures": failures[:20]}


# --------------------------------------------------------------------------- report
def ratios(rows: list[dict], offline: dict, direct: dict) -> dict:
    top = max(r["clients"] for r in rows)
    on = next(r for r in rows if r["batching"] and r["clients"] == top)
    off = next(r for r in rows if not r["batching"] and r["clients"] == top)
    # the latency goal is one client's: without a 1-client row there is nothing to compare
    alone = next((r for r in rows if r["batching"] and r["clients"] == 1), None)
    return {"batching_speedup": on["sentences_per_s"] / off["sentences_per_s"] if off["sentences_per_s"] else None,
            "served_vs_offline": on["sentences_per_s"] / offline["sentences_per_s"],
            "latency_vs_direct": alone["p50_ms"] / direct["p50_ms"] if alone and direct["p50_ms"] else None}


def print_table(rows: list[dict], offline: dict, direct: dict, found: dict) -> None:
    print(f"{'batching':<9}{'clients':>8}{'req/s':>9}{'sent/s':>9}{'tok/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'errors':>8}")
    for r in rows:
        print(f"{'on' if r['batching'] else 'off':<9}{r['clients']:>8}{r['requests_per_s']:>9.1f}"
              f"{r['sentences_per_s']:>9.1f}{r['target_tokens_per_s']:>10.1f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
              f"{r['p99_ms']:>9.1f}{r['errors']:>8}")
    print(f"runtime offline, batch 32: {offline['sentences_per_s']:.1f} sent/s, "
          f"{offline['target_tokens_per_s']:.1f} tok/s; direct single-sentence p50 {direct['p50_ms']:.1f} ms")
    for name, value in found.items():
        sign, goal = GOALS[name]
        met = value is not None and (value >= goal if sign == ">=" else value <= goal)
        shown = "n/a" if value is None else f"{value:.2f}"
        verdict = "not measured" if value is None else "met" if met else "NOT met"
        print(f"{name:<18} {shown:>6}  (goal {sign} {goal}: {verdict})")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="an exported bundle folder")
    parser.add_argument("--source", default=str(DATA / "multi30k" / "test_2016_flickr.en.gz"),
                        help="sentences to send, one a line (.gz read as gzip)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per client count (and per offline part)")
    parser.add_argument("--clients", default="1,8,32", help="concurrent client counts, comma-separated")
    parser.add_argument("--beam", type=int, help="beam size (default: the bundle's)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads, server and offline alike")
    parser.add_argument("--offline-lines", type=int, default=1000, help="at most this many lines for the offline run")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="run the soak test (only) for SECONDS")
    parser.add_argument("--search", choices=["python", "auto"], default="python",
                        help="s2s serve --search, and the search the offline runtime runs (default: python)")
    parser.add_argument("--tune-allocator", action=argparse.BooleanOptionalAction, default=True,
                        help="s2s serve --[no-]tune-allocator, and the same for the offline runtime (default: on, "
                             "as s2s serve)")
    parser.add_argument("--serve-arg", dest="serve_args", action="append", default=[], metavar="ARG",
                        help="one more flag for both servers, e.g. --serve-arg=--max-wait-ms=10 (repeatable)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    args.clients = sorted({int(c) for c in args.clients.split(",")})
    return args


def main() -> int:
    args = parse_args()
    from s2s.bundle import read_bundle

    bundle = read_bundle(args.bundle)
    args.beam = args.beam or bundle.decode.beam
    lines = read_source(args.source)
    meta = {"bundle": args.bundle, "source": args.source, "beam": args.beam, "threads": args.threads,
            "search": args.search, "tune_allocator": args.tune_allocator, "seconds": args.seconds, "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    if args.soak:
        report = {"meta": meta, "soak": soak(args, lines)}
        print(json.dumps(report["soak"], indent=2))
        ok = report["soak"]["good_failed"] == 0 and report["soak"]["every_bad_got_4xx"]
    else:
        report = throughput(args, bundle, lines, meta)
        ok = True
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


def batch_totals(port: int) -> tuple[float, float]:
    """The server's ``s2s_batch_sentences`` histogram so far: (sentences searched, searches)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    totals = {"sum": 0.0, "count": 0.0}
    for line in connection.getresponse().read().decode().splitlines():
        for part in totals:
            if line.startswith(f"s2s_batch_sentences_{part}"):
                totals[part] += float(line.rsplit(" ", 1)[1])
    return totals["sum"], totals["count"]


def throughput(args, bundle, lines: list[str], meta: dict) -> dict:
    import sentencepiece as spm

    target_vocab = spm.SentencePieceProcessor(model_file=str(bundle.vocab_files()[1]))
    offline, direct = time_runtime(args.bundle, lines, args.beam, args.threads, args.seconds, args.offline_lines,
                                   args.search, args.tune_allocator)
    rows = []
    for batching in (True, False):
        server = Server(args.bundle, args.threads, batching, server_flags(args))
        try:
            load_row(server.port, 1, min(args.seconds, 1.0) / 4, lines, args.beam, target_vocab)  # warm-up
            for clients in args.clients:
                before = batch_totals(server.port)
                row = load_row(server.port, clients, args.seconds, lines, args.beam, target_vocab)
                (sentences, searches), (done, started) = batch_totals(server.port), before
                row["mean_batch"] = (sentences - done) / (searches - started) if searches > started else None
                rows.append({"batching": batching, **row})
                print(f"batching {'on' if batching else 'off'}, {clients} clients: "
                      f"{row['sentences_per_s']:.1f} sent/s, {row['mean_batch'] or 0:.1f} sentences per search",
                      flush=True)
        finally:
            server.stop()
    found = ratios(rows, offline, direct)
    print_table(rows, offline, direct, found)
    return {"meta": meta, "rows": rows, "offline": offline, "direct": direct, "ratios": found,
            "goals": {k: f"{s} {g}" for k, (s, g) in GOALS.items()}}


if __name__ == "__main__":
    sys.exit(main())
