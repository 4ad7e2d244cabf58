"""A tiny exported bundle in seconds, for checks that need a real bundle and no trained model.

    python tools/tiny_bundle.py OUT          # OUT/bundle.json, encoder.onnx, decoder_step.onnx, ...

Trains the tests' tiny recipe (:func:`tests.conftest.tiny_recipe_dict`: hidden sizes 8-16, a
joint sentencepiece vocabulary of 300) on the first 200 training and 40 validation/test pairs of
Multi30k en-de for a few updates, then exports it with the usual verification against PyTorch.
The data is read from ``${S2S_DATA:-../shared/data}/multi30k`` (relative to the repository root);
the run directory is temporary. Its translations are nonsense: it exists to exercise the runtime,
the CLI and the server (``.ci/serve-without-torch``).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import MULTI30K, tiny_recipe_dict  # noqa: E402  (one tiny recipe, shared with the tests)

SLICES = (("train", "train", 200), ("valid", "val", 40), ("test", "test_2016_flickr", 40))


def write_slices(out: Path) -> dict[str, Path]:
    """The first lines of each Multi30k split as plain text files in ``out``, keyed ``split.lang``."""
    files = {}
    for split, name, count in SLICES:
        for lang in ("en", "de"):
            with gzip.open(MULTI30K / f"{name}.{lang}.gz", "rt", encoding="utf-8") as handle:
                lines = [line for _, line in zip(range(count), handle)]
            files[f"{split}.{lang}"] = out / f"{split}.{lang}"
            files[f"{split}.{lang}"].write_text("".join(lines), encoding="utf-8")
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="bundle folder to write (replaced)")
    parser.add_argument("--steps", type=int, default=20, help="training updates (default 20)")
    args = parser.parse_args()
    if not MULTI30K.is_dir():
        parser.error(f"Multi30k not found at {MULTI30K} (set S2S_DATA)")

    import s2s.models  # noqa: F401  (registers the parts the recipe names)
    from s2s.config import recipe_from_dict
    from s2s.export.bundle import export_bundle
    from s2s.training.loop import train

    with tempfile.TemporaryDirectory(prefix="tiny-bundle-") as scratch:
        files = write_slices(Path(scratch))
        recipe = recipe_from_dict(tiny_recipe_dict(files, train={
            "max_steps": args.steps, "valid_every": args.steps, "valid_bleu": False, "best_metric": "loss"}))
        train(recipe, Path(scratch) / "run")
        export_bundle(Path(scratch) / "run", args.out)
    print(f"{args.out}: tiny bundle ({args.steps} updates on {SLICES[0][2]} Multi30k pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
