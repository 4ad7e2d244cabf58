"""The figures of a bundle's model card: score, size and speed of each variant, measured in one run.

    python tools/bench_bundle.py exported/multi30k-en-de \\
        --source ../shared/data/multi30k/test_2016_flickr.en.gz \\
        --ref ../shared/data/multi30k/test_2016_flickr.de.gz --metrics bleu,chrf --json OUT.json
    python tools/bench_bundle.py exported/debian-descriptions \\
        --data ../shared/data/debian-descriptions/test.jsonl.gz --fields text summary --metrics rouge

For each variant of the bundle (``--variants``, default all it holds) and the bundle's own
decoding settings (``bundle.json`` ``decode``: beam, length penalty, ...), with ``--threads``
onnxruntime threads (default 2):

- **score**: all source lines translated at ``--batch`` (default 32) and scored against the
  references with :func:`s2s.evaluation.metrics.score` (sacreBLEU or rouge-score, the same code
  as ``s2s evaluate``); the seconds this took give sentences/s and target tokens/s.
- **latency**: the first ``--latency-lines`` lines (default 100) translated one call each; the
  median (p50) and p95 milliseconds.
- **size**: the bytes of the files the variant loads (its two graphs, the sentencepiece models,
  ``bundle.json``), and of the whole folder.

Prints a table and writes the rows as JSON (``--json``). The translations of each variant can be
written with ``--output-dir`` (``VARIANT.txt``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.bundle import read_bundle  # noqa: E402
from s2s.data.corpus import read_jsonl  # noqa: E402
from s2s.errors import DataError  # noqa: E402
from s2s.evaluation.metrics import parse_metrics, score  # noqa: E402
from s2s.runtime import Translator  # noqa: E402
from s2s.textio import read_lines  # noqa: E402


def read_pairs(args) -> tuple[list[str], list[str]]:
    """Source and reference lines: two text files, or two fields of a JSONL file."""
    if args.data:
        return read_jsonl(Path(args.data), *args.fields)
    src, refs = read_lines(args.source), read_lines(args.ref)
    if len(src) != len(refs):
        raise DataError(f"{args.source} has {len(src)} lines, {args.ref} has {len(refs)}")
    return src, refs


def variant_bytes(bundle, variant: str) -> int:
    files = set(bundle.variants[variant].values()) | {p.name for p in bundle.vocab_files()} | {"bundle.json"}
    return sum(bundle.file(name).stat().st_size for name in files)


def measure(bundle, variant: str, src: list[str], refs: list[str], metrics: list[str], args) -> tuple[dict, list[str]]:
    translator = Translator(bundle, variant=variant, threads=args.threads)
    translator.translate(src[:8], batch_size=args.batch)  # warm-up: sessions allocate on first use
    start = time.perf_counter()
    hyps = [translator.text(h[0]) for h in translator.hypotheses(src, batch_size=args.batch)]
    seconds = time.perf_counter() - start
    target_tokens = sum(len(translator.tgt_vocab.encode(h)) for h in hyps)
    latencies = []
    for line in src[:args.latency_lines]:
        start = time.perf_counter()
        translator.translate([line])
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    scores = score(hyps, refs, metrics)
    row = {
        "variant": variant, "sentences": len(src), "seconds": seconds,
        "sentences_per_s": len(src) / seconds, "target_tokens_per_s": target_tokens / seconds,
        "p50_ms": statistics.median(latencies), "p95_ms": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "bytes": variant_bytes(bundle, variant),
        **{name: scores[name] for name in metrics},
        "signatures": scores["signatures"],
    }
    return row, hyps


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="an exported bundle folder")
    parser.add_argument("--source", help="source lines (text, .gz too)")
    parser.add_argument("--ref", help="reference lines, aligned with --source")
    parser.add_argument("--data", help="a JSONL file (.gz too) holding sources and references, instead")
    parser.add_argument("--fields", nargs=2, default=["text", "summary"], metavar=("SRC", "REF"),
                        help="the JSONL fields of --data (default: text summary)")
    parser.add_argument("--metrics", default="bleu,chrf", help="as s2s evaluate --metrics (default bleu,chrf)")
    parser.add_argument("--variants", help="comma list (default: every variant the bundle holds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="batch size of the scored pass")
    parser.add_argument("--latency-lines", type=int, default=100)
    parser.add_argument("--output-dir", help="write each variant's translations to DIR/VARIANT.txt")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if not args.data and not (args.source and args.ref):
        parser.error("give --source and --ref, or --data")
    return args


def main() -> int:
    args = parse_args()
    bundle = read_bundle(args.bundle)
    metrics = parse_metrics(args.metrics)
    variants = args.variants.split(",") if args.variants else sorted(bundle.variants)
    src, refs = read_pairs(args)
    rows = []
    for variant in variants:
        row, hyps = measure(bundle, variant, src, refs, metrics, args)
        rows.append(row)
        if args.output_dir:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{variant}.txt").write_text("".join(h.replace("\n", " ") + "\n" for h in hyps), encoding="utf-8")
    folder = sum(p.stat().st_size for p in Path(args.bundle).iterdir() if p.is_file())
    options = dataclasses.asdict(bundle.decode)
    decode = {k: options[k] for k in ("beam", "length_penalty", "max_len", "no_repeat_ngram", "min_len")}
    meta = {"bundle": str(args.bundle), "threads": args.threads, "batch": args.batch, "decode": decode,
            "folder_bytes": folder, "machine": platform.processor() or platform.machine(),
            "cpus": len(os.sched_getaffinity(0))}
    header = ["variant", *metrics, "MB", "sent/s", "tok/s", "p50 ms", "p95 ms"]
    print(" | ".join(header))
    for row in rows:
        print(" | ".join([row["variant"], *(f"{row[m]:.2f}" for m in metrics), f"{row['bytes'] / 1e6:.1f}",
                          f"{row['sentences_per_s']:.1f}", f"{row['target_tokens_per_s']:.0f}",
                          f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}"]))
    print(f"folder: {folder / 1e6:.1f} MB; decode {decode}; {args.threads} threads, batch {args.batch}")
    for name, signature in rows[0]["signatures"].items():
        print(f"{name}: {signature}")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
