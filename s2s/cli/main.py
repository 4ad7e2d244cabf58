"""Entry point of the ``s2s`` command."""

from __future__ import annotations

import argparse
import importlib
import sys

from s2s import __version__
from s2s.errors import S2SError

SUBCOMMANDS = ("train", "translate", "evaluate", "export", "serve", "plot", "info")

# packages an install may lack -> (the extra of pyproject.toml that brings it, what that extra is
# for): the base install is the torch-free runtime (``s2s translate --model BUNDLE``)
TRAINING, SERVING = ("train", "training"), ("serve", "serving")
EXTRA_OF_PACKAGE = {
    **dict.fromkeys(("torch", "yaml", "datasets", "sacrebleu", "onnx", "tqdm", "rouge_score", "matplotlib"), TRAINING),
    **dict.fromkeys(("fastapi", "uvicorn", "prometheus_client"), SERVING),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s2s", description="Train, decode and score sequence-to-sequence models.")
    parser.add_argument("--version", action="version", version=f"s2s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"s2s.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except S2SError as err:
        print(f"s2s {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an extra not installed: one line naming it, not a traceback
        if (err.name or "").split(".")[0] not in EXTRA_OF_PACKAGE:
            raise
        extra, purpose = EXTRA_OF_PACKAGE[err.name.split(".")[0]]
        print(f"s2s {args.command}: error: needs the {purpose} extra (pip install \"s2s[{extra}]\"): {err}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"s2s {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
