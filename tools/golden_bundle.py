"""Record what a reference bundle does, for ``tests/unit/test_reference_bundles.py``.

    python tools/golden_bundle.py exported/multi30k-en-de --recipe recipes/multi30k-en-de/transformer.yaml \\
        --source multi30k/test_2016_flickr.en.gz --ref multi30k/test_2016_flickr.de.gz --metric bleu
    python tools/golden_bundle.py exported/debian-descriptions --recipe recipes/debian-descriptions/bilstm-copy.yaml \\
        --jsonl debian-descriptions/test.jsonl.gz --fields text summary --metric rougeL

Data paths are relative to ``${S2S_DATA:-../shared/data}``. Translates the whole test split with
the bundle's default variant and decoding settings (2 threads), scores it with the code of
``s2s evaluate``, and writes ``tests/golden/NAME.json``: the recipe, the test split, the metric
and its score, and the first ``--examples`` sources with their translations. Run it once when a
bundle is made, and quote the score it prints in the bundle's model card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.data.corpus import read_jsonl  # noqa: E402
from s2s.evaluation.metrics import score  # noqa: E402
from s2s.runtime import Translator  # noqa: E402
from s2s.textio import read_lines  # noqa: E402

DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--recipe", required=True, help="the recipe that trained it, relative to the repository")
    parser.add_argument("--source")
    parser.add_argument("--ref")
    parser.add_argument("--jsonl")
    parser.add_argument("--fields", nargs=2, default=["text", "summary"])
    parser.add_argument("--metric", default="bleu")
    parser.add_argument("--examples", type=int, default=20)
    args = parser.parse_args()
    if args.jsonl:
        src, refs = read_jsonl(DATA / args.jsonl, *args.fields)
        test = {"jsonl": args.jsonl, "fields": args.fields}
    elif args.source and args.ref:
        src, refs = read_lines(DATA / args.source), read_lines(DATA / args.ref)
        test = {"source": args.source, "ref": args.ref}
    else:
        parser.error("give --source and --ref, or --jsonl")
    translator = Translator.load(args.bundle, threads=2)
    hyps = translator.translate(src)
    result = score(hyps, refs, [args.metric])
    name = Path(args.bundle).resolve().name
    record = {"bundle": f"exported/{name}", "recipe": args.recipe, "variant": translator.variant, "test": test,
              "metric": args.metric, "score": round(result[args.metric], 2),
              "signature": result["signatures"][args.metric],
              "examples": [[s, h] for s, h in zip(src[:args.examples], hyps[:args.examples])]}
    out = ROOT / "tests" / "golden" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {args.metric} {record['score']:.2f} ({record['signature']}), {len(record['examples'])} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
