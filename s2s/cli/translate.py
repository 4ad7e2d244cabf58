"""``s2s translate --model RUN``: text in, translations out, one line each, order kept."""

from __future__ import annotations

from s2s.cli.common import add_decode_options, bundle_translator, decode_options, open_output, read_input


def add_parser(sub) -> None:
    p = sub.add_parser("translate", help="translate text with a trained run",
                       description="Translate lines (stdin by default); empty lines stay empty.")
    p.add_argument("--model", required=True, help="run directory, or an exported bundle (has bundle.json)")
    p.add_argument("--variant", default="fp32", choices=["fp32", "int8"], help="bundle graphs to use")
    p.add_argument("--input", help="input file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    add_decode_options(p)
    p.set_defaults(run=run)


def run(args) -> int:
    lines = read_input(args.input)
    options = decode_options(args)
    translator = bundle_translator(args)
    if translator is not None:  # torch-free path
        results, decode = translator.hypotheses(lines, **options), translator.tgt_vocab.decode
    else:
        import s2s.models  # noqa: F401
        from s2s.decoding.translator import Translator

        translator = Translator.from_run(args.model, args.checkpoint, args.device)
        results, decode = translator.hypotheses(lines, **options), translator.vocabs.tgt.decode
    with open_output(args.output) as out:
        for i, hyps in enumerate(results):
            if options.get("n_best", 1) > 1:
                for h in hyps:
                    out.write(f"{i} ||| {decode(h.tokens)} ||| {h.score:.4f}\n")
            else:
                out.write(decode(hyps[0].tokens) + "\n")
    return 0
