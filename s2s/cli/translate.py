"""``s2s translate --model RUN``: text in, translations out, one line each, order kept."""

from __future__ import annotations

from s2s.cli.common import add_decode_options, decode_options, open_output, read_input


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate text with a trained run",
                       description="Translate lines (stdin by default); empty lines stay empty.")
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    add_decode_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import s2s.models  # noqa: F401
    from s2s.decoding.translator import Translator

    translator = Translator.from_run(args.model, args.checkpoint, args.device)
    lines = read_input(args.input)
    options = decode_options(args)
    results = translator.hypotheses(lines, **options)
    tgt = translator.vocabs.tgt
    with open_output(args.output) as out:
        for i, hyps in enumerate(results):
            if options.get("n_best", 1) > 1:
                for h in hyps:
                    out.write(f"{i} ||| {tgt.decode(h.tokens)} ||| {h.score:.4f}\n")
            else:
                out.write(tgt.decode(hyps[0].tokens) + "\n")
    return 0
