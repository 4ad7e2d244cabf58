"""``s2s export --model RUN --out DIR``: a verified ONNX bundle from a trained run."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a trained run to an ONNX bundle",
                       description="Write encoder.onnx, decoder_step.onnx, the sentencepiece model(s) and "
                                   "bundle.json; PyTorch and onnxruntime are compared before it reports success.")
    p.add_argument("--model", required=True,
                   help="run directory; or, with --search alone, a bundle to add the search graph to in place")
    p.add_argument("--out", help="bundle folder to write (replaced when the export succeeds); required for a run")
    p.add_argument("--quantize", choices=["int8"], help="also write dynamically int8-quantized graphs (CPU)")
    p.add_argument("--no-fp32", dest="keep_fp32", action="store_false",
                   help="with --quantize int8: leave the fp32 graphs out (they are verified first); a quarter of the size")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--checkpoint", default="best", metavar="NAME",
                   help="which weights of the run: best, last, averaged or step-N (default: best)")
    p.add_argument("--attention-heads", action="store_true",
                   help="also export attention_heads.onnx: every decoder layer's cross-attention, head by head, "
                        "for s2s plot attention --layer/--heads all on the bundle (transformer decoders)")
    p.add_argument("--search", action="store_true",
                   help="also write search.onnx per variant: the whole beam search in one graph, for onnxruntime in "
                        "any language (the variant's graphs then share one weights file)")
    p.add_argument("--test-bleu", type=float, help="record this test BLEU in the bundle's provenance")
    p.set_defaults(run=run)


def run(args) -> int:
    from s2s.bundle import is_bundle
    from s2s.errors import ConfigError

    if is_bundle(args.model):
        from s2s.export.bundle import add_search_graphs

        if not args.search or args.out or args.quantize or args.attention_heads:
            raise ConfigError(f"{args.model} is a bundle: only --search applies to it (in place); "
                              "other options need the training run")
        meta = add_search_graphs(args.model)
        print(f"{args.model}: search graphs added ({', '.join(meta['graphs']['variants'])}); they give the Python "
              "search's tokens on the sample sentences, greedy and beam 5")
        return 0
    if not args.out:
        raise ConfigError("--out is required to export a run")
    import s2s.models  # noqa: F401
    from s2s.export.bundle import export_bundle

    meta = export_bundle(args.model, args.out, args.quantize, args.opset, args.checkpoint, test_bleu=args.test_bleu,
                         keep_fp32=args.keep_fp32, attention_heads=args.attention_heads, search=args.search)
    check = meta["verification"]
    print(f"{args.out}: exported ({', '.join(meta['graphs']['variants'])}); onnxruntime == PyTorch "
          f"(max diff {check['max_abs_diff']:.2e}, greedy and beam 5 equal on {check['sample_sentences']} sentences)")
    return 0
