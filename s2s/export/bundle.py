"""``s2s export``: a run directory in, a verified bundle out.

The bundle is assembled in a temporary folder beside the target and moved into place only
after :func:`s2s.export.parity.verify` has run PyTorch and onnxruntime side by side on it, so a
failed export leaves any earlier bundle untouched.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

import s2s
from s2s.bundle import bundle_meta, write_bundle_json
from s2s.config import Recipe
from s2s.data.vocab import vocab_paths
from s2s.errors import BundleError
from s2s.export.onnx import OPSET, add_search_head, export_graphs, export_heads_graph
from s2s.models.build import count_parameters_by_part
from s2s.runs import checkpoint_metrics, load_run


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantization of the matrix products (weights int8, activations at run time)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a generic pre-processing hint at WARNING
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def export_bundle(run: str | Path, out: str | Path, quantize: str | None = None, opset: int = OPSET,
                  checkpoint: str = "best", sample: list[str] | None = None, test_bleu: float | None = None,
                  keep_fp32: bool = True, attention_heads: bool = False, search: bool = False) -> dict:
    """Export ``run`` to the bundle folder ``out``; returns the written ``bundle.json`` content.
    Without ``keep_fp32`` (only with ``quantize``) the fp32 graphs are verified against PyTorch,
    then left out of the bundle: the int8 graphs are quantized from them, and the bundle is about
    a quarter of the size. With ``attention_heads`` the bundle also holds
    ``attention_heads.onnx`` (each decoder layer's heads, for ``s2s plot attention --heads all``).
    With ``search`` each variant also gets ``search.onnx`` (:func:`add_search_graphs`)."""
    from s2s.export.parity import verify

    run, out = Path(run), Path(out)
    if quantize not in (None, "int8"):
        raise BundleError(f"--quantize must be int8, got {quantize!r}")
    if not keep_fp32 and quantize is None:
        raise BundleError("--no-fp32 needs --quantize int8: a bundle needs at least one variant")
    recipe, vocabs, model = load_run(run, checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        spec = export_graphs(model, work, opset)
        add_search_head(work / "decoder_step.onnx")
        roles = ["encoder", "decoder_step"]
        if attention_heads:
            export_heads_graph(model, work, opset)
            roles.append("attention_heads")
        variants = {"fp32": {role: f"{role}.onnx" for role in roles}}
        if quantize == "int8":
            for role in roles:
                quantize_int8(work / f"{role}.onnx", work / f"{role}.int8.onnx")
            variants["int8"] = {role: f"{role}.int8.onnx" for role in roles}
        src_model, tgt_model = vocab_paths(run / "vocab", recipe.vocab.joint)
        for path in {src_model, tgt_model}:
            shutil.copy2(path, work / path.name)
        meta = _metadata(recipe, run, checkpoint, model, spec, variants, src_model.name, tgt_model.name, opset,
                         vocabs.special)
        if test_bleu is not None:
            meta["provenance"]["metrics"]["test_bleu"] = test_bleu
        write_bundle_json(meta, work)
        meta["verification"] = verify(model, vocabs, work, sample)
        if not keep_fp32:
            for name in meta["graphs"]["variants"].pop("fp32").values():
                (work / name).unlink()
        write_bundle_json(meta, work)
        if search:
            add_search_graphs(work, sample)
        work.chmod(0o755)  # mkdtemp made it private
        if out.exists():
            shutil.rmtree(out)
        work.replace(out)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return meta


def _family(recipe: Recipe) -> str:
    """``rnn``, ``transformer``, or ``hybrid`` when the encoder and decoder differ in kind."""
    kinds = {"transformer" if part.type == "transformer" else "rnn"
             for part in (recipe.model.encoder, recipe.model.decoder)}
    return kinds.pop() if len(kinds) == 1 else "hybrid"


def _metadata(recipe: Recipe, run: Path, checkpoint: str, model, spec, variants, src_name, tgt_name, opset,
              special) -> dict:
    return bundle_meta(
        model_family=_family(recipe),
        architecture={"encoder": recipe.model.encoder.type, "attention": recipe.model.attention.type,
                      "decoder": recipe.model.decoder.type},
        special=special,
        vocab={"source": src_name, "target": tgt_name, "joint": recipe.vocab.joint,
               "source_size": model.src_embed.num_embeddings, "target_size": model.tgt_embed.num_embeddings},
        max_lengths={"source": recipe.data.max_src_len, "target": recipe.data.max_tgt_len},
        decode=recipe.decode,
        graphs={
            "opset": opset,
            "memory": spec.memory_specs,
            "state": spec.state_specs,
            "variants": variants,
            "search_head": True,
            "memory_per_sentence": bool(model.decoder.memory_per_sentence),
            "copy_extends": bool(model.copy is not None and model.copy.extends),
        },
        provenance={
            "s2s_version": s2s.__version__, "commit": _commit(), "recipe": recipe.name, "run": str(run),
            "checkpoint": checkpoint, "torch": torch.__version__,
            "data": {"train": asdict(recipe.data.train), "hub": recipe.data.hub},
            "metrics": checkpoint_metrics(run, checkpoint),
            "parameters": count_parameters_by_part(model),
        },
    )


def add_search_graphs(folder: str | Path, sample: list[str] | None = None) -> dict:
    """Add ``search[.variant].onnx`` to each variant of the bundle in ``folder`` (a bundle written
    by any earlier export: only its graphs are read), then keep each variant's tensors in one
    ``weights[.variant].bin`` shared by its graphs (:mod:`s2s.export.weights`). The graph search
    must give the Python search's tokens on the sample sentences, greedy and beam 5, or the
    bundle is left as it was. Returns the new ``bundle.json`` content."""
    import json

    from s2s.bundle import read_bundle
    from s2s.export.parity import DEFAULT_SAMPLE
    from s2s.export.search_graph import write_search_graph
    from s2s.export.weights import share_weights
    from s2s.runtime.translator import Translator

    folder = Path(folder)
    bundle = read_bundle(folder)
    meta = json.loads(json.dumps(bundle.meta))
    written = []
    try:
        for variant, files in meta["graphs"]["variants"].items():
            files["search"] = write_search_graph(folder, variant, meta, bundle.special, bundle.decode)
            written.append(files["search"])
            weights = "weights.bin" if variant == "fp32" else f"weights.{variant}.bin"
            share_weights(folder, [name for role, name in files.items() if role != "weights"], weights)
            files["weights"] = weights
        write_bundle_json(meta, folder)
        for variant in meta["graphs"]["variants"]:
            python = Translator.load(folder, variant, providers=["CPUExecutionProvider"])
            graph = Translator.load(folder, variant, providers=["CPUExecutionProvider"], search="graph")
            lines = sample or DEFAULT_SAMPLE
            for beam in (1, 5):
                if python.translate(lines, beam=beam) != graph.translate(lines, beam=beam):
                    raise BundleError(f"{folder}: search.onnx ({variant}) differs from the Python search at beam "
                                      f"{beam} on the sample sentences")
    except BaseException:
        write_bundle_json(bundle.meta, folder)  # the graphs still read: their weights file is complete
        for name in written:
            (folder / name).unlink(missing_ok=True)
        raise
    return meta
