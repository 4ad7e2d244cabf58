"""Prometheus metrics of one app, in a registry of its own (two apps in one process, as in the
tests, never share or clash over the global registry)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """``requests`` {model, status}; ``latency`` seconds per translate request; ``batch`` sentences
    per batched search {model}; ``queue`` sentences waiting {model}; source and target tokens {model}
    (target: the best hypothesis of each sentence, EOS not counted)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("s2s_requests", "translate requests by model and HTTP status",
                                ["model", "status"], registry=r)
        self.latency = Histogram("s2s_request_seconds", "translate request latency, seconds", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("s2s_batch_sentences", "sentences per batched search", ["model"],
                               buckets=BATCH_BUCKETS, registry=r)
        self.queue = Gauge("s2s_queue_sentences", "sentences waiting for a search", ["model"], registry=r)
        self.source_tokens = Counter("s2s_source_tokens", "source subword tokens admitted", ["model"], registry=r)
        self.target_tokens = Counter("s2s_target_tokens", "target subword tokens of the best hypotheses",
                                     ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
