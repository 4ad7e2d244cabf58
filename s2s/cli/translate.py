"""``s2s translate --model RUN_OR_BUNDLE``: text in, translations out, one line each, order kept."""

from __future__ import annotations

from s2s.cli.common import add_decode_options, decode_options, open_output, open_translator, read_input


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate text with a trained run or an exported bundle",
                       description="Translate lines (stdin by default); empty lines stay empty.")
    p.add_argument("--model", required=True, help="run directory, or an exported bundle (has bundle.json)")
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    p.add_argument("--alignment", action="store_true",
                   help="append each translation's word alignment from attention, Pharaoh format "
                        "('text ||| 0-0 1-2': source word - target word, 0-based)")
    add_decode_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    lines = read_input(args.input)
    options = decode_options(args)
    translator = open_translator(args)
    results = translator.hypotheses(lines, attention=args.alignment, **options)
    with open_output(args.output) as out:
        for i, (line, hyps) in enumerate(zip(lines, results)):
            for h in hyps if options.get("n_best", 1) > 1 else hyps[:1]:
                fields = [translator.text(h)]
                if options.get("n_best", 1) > 1:
                    fields = [str(i), *fields, f"{h.score:.4f}"]
                if args.alignment:
                    fields.append(translator.alignment_of(line, h) if h.attention is not None else "")
                out.write(" ||| ".join(fields) + "\n")
    return 0
