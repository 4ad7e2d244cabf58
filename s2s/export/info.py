"""What a training run or an exported bundle holds (``s2s info``): architecture, parameters per
part, vocabularies, data, training, scores and files.

It lives in the export layer because that is the one layer that reads both: a run through its
recipe and checkpoint (:mod:`s2s.runs`), a bundle through ``bundle.json`` (:mod:`s2s.bundle`)
and, for a bundle exported before ``bundle.json`` recorded its parameter counts, the ONNX
graphs' weights. :func:`describe` returns plain JSON-ready data; :func:`format_info` renders it.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

from s2s.bundle import Bundle, is_bundle, read_bundle
from s2s.errors import RunError

# the recipe fields that say how big a part is (others, such as dropout, are training settings)
SIZE_FIELDS = ("hidden", "layers", "heads", "ffn", "bidirectional", "copy", "coverage")
EMBEDDING_FIELDS = ("dim", "tie_output", "share_src_tgt")


def describe(path: str | Path, checkpoint: str = "best") -> dict:
    """A bundle's (it has ``bundle.json``) or a run directory's description."""
    if is_bundle(path):
        return describe_bundle(path)
    if not Path(path).is_dir():
        raise RunError(f"{path}: no such run directory or bundle")
    return describe_run(path, checkpoint)


# --------------------------------------------------------------------------- a run
def describe_run(run_dir: str | Path, checkpoint: str = "best") -> dict:
    """From the recipe, the ``checkpoint`` weights, ``last.pt``'s position, ``metrics.jsonl`` and
    ``train.log``."""
    import s2s.models  # noqa: F401  (registers the parts the recipe names)
    from s2s.models.build import count_parameters_by_part
    from s2s.runs import checkpoint_metrics, load_run

    run_dir = Path(run_dir)
    recipe, vocabs, model = load_run(run_dir, checkpoint)
    config = recipe.model
    architecture = {name: _sizes(asdict(getattr(config, name))) for name in ("encoder", "attention", "decoder")}
    return {
        "kind": "run", "path": str(run_dir), "recipe": recipe.name,
        "architecture": {"embeddings": _sizes(asdict(config.embeddings), EMBEDDING_FIELDS), **architecture},
        "parameters": count_parameters_by_part(model), "parameters_from": f"checkpoints/{checkpoint}",
        "vocabulary": {"source": len(vocabs.src), "target": len(vocabs.tgt), "joint": recipe.vocab.joint},
        "data": _run_data(asdict(recipe.data), run_dir / "train.log"),
        "training": _run_training(run_dir),
        "scores": {"validation": checkpoint_metrics(run_dir, checkpoint), "test": _test_scores(run_dir)},
        "files": {p.stem: {"file": str(p.relative_to(run_dir)), "bytes": p.stat().st_size}
                  for p in sorted((run_dir / "checkpoints").glob("*.pt"))},
    }


def _sizes(part: dict, fields: tuple[str, ...] = SIZE_FIELDS) -> dict:
    """A part's type and size ``fields``; flags only when on, sizes only when set (not 0)."""
    return {k: v for k, v in part.items() if k == "type" or (k in fields and v)}


def _split_source(split: dict, hub: str | None) -> str | None:
    """Where a split's pairs come from: a file, a source + target pair of files, or the hub."""
    if split.get("path"):
        return split["path"]
    if split.get("src"):
        return f"{split['src']} + {split['tgt']}"
    return f"{hub} [{split.get('hub_split')}]" if hub and split.get("hub_split") else None


def _run_data(data: dict, log: Path) -> dict:
    """Each split's source, and the sizes the run logged when it read them (the last time)."""
    out = {split: {"source": _split_source(data[split], data.get("hub"))} for split in ("train", "valid", "test")}
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    for split, pairs in re.findall(r"\b(train|valid): (\d+) pairs from", text):
        out[split]["pairs"] = int(pairs)
    tokens = re.findall(r"(\d+) training target tokens", text)
    if tokens:
        out["train"]["target_tokens"] = int(tokens[-1])
    return out


def _run_training(run_dir: Path) -> dict:
    """Updates, epochs and minutes from ``last.pt``'s position (over every resume), or {}."""
    import torch

    path = run_dir / "checkpoints" / "last.pt"
    if not path.is_file():
        return {}
    position = torch.load(path, map_location="cpu", weights_only=True).get("position", {})
    return {"steps": position.get("step"), "epochs": position.get("epoch"),
            "minutes": round(position.get("elapsed", 0.0) / 60.0, 1), "stopped": position.get("stopped") or None}


def _test_scores(run_dir: Path) -> dict:
    """The last ``s2s evaluate --model RUN`` on the recipe's test split (:func:`s2s.runs.last_test_scores`):
    its ``test_*`` scores, with the checkpoint and step they are of; {} when none was recorded."""
    from s2s.runs import last_test_scores

    record = last_test_scores(run_dir)
    scores = {k: v for k, v in record.items() if k.startswith("test_")}
    return {"checkpoint": record.get("checkpoint"), "step": record.get("step"), **scores} if scores else {}


# --------------------------------------------------------------------------- a bundle
def describe_bundle(path: str | Path) -> dict:
    """From ``bundle.json`` (its architecture, graph specs and provenance) and the files."""
    bundle = read_bundle(path)
    meta, provenance = bundle.meta, bundle.meta.get("provenance", {})
    metrics = provenance.get("metrics", {})
    parameters, source = provenance.get("parameters"), "bundle.json"
    if not parameters:
        parameters, source = _graph_weights(bundle)
    data = provenance.get("data", {})
    return {
        "kind": "bundle", "path": str(path), "recipe": provenance.get("recipe"),
        "architecture": _bundle_architecture(bundle),
        "parameters": parameters, "parameters_from": source,
        "vocabulary": {"source": meta["vocab"]["source_size"], "target": meta["vocab"]["target_size"],
                       "joint": meta["vocab"]["joint"]},
        "data": {split: {"source": _split_source(v, data.get("hub"))}
                 for split, v in data.items() if isinstance(v, dict)},
        "training": {"run": provenance.get("run"), "checkpoint": provenance.get("checkpoint"),
                     "steps": metrics.get("step")},
        "scores": {"validation": {k: v for k, v in metrics.items() if not k.startswith("test_")},
                   "test": {k: v for k, v in metrics.items() if k.startswith("test_")}},
        "files": _bundle_files(bundle),
    }


def _bundle_architecture(bundle: Bundle) -> dict:
    """Types from ``architecture``, sizes read off the graphs' memory and state shapes."""
    parts = {part: {"type": kind} for part, kind in bundle.meta["architecture"].items()}
    graphs = bundle.meta["graphs"]
    memory = {m["name"]: m["shape"] for m in graphs["memory"]}
    state = {s["name"]: s["shape"] for s in graphs["state"]}
    parts["encoder"]["output"] = memory["memory_bank"][-1]
    if "self_keys.0" in state:  # transformer: (batch, heads, d, steps) per layer
        heads, size = state["self_keys.0"][1:3]
        layers = sum(name.startswith("self_keys.") for name in state)
        parts["decoder"].update(hidden=heads * size, layers=layers, heads=heads)
    elif "hidden" in state:  # RNN: (batch, layers, hidden)
        parts["decoder"].update(hidden=state["hidden"][2], layers=state["hidden"][1])
    if graphs.get("copy_extends") or "copy_ids" in memory:
        parts["decoder"]["copy"] = True
    if "coverage" in state:
        parts["decoder"]["coverage"] = True
    return parts


def _graph_weights(bundle: Bundle) -> tuple[dict, str]:
    """Values stored in each graph of the default variant (ONNX initializers: the weights, and
    constants such as a position table; a matrix both graphs use is counted in each)."""
    import onnx

    variant = bundle.default_variant
    counts = {}
    for role, name in bundle.variants[variant].items():
        if role == "weights":  # the graphs' shared tensors: counted in each graph that names them
            continue
        graph = onnx.load(str(bundle.file(name)), load_external_data=False).graph
        counts[f"{role} graph"] = sum(_product(t.dims) for t in _initializers(graph))
    return counts, f"ONNX initializers of the {variant} graphs"


def _initializers(graph):
    """A graph's initializers and those of the graphs in its nodes (the search loop's body)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            yield from (t for sub in ([attr.g] if attr.HasField("g") else attr.graphs) for t in _initializers(sub))


def _product(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _bundle_files(bundle: Bundle) -> dict:
    """Each variant's graph files and the vocabulary files, with their sizes in bytes."""
    files = {f"{variant} {role}": (name, bundle.file(name).stat().st_size)
             for variant, roles in bundle.variants.items() for role, name in roles.items()}
    for side, vocab in zip(("source", "target"), bundle.vocab_files()):
        files[f"vocabulary ({side})"] = (vocab.name, vocab.stat().st_size)
    if bundle.meta["vocab"].get("joint"):
        files.pop("vocabulary (target)", None)
    return {key: {"file": name, "bytes": size} for key, (name, size) in files.items()}


# --------------------------------------------------------------------------- text
def format_info(info: dict) -> str:
    """The description as indented text, one fact a line."""
    lines = [f"{info['path']} ({info['kind']}, recipe {info.get('recipe') or '?'})", "architecture"]
    for part, fields in info["architecture"].items():
        lines.append(f"  {part:11s} {_fields(fields)}")
    lines.append(f"parameters ({info['parameters_from']})")
    total = info["parameters"].get("total")
    for part, count in info["parameters"].items():
        share = f"  {100.0 * count / total:5.1f}%" if total and part != "total" else ""
        lines.append(f"  {part:20s} {count:>12,}{share}")
    v = info["vocabulary"]
    lines.append(f"vocabulary     {v['source']:,} source, {v['target']:,} target pieces"
                 f"{' (joint)' if v['joint'] else ''}")
    lines += _section("data", {split: _data_line(d) for split, d in info["data"].items() if d.get("source")})
    lines += _section("training", {k: v for k, v in info["training"].items() if v is not None})
    scores = info["scores"]
    lines += _section("scores", {"validation": _fields(scores["validation"]) or "not recorded",
                                 "test": _fields(scores["test"]) or "not recorded"})
    lines += _section("files", {name: _file_line(f) for name, f in info["files"].items()})
    return "\n".join(lines)


def _section(title: str, rows: dict) -> list[str]:
    return [title, *(f"  {key:20s} {value}" for key, value in rows.items())] if rows else []


def _fields(fields: dict) -> str:
    """``type`` first, then ``key value`` pairs; True flags by name; None values left out."""
    kind = fields.get("type")
    rest = ", ".join(key if value is True else f"{key} {_number(value)}"
                     for key, value in fields.items() if key != "type" and value is not None and value is not False)
    return f"{kind}{': ' if rest else ''}{rest}" if kind else rest


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _data_line(split: dict) -> str:
    sizes = [f"{split['pairs']:,} pairs"] if "pairs" in split else []
    if "target_tokens" in split:
        sizes.append(f"{split['target_tokens']:,} target tokens")
    return f"{', '.join(sizes)} from {split['source']}" if sizes else split["source"]


def _file_line(entry: dict) -> str:
    return f"{entry['bytes'] / 1e6:8.1f} MB  {entry['file']}"
