"""``s2s plot attention|metrics``: pictures of a model's attention and of training runs' curves
(see :mod:`s2s.evaluation.plots`)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw attention heatmaps or training curves (PNG, PDF, SVG)",
                       description="Draw a picture; the file's suffix picks the format.")
    kinds = p.add_subparsers(dest="plot", required=True, metavar="PLOT")

    a = kinds.add_parser("attention", help="translate a sentence and draw its attention",
                         description="Translate --text and draw the attention of the best translation: source "
                                     "pieces along x, target pieces along y.")
    a.add_argument("--model", required=True, help="run directory, or an exported bundle (has bundle.json)")
    a.add_argument("--text", required=True, help="the sentence to translate")
    a.add_argument("--out", default="attention.png", help="image file (default: attention.png)")
    a.add_argument("--layer", type=int, help="decoder layer, 0-based, negative from the last (a transformer bundle "
                                             "needs s2s export --attention-heads; default: the attention the model "
                                             "reports, the last layer's)")
    a.add_argument("--heads", choices=["mean", "all"], default="mean",
                   help="a transformer layer's heads averaged in one panel, or one panel each (all: from a bundle, "
                        "one exported with --attention-heads)")
    a.add_argument("--beam", type=int, help="beam size (default: the model's)")
    a.add_argument("--checkpoint", default="best", metavar="NAME", help="which weights of a run (default: best)")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--variant", choices=["fp32", "int8"], help="which graphs of a bundle (default: fp32)")
    a.set_defaults(run=run_attention)

    m = kinds.add_parser("metrics", help="draw training curves of one or more runs",
                         description="Training and validation loss, the validation metric, learning rate and "
                                     "teacher-forcing ratio from each run's metrics.jsonl, runs overlaid.")
    m.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    m.add_argument("--out", default="curves.png", help="image file (default: curves.png)")
    m.add_argument("--x", choices=["steps", "time", "both"], default="both",
                   help="against updates, wall-clock time, or both (two rows; default)")
    m.set_defaults(run=run_metrics)


def run_attention(args) -> int:
    from s2s.cli.common import open_translator
    from s2s.evaluation.plots import attention_panels, draw_attention, save_figure

    panels = attention_panels(open_translator(args), args.text, args.layer, args.heads, args.beam)
    print(save_figure(draw_attention(panels), args.out))
    return 0


def run_metrics(args) -> int:
    from s2s.evaluation.plots import draw_metrics, read_runs, save_figure

    print(save_figure(draw_metrics(read_runs(args.runs), args.x), args.out))
    return 0
