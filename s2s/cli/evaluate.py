"""``s2s evaluate``: score a hypothesis file, or translate and score with a trained run."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    from s2s.cli.common import add_decode_options

    p = sub.add_parser("evaluate", help="score translations with sacrebleu (and ROUGE)",
                       description="Score --hyp against --ref, or translate --source with --model first.")
    p.add_argument("--hyp", help="hypothesis file, one line a sentence")
    p.add_argument("--ref", "--reference", dest="ref", help="reference file")
    p.add_argument("--model", help="run directory (default source: the recipe's test split), or an exported "
                                    "bundle (needs --source and --ref)")
    p.add_argument("--source", help="source file to translate with --model")
    p.add_argument("--output", help="with --model: also write the translations here")
    p.add_argument("--metrics", default="bleu,chrf,ter",
                   help="comma list: bleu, chrf, ter, rouge1, rouge2, rougeL, rougeLsum, repeat3 (the percentage "
                        "of hypotheses repeating a word 3-gram); rouge = all four ROUGE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_decode_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from s2s.cli.common import decode_options, open_output
    from s2s.data.corpus import read_lines
    from s2s.errors import ConfigError
    from s2s.evaluation.metrics import SACREBLEU, parse_metrics, score

    metrics = parse_metrics(args.metrics)
    if args.model:
        hyps, refs = _translate(args, decode_options(args))
        if args.output:
            with open_output(args.output) as out:
                out.writelines(h + "\n" for h in hyps)
    elif args.hyp and args.ref:
        hyps, refs = read_lines(args.hyp), read_lines(args.ref)
    else:
        raise ConfigError("give --hyp and --ref, or --model (with --source and --ref)")
    result = score(hyps, refs, metrics)
    if args.model and not args.source:  # the run's own test split: kept for s2s info
        from s2s.runs import record_test_scores

        record_test_scores(args.model, args.checkpoint, decode_options(args), result)
    if args.json:
        print(json.dumps(result))
    else:  # one line a metric: name, score, signature (sacrebleu's names upper-cased, as it prints them)
        shown = {name: name.upper() if name in SACREBLEU else name for name in metrics}
        width = max(7, *map(len, shown.values()))
        for name in metrics:
            print(f"{shown[name]:{width}s} {result[name]:6.2f}  {result['signatures'][name]}".rstrip())
    return 0


def _translate(args, options) -> tuple[list[str], list[str]]:
    from s2s.cli.common import open_translator
    from s2s.data.corpus import read_lines
    from s2s.errors import ConfigError

    if args.source:
        if not args.ref:
            raise ConfigError("--source needs --ref")
        src, refs = read_lines(args.source), read_lines(args.ref)
    else:
        src, refs = _recipe_test_split(args.model)
    return open_translator(args).translate(src, **options), refs


def _recipe_test_split(model: str) -> tuple[list[str], list[str]]:
    """A run's recipe names its test split; a bundle carries no data and needs --source and --ref."""
    from pathlib import Path

    from s2s.config import load_recipe
    from s2s.data.corpus import read_split
    from s2s.errors import ConfigError
    from s2s.runs import is_run

    if not is_run(model):
        raise ConfigError(f"{model} is a bundle (no recipe inside): give --source and --ref")
    import s2s.models  # noqa: F401  (registers the parts the run's recipe names)

    test = read_split(load_recipe(Path(model) / "config.yaml").data, "test")
    return test.src, test.tgt
