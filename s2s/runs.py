"""A training run directory: where its pieces live, and loading them back.

::

    RUN/config.yaml            the resolved recipe (every default spelled out)
    RUN/vocab/                 the sentencepiece model(s)
    RUN/checkpoints/NAME.pt    best, last, averaged, step-N
    RUN/metrics.jsonl          one JSON object per log line or validation
    RUN/test_scores.jsonl      one JSON object per ``s2s evaluate --model RUN`` on the recipe's test split
    RUN/train.log

:func:`load_run` raises :class:`~s2s.errors.RunError` naming the missing piece.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from s2s.config import Recipe, load_recipe
from s2s.data.vocab import Vocabs, load_vocabs
from s2s.errors import RunError
from s2s.models.build import build_model
from s2s.models.contract import Seq2Seq

RUN_FILES = ("config.yaml", "vocab")


def is_run(path: str | Path) -> bool:
    return all((Path(path) / name).exists() for name in RUN_FILES)


def check_run(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        if not (run_dir / name).exists():
            raise RunError(f"{run_dir}: not a run directory (missing {name})")
    return run_dir


def checkpoint_path(run_dir: str | Path, checkpoint: str = "best") -> Path:
    """``checkpoints/NAME.pt``; a run that has not validated yet has no ``best`` and gives ``last``."""
    folder = Path(run_dir) / "checkpoints"
    path = folder / f"{checkpoint}.pt"
    if not path.is_file() and checkpoint == "best":
        path = folder / "last.pt"
    if not path.is_file():
        found = sorted(p.stem for p in folder.glob("*.pt"))
        raise RunError(f"{path}: no such checkpoint; the run has {found or 'none yet'}")
    return path


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> tuple[Recipe, Vocabs, Seq2Seq]:
    """Recipe, vocabularies and weights of a training run directory, the model in eval mode.

    ``checkpoint`` names a file of ``checkpoints/``: ``best``, ``last``, ``averaged`` or ``step-N``.
    """
    run_dir = check_run(run_dir)
    recipe = load_recipe(run_dir / "config.yaml")
    vocabs = load_vocabs(run_dir / "vocab", recipe.vocab.joint)
    path = checkpoint_path(run_dir, checkpoint)
    model = build_model(recipe.model, len(vocabs.src), len(vocabs.tgt), vocabs.source_to_target())
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return recipe, vocabs, model.to(device).eval()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl``, in order. A line that is not a JSON object is left out:
    only a run killed while writing it leaves one (its resumed run starts a new line)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def checkpoint_metrics(run_dir: str | Path, checkpoint: str = "best") -> dict:
    """The validation line of ``metrics.jsonl`` that scored ``checkpoint`` (step, the decoded
    metric ``valid_<train.valid_metric>``, loss), or {}: for ``best`` the last line marked best,
    for ``averaged`` the averaged weights' line, for ``last`` the last validation, for ``step-N``
    the validation of step N. The averaged weights' line is never another checkpoint's."""
    run_dir = Path(run_dir)
    metric = "valid_bleu"
    if (run_dir / "config.yaml").is_file():
        metric = f"valid_{load_recipe(run_dir / 'config.yaml').train.valid_metric}"
    path = run_dir / "metrics.jsonl"
    rows = read_metrics(path) if path.is_file() else []
    rows = [row for row in rows if "valid_loss" in row]
    if checkpoint == "averaged":
        rows = [row for row in rows if "averaged" in row]
    else:
        rows = [row for row in rows if "averaged" not in row]
        if checkpoint == "best":
            rows = [row for row in rows if row.get("best")]
        elif checkpoint.startswith("step-"):
            rows = [row for row in rows if f"step-{row.get('step')}" == checkpoint]
    return {k: rows[-1][k] for k in ("step", metric, "valid_loss") if k in rows[-1]} if rows else {}


def record_test_scores(run_dir: str | Path, checkpoint: str, options: dict, scores: dict) -> Path:
    """Append one evaluation of ``checkpoint`` on the recipe's test split to
    ``RUN/test_scores.jsonl``: the checkpoint's step, the decoding options given, and each score
    as ``test_<metric>`` (signatures kept beside them)."""
    path = Path(run_dir) / "test_scores.jsonl"
    step = checkpoint_metrics(run_dir, checkpoint).get("step")
    record = {"checkpoint": checkpoint, "step": step, "decode": options,
              **{f"test_{name}": value for name, value in scores.items() if name != "signatures"},
              "signatures": scores.get("signatures", {})}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    return path


def last_test_scores(run_dir: str | Path) -> dict:
    """The last record of ``RUN/test_scores.jsonl`` ({} when none; a cut line is skipped, as
    :func:`read_metrics` does)."""
    path = Path(run_dir) / "test_scores.jsonl"
    records = read_metrics(path) if path.is_file() else []
    return records[-1] if records else {}
