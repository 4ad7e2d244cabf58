"""The benchmark models of ``tools/bench_train.py`` and ``tools/bench_decode.py``: a recipe file
plus the overrides that pin the benchmark's sizes, whatever the recipe's own choices."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ARCHS = {
    "rnn": ("recipes/multi30k-en-de/bilstm-bahdanau.yaml", [
        "vocab.size=8000", "vocab.joint=true", "model.embeddings.dim=256", "model.embeddings.dropout=0.2",
        "model.encoder.type=lstm", "model.encoder.hidden=128", "model.encoder.layers=2",
        "model.encoder.bidirectional=true", "model.encoder.dropout=0.2", "model.attention.type=bahdanau",
        "model.decoder.type=lstm", "model.decoder.hidden=256", "model.decoder.layers=2",
        "model.decoder.dropout=0.2", "model.decoder.input_feeding=true", "train.label_smoothing=0.1",
        "train.optimizer=adam", "train.batch_tokens=3500",
    ]),
    "transformer": ("recipes/multi30k-en-de/transformer.yaml", [
        "vocab.size=8000", "vocab.joint=true", "model.embeddings.dim=256", "model.embeddings.dropout=0.0",
        "model.embeddings.share_src_tgt=true", "model.embeddings.tie_output=true",
        *(f"model.{side}.{key}" for side in ("encoder", "decoder") for key in (
            "type=transformer", "hidden=256", "layers=3", "heads=4", "ffn=1024", "dropout=0.1",
            "attention_dropout=0.0", "activation_dropout=0.0")),
        "model.attention.type=multihead", "model.attention.heads=4", "model.attention.dropout=0.0",
        "train.label_smoothing=0.1", "train.optimizer=adam", "train.batch_tokens=3500",
    ]),
}



def benchmark_recipe(arch: str, extra: list[str] = ()):
    """The checked :class:`~s2s.config.Recipe` of benchmark model ``arch`` (plus ``extra`` overrides)."""
    import s2s.models  # noqa: F401  (registers the parts the recipe names)
    from s2s.config import load_recipe

    path, overrides = ARCHS[arch]
    return load_recipe(ROOT / path, overrides + list(extra))
