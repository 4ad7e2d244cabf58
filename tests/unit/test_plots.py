"""``s2s plot``: attention heatmaps and training curves, drawn headless from tiny runs.

Each figure is checked on the returned matplotlib Figure (its axes, labels, legend) and on the
written PNG (its size, and that it is not blank). Bad input is one error line, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from s2s.errors import BundleError, ConfigError, DataError, RunError  # noqa: E402
from s2s.evaluation.plots import (AttentionPanels, RunRecords, attention_panels, draw_attention,  # noqa: E402
                                  draw_metrics, read_run_records, read_runs, save_figure, series)

TEXT = "Two dogs play in the snow."
ROOT = Path(__file__).resolve().parents[2]


def run_translator(run):
    import s2s.models  # noqa: F401
    from s2s.decoding.translator import Translator

    return Translator.from_run(run)


def check_png(path: Path, figure, dpi: int = 120) -> None:
    """The file is a PNG of the figure's size in pixels, with more than one colour."""
    from matplotlib.image import imread

    pixels = imread(path)
    width, height = figure.get_size_inches() * dpi
    assert abs(pixels.shape[0] - height) <= 1 and abs(pixels.shape[1] - width) <= 1  # Agg truncates
    assert pixels[..., :3].reshape(-1, 3).var(0).sum() > 0


def tick_labels(axes, which: str) -> list[str]:
    ticks = axes.get_xticklabels() if which == "x" else axes.get_yticklabels()
    return [t.get_text() for t in ticks]


# --------------------------------------------------------------------------- attention
def test_reported_attention_is_one_panel_labelled_with_the_pieces(tiny_lstm_run, tmp_path):
    panels = attention_panels(run_translator(tiny_lstm_run), TEXT, beam=2)
    assert panels.weights.shape == (1, len(panels.target), len(panels.source))
    assert panels.source[-1] == panels.target[-1] == "</s>"
    np.testing.assert_allclose(panels.weights.sum(-1), 1.0, atol=1e-4)  # each target piece's distribution
    figure = draw_attention(panels)
    (axes,) = figure.axes
    assert tick_labels(axes, "x") == panels.source and tick_labels(axes, "y") == panels.target
    check_png(save_figure(figure, tmp_path / "attention.png"), figure)


def test_heads_all_draws_one_axes_per_head_of_the_chosen_layer(tiny_transformer_run, tmp_path):
    translator = run_translator(tiny_transformer_run)
    heads = translator.model.decoder.heads
    panels = attention_panels(translator, TEXT, layer=0, heads="all")
    assert panels.weights.shape[0] == heads and panels.titles[1] == "layer 0, head 1"
    np.testing.assert_allclose(panels.weights.sum(-1), 1.0, atol=1e-4)
    figure = draw_attention(panels)
    assert len(figure.axes) == heads
    check_png(save_figure(figure, tmp_path / "heads.png"), figure)


def test_replayed_heads_average_to_the_attention_the_search_kept(tiny_transformer_run):
    """Teacher forcing the best hypothesis gives, in the last layer, heads whose mean is the
    attention the beam search reported step by step."""
    translator = run_translator(tiny_transformer_run)
    reported = attention_panels(translator, TEXT, beam=3)
    mean = attention_panels(translator, TEXT, layer=-1, heads="mean", beam=3)
    assert (mean.source, mean.target) == (reported.source, reported.target)
    np.testing.assert_allclose(mean.weights, reported.weights, atol=1e-5)


def test_an_rnn_decoder_replays_one_head_equal_to_the_attention_it_reported(tiny_lstm_run):
    translator = run_translator(tiny_lstm_run)
    reported = attention_panels(translator, TEXT, beam=2)
    replayed = attention_panels(translator, TEXT, heads="all", beam=2)
    assert replayed.titles == ["layer 0, head 0"] and replayed.target == reported.target
    np.testing.assert_allclose(replayed.weights, reported.weights, atol=1e-5)


def test_a_layer_the_decoder_lacks_is_refused(tiny_transformer_run):
    with pytest.raises(ConfigError, match="layer 2: the decoder has 2 layer"):
        attention_panels(run_translator(tiny_transformer_run), TEXT, layer=2)


def test_an_rnn_bundle_draws_its_one_head_the_attention_it_reported(tiny_bundle):
    from s2s.runtime import Translator

    translator = Translator.load(tiny_bundle)
    reported = attention_panels(translator, TEXT)
    assert len(draw_attention(reported).axes) == 1
    replayed = attention_panels(translator, TEXT, heads="all")
    assert replayed.titles == ["layer 0, head 0"] and replayed.target == reported.target
    np.testing.assert_allclose(replayed.weights, reported.weights)


@pytest.fixture(scope="module")
def heads_bundle(tiny_transformer_run, tmp_path_factory):
    """The tiny transformer exported with attention_heads.onnx, fp32 and int8."""
    import s2s.models  # noqa: F401
    from s2s.export.bundle import export_bundle

    out = tmp_path_factory.mktemp("heads") / "bundle"
    export_bundle(tiny_transformer_run, out, quantize="int8", attention_heads=True)
    return out


def test_a_bundles_attention_heads_graph_replays_every_layer_as_pytorch_does(tiny_transformer_run, heads_bundle):
    """Two lengths other than the traced ones (source and target axes are free), both layers."""
    from s2s.runtime import Translator

    torch_translator, bundle = run_translator(tiny_transformer_run), Translator.load(heads_bundle, "fp32")
    assert {"attention_heads"} <= set(bundle.bundle.variants["int8"])
    for text in (TEXT, "A man in a blue shirt is standing on a ladder next to a red house."):
        best = torch_translator.hypotheses([text])[0][0]
        want, got = torch_translator.head_attention(text, best), bundle.head_attention(text, best)
        assert len(got) == len(want) == 2
        for g, w in zip(got, want):
            assert g.shape == w.shape == (2, len(best.tokens) + 1, len(bundle.encode_lines([text])[0]) + 1)
            np.testing.assert_allclose(g, w, atol=1e-5)
    panels = attention_panels(Translator.load(heads_bundle, "int8"), TEXT, layer=0, heads="all")
    assert len(draw_attention(panels).axes) == 2 and panels.titles == ["layer 0, head 0", "layer 0, head 1"]


def test_a_transformer_bundle_without_the_heads_graph_says_how_to_get_it(tiny_transformer_run, tmp_path):
    import s2s.models  # noqa: F401
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    export_bundle(tiny_transformer_run, tmp_path / "plain")
    translator = Translator.load(tmp_path / "plain")
    assert len(draw_attention(attention_panels(translator, TEXT)).axes) == 1
    with pytest.raises(BundleError, match="s2s export --attention-heads"):
        attention_panels(translator, TEXT, heads="all")


def test_empty_text_is_refused_before_translating():
    with pytest.raises(DataError, match="empty"):
        attention_panels(None, "  ")


def test_a_grid_has_exactly_as_many_axes_as_panels():
    panels = AttentionPanels(["a", "</s>"], ["b", "</s>"], np.full((3, 2, 2), 0.5), ["x", "y", "z"], "b")
    assert len(draw_attention(panels).axes) == 3  # a 2 x 2 grid, its fourth cell left empty


# --------------------------------------------------------------------------- training curves
def test_curves_of_two_runs_have_a_legend_with_both_names(tiny_lstm_run, tiny_transformer_run, tmp_path):
    runs = [read_run_records(tiny_lstm_run, "lstm"), read_run_records(tiny_transformer_run, "transformer")]
    figure = draw_metrics(runs)
    (legend,) = figure.legends
    assert [t.get_text() for t in legend.get_texts()] == ["lstm", "transformer"]
    titles = [a.get_title() for a in figure.axes]
    # the LSTM run decodes BLEU, neither samples: teacher forcing is still drawn (constant 1)
    panels = ["training loss", "validation loss", "validation BLEU", "learning rate", "teacher-forcing ratio"]
    assert titles == panels * 2
    assert {a.get_xlabel() for a in figure.axes} == {"update", "wall time (min)"}
    check_png(save_figure(figure, tmp_path / "curves.png"), figure)
    assert len(draw_metrics(runs, x="time").axes) == len(panels)


def test_run_folder_names_label_the_runs_and_paths_tell_equal_names_apart(tiny_lstm_run, tiny_transformer_run,
                                                                          tmp_path):
    copy = tmp_path / "second"
    copy.mkdir()
    (copy / "metrics.jsonl").write_text((tiny_lstm_run / "metrics.jsonl").read_text())
    assert [r.name for r in read_runs([tiny_lstm_run, copy])] == [tiny_lstm_run.name, "second"]
    assert tiny_lstm_run.name == tiny_transformer_run.name  # both fixtures train into .../run
    same = read_runs([tiny_lstm_run, tiny_transformer_run])
    assert [r.name for r in same] == [str(tiny_lstm_run), str(tiny_transformer_run)]


def test_a_resumed_run_draws_each_step_once_and_validations_on_the_clock():
    train = [{"step": s, "train_loss": loss, "elapsed_s": 60.0 * s} for s, loss in ((2, 5.0), (4, 4.0), (6, 9.0))]
    train += [{"step": 6, "train_loss": 3.0, "elapsed_s": 420.0}, {"step": 8, "train_loss": 2.0, "elapsed_s": 540.0}]
    run = RunRecords("r", train, [{"step": 5, "valid_loss": 1.0}])
    steps, losses = series(run, "train", "train_loss", "steps")
    assert steps.tolist() == [2, 4, 6, 8] and losses.tolist() == [5.0, 4.0, 3.0, 2.0]  # the resumed step 6 wins
    minutes, _ = series(run, "valid", "valid_loss", "time")
    assert minutes.tolist() == [5.5]  # halfway between step 4 (4 min) and step 6 (7 min)


def test_metrics_without_records_or_folder_are_refused(tmp_path):
    with pytest.raises(RunError, match="no such run directory"):
        read_run_records(tmp_path / "absent")
    with pytest.raises(RunError, match="metrics.jsonl: no such file"):
        read_run_records(tmp_path)
    # a line cut short by a killed run is skipped; the resumed run's records follow it
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train_loss": 2.0}\n{"step": 2,\n{"step": 2, "train_loss": 1.5}\n')
    assert [r["train_loss"] for r in read_run_records(tmp_path).train] == [2.0, 1.5]
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(RunError, match="no training or validation records"):
        read_run_records(tmp_path)


# --------------------------------------------------------------------------- the command line
@pytest.mark.parametrize("args, message", [
    (["metrics", "{tmp}/absent"], "no such run directory"),
    (["metrics", "{tmp}"], "metrics.jsonl: no such file"),
    (["attention", "--model", "{tmp}/absent", "--text", "A dog."], "not a run directory"),
    (["attention", "--model", "{bundle}", "--text", ""], "the text to translate is empty"),
    (["attention", "--model", "{bundle}", "--text", "A dog.", "--layer", "1"], "layer 1: the decoder has 1 layer"),
    (["attention", "--model", "{bundle}", "--text", "A dog.", "--out", "{tmp}/no/a.png"], "does not exist"),
])
def test_bad_input_is_one_error_line(args, message, tmp_path, tiny_bundle, capsys):
    from s2s.cli.main import main

    args = [a.format(tmp=tmp_path, bundle=tiny_bundle) for a in args]
    assert main(["plot", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("s2s plot: error: ") and message in err, err


def test_the_commands_write_the_images(tiny_lstm_run, tmp_path, capsys):
    from s2s.cli.main import main

    out = tmp_path / "a.png"
    assert main(["plot", "attention", "--model", str(tiny_lstm_run), "--text", TEXT, "--out", str(out)]) == 0
    assert main(["plot", "metrics", str(tiny_lstm_run), "--x", "steps", "--out", str(tmp_path / "c.png")]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(tmp_path / "c.png")]
    assert out.stat().st_size > 0 and (tmp_path / "c.png").stat().st_size > 0


def test_importing_the_plots_loads_no_matplotlib():
    probe = "import sys, s2s.evaluation.plots; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


# --------------------------------------------------------------------------- TensorBoard
def test_training_writes_its_scalars_to_tensorboard(tiny_lstm_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_lstm_run / "tensorboard"))
    events.Reload()
    assert {"train_loss", "lr", "valid_loss", "valid_bleu", "teacher_forcing_ratio"} <= set(events.Tags()["scalars"])
    records = [json.loads(line) for line in (tiny_lstm_run / "metrics.jsonl").read_text().splitlines()]
    want = {r["step"]: r["train_loss"] for r in records if "train_loss" in r}
    got = {e.step: e.value for e in events.Scalars("train_loss")}
    assert got.keys() == want.keys() and all(got[s] == pytest.approx(want[s], rel=1e-6) for s in want)


def test_without_tensorboard_the_reporter_writes_no_events(tmp_path, monkeypatch):
    from s2s.training.report import RunReporter

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    reporter = RunReporter(tmp_path, progress=False)
    reporter.write({"step": 1, "train_loss": 2.0})
    reporter.close()
    assert reporter.board is None and not (tmp_path / "tensorboard").exists()
