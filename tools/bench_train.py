"""Training throughput of the benchmark models on Multi30k en->de.

    python tools/bench_train.py --arch rnn --updates 60 --json bench-results/train-rnn.json

The rnn benchmark model: 2-layer bidirectional LSTM encoder (128 units per direction),
embeddings 256, 2-layer attentional LSTM decoder of 256 with input feeding (Bahdanau
attention), joint sentencepiece vocabulary of 8000, dropout 0.2, label smoothing 0.1, Adam,
batches of about 3,500 target tokens, 2 threads.

The transformer benchmark model: 3+3 layers, d_model 256, 4 heads, FFN 1024, dropout 0.1
(residuals and embeddings; none on attention weights or activations), source, target and
output embeddings tied over a joint vocabulary of 8000, label smoothing 0.1, Adam, batches of
about 3,500 target tokens, 2 threads.

Reports steady-state target tokens/s (non-pad target tokens incl. EOS; the first
``--warmup`` updates excluded) and peak RSS, as a table and as JSON. With ``--rounds R`` the
same ``--updates`` batches are timed R times in one process and ``target_tokens_per_s`` is the
median round (each round's figure is listed too): this machine's speed drifts by 10% and more
within minutes, and one process sees the same batches, allocator and threads each round.

The cost of scheduled sampling is measured with a constant ratio, so that every timed update
does the same work, e.g. ``--set train.sampling.teacher_forcing_ratio=0.5`` (recurrent
decoders: predictions inside the step loop; transformers: two passes), plus
``--set train.sampling.predictions=sample`` or ``--set train.sampling.first_pass_gradient=true``.
Separate processes drift apart by more than such a cost on this machine, so ``--variant`` times
modes side by side in one process: each round times the base recipe and then every variant on
the same batches with the same model, and each variant's median round is reported with its
ratio to the base:

    python tools/bench_train.py --arch transformer --updates 15 --rounds 3 \
        --variant ss-argmax:teacher_forcing_ratio=0.5 \
        --variant ss-grad:teacher_forcing_ratio=0.5,first_pass_gradient=true

A variant is ``NAME:KEY=VALUE[,KEY=VALUE...]``. A plain key is one of ``train.sampling`` (the model,
the optimizer and the rest of the recipe are shared with the base). A dotted key overrides any
recipe key, and a variant with one gets a model and optimizer of its own, built with the same
seed and timed on the same batches, e.g. copy attention and coverage on the summarization
transformer (``--recipe`` benchmarks any recipe instead of an ``--arch``):

    python tools/bench_train.py --recipe recipes/debian-descriptions/transformer.yaml --updates 20 --rounds 3 \
        --variant copy:model.decoder.copy=true \
        --variant copy-coverage:model.decoder.copy=true,model.decoder.coverage=true,train.coverage_loss=0.5

Source tokens/s (non-pad source tokens incl. EOS) are reported beside target tokens/s: for
summarization the source is most of the work.

``--ddp N`` compares data parallelism with threads on the same cores: N processes of 1 thread
under torchrun (PyTorch's DDP over gloo on CPU, NCCL on GPUs) against 1 process of N threads. Both
make updates of N batches (one per rank; update_freq N in the one process), so the work per update
is the same; target tokens/s of each, their ratio and each one's peak RSS (rank 0's) are reported:

    python tools/bench_train.py --arch rnn --updates 20 --ddp 2 --json bench-results/train-rnn-ddp2.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import s2s.models  # noqa: E402,F401
from s2s.config import load_recipe  # noqa: E402
from s2s.errors import S2SError  # noqa: E402
from s2s.cpu.allocator import keep_freed_memory  # noqa: E402
from s2s.training import distributed  # noqa: E402
from s2s.training.device import pick_device  # noqa: E402
from s2s.training.distributed import World  # noqa: E402
from s2s.training.loop import build_trainer, seed_everything  # noqa: E402
from s2s.training.prepare import prepare_data  # noqa: E402
from s2s.training.sampling import check_sampling  # noqa: E402
from tools.bench_models import ARCHS, benchmark_recipe  # noqa: E402

def parse_variant(text: str) -> tuple[str, list[str]]:
    """``NAME:KEY=VALUE,...`` -> (NAME, recipe overrides): plain keys are of ``train.sampling``,
    dotted keys are full recipe keys."""
    name, sep, body = text.partition(":")
    pairs = [p.strip() for p in body.split(",") if p.strip()]
    if not sep or not name or not pairs or any("=" not in p for p in pairs):
        raise SystemExit(f"bench_train: --variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], keys of "
                         "train.sampling or dotted recipe keys, e.g. ss:teacher_forcing_ratio=0.5")
    return name, [p if "." in p.partition("=")[0] else f"train.sampling.{p}" for p in pairs]


def shares_model(settings: list[str]) -> bool:
    """Whether a variant changes only ``train.sampling`` (and so may reuse the base's model)."""
    return all(s.startswith("train.sampling.") for s in settings)


def median_round(rounds):
    """The round (tokens/s, times, tokens) with the median speed."""
    return sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------- --ddp N
def time_updates(trainer, data, world: World, per_update: int, warmup: int, updates: int) -> dict:
    """Target tokens/s of ``updates`` updates of ``per_update`` batches (after ``warmup``), each
    rank training its share as the loop does. An update's time is rank 0's: its all-reduce waits
    for the slowest rank. Collating stays outside the timer, as in the single-process figures."""
    batches = [b for epoch in range(100) for b in data.train.epoch(epoch)][: (warmup + updates) * per_update]
    times, tokens = [], []
    for k in range(warmup + updates):
        update = batches[k * per_update:(k + 1) * per_update]
        own = world.shard(update)
        group = [data.train.collate(b) for b in own or update[:1]]
        total = sum(data.train.count_tokens(b) for b in update)
        start = time.perf_counter()
        trainer.train_step(group, total, idle=not own)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        if k >= warmup:
            times.append(time.perf_counter() - start)
            tokens.append(total)
    return {"target_tokens_per_s": sum(tokens) / sum(times), "median_update_s": statistics.median(times),
            "updates": len(times), "peak_rss_mb": peak_rss_mb()}


def time_world(recipe, data, device: torch.device, world: World, args) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        seed_everything(recipe.seed)
        trainer = build_trainer(recipe, Path(run_dir), data, device, world)
        try:
            return time_updates(trainer, data, world, args.ddp, args.warmup, args.updates)
        finally:
            trainer.reporter.close()


def ddp_main(args, recipe, data) -> int:
    """``--ddp N``: 1 process of N threads here, then this tool again under torchrun as N ranks of
    1 thread (they find ``WORLD_SIZE`` set, time their updates, and rank 0 writes ``--json``)."""
    if "WORLD_SIZE" in os.environ:
        world, device = distributed.start(args.device)
        torch.set_num_threads(1)
        try:
            result = time_world(recipe, data, device, world, args)
            if world.main:
                Path(args.json).write_text(json.dumps(result))
        finally:
            distributed.stop(world)
        return 0
    torch.set_num_threads(args.ddp)
    single = time_world(recipe, data, pick_device(args.device), World(), args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.ddp),
                   __file__, *sys.argv[1:], "--json", str(out)]
        done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if done.returncode:
            print(f"bench_train: the {args.ddp}-process run failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
        ddp = json.loads(out.read_text())
    result = {"arch": args.recipe or args.arch, "device": args.device, "batches_per_update": args.ddp,
              "single": {"processes": 1, "threads": args.ddp, **single},
              "ddp": {"processes": args.ddp, "threads": 1, **ddp},
              "ddp_to_single": ddp["target_tokens_per_s"] / single["target_tokens_per_s"],
              "torch": torch.__version__, "cpu_count": os.cpu_count()}
    print(f"{'setup':<24} {'tgt tok/s':>9} {'update s':>9} {'peak RSS MB':>11}")
    for name in ("single", "ddp"):
        row = result[name]
        setup = f"{row['processes']} process{'es' if row['processes'] > 1 else ''} x {row['threads']} thread" + \
                ("s" if row["threads"] > 1 else "")
        print(f"{setup:<24} {row['target_tokens_per_s']:>9.0f} {row['median_update_s']:>9.3f} "
              f"{row['peak_rss_mb']:>11.0f}")
    print(f"ddp / single: {result['ddp_to_single']:.3f} ({args.ddp} batches an update, {args.updates} updates timed)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=sorted(ARCHS), default="rnn")
    parser.add_argument("--recipe", help="benchmark this recipe file instead of an --arch model")
    parser.add_argument("--updates", type=int, default=60, help="timed updates after warm-up")
    parser.add_argument("--warmup", type=int, default=10, help="updates excluded from the figure")
    parser.add_argument("--rounds", type=int, default=1, help="time the same updates this many times; report the median")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra recipe overrides")
    parser.add_argument("--cache", default=str(ROOT / "bench-results" / "cache"), help="sentencepiece cache")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--variant", dest="variants", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                        help="also time these train.sampling settings, interleaved with the base in each round")
    parser.add_argument("--ddp", type=int, default=0, metavar="N",
                        help="compare N processes x 1 thread (torchrun, DDP) with 1 process x N threads")
    args = parser.parse_args()
    if args.ddp and (args.variants or args.rounds > 1):
        parser.error("--ddp times one recipe once: leave out --variant and --rounds")

    torch.set_num_threads(args.threads)
    if args.device == "cpu":
        keep_freed_memory()
    try:
        def load(extra: list[str]):
            common = [f"train.device={args.device}"] + args.overrides + extra
            return load_recipe(args.recipe, common) if args.recipe else benchmark_recipe(args.arch, common)

        recipe = load([])
        variants, own_model = {"base": recipe}, {"base": False}
        for text in args.variants:
            name, settings = parse_variant(text)
            if name in variants:
                parser.error(f"--variant {text!r}: the name {name!r} is taken")
            variants[name], own_model[name] = load(settings), not shares_model(settings)
        for variant in variants.values():
            check_sampling(variant)
    except S2SError as error:
        print(f"bench_train: {error}", file=sys.stderr)
        return 2
    cache = Path(args.cache) / (Path(args.recipe).stem if args.recipe else args.arch)
    cache.mkdir(parents=True, exist_ok=True)
    data = prepare_data(recipe, cache)  # under --ddp the ranks read the vocabulary cached by the first process
    if args.ddp:
        return ddp_main(args, recipe, data)
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as run_dir:
        trainers = {}
        for name, variant in variants.items():  # a model of its own for a variant that changes more than sampling
            if name == "base" or own_model[name]:
                seed_everything(recipe.seed)
                (Path(run_dir) / name).mkdir()
                trainers[name] = build_trainer(variant, Path(run_dir) / name, data, device)
        trainer = trainers["base"]
        base = trainer.settings
        batches = [b for epoch in range(100) for b in data.train.epoch(epoch)][: args.warmup + args.updates]
        for own in trainers.values():
            for positions in batches[: args.warmup]:
                own.train_step([data.train.collate(positions)])
        timed = {name: [] for name in variants}
        source = {name: [] for name in variants}
        for _ in range(max(1, args.rounds)):
            for name, variant in variants.items():
                runner = trainers.get(name, trainer)
                if runner is trainer:  # the step reads the sampling settings each update
                    trainer.settings = dataclasses.replace(base, sampling=variant.train.sampling)
                times, tokens, src_tokens = [], [], []
                for positions in batches[args.warmup:]:
                    batch = data.train.collate(positions)
                    start = time.perf_counter()
                    loss = runner.train_step([batch])
                    if runner.device.type == "cuda":
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - start)
                    tokens.append(batch.num_tokens)
                    src_tokens.append(int(batch.src_lengths.sum()))
                timed[name].append((sum(tokens) / sum(times), times, tokens))
                source[name].append(sum(src_tokens) / sum(times))
                if name == "base":
                    final_loss = float(loss) / batch.num_tokens
            trainer.settings = base
    rounds = timed["base"]
    speed, times, tokens = median_round(rounds)
    speeds = {name: median_round(r)[0] for name, r in timed.items()}
    source_speeds = {name: statistics.median(r) for name, r in source.items()}
    per_update = [n / t for n, t in zip(tokens, times)]
    result = {
        "arch": args.recipe or args.arch, "updates": len(times), "rounds": len(rounds), "threads": args.threads,
        "device": args.device, "target_tokens_per_s": speed, "source_tokens_per_s": source_speeds["base"],
        "round_tokens_per_s": [round(r[0], 1) for r in rounds],
        "median_update_tokens_per_s": statistics.median(per_update),
        "median_update_s": statistics.median(times), "mean_batch_target_tokens": sum(tokens) / len(tokens),
        "peak_rss_mb": peak_rss_mb(), "final_train_loss": final_loss, "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    if len(variants) > 1:
        result["variants"] = {
            name: {"target_tokens_per_s": speeds[name], "source_tokens_per_s": source_speeds[name],
                   "round_tokens_per_s": [round(r[0], 1) for r in timed[name]],
                   "ratio_to_base": speeds[name] / speed, "own_model": own_model[name],
                   "sampling": dataclasses.asdict(variants[name].train.sampling)}
            for name in variants if name != "base"}
    width = max(len(k) for k in result)
    for key, value in result.items():
        if key != "variants":
            print(f"{key:<{width}}  {value:.2f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    if len(variants) > 1:
        print(f"\n{'variant':<14} {'tgt tok/s':>9} {'src tok/s':>9} {'x base':>7}  rounds (target tokens/s)")
        print(f"{'base':<14} {speed:>9.0f} {source_speeds['base']:>9.0f} {1:>7.3f}  {result['round_tokens_per_s']}")
        for name, row in result["variants"].items():
            print(f"{name:<14} {row['target_tokens_per_s']:>9.0f} {row['source_tokens_per_s']:>9.0f} "
                  f"{row['ratio_to_base']:>7.3f}  {row['round_tokens_per_s']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
