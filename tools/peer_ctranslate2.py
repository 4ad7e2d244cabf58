"""CTranslate2, a dedicated C++ inference engine, as a peer for the decoding benchmark.

    python tools/peer_ctranslate2.py convert --model RUN --out DIR [--quantize int8]
    python tools/peer_ctranslate2.py check --model RUN --ct2 DIR [--limit 40]
    python tools/peer_ctranslate2.py time --ct2 DIR --source FILE --batch 1 --beam 5 --json OUT

Needs ``pip install ctranslate2`` (the project's ``bench`` extra); s2s itself does not use it.

``convert`` writes a run whose encoder and decoder are both transformers as a CTranslate2 model
with the same weights: the run's sentencepiece pieces as vocabulary, EOS appended to every
source as s2s does, the run's own position table, sqrt(d) embedding scaling and layer-norm
epsilon. ``check`` shows that the conversion is exact: CTranslate2's teacher-forced
log-probabilities of reference translations against PyTorch's, and both engines' greedy output.

``time`` is what ``tools/bench_decode.py`` runs, in a process of its own, for its
``ctranslate2-fp32`` and ``ctranslate2-int8`` engines: one warm-up batch, then one timed
``translate_batch`` over all lines (CTranslate2 sorts them by length and batches them itself),
writing the best hypothesis's pieces and the seconds. Running it apart keeps the two engines'
thread pools (OpenMP there, onnxruntime's here) from competing for the same two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data")
DEFAULT_SOURCE = DATA / "multi30k" / "test_2016_flickr.en.gz"


def _require_ctranslate2():
    try:
        import ctranslate2
    except ImportError:
        raise SystemExit("this needs CTranslate2: pip install ctranslate2 (or the project's bench extra: "
                         "pip install -e '.[bench]')") from None
    return ctranslate2


def transformer_spec(run: str | Path):
    """The CTranslate2 ``TransformerSpec`` of an s2s transformer run, weights filled in."""
    _require_ctranslate2()
    from ctranslate2.specs import common_spec, transformer_spec as ts

    from s2s.runs import load_run

    recipe, vocabs, model = load_run(run)
    enc, dec = recipe.model.encoder, recipe.model.decoder
    if enc.type != "transformer" or dec.type != "transformer":
        raise SystemExit(f"{run}: CTranslate2's transformer needs model.encoder.type and model.decoder.type "
                         f"'transformer', got {enc.type!r} and {dec.type!r}")
    if enc.pre_norm != dec.pre_norm or enc.activation != dec.activation or enc.heads != dec.heads:
        raise SystemExit(f"{run}: CTranslate2's transformer needs the encoder and decoder to share pre_norm, "
                         "activation and heads")
    if any(side.input.proj is not None for side in (model.encoder, model.decoder)):
        raise SystemExit(f"{run}: CTranslate2 needs embeddings.dim equal to the transformer's hidden size")

    def array(tensor):
        return tensor.detach().float().cpu().numpy()

    def linear(spec, layer):
        spec.weight = array(layer.weight)
        if getattr(layer, "bias", None) is not None:
            spec.bias = array(layer.bias)

    def norm(spec, layer):
        spec.gamma, spec.beta = array(layer.weight), array(layer.bias)

    activation = common_spec.Activation.GELU if enc.activation == "gelu" else common_spec.Activation.RELU
    spec = ts.TransformerSpec.from_config((enc.layers, dec.layers), enc.heads, pre_norm=enc.pre_norm,
                                          activation=activation)
    for side, ours in ((spec.encoder, model.encoder), (spec.decoder, model.decoder)):
        side.scale_embeddings = ours.input.scale != 1.0
        positions = ours.input.positions
        side.position_encodings.encodings = array(positions.sinusoid if positions.kind == "sinusoidal"
                                                  else positions.table.weight)
        if ours.final_norm is not None:
            norm(side.layer_norm, ours.final_norm)
    spec.encoder.embeddings[0].weight = array(model.src_embed.weight)
    spec.decoder.embeddings.weight = array(model.tgt_embed.weight)
    spec.decoder.projection.weight = array(model.output.matrix)
    spec.decoder.projection.bias = array(model.output.bias)
    for layer, ours in zip(spec.encoder.layer, model.encoder.layers):
        norm(layer.self_attention.layer_norm, ours.attention_block.norm)
        linear(layer.self_attention.linear[0], ours.self_attention.qkv)  # [W^Q; W^K; W^V], as CTranslate2 packs them
        linear(layer.self_attention.linear[1], ours.self_attention.out)
        norm(layer.ffn.layer_norm, ours.ffn_block.norm)
        linear(layer.ffn.linear_0, ours.feed_forward.inner)
        linear(layer.ffn.linear_1, ours.feed_forward.outer)
    for layer, ours in zip(spec.decoder.layer, model.decoder.layers):
        norm(layer.self_attention.layer_norm, ours.self_block.norm)
        linear(layer.self_attention.linear[0], ours.self_attention.qkv)
        linear(layer.self_attention.linear[1], ours.self_attention.out)
        norm(layer.attention.layer_norm, ours.cross_block.norm)
        linear(layer.attention.linear[0], ours.cross_attention.query_proj)
        linear(layer.attention.linear[1], ours.cross_attention.key_value_proj)  # [W^K; W^V]
        linear(layer.attention.linear[2], ours.cross_attention.out_proj)
        norm(layer.ffn.layer_norm, ours.ffn_block.norm)
        linear(layer.ffn.linear_0, ours.feed_forward.inner)
        linear(layer.ffn.linear_1, ours.feed_forward.outer)
    spec.register_source_vocabulary(vocabs.src.pieces(list(range(len(vocabs.src)))))
    spec.register_target_vocabulary(vocabs.tgt.pieces(list(range(len(vocabs.tgt)))))
    spec.config.layer_norm_epsilon = model.decoder.layers[0].self_block.norm.eps
    spec.config.add_source_eos = True  # s2s feeds the encoder ids + EOS
    spec.config.decoder_start_token = "<s>"
    return spec


def convert(run: str | Path, out: str | Path, quantize: str | None = None) -> Path:
    """Write ``run`` as a CTranslate2 model into ``out`` (``quantize``: None or "int8")."""
    from ctranslate2.converters.converter import Converter

    class RunConverter(Converter):
        def _load(self):
            return transformer_spec(run)

    return Path(RunConverter().convert(str(out), quantization=quantize, force=True))


def check(run: str, ct2_dir: str, source: str, reference: str | None, limit: int) -> dict:
    """Teacher-forced log-probabilities and greedy tokens of both engines on ``limit`` lines."""
    ctranslate2 = _require_ctranslate2()
    import numpy as np
    import torch

    from s2s.data.batching import pad, with_eos
    from s2s.data.corpus import read_lines
    from s2s.data.vocab import BOS, EOS
    from s2s.decoding.translator import Translator
    from s2s.search.constraints import max_lengths

    ours_engine = Translator.from_run(run)
    vocabs, model = ours_engine.vocabs, ours_engine.model
    lines = read_lines(source)[:limit]
    refs = read_lines(reference)[:limit] if reference else ours_engine.translate(lines)
    src_ids, tgt_ids = vocabs.src.encode(lines), vocabs.tgt.encode(refs)
    engine = ctranslate2.Translator(ct2_dir, device="cpu", intra_threads=1)
    scored = engine.score_batch([vocabs.src.pieces(s) for s in src_ids], [vocabs.tgt.pieces(t) for t in tgt_ids])
    worst = 0.0
    with torch.no_grad():
        for s, t, theirs in zip(src_ids, tgt_ids, scored):
            src = torch.from_numpy(pad(with_eos([s])))
            logits = model(src, torch.tensor([len(s) + 1]), torch.tensor([[BOS, *t]]))
            ours = torch.log_softmax(logits.float(), -1)[0, torch.arange(len(t) + 1), torch.tensor([*t, EOS])]
            worst = max(worst, float(np.abs(ours.numpy() - np.asarray(theirs.log_probs)).max()))
    decode = ours_engine.options
    limits = max_lengths(np.array([len(s) + 1 for s in src_ids]), decode.max_len_ratio, decode.max_len_offset,
                         minimum=decode.min_len, maximum=decode.max_len)
    greedy_theirs = [engine.translate_batch([vocabs.src.pieces(s)], beam_size=1, max_decoding_length=int(limit))
                     [0].hypotheses[0] for s, limit in zip(src_ids, limits)]  # s2s's length limit, per sentence
    greedy_ours = [vocabs.tgt.pieces(h[0].tokens) for h in ours_engine.hypotheses(lines, beam=1)]
    same = sum(a == b for a, b in zip(greedy_ours, greedy_theirs))
    return {"sentences": len(lines), "max_abs_log_prob_diff": worst, "greedy_same": same}


THREADING_ENV = ("CT2_", "OMP_", "GOMP_", "KMP_", "MKL_", "DNNL_", "ONEDNN_")


def time_translation(ct2_dir: str, compute_type: str, lines: list[str], pieces_of, batch: int, beam: int,
                     min_len: int, max_len: int, threads: int) -> dict:
    """Warm up on the first batch, then time one ``translate_batch`` over all lines. CTranslate2
    keeps its own length penalty; compare speeds in fixed-length mode (min_len = max_len)."""
    ctranslate2 = _require_ctranslate2()
    engine = ctranslate2.Translator(ct2_dir, device="cpu", compute_type=compute_type, intra_threads=threads,
                                    inter_threads=1)
    source = [pieces_of(line) for line in lines]
    options = dict(beam_size=beam, max_batch_size=batch, min_decoding_length=min_len,
                   max_decoding_length=max_len or 256)
    engine.translate_batch(source[:batch], **options)  # warm-up
    start = time.perf_counter()
    results = engine.translate_batch(source, **options)
    seconds = time.perf_counter() - start
    # the threading settings this process ran with (bench_decode's --ctranslate2-env sets them)
    environment = {k: v for k, v in os.environ.items() if k.startswith(THREADING_ENV)}
    return {"seconds": seconds, "hypotheses": [r.hypotheses[0] for r in results], "environment": environment}


class PeerEngine:
    """``tools/bench_decode.py``'s handle on CTranslate2: converts the run once, then times each
    setting in a fresh ``time`` process and maps the pieces it returns back to ids."""

    def __init__(self, run: str | Path, variant: str, workdir: str | Path, spm_model: str | Path, threads: int,
                 env: dict[str, str] | None = None):
        if variant not in ("fp32", "int8"):
            raise SystemExit(f"ctranslate2-{variant}: the variants are fp32 and int8")
        import sentencepiece as spm

        self.model = convert(run, Path(workdir) / f"ctranslate2-{variant}", "int8" if variant == "int8" else None)
        self.compute_type = "int8" if variant == "int8" else "float32"
        self.spm_model, self.threads, self.workdir = str(spm_model), threads, Path(workdir)
        self.env = dict(env or {})  # set in each worker process (its threading backends read them at start)
        self.last_environment: dict[str, str] = {}  # the threading variables the last worker saw
        self.sp = spm.SentencePieceProcessor(model_file=self.spm_model)

    def timed_hypotheses(self, lines: list[str], beam: int, batch_size: int, min_len: int = 0,
                         max_len: int = 0) -> tuple[list[list[int]], float]:
        """(best hypothesis's ids per line, seconds of the timed ``translate_batch``)."""
        import subprocess

        source, out = self.workdir / "peer-source.txt", self.workdir / "peer-result.json"
        source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        command = [sys.executable, __file__, "time", "--ct2", str(self.model), "--compute-type", self.compute_type,
                   "--spm", self.spm_model, "--source", str(source), "--batch", str(batch_size), "--beam", str(beam),
                   "--min-len", str(min_len), "--max-len", str(max_len), "--threads", str(self.threads),
                   "--json", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **self.env})
        if done.returncode != 0:
            raise SystemExit(f"CTranslate2 worker failed:\n{done.stderr}")
        result = json.loads(out.read_text())
        self.last_environment = result["environment"]
        return [[self.sp.piece_to_id(p) for p in h] for h in result["hypotheses"]], result["seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="write a run as a CTranslate2 model")
    p.add_argument("--model", required=True, help="s2s run directory (transformer encoder and decoder)")
    p.add_argument("--out", required=True)
    p.add_argument("--quantize", choices=["int8"])
    p = sub.add_parser("check", help="compare a converted model with the run's PyTorch model")
    p.add_argument("--model", required=True)
    p.add_argument("--ct2", required=True, help="the converted model (convert --out)")
    p.add_argument("--source", default=str(DEFAULT_SOURCE))
    p.add_argument("--ref", help="reference translations to score (default: PyTorch's beam output)")
    p.add_argument("--limit", type=int, default=40)
    p.add_argument("--json")
    p = sub.add_parser("time", help="time translate_batch (the benchmark's worker)")
    p.add_argument("--ct2", required=True)
    p.add_argument("--compute-type", default="float32")
    p.add_argument("--spm", required=True, help="the sentencepiece model that splits the source")
    p.add_argument("--source", required=True, help="plain or .gz text, one sentence per line")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--min-len", type=int, default=0)
    p.add_argument("--max-len", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", required=True)
    args = parser.parse_args()

    if args.command == "convert":
        print(convert(args.model, args.out, args.quantize))
    elif args.command == "check":
        result = check(args.model, args.ct2, args.source, args.ref, args.limit)
        print(json.dumps(result))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    else:
        import sentencepiece as spm

        from s2s.data.corpus import read_lines

        sp = spm.SentencePieceProcessor(model_file=args.spm)
        lines = read_lines(args.source)
        lines = lines[: args.limit] if args.limit else lines
        result = time_translation(args.ct2, args.compute_type, lines, lambda line: sp.encode(line, out_type=str),
                                  args.batch, args.beam, args.min_len, args.max_len, args.threads)
        Path(args.json).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
