"""Summarization end to end on a slice of the Debian descriptions: JSONL with named fields,
truncated sources, copy attention and coverage, ROUGE-L validation, export (fp32 and int8), the
runtime giving PyTorch's tokens, and tools/check_parity.py on JSONL sources."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import DATA

DEBIAN = DATA / "debian-descriptions"
ROOT = Path(__file__).resolve().parents[2]
DECODERS = {
    "transformer": ({"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "ffn": 32, "dropout": 0.1},
                    {"type": "multihead", "heads": 2},
                    {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.1}),
    "bilstm": ({"type": "lstm", "hidden": 8, "layers": 1, "bidirectional": True},
               {"type": "bahdanau"}, {"type": "lstm", "hidden": 16, "layers": 1, "dropout": 0.1}),
}


@pytest.fixture(scope="module")
def debian_slice(tmp_path_factory) -> dict[str, Path]:
    """300 training and 30 validation/test records of the Debian descriptions as .jsonl.gz."""
    if not DEBIAN.is_dir():
        pytest.skip(f"debian-descriptions not found at {DEBIAN} (set S2S_DATA)")
    out = tmp_path_factory.mktemp("debian")
    files = {}
    for split, count in (("train", 300), ("valid", 30), ("test", 30)):
        with gzip.open(DEBIAN / f"{split}.jsonl.gz", "rt", encoding="utf-8") as handle:
            lines = [line for _, line in zip(range(count), handle)]
        files[split] = out / f"{split}.jsonl.gz"
        with gzip.open(files[split], "wt", encoding="utf-8") as handle:
            handle.writelines(lines)
    return files


@pytest.mark.parametrize("family", list(DECODERS))
def test_copy_coverage_summarizer_trains_on_rouge_exports_and_the_runtime_agrees(debian_slice, tmp_path, family):
    from s2s.config import recipe_from_dict
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator
    from s2s.training.loop import train

    encoder, attention, decoder = DECODERS[family]
    recipe = recipe_from_dict({
        "name": "summarize",
        "data": {"src_field": "text", "tgt_field": "summary", "max_src_len": 48, "truncate_src": True,
                 "max_tgt_len": 24, **{split: {"path": str(path)} for split, path in debian_slice.items()}},
        "vocab": {"size": 400, "joint": True},
        "model": {"embeddings": {"dim": 16, "dropout": 0.1}, "encoder": encoder, "attention": attention,
                  "decoder": {**decoder, "copy": True, "coverage": True}},
        "train": {"batch_tokens": 300, "max_steps": 16, "valid_every": 8, "log_every": 4, "progress": False,
                  "threads": 1, "lr": 0.01, "coverage_loss": 0.5, "valid_metric": "rougeL", "best_metric": "rougeL"},
        "decode": {"beam": 3, "max_len": 12, "no_repeat_ngram": 3, "batch_size": 8},
    })
    assert recipe.decode.max_src_len == 48  # follows data.max_src_len: decoding reads what training read
    train(recipe, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["valid_rougeL"] for r in records if "valid_rougeL" in r]  # validated on ROUGE-L
    meta = export_bundle(tmp_path / "run", tmp_path / "bundle", quantize="int8")
    assert meta["verification"]["greedy_equal"] and meta["verification"]["beam5_equal"]
    assert meta["decode"]["max_src_len"] == 48 and not meta["graphs"]["copy_extends"]  # one joint vocabulary
    assert "valid_rougeL" in meta["provenance"]["metrics"]
    texts = [json.loads(line)["text"] for line in gzip.open(debian_slice["test"], "rt", encoding="utf-8")][:12]
    ours = TorchTranslator.from_run(tmp_path / "run")
    theirs = Translator.load(tmp_path / "bundle", providers=["CPUExecutionProvider"], tune_allocator=False)
    with torch.inference_mode():
        a = ours.hypotheses(texts)
    b = theirs.hypotheses(texts)
    assert [h[0].tokens for h in a] == [h[0].tokens for h in b]
    int8 = Translator.load(tmp_path / "bundle", "int8", providers=["CPUExecutionProvider"], tune_allocator=False)
    assert all(isinstance(t, str) for t in int8.translate(texts))
    done = subprocess.run([sys.executable, ROOT / "tools" / "check_parity.py", "--model", tmp_path / "run",
                           "--bundle", tmp_path / "bundle", "--source", debian_slice["test"], "--field", "text",
                           "--limit", "10", "--beam", "3", "--threads", "1"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "differing_sentences    0" in done.stdout
