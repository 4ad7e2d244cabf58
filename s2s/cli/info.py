"""``s2s info RUN_OR_BUNDLE``: what a run or a bundle holds (see :mod:`s2s.export.info`)."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="describe a run or a bundle: architecture, parameters, data, scores, files",
                       description="Architecture, parameter counts per part, vocabularies, data, training time, "
                                   "scores and files of a run directory or an exported bundle.")
    p.add_argument("model", metavar="RUN_OR_BUNDLE", help="run directory, or an exported bundle (has bundle.json)")
    p.add_argument("--checkpoint", default="best", metavar="NAME", help="which weights of a run (default: best)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args) -> int:
    from s2s.export.info import describe, format_info

    info = describe(args.model, args.checkpoint)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
