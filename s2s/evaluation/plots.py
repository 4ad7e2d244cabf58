"""Pictures of a model at work and of its training: attention heatmaps and training curves.

matplotlib is imported inside the drawing functions, and figures are drawn on its Agg canvas
without pyplot, so plots need no display and importing this module loads no plotting library.
Each ``draw_*`` function returns the :class:`matplotlib.figure.Figure`; :func:`save_figure`
writes it (PNG, PDF or SVG, by the file's suffix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2s.errors import ConfigError, DataError, RunError

Heads = Literal["mean", "all"]
XAxis = Literal["steps", "time", "both"]
HEADS: tuple[str, ...] = ("mean", "all")
X_AXES: tuple[str, ...] = ("steps", "time", "both")


# --------------------------------------------------------------------------- attention
@dataclass(frozen=True)
class AttentionPanels:
    """What an attention figure shows: one heatmap (T, S) per panel, rows labelled with the
    translation's subword pieces and ``</s>``, columns with the source's."""

    source: list[str]  # S column labels
    target: list[str]  # T row labels
    weights: np.ndarray  # (panels, T, S)
    titles: list[str]
    translation: str


def attention_panels(translator: Any, text: str, layer: int | None = None, heads: Heads = "mean",
                     beam: int | None = None) -> AttentionPanels:
    """Translate ``text`` with ``translator`` (a run's or a bundle's
    :class:`~s2s.search.translator.Translator`) and gather the attention of its best hypothesis.

    With the defaults: the attention the model reports, which its alignments read (an RNN's
    attention; a transformer's last layer, heads averaged or its ``attention_head``). With
    ``layer`` (0-based; negative counts from the last) or ``heads="all"``: that decoder layer's
    heads, averaged or one panel each, replayed by :meth:`~s2s.search.translator.Translator.head_attention`
    (a transformer bundle needs ``attention_heads.onnx``, from ``s2s export --attention-heads``)."""
    if not text.strip():
        raise DataError("the text to translate is empty")
    if heads not in HEADS:
        raise ConfigError(f"heads must be one of {', '.join(HEADS)}, got {heads!r}")
    reported = layer is None and heads == "mean"
    options = {} if beam is None else {"beam": beam, "n_best": 1}
    best = translator.hypotheses([text], attention=True, **options)[0][0]
    if reported:
        labelled = translator.attention_of(text, best)
        return AttentionPanels(labelled["source"], labelled["target"], np.asarray(labelled["weights"])[None],
                               ["reported attention"], translator.text(best))
    layers = translator.head_attention(text, best)
    index = _layer_index(layer, len(layers))
    weights = layers[index]  # (heads, T, S)
    count = len(weights)
    if heads == "mean":
        weights, titles = weights.mean(0, keepdims=True), [f"layer {index}, mean of {count} heads"]
    else:
        titles = [f"layer {index}, head {h}" for h in range(count)]
    source, target = translator.attention_labels(text, best, weights.shape[-1] - 1)
    return AttentionPanels(source, target, weights, titles, translator.text(best))


def _layer_index(layer: int | None, layers: int) -> int:
    """``layer`` (None: the last; negative: from the last) as an index into ``layers`` layers."""
    index = layers - 1 if layer is None else layer
    if not -layers <= index < layers:
        raise ConfigError(f"layer {layer}: the decoder has {layers} layer(s), 0..{layers - 1}")
    return index % layers


def draw_attention(panels: AttentionPanels, cell: float = 0.32):
    """One heatmap per panel, in a near-square grid: source pieces along x, target pieces along
    y, darker = more attention. ``cell``: inches per token. Returns the Figure (one axes a panel)."""
    from matplotlib.figure import Figure

    count = len(panels.weights)
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    width = max(3.0, cell * len(panels.source) + 1.6)
    height = max(2.5, cell * len(panels.target) + 1.4)
    figure = Figure(figsize=(cols * width, rows * height + 0.5), layout="constrained")
    for i, (weights, title) in enumerate(zip(panels.weights, panels.titles)):
        axes = figure.add_subplot(rows, cols, i + 1)
        axes.imshow(weights, cmap="Greys", vmin=0.0, vmax=max(float(weights.max()), 1e-9), aspect="auto",
                    interpolation="nearest")
        axes.set_xticks(range(len(panels.source)), panels.source, rotation=90, fontsize=8)
        axes.set_yticks(range(len(panels.target)), panels.target, fontsize=8)
        axes.set_xlabel("source")
        axes.set_ylabel("target")
        axes.set_title(title, fontsize=9)
    figure.suptitle(_shorten(panels.translation), fontsize=9)
    return figure


def _shorten(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --------------------------------------------------------------------------- training curves
@dataclass(frozen=True)
class RunRecords:
    """A run's ``metrics.jsonl``: training windows (step, lr, train_loss, tokens_per_s,
    elapsed_s, teacher_forcing_ratio) and validations (step, valid_loss, valid_<metric>)."""

    name: str
    train: list[dict]
    valid: list[dict]


def read_run_records(run_dir: str | Path, name: str | None = None) -> RunRecords:
    """The records of ``run_dir/metrics.jsonl``; the averaged weights' line is left out (it has no
    place on a curve), and a line a killed run cut short (:func:`s2s.runs.read_metrics`). Raises
    :class:`RunError` without a run or records."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise RunError(f"{path}: no such file; a run writes it from its first training window")
    from s2s.runs import read_metrics

    records = read_metrics(path)
    train = [r for r in records if "train_loss" in r]
    valid = [r for r in records if "valid_loss" in r and "averaged" not in r]
    if not train and not valid:
        raise RunError(f"{path}: no training or validation records yet")
    return RunRecords(name or run_dir.resolve().name, train, valid)


METRIC_NAMES = {"bleu": "BLEU", "chrf": "chrF", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L",
                "rougeLsum": "ROUGE-Lsum"}


def metric_panels(runs: list[RunRecords]) -> list[tuple[str, str, str]]:
    """The panels the runs have data for, in order: (record kind, key, title)."""
    metrics = sorted({k for run in runs for r in run.valid for k in r
                      if k.startswith("valid_") and k not in ("valid_loss", "valid_ppl")})
    wanted = [("train", "train_loss", "training loss"), ("valid", "valid_loss", "validation loss"),
              *(("valid", k, f"validation {METRIC_NAMES.get(k[6:], k[6:])}") for k in metrics),
              ("train", "lr", "learning rate"), ("train", "teacher_forcing_ratio", "teacher-forcing ratio")]
    return [panel for panel in wanted
            if any(panel[1] in r for run in runs for r in getattr(run, panel[0]))]


def series(run: RunRecords, kind: str, key: str, x: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one curve: x in steps, or in wall-clock minutes (``time``; a validation takes
    the time of its step, interpolated between training windows). After a resume the later
    record of a step wins, so curves never run backwards."""
    by_step = {r["step"]: r[key] for r in getattr(run, kind) if key in r and r[key] is not None}
    steps = np.array(sorted(by_step), dtype=np.float64)
    values = np.array([by_step[s] for s in sorted(by_step)], dtype=np.float64)
    if x == "steps":
        return steps, values
    clock = {r["step"]: r["elapsed_s"] for r in run.train if "elapsed_s" in r}
    if not clock:
        return np.empty(0), np.empty(0)
    known = np.array(sorted(clock), dtype=np.float64)
    return np.interp(steps, known, [clock[s] / 60.0 for s in sorted(clock)]), values


def draw_metrics(runs: list[RunRecords], x: XAxis = "both"):
    """One panel per series the runs have (training and validation loss, the validation metric,
    learning rate, teacher-forcing ratio), against steps, wall time, or both (two rows); each run
    one colour, named in the figure's legend. Returns the Figure."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    if x not in X_AXES:
        raise ConfigError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    rows = ("steps", "time") if x == "both" else (x,)
    panels = metric_panels(runs)
    figure = Figure(figsize=(3.6 * len(panels), 2.9 * len(rows) + 0.6), layout="constrained")
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for row, axis in enumerate(rows):
        for col, (kind, key, title) in enumerate(panels):
            axes = figure.add_subplot(len(rows), len(panels), row * len(panels) + col + 1)
            for run, colour in zip(runs, colours):
                xs, ys = series(run, kind, key, axis)
                axes.plot(xs, ys, color=colour, marker="o" if kind == "valid" else None, markersize=3)
            axes.set_title(title, fontsize=10)
            axes.set_xlabel("update" if axis == "steps" else "wall time (min)")
            axes.grid(alpha=0.3)
    handles = [Line2D([], [], color=colour, label=run.name) for run, colour in zip(runs, colours)]
    figure.legend(handles=handles, loc="outside upper center", ncols=min(len(runs), 4))
    return figure


def read_runs(paths: list[str | Path]) -> list[RunRecords]:
    """The records of each run, named by its folder (by its path where two runs share a name)."""
    names = [Path(p).resolve().name for p in paths]
    return [read_run_records(p, n if names.count(n) == 1 else str(p)) for n, p in zip(names, paths)]


# --------------------------------------------------------------------------- files
def save_figure(figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` (its suffix picks the format: png, pdf, svg, ...) through the
    Agg canvas, and free it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    if not path.parent.is_dir():
        raise DataError(f"{path}: the folder {path.parent} does not exist")
    FigureCanvasAgg(figure)
    try:
        figure.savefig(path, dpi=dpi)
    except ValueError as err:  # an unknown suffix
        raise ConfigError(f"{path}: {err}") from None
    return path
