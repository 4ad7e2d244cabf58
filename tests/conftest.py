"""Shared fixtures: small slices of the real corpora and tiny recipes (hidden sizes 8-32)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("S2S_DATA") or ROOT.parent / "shared" / "data")
MULTI30K = DATA / "multi30k"


def _slice(src: Path, dst: Path, start: int, count: int) -> Path:
    with gzip.open(src, "rt", encoding="utf-8") as handle:
        lines = [line for i, line in enumerate(handle) if start <= i < start + count]
    dst.write_text("".join(lines), encoding="utf-8")
    return dst


@pytest.fixture(scope="session")
def multi30k_slice(tmp_path_factory) -> dict[str, Path]:
    """200 training and 40 validation/test pairs of Multi30k en-de as plain text files."""
    if not MULTI30K.is_dir():
        pytest.skip(f"Multi30k not found at {MULTI30K} (set S2S_DATA)")
    out = tmp_path_factory.mktemp("multi30k")
    files = {}
    for split, name, start, count in (("train", "train", 0, 200), ("valid", "val", 0, 40),
                                      ("test", "test_2016_flickr", 0, 40)):
        for lang in ("en", "de"):
            files[f"{split}.{lang}"] = _slice(MULTI30K / f"{name}.{lang}.gz", out / f"{split}.{lang}", start, count)
    return files


def tiny_recipe_dict(files: dict[str, Path], **sections) -> dict:
    """A recipe dict for a tiny model over :func:`multi30k_slice` files; ``sections`` override."""
    raw = {
        "name": "tiny",
        "data": {split: {"src": str(files[f"{split}.en"]), "tgt": str(files[f"{split}.de"])}
                 for split in ("train", "valid", "test")},
        "vocab": {"size": 300, "joint": True},
        "model": {
            "embeddings": {"dim": 16, "dropout": 0.1},
            "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.1},
            "attention": {"type": "bahdanau"},
            "decoder": {"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.1},
        },
        "train": {"batch_tokens": 400, "max_steps": 8, "valid_every": 4, "log_every": 2, "progress": False,
                  "threads": 1, "lr": 0.005},
        "decode": {"beam": 2, "batch_size": 16},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


@pytest.fixture
def tiny_recipe(multi30k_slice):
    """Factory: ``tiny_recipe(train={...}, model={...})`` -> a checked Recipe."""
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict

    def make(**sections):
        return recipe_from_dict(tiny_recipe_dict(multi30k_slice, **sections))

    return make


@pytest.fixture
def tiny_model_factory():
    """Factory for a tiny random Seq2Seq: ``make(encoder=..., decoder=..., attention=..., **emb)``."""
    import torch

    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.models.build import build_model

    def make(encoder=None, decoder=None, attention=None, vocab=40, seed=0, source_to_target=None, **embeddings):
        """``source_to_target``: copy attention's table (the identity over ``vocab`` ids by default)."""
        import numpy as np

        model_section = {
            "embeddings": {"dim": 16, "dropout": 0.0, **embeddings},
            "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.0, **(encoder or {})},
            "attention": {"type": "bahdanau", **(attention or {})},
            "decoder": {"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.0, **(decoder or {})},
        }
        recipe = recipe_from_dict({"model": model_section})
        torch.manual_seed(seed)
        table = np.arange(vocab) if source_to_target is None else np.asarray(source_to_target)
        return build_model(recipe.model, len(table), vocab, table).eval()

    return make


@pytest.fixture(scope="session")
def tiny_recipe_raw(multi30k_slice):
    """Factory: ``tiny_recipe_raw(train={...})`` -> the raw recipe dict (to write as YAML)."""
    return lambda **sections: tiny_recipe_dict(multi30k_slice, **sections)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, multi30k_slice) -> Path:
    """A tiny exported bundle, built once per session: 20 training steps of a hidden-8/16 LSTM.
    Its translations are nonsense; it exercises the runtime, the CLI and the server."""
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.export.bundle import export_bundle
    from s2s.training.loop import train

    recipe = recipe_from_dict(tiny_recipe_dict(multi30k_slice, train={
        "max_steps": 20, "valid_every": 20, "valid_bleu": False, "best_metric": "loss", "lr": 0.02}))
    run = tmp_path_factory.mktemp("tiny-bundle-run")
    train(recipe, run)
    out = tmp_path_factory.mktemp("tiny-bundles") / "tiny"
    export_bundle(run, out)
    return out


def _train_tiny(root: Path, files: dict[str, Path], **sections) -> Path:
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.training.loop import train

    run = root / "run"
    train(recipe_from_dict(tiny_recipe_dict(files, **sections)), run)
    return run


@pytest.fixture(scope="session")
def tiny_lstm_run(tmp_path_factory, multi30k_slice) -> Path:
    """A tiny trained run directory, built once per session: 8 updates of the hidden-8/16 LSTM
    with Bahdanau attention of :func:`tiny_recipe_dict`, validated (loss and BLEU) at 4 and 8."""
    return _train_tiny(tmp_path_factory.mktemp("tiny-lstm"), multi30k_slice)


@pytest.fixture(scope="session")
def tiny_transformer_run(tmp_path_factory, multi30k_slice) -> Path:
    """A tiny trained transformer run, built once per session: 2 layers of 2 heads, hidden 16,
    4 updates, validated on loss only."""
    part = {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.1}
    return _train_tiny(tmp_path_factory.mktemp("tiny-transformer"), multi30k_slice,
                       model={"embeddings": {"dim": 16, "dropout": 0.0}, "encoder": dict(part),
                              "attention": {"type": "multihead", "heads": 2}, "decoder": dict(part)},
                       train={"max_steps": 4, "valid_every": 4, "valid_bleu": False, "best_metric": "loss"})
