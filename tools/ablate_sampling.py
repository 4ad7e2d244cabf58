"""Scheduled-sampling ablation: one recipe trained with teacher forcing and with each schedule
of Bengio et al. (2015), the same update budget and seed, each scored on the test split.

    python tools/ablate_sampling.py recipes/multi30k-en-de/bilstm-bahdanau.yaml \\
        --updates 500 --sampling-warmup 125 --out runs/ablation-bilstm --jobs 2
    python tools/ablate_sampling.py --from runs/bilstm-bahdanau --updates 300 --out runs/finetune-bilstm

With ``--from RUN`` every mode continues a copy of a trained run (its ``config.yaml``, ``vocab/``
and ``checkpoints/last.pt``, resumed exactly) for ``--updates`` more updates, and the schedules
start where it stopped: scheduled sampling as fine-tuning of a teacher-forced model.

Every schedule holds teacher forcing for ``--sampling-warmup`` updates, then decays the
probability of feeding the gold token so that it reaches ``--floor`` at the last update:
linear with slope (1 - floor) / span, exponential with base floor^(1 / span), inverse sigmoid
with k ln k = span (its midpoint 0.5 at the last update), span = updates - 1 - warmup. Runs go
``--jobs`` at a time with ``--threads`` each; every run is one ``s2s train`` and one
``s2s evaluate`` command, printed before it starts; a mode whose folder already holds its
``results.json`` is not run again. Writes ``results.json`` and a Markdown table into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODES = ("teacher-forcing", "linear", "exponential", "inverse_sigmoid")


def inverse_sigmoid_k(span: int) -> float:
    """The k >= 1 with k ln k = span (Newton's method on k ln k - span)."""
    k = max(2.0, span / math.log(max(span, 3)))
    for _ in range(50):
        k -= (k * math.log(k) - span) / (math.log(k) + 1)
    return max(1.0, k)


def sampling_overrides(mode: str, updates: int, warmup: int, floor: float, start: int = 0) -> list[str]:
    """``--set`` values for ``mode`` over updates ``start`` .. ``start + updates - 1``."""
    if mode == "teacher-forcing":
        return []
    span = max(1, updates - 1 - warmup)  # update indices run from 0 to updates - 1
    params = {"linear": f"linear_slope={(1 - floor) / span:.6g}",
              "exponential": f"exponential_base={floor ** (1 / span):.8f}",
              "inverse_sigmoid": f"inverse_sigmoid_k={inverse_sigmoid_k(span):.2f}"}[mode]
    return [f"train.sampling.schedule={mode}", f"train.sampling.{params}", f"train.sampling.floor={floor}",
            f"train.sampling.warmup_steps={start + warmup}"]


def continue_from(source: Path, run_dir: Path) -> int:
    """Copy what resuming ``source`` needs into ``run_dir``; return the step it stopped at."""
    import torch

    last = source / "checkpoints" / "last.pt"
    if not last.is_file():
        raise SystemExit(f"--from {source}: no checkpoints/last.pt to continue")
    if not (run_dir / "checkpoints" / "last.pt").exists():
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "config.yaml", run_dir / "config.yaml")
        shutil.copytree(source / "vocab", run_dir / "vocab", dirs_exist_ok=True)
        shutil.copy2(last, run_dir / "checkpoints" / "last.pt")
    return int(torch.load(last, map_location="cpu", weights_only=False)["position"]["step"])


def run_one(mode: str, args, extra: list[str]) -> dict:
    run_dir = Path(args.out) / mode
    if (run_dir / "results.json").exists():  # done by an earlier invocation
        return json.loads((run_dir / "results.json").read_text())
    start = continue_from(Path(args.source_run), run_dir) if args.source_run else 0
    sets = [f"train.max_steps={start + args.updates}", "train.max_minutes=0", f"train.valid_every={start + args.updates}",
            "train.valid_bleu=false", "train.best_metric=loss", "train.average_last=0", f"train.threads={args.threads}",
            "train.progress=false",
            *extra, *sampling_overrides(mode, args.updates, args.sampling_warmup, args.floor, start)]
    where = ["--resume", str(run_dir)] if start else [args.recipe, "--run-dir", str(run_dir)]
    train = [sys.executable, "-m", "s2s", "train", *where]
    train += [part for s in sets for part in ("--set", s)]
    evaluate = [sys.executable, "-m", "s2s", "evaluate", "--model", str(run_dir), "--checkpoint", "last",
                "--beam", "5", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(" ".join(train), flush=True)
    began = time.monotonic()
    subprocess.run(train, check=True, env=env, stdout=subprocess.DEVNULL)
    minutes = (time.monotonic() - began) / 60
    print(" ".join(evaluate), flush=True)
    scores = json.loads(subprocess.run(evaluate, check=True, env=env, capture_output=True, text=True).stdout)
    result = {"mode": mode, "run": str(run_dir), "start": start, "updates": args.updates,
              "train_minutes": round(minutes, 1), "bleu": scores["bleu"], "chrf": scores["chrf"],
              "signature": scores["signatures"]["bleu"], "overrides": sets}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", help="YAML recipe to train from scratch")
    parser.add_argument("--from", dest="source_run", metavar="RUN", help="continue copies of this trained run instead")
    parser.add_argument("--out", required=True, help="folder for the runs, results.json and results.md")
    parser.add_argument("--updates", type=int, required=True, help="the update budget of every run")
    parser.add_argument("--sampling-warmup", type=int, default=0, help="updates of teacher forcing first")
    parser.add_argument("--floor", type=float, default=0.5, help="gold probability at the last update")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more recipe overrides, all runs")
    args = parser.parse_args()
    if bool(args.recipe) == bool(args.source_run):
        parser.error("give either a RECIPE or --from RUN")
    modes = args.modes.split(",")
    if unknown := sorted(set(modes) - set(MODES)):
        parser.error(f"unknown modes {unknown}; expected some of {', '.join(MODES)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda mode: run_one(mode, args, args.overrides), modes))
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = ["| mode | BLEU | chrF | train min |", "|---|---|---|---|"]
    table += [f"| {r['mode']} | {r['bleu']:.2f} | {r['chrf']:.2f} | {r['train_minutes']} |" for r in results]
    (Path(args.out) / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
