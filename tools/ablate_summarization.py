"""Summarization ablation: plain attention, + copy, + copy + coverage, for the transformer and the
BiLSTM recipes of ``recipes/debian-descriptions``, the same budget and seed, each scored on the
test split with ``s2s evaluate --metrics rouge,repeat3`` and with decoding variants; plus the
two extractive baselines scored by the same command.

    python tools/ablate_summarization.py --out runs/ablation-summ --minutes 12 --threads 1 --jobs 2

Every row trains one recipe with ``--set`` overrides (the row's parts, ``train.max_minutes``,
``train.threads``) into ``--out/ROW``, printed before it starts; a row whose folder already
holds ``results.json`` is not run again. Each trained model is then decoded with the recipe's
``decode`` section and with each variant of :data:`DECODING` (no n-gram blocking; the coverage
penalty). ``repeat3`` is the percentage of summaries that repeat a word 3-gram. Baselines: the
text's first sentence (``lead``) and its first 10 words (``lead-10``). Writes ``results.json``
and a Markdown table into ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes" / "debian-descriptions"
PLAIN = ["model.decoder.copy=false", "model.decoder.coverage=false", "train.coverage_loss=0"]
NO_COVERAGE = ["model.decoder.coverage=false", "train.coverage_loss=0"]
ROWS = {  # row -> (recipe, overrides)
    "transformer": ("transformer.yaml", []),
    "transformer+copy": ("transformer.yaml", ["model.decoder.copy=true"]),
    "transformer+copy+coverage": ("transformer-copy.yaml", []),
    "bilstm": ("bilstm-copy.yaml", PLAIN),
    "bilstm+copy": ("bilstm-copy.yaml", NO_COVERAGE),
    "bilstm+copy+coverage": ("bilstm-copy.yaml", []),
}
DECODING = {  # decoding variant -> s2s evaluate flags (on top of the recipe's decode section)
    "recipe decode": [],
    "no n-gram blocking": ["--no-repeat-ngram", "0"],
    "+ coverage penalty 0.2": ["--coverage-penalty", "0.2"],
}
METRICS = "rouge1,rouge2,rougeL,repeat3"


def evaluate(command: list[str], env: dict) -> dict:
    print(" ".join(command), flush=True)
    return json.loads(subprocess.run(command, check=True, env=env, capture_output=True, text=True).stdout)


def run_row(row: str, args) -> dict:
    run_dir = Path(args.out) / row
    if (run_dir / "results.json").exists():  # done by an earlier invocation
        return json.loads((run_dir / "results.json").read_text())
    recipe, extra = ROWS[row]
    sets = [f"name={row}", f"train.max_minutes={args.minutes}", f"train.threads={args.threads}", "train.progress=false",
            *extra, *args.overrides]
    train = [sys.executable, "-m", "s2s", "train", str(RECIPES / recipe), "--run-dir", str(run_dir)]
    train += [part for s in sets for part in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    print(" ".join(train), flush=True)
    began = time.monotonic()
    subprocess.run(train, check=True, env=env, stdout=subprocess.DEVNULL)
    minutes = (time.monotonic() - began) / 60
    steps = max(json.loads(line).get("step", 0) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    decoded = {}
    for name, flags in DECODING.items():
        scores = evaluate([sys.executable, "-m", "s2s", "evaluate", "--model", str(run_dir), "--metrics", METRICS,
                           "--json", *flags], env)
        decoded[name] = {k: v for k, v in scores.items() if k != "signatures"}
        signatures = scores["signatures"]
    result = {"row": row, "recipe": recipe, "overrides": sets, "run": str(run_dir), "steps": steps,
              "train_minutes": round(minutes, 1), "decoding": decoded, "signatures": signatures}
    (run_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def first_sentence(text: str) -> str:
    """The text up to its first sentence end (., ! or ? followed by white space)."""
    return re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]


def baselines(args) -> list[dict]:
    """``lead`` and ``lead-10`` on the test split, scored by ``s2s evaluate --hyp --ref``."""
    data = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data") / "debian-descriptions"
    with gzip.open(data / "test.jsonl.gz", "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    out = Path(args.out)
    refs = out / "test.summary"
    refs.write_text("".join(r["summary"].replace("\n", " ") + "\n" for r in rows), encoding="utf-8")
    results = []
    for name, make in (("lead", first_sentence), ("lead-10", lambda text: " ".join(text.split()[:10]))):
        hyps = out / f"{name}.txt"
        hyps.write_text("".join(make(r["text"]).replace("\n", " ") + "\n" for r in rows), encoding="utf-8")
        scores = evaluate([sys.executable, "-m", "s2s", "evaluate", "--hyp", str(hyps), "--ref", str(refs),
                           "--metrics", METRICS, "--json"], dict(os.environ))
        results.append({"row": name, "scores": {k: v for k, v in scores.items() if k != "signatures"}})
    return results


def table(results: list[dict], base: list[dict]) -> str:
    lines = ["| row | decoding | steps | train min | ROUGE-1 | ROUGE-2 | ROUGE-L | repeat3 % |",
             "|---|---|---|---|---|---|---|---|"]
    for b in base:
        s = b["scores"]
        lines.append(f"| {b['row']} | (extractive) | | | {s['rouge1']:.2f} | {s['rouge2']:.2f} | {s['rougeL']:.2f} "
                     f"| {s['repeat3']:.2f} |")
    for r in results:
        for name, s in r["decoding"].items():
            lines.append(f"| {r['row']} | {name} | {r['steps']} | {r['train_minutes']} | {s['rouge1']:.2f} "
                         f"| {s['rouge2']:.2f} | {s['rougeL']:.2f} | {s['repeat3']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the runs, results.json and results.md")
    parser.add_argument("--minutes", type=float, required=True, help="the training budget of every row")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    parser.add_argument("--jobs", type=int, default=1, help="rows trained at once")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each row")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more recipe overrides, all rows")
    parser.add_argument("--no-baselines", action="store_true", help="skip lead and lead-10")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]  # none: the baselines only
    if unknown := sorted(set(rows) - set(ROWS)):
        parser.error(f"unknown rows {unknown}; expected some of {', '.join(ROWS)}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    base = [] if args.no_baselines else baselines(args)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda row: run_row(row, args), rows))
    (Path(args.out) / "results.json").write_text(json.dumps({"baselines": base, "rows": results}, indent=2) + "\n")
    text = table(results, base)
    (Path(args.out) / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
