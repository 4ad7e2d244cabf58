"""Peak memory and training speed of streamed training data (``data.streaming``) as the corpus grows.

    python tools/bench_memory.py --copies 1 10 --updates 300 --json bench-results/memory.json

For each K of ``--copies``, the training corpus is K concatenated copies of Multi30k train en-de
(gzipped, in a temporary folder) and the recipe (``recipes/multi30k-en-de/quick.yaml`` by
default) trains on it with ``data.streaming`` for ``--updates`` updates, in a fresh child process
(this tool again, with ``--child``): one process per K, so that each peak is its own. The child
reports its peak RSS (``ru_maxrss``, the kernel's high-water mark of resident memory, the same as
``VmHWM``) over the whole run: imports, the vocabulary sample and sentencepiece training, the
model, the streamed windows and the final validation. ``--in-memory`` runs the same K without
streaming too, for comparison.

Peak RSS varies from run to run by some 10% (where the heap's blocks fall; glibc's per-thread
arenas under a busy CPU): ``--repeat R`` runs each K R times and reports the largest peak and
the median speed, with every run's figures in the JSON.

Training speed is target tokens/s (non-pad, incl. EOS) over the ``metrics.jsonl`` windows after
the first (the first holds the warm-up), weighted by each window's time; the windows include
reading and encoding the stream, and no validation (one runs at the end).

Every K trains sentencepiece on the same number of pairs: ``--vocab-sample`` (default 29,000,
one copy of Multi30k) sets ``vocab.max_sentences``, the one setting that bounds the sample. With
the recipe default of 1,000,000, a corpus under a million pairs would be sampled whole.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data") / "multi30k"


def write_copies(copies: int, folder: Path) -> dict[str, Path]:
    """train.{en,de}.gz holding ``copies`` concatenated copies of Multi30k train."""
    files = {}
    for lang in ("en", "de"):
        text = gzip.decompress((DATA / f"train.{lang}.gz").read_bytes())
        files[lang] = folder / f"train-x{copies}.{lang}.gz"
        with gzip.open(files[lang], "wb", compresslevel=1) as handle:
            for _ in range(copies):
                handle.write(text)
    return files


def window_speed(metrics: Path) -> float:
    """Target tokens/s of the training windows after the first, weighted by their time."""
    windows = [json.loads(line) for line in metrics.read_text().splitlines()]
    windows = [w for w in windows if "tokens_per_s" in w]
    tokens = seconds = 0.0
    for before, window in zip(windows, windows[1:]):
        spent = window["elapsed_s"] - before["elapsed_s"]
        tokens, seconds = tokens + window["tokens_per_s"] * spent, seconds + spent
    return tokens / seconds if seconds else float("nan")


def child(args) -> int:
    """One training run (``--child RUN_DIR``), then its peak RSS and speed as JSON on stdout."""
    import s2s.models  # noqa: F401
    from s2s.config import load_recipe
    from s2s.training.loop import train

    start = time.perf_counter()
    position = train(load_recipe(args.recipe, args.overrides), Path(args.child))
    wall = time.perf_counter() - start
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "target_tokens_per_s": window_speed(Path(args.child) / "metrics.jsonl"),
                      "steps": position.step, "epoch": position.epoch, "batch": position.batch, "wall_s": wall}))
    return 0


def run_one(args, copies: int, streaming: bool, folder: Path, repeat: int) -> dict:
    """One child run from scratch (its own run folder, so its own vocabulary) on the K-copy corpus."""
    files = {lang: folder / f"train-x{copies}.{lang}.gz" for lang in ("en", "de")}
    if not files["en"].is_file():
        files = write_copies(copies, folder)
    run_dir = folder / f"run-x{copies}-{'stream' if streaming else 'memory'}-{repeat}"
    overrides = [f"data.train.src={files['en']}", f"data.train.tgt={files['de']}", f"data.streaming={streaming}",
                 f"train.max_steps={args.updates}", "train.max_minutes=0", f"train.valid_every={args.updates}",
                 f"train.log_every={args.log_every}", "train.progress=false", f"train.threads={args.threads}",
                 f"vocab.max_sentences={args.vocab_sample}", "train.device=cpu", *args.overrides]
    command = [sys.executable, __file__, "--recipe", args.recipe, "--child", str(run_dir)]
    command += [item for o in overrides for item in ("--set", o)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"bench_memory: the x{copies} run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    pairs = sum(1 for _ in gzip.open(files["en"], "rb"))
    return {"copies": copies, "streaming": streaming, "pairs": pairs, **result}


def summarize(runs: list[dict]) -> dict:
    """Repeats of one configuration: the largest peak RSS, the median speed and wall time, every run's figures."""
    def median(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {**{k: runs[0][k] for k in ("copies", "streaming", "pairs", "steps")},
            "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "target_tokens_per_s": median("target_tokens_per_s"),
            "wall_s": median("wall_s"), "repeats": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "multi30k-en-de" / "quick.yaml"))
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 10], help="corpus sizes, in copies of Multi30k")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--log-every", type=int, default=25, help="updates per speed window")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vocab-sample", type=int, default=29_000, help="vocab.max_sentences of every run")
    parser.add_argument("--in-memory", action="store_true", help="also run each K without streaming")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each K: the largest peak, the median speed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe overrides")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for streaming in (True, False) if args.in_memory else (True,):
            for copies in args.copies:
                runs = []
                for repeat in range(max(1, args.repeat)):
                    runs.append(run_one(args, copies, streaming, Path(tmp), repeat))
                    print(f"done: x{copies} {'streaming' if streaming else 'in memory'}: "
                          f"{runs[-1]['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
                rows.append(summarize(runs))
    base = {r["streaming"]: r["peak_rss_mib"] for r in rows if r["copies"] == min(args.copies)}
    print(f"{'data':<10} {'copies':>6} {'pairs':>8} {'peak RSS MiB':>12} {'x smallest':>10} {'tgt tok/s':>9} "
          f"{'wall s':>7}")
    for row in rows:
        row["rss_to_smallest"] = row["peak_rss_mib"] / base[row["streaming"]]
        print(f"{'streaming' if row['streaming'] else 'in memory':<10} {row['copies']:>6} {row['pairs']:>8} "
              f"{row['peak_rss_mib']:>12.0f} {row['rss_to_smallest']:>10.2f} {row['target_tokens_per_s']:>9.0f} "
              f"{row['wall_s']:>7.0f}")
    result = {"recipe": args.recipe, "updates": args.updates, "threads": args.threads, "repeat": args.repeat,
              "vocab_max_sentences": args.vocab_sample, "overrides": args.overrides, "runs": rows,
              "cpu_count": os.cpu_count()}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
