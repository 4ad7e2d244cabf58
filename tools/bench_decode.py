"""Decoding speed of PyTorch eager against the torch-free runtime (fp32 and int8).

    python tools/bench_decode.py --model runs/bilstm-bahdanau --json bench-results/decode.json
    python tools/bench_decode.py --model RUN --min-len 24 --max-len 24   # identical work per engine
    python tools/bench_decode.py --arch transformer --random-init --batch 32 --beam 5 \
        --min-len 24 --max-len 24 --json OUT     # the benchmark model with random weights

``--random-init`` needs no training: it writes a run directory holding the benchmark model of
``--arch`` (:mod:`tools.bench_models`, the model of ``tools/bench_train.py``) with random
weights and the joint sentencepiece vocabulary of 8000 trained on Multi30k, then benchmarks it
like a trained run. That run, the export (without ``--bundle``) and CTranslate2's conversions
are written to one temporary folder, removed when the benchmark ends. ``--batch``/``--beam``
pick one setting (``--batches``/``--beams`` several).

Exports the run to a bundle (fp32 + int8) unless ``--bundle`` names one, then translates the
first ``--limit`` lines of test_2016_flickr with each engine, greedy and beam 5, batch 1 and 32,
with ``--threads`` threads (default 2). Batch-1 settings use the first ``--limit-batch1`` lines.
Target tokens are the tokens of the returned best hypothesis (EOS not counted). Prints a table
and writes one JSON row per setting: engine, batch, beam, sentences, sentences_per_s,
target_tokens_per_s, seconds, and for the other engines' rows ``differing_from_torch``: sentences
whose best hypothesis is not PyTorch's token for token.

``--against TREE`` times this checkout's code against another checkout of s2s (``git worktree add
TREE REV``) on the same run, bundle and lines: each engine and setting runs ``--rounds`` times in
a fresh process per tree, the two trees alternating, each process timing ``--passes`` passes
(its median counts), and the table gives each tree's median target tokens/s, the ratio (this tree / TREE) and how many sentences' best tokens differ:

    python tools/bench_decode.py --model RUN --bundle B --against /tmp/before --rounds 5 \
        --min-len 24 --max-len 24 --json OUT

``--engines`` may add ``runtime-graph-fp32`` and ``runtime-graph-int8``: the runtime with the whole
search inside the bundle's ``search.onnx`` (``Translator(search="graph")``; the bundle this tool
exports has it, a ``--bundle`` needs ``s2s export --search``), and ``ctranslate2-fp32`` and
``ctranslate2-int8``: CTranslate2, a dedicated C++
engine (``pip install -e '.[bench]'``), running the same weights (:mod:`tools.peer_ctranslate2`
converts a transformer run) on the same lines and threads, each setting timed in a process of its
own. Its length penalty is its own, so compare it in fixed-length mode (``--min-len`` =
``--max-len``). ``--ctranslate2-env`` sets environment variables of its worker processes
(``KEY=VALUE`` for both variants, ``fp32:KEY=VALUE`` or ``int8:KEY=VALUE`` for one), to time it in
its fastest configuration on the machine: on some CPUs its threaded Intel MKL products run several
times slower with 2 threads than with 1 (``CT2_VERBOSE=1`` names its backends), where
``CT2_USE_MKL=0`` (oneDNN) or ``OMP_DYNAMIC=true`` is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data")


def random_run(arch: str, seed: int, overrides: list[str] = (), parent: str | None = None) -> str:
    """A run directory (in ``parent``, default the system's temporary folder) holding benchmark
    model ``arch`` with random weights; returns its path."""
    import torch

    from s2s.config import save_recipe
    from s2s.models.build import build_model
    from s2s.training.checkpoint import save_atomic
    from s2s.training.prepare import prepare_data
    from tools.bench_models import benchmark_recipe

    recipe = benchmark_recipe(arch, [f"seed={seed}", *overrides])
    run = Path(tempfile.mkdtemp(prefix=f"random-{arch}-", dir=parent))
    save_recipe(recipe, run / "config.yaml")
    data = prepare_data(recipe, run)  # trains the sentencepiece model into run/vocab
    torch.manual_seed(seed)
    model = build_model(recipe.model, len(data.vocabs.src), len(data.vocabs.tgt))
    save_atomic({"model": model.state_dict()}, run / "checkpoints" / "best.pt")
    return str(run)


# One timed setting in a fresh interpreter, for --against. It uses only the public interface both
# trees have (Translator.from_run, Translator.load, hypotheses), so an older checkout runs it too.
WORKER = """
import json, sys, time
request = json.loads(sys.stdin.read())
import torch
torch.set_num_threads(request["threads"])
import s2s.models
engine, lines = request["engine"], request["lines"]
if engine == "torch":
    from s2s.decoding.translator import Translator
    translator = Translator.from_run(request["model"])
else:
    from s2s.runtime import Translator
    translator = Translator.load(request["bundle"], engine.split("-", 1)[1], ["CPUExecutionProvider"],
                                 request["threads"], tune_allocator=True)
options = request["options"]
translator.hypotheses(lines[: options["batch_size"]], **options)  # warm-up
times = []
for _ in range(request["passes"]):  # the median pass: one pass of a second or two is noisy
    start = time.perf_counter()
    hyps = translator.hypotheses(lines, **options)
    times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "tokens": [h[0].tokens for h in hyps]}))
"""


def parse_peer_env(given: list[str]) -> dict[str, dict[str, str]]:
    """``--ctranslate2-env`` values as {variant: {key: value}}: ``KEY=VALUE`` holds for both
    variants, ``fp32:KEY=VALUE`` / ``int8:KEY=VALUE`` for one."""
    env: dict[str, dict[str, str]] = {"fp32": {}, "int8": {}}
    for item in given:
        variants, _, setting = item.partition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, eq, value = setting.partition("=")
        if not eq or not key or (variants and variants not in env):
            raise ValueError(f"--ctranslate2-env {item!r}: expected KEY=VALUE, fp32:KEY=VALUE or int8:KEY=VALUE")
        for variant in [variants] if variants else list(env):
            env[variant][key] = value
    return env


def run_worker(tree: Path, request: dict) -> dict:
    """One setting timed by WORKER with the s2s of ``tree`` first on the path."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", WORKER], input=json.dumps(request), capture_output=True, text=True,
                          env=env, cwd=tree, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {request['engine']} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def against(args, lines: list[str], bundle: str) -> list[dict]:
    """Each engine and setting, this tree and ``args.against`` alternating for ``args.rounds``
    rounds: rows with both trees' medians, their ratio and the sentences whose best tokens differ."""
    import statistics

    trees = {"this": ROOT, "against": Path(args.against).resolve()}
    rows = []
    for batch in map(int, args.batches.split(",")):
        chosen = lines[: args.limit_batch1 if batch == 1 else args.limit]
        for beam in map(int, args.beams.split(",")):
            for engine in args.engines.split(","):
                request = {"engine": engine, "model": str(Path(args.model).resolve()),
                           "bundle": str(Path(bundle).resolve()), "lines": chosen, "threads": args.threads,
                           "passes": args.passes,
                           "options": dict(beam=beam, batch_size=batch, min_len=args.min_len, max_len=args.max_len)}
                rates, outputs = {name: [] for name in trees}, {}
                for round_ in range(args.rounds):
                    order = list(trees) if round_ % 2 == 0 else list(trees)[::-1]
                    for name in order:
                        result = run_worker(trees[name], request)
                        rates[name].append(sum(map(len, result["tokens"])) / result["seconds"])
                        outputs[name] = result["tokens"]
                row = {"engine": engine, "batch": batch, "beam": beam, "sentences": len(chosen),
                       "rounds": args.rounds, "this_tokens_per_s": rates["this"],
                       "against_tokens_per_s": rates["against"],
                       "median_ratio": statistics.median(rates["this"]) / statistics.median(rates["against"]),
                       "differing": sum(a != b for a, b in zip(outputs["this"], outputs["against"]))}
                rows.append(row)
                print(f"{engine:<13} batch {batch:>3} beam {beam}  this {statistics.median(rates['this']):9.1f} "
                      f"tok/s  against {statistics.median(rates['against']):9.1f} tok/s  "
                      f"ratio {row['median_ratio']:.3f}  ({args.rounds} rounds, {row['differing']} differ)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run directory (or --random-init)")
    parser.add_argument("--arch", choices=["rnn", "transformer"], help="with --random-init: the benchmark model")
    parser.add_argument("--random-init", action="store_true", help="benchmark --arch with random weights")
    parser.add_argument("--seed", type=int, default=1, help="with --random-init: weight seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="with --random-init: override the benchmark recipe (section.key=value)")
    parser.add_argument("--bundle", help="its exported bundle (default: export into a temporary folder)")
    parser.add_argument("--source", default=str(DATA / "multi30k" / "test_2016_flickr.en.gz"))
    parser.add_argument("--limit", type=int, default=1000, help="lines for batch > 1")
    parser.add_argument("--limit-batch1", type=int, default=200, help="lines for batch 1")
    parser.add_argument("--engines", default="torch,runtime-fp32,runtime-int8")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--beams", default="1,5")
    parser.add_argument("--batch", type=int, help="one batch size (overrides --batches)")
    parser.add_argument("--beam", type=int, help="one beam size (overrides --beams)")
    parser.add_argument("--min-len", type=int, default=0)
    parser.add_argument("--max-len", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--against", metavar="TREE", help="time this checkout against the s2s checkout in TREE")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: processes per tree and setting")
    parser.add_argument("--passes", type=int, default=3, help="with --against: timed passes per process (median)")
    parser.add_argument("--attention", choices=["off", "on", "both"], default="off",
                        help="keep each hypothesis's attention (both: time every engine without and with it)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time every engine this many times per setting, taking turns; the median counts")
    parser.add_argument("--ctranslate2-env", action="append", default=[], metavar="[VARIANT:]KEY=VALUE",
                        help="an environment variable of CTranslate2's worker processes (repeatable)")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    try:
        peer_env = parse_peer_env(args.ctranslate2_env)
    except ValueError as err:
        parser.error(str(err))
    if args.random_init == (args.model is not None) or (args.random_init and not args.arch):
        parser.error("give either --model RUN, or --random-init with --arch")
    if args.attention != "off" and any(e.startswith("ctranslate2-") for e in args.engines.split(",")):
        parser.error("--attention times the torch and runtime-* engines only")
    if args.against and any(not (e == "torch" or e.startswith("runtime-")) or e.startswith("runtime-graph-")
                            for e in args.engines.split(",")):
        parser.error("--against times the torch and runtime-* engines only")
    if args.batch:
        args.batches = str(args.batch)
    if args.beam:
        args.beams = str(args.beam)

    import torch

    import s2s.models  # noqa: F401
    from s2s.data.corpus import read_lines
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    torch.set_num_threads(args.threads)
    # the random run, the export and the peer's conversions live here and go when the run ends
    scratch = tempfile.TemporaryDirectory(prefix="bench-decode-")
    if args.random_init:
        args.model = random_run(args.arch, args.seed, args.overrides, scratch.name)
    lines = read_lines(args.source)
    bundle = args.bundle
    if bundle is None:
        bundle = str(Path(scratch.name) / "bundle")
        export_bundle(args.model, bundle, quantize="int8", search=True)
    if args.against:
        rows = against(args, lines, bundle)
        _write_json(args, rows, torch.__version__)
        return 0
    engines = {}
    for name in args.engines.split(","):
        if name == "torch":
            engines[name] = TorchTranslator.from_run(args.model)
        elif name.startswith("runtime-graph-"):  # the search inside search.onnx
            engines[name] = Translator.load(bundle, name.rsplit("-", 1)[1], ["CPUExecutionProvider"], args.threads,
                                            tune_allocator=True, search="graph")
        elif name.startswith("runtime-"):
            engines[name] = Translator.load(bundle, name.split("-", 1)[1], ["CPUExecutionProvider"], args.threads,
                                            tune_allocator=True)
        elif name.startswith("ctranslate2-"):  # the C++ peer, converted from the same weights
            from s2s.bundle import read_bundle
            from tools.peer_ctranslate2 import PeerEngine

            variant = name.split("-", 1)[1]
            engines[name] = PeerEngine(args.model, variant, scratch.name, read_bundle(bundle).vocab_files()[0],
                                       args.threads, env=peer_env.get(variant, {}))
        else:
            parser.error(f"unknown engine {name}")
    keep = {"off": [False], "on": [True], "both": [False, True]}[args.attention]
    timed = [(name + ("+attention" if attention else ""), engine, attention)
             for name, engine in engines.items() for attention in keep]
    rows = []
    for batch in map(int, args.batches.split(",")):
        chosen = lines[: args.limit_batch1 if batch == 1 else args.limit]
        for beam in map(int, args.beams.split(",")):
            outputs, times = {}, {name: [] for name, _, _ in timed}
            for round_ in range(args.repeat):  # the engines take turns, in reversed order every other round
                for name, engine, attention in timed if round_ % 2 == 0 else timed[::-1]:
                    options = dict(beam=beam, batch_size=batch, min_len=args.min_len, max_len=args.max_len)
                    if attention:
                        options["attention"] = True
                    if hasattr(engine, "timed_hypotheses"):  # a peer in its own process: it times itself
                        outputs[name], seconds = engine.timed_hypotheses(chosen, **options)
                    else:
                        engine.hypotheses(chosen[:batch], **options)  # warm-up
                        start = time.perf_counter()
                        hyps = engine.hypotheses(chosen, **options)
                        seconds = time.perf_counter() - start
                        outputs[name] = [h[0].tokens for h in hyps]
                    times[name].append(seconds)
            for name, engine, attention in timed:
                seconds = statistics.median(times[name])
                tokens = sum(len(h) for h in outputs[name])
                rows.append({"engine": name, "attention": attention, "batch": batch, "beam": beam,
                             "sentences": len(chosen),
                             "sentences_per_s": len(chosen) / seconds, "target_tokens_per_s": tokens / seconds,
                             "seconds": seconds, "rounds": times[name]})
                r = rows[-1]
                if hasattr(engine, "last_environment"):  # the peer's threading settings, as its worker saw them
                    r["environment"] = engine.last_environment
                same = ""
                if name != "torch" and "torch" in outputs:  # token-for-token agreement with PyTorch
                    r["differing_from_torch"] = sum(a != b for a, b in zip(outputs[name], outputs["torch"]))
                    same = f", {r['differing_from_torch']} differ from torch"
                python_search = name.replace("runtime-graph-", "runtime-")
                if python_search != name and python_search in outputs:  # the graph search against the Python one
                    r["differing_from_python_search"] = sum(a != b for a, b in zip(outputs[name], outputs[python_search]))
                    same += f", {r['differing_from_python_search']} differ from {python_search}"
                print(f"{name:<23} batch {batch:>3} beam {beam}  {r['sentences_per_s']:8.1f} sent/s "
                      f"{r['target_tokens_per_s']:9.1f} tok/s  ({len(chosen)} sentences, {seconds:.1f} s{same})",
                      flush=True)
    for batch in map(int, args.batches.split(",")):
        for beam in map(int, args.beams.split(",")):
            base = next((r for r in rows if r["engine"] == "torch" and r["batch"] == batch and r["beam"] == beam), None)
            for r in rows:
                if base and r["batch"] == batch and r["beam"] == beam and not r["engine"].startswith("torch"):
                    print(f"{r['engine']} / torch, batch {batch} beam {beam}: "
                          f"{_ratio(r, base)}")
            setting = {r["engine"]: r for r in rows if r["batch"] == batch and r["beam"] == beam}
            for name, r in setting.items():  # what keeping the attention costs each engine
                if name.endswith("+attention") and name.removesuffix("+attention") in setting:
                    off = setting[name.removesuffix("+attention")]
                    print(f"{name} / {off['engine']}, batch {batch} beam {beam}: "
                          f"{_ratio(r, off)}")
            for variant in ("fp32", "int8"):  # the runtime against the C++ peer of the same precision
                for ours, other in ((f"runtime-{variant}", f"ctranslate2-{variant}"),
                                    (f"runtime-graph-{variant}", f"runtime-{variant}"),
                                    (f"runtime-graph-{variant}", f"ctranslate2-{variant}")):
                    a, b = setting.get(ours), setting.get(other)
                    if a and b:
                        print(f"{ours} / {other}, batch {batch} beam {beam}: "
                              f"{_ratio(a, b)}")
    _write_json(args, rows, torch.__version__)
    return 0


def _ratio(a: dict, b: dict) -> str:
    """Two rows' target tokens/s as a ratio; a model that emits no token has none."""
    return f"{a['target_tokens_per_s'] / b['target_tokens_per_s']:.2f}x" if b["target_tokens_per_s"] else "n/a (no tokens)"


def _write_json(args, rows: list[dict], torch_version: str) -> None:
    if not args.json:
        return
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    meta = {"model": args.model, "arch": args.arch, "attention": args.attention, "random_init": args.random_init, "threads": args.threads,
            "repeat": getattr(args, "repeat", 1), "ctranslate2_env": getattr(args, "ctranslate2_env", []),
            "min_len": args.min_len, "max_len": args.max_len, "against": args.against, "torch": torch_version,
            "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
