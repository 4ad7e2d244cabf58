"""``s2s translate --model RUN_OR_BUNDLE``: text in, translations out, one line each, order kept."""

from __future__ import annotations

from s2s.cli.common import add_decode_options, decode_options, open_output, open_translator, read_input


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate text with a trained run or an exported bundle",
                       description="Translate lines (stdin by default); empty lines stay empty.")
    p.add_argument("--model", required=True, help="run directory, or an exported bundle (has bundle.json)")
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    add_decode_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    lines = read_input(args.input)
    options = decode_options(args)
    translator = open_translator(args)
    results = translator.hypotheses(lines, **options)
    with open_output(args.output) as out:
        for i, hyps in enumerate(results):
            if options.get("n_best", 1) > 1:
                for h in hyps:
                    out.write(f"{i} ||| {translator.text(h)} ||| {h.score:.4f}\n")
            else:
                out.write(translator.text(hyps[0]) + "\n")
    return 0
