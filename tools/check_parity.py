"""PyTorch against the torch-free runtime on a whole test set: the searches' tokens and the step's
log-probabilities.

    python tools/check_parity.py --model runs/quick --bundle exported/quick \\
        --source ../shared/data/multi30k/test_2016_flickr.en.gz --beam 5 --json OUT
    python tools/check_parity.py --model runs/debian-transformer-copy --bundle exported/debian-descriptions \\
        --source ../shared/data/debian-descriptions/test.jsonl.gz --field text --beam 4

Prints, and writes as JSON, how many sentences differ (tokens of the best hypothesis) and the
largest log-probability difference seen when both engines are fed the same prefixes. With
``--float64`` it also reports each engine's own error against the PyTorch model evaluated in float64
(encoder outputs, and log-probabilities and state of single steps started from the exact state),
which tells which engine a difference comes from.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import s2s.models  # noqa: E402,F401
from s2s.data.batching import pad, with_eos  # noqa: E402
from s2s.decoding.translator import Translator as TorchTranslator  # noqa: E402
from s2s.export.parity import check_steps, float64_errors  # noqa: E402
from s2s.runtime import Translator  # noqa: E402
from s2s.textio import read_texts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run directory")
    parser.add_argument("--bundle", required=True, help="its exported bundle")
    parser.add_argument("--source", required=True, help="source sentences, one per line (or JSONL with --field)")
    parser.add_argument("--field", help="read --source as JSONL records and take this field of each")
    parser.add_argument("--limit", type=int, default=0, help="only the first N sources (0 = all)")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--variant", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--float64", action="store_true",
                        help="also measure both engines against the model evaluated in float64")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines = read_texts(args.source, args.field)[: args.limit or None]
    ours = TorchTranslator.from_run(args.model)
    theirs = Translator.load(args.bundle, args.variant, ["CPUExecutionProvider"], threads=args.threads,
                             tune_allocator=True)
    options = dict(beam=args.beam, batch_size=args.batch_size)
    start = time.perf_counter()
    a = ours.hypotheses(lines, **options)
    b = theirs.hypotheses(lines, **options)
    differ = [i for i, (x, y) in enumerate(zip(a, b)) if x[0].tokens != y[0].tokens]
    worst, errors64 = 0.0, {}
    model64 = copy.deepcopy(ours.model).double().eval() if args.float64 else None
    ids = ours.vocabs.src.encode(lines)
    if ours.options.max_src_len:  # the sources as both translators read them (data.truncate_src)
        ids = [row[: ours.options.max_src_len] for row in ids]
    for s in range(0, len(ids), args.batch_size):
        rows = with_eos(ids[s:s + args.batch_size])
        src = torch.from_numpy(pad(rows))
        lengths = torch.from_numpy(np.asarray([len(r) for r in rows]))
        worst = max(worst, check_steps(ours.model, theirs, src, lengths, steps=8))
        if args.float64:
            for key, value in float64_errors(ours.model, theirs, src, lengths, 8, model64).items():
                errors64[key] = max(errors64.get(key, 0.0), value)
    result = {"sentences": len(lines), "beam": args.beam, "variant": args.variant,
              "differing_sentences": len(differ), "first_differing": differ[:10],
              "max_abs_log_prob_diff": worst,
              **{f"float64_{key}": value for key, value in errors64.items()}, "seconds": time.perf_counter() - start}
    for key, value in result.items():
        print(f"{key:<22} {value}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if not differ or args.variant == "int8" else 1


if __name__ == "__main__":
    sys.exit(main())
