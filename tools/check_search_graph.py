"""The bundle's search graph against the Python search, on a whole test set (no torch needed).

    python tools/check_search_graph.py --bundle exported/multi30k-en-de \\
        --source ../shared/data/multi30k/test_2016_flickr.en.gz --beams 5,1
    python tools/check_search_graph.py --bundle exported/debian-descriptions \\
        --source ../shared/data/debian-descriptions/test.jsonl.gz --field text --beams 4

For each beam size, translates every source with ``Translator(search="python")`` and with
``Translator(search="graph")`` (``search.onnx``, ``s2s export --search``) in the bundle's batches,
and prints how many sentences' best hypotheses differ, token for token, with both timings.
Writes the same as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.runtime.translator import Translator  # noqa: E402
from s2s.textio import read_texts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="a bundle with search.onnx")
    parser.add_argument("--source", required=True, help="source sentences, one per line (or JSONL with --field)")
    parser.add_argument("--field", help="read --source as JSONL records and take this field of each")
    parser.add_argument("--variant", help="graphs to use (default: fp32, or the bundle's only variant)")
    parser.add_argument("--beams", default="5,1", help="beam sizes to check (1 = greedy)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args()

    lines = read_texts(args.source, args.field)
    python = Translator.load(args.bundle, args.variant, threads=args.threads)
    graph = Translator.load(args.bundle, args.variant, threads=args.threads, search="graph")
    rows = []
    for beam in map(int, args.beams.split(",")):
        timed = {}
        for name, translator in (("python", python), ("graph", graph)):
            start = time.perf_counter()
            timed[name] = ([h[0].tokens for h in translator.hypotheses(lines, beam=beam)], time.perf_counter() - start)
        differ = sum(a != b for a, b in zip(timed["python"][0], timed["graph"][0]))
        rows.append({"beam": beam, "sentences": len(lines), "differing": differ,
                     "python_seconds": timed["python"][1], "graph_seconds": timed["graph"][1]})
        print(f"beam {beam}: {differ} of {len(lines)} sentences differ; python search {timed['python'][1]:.1f} s, "
              f"graph search {timed['graph'][1]:.1f} s", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"bundle": args.bundle, "variant": python.variant, "rows": rows},
                                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
