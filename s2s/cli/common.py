"""Argument helpers shared by subcommands (no logic beyond I/O)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from s2s.errors import DataError


def read_input(path: str | None) -> list[str]:
    if path in (None, "-"):
        return [line.rstrip("\r\n") for line in sys.stdin]
    from s2s.data.corpus import read_lines

    return read_lines(path)


@contextmanager
def open_output(path: str | None):
    if path in (None, "-"):
        yield sys.stdout
        return
    target = Path(path)
    if target.is_dir():
        raise DataError(f"{target}: is a directory; expected an output file")
    tmp = target.with_name(f".{target.name}.partial")
    with tmp.open("w", encoding="utf-8") as out:  # written whole, then renamed: no half files
        yield out
    tmp.replace(target)


def add_decode_options(parser) -> None:
    group = parser.add_argument_group("decoding (defaults: the recipe's decode section)")
    group.add_argument("--beam", type=int, help="beam size; 1 = greedy")
    group.add_argument("--n-best", type=int, dest="n_best", help="hypotheses per sentence")
    group.add_argument("--length-penalty", type=float, dest="length_penalty", help="GNMT alpha")
    group.add_argument("--max-len-ratio", type=float, dest="max_len_ratio", help="max length / source length")
    group.add_argument("--min-len", type=int, dest="min_len", help="ban EOS before this many tokens")
    group.add_argument("--max-len", type=int, dest="max_len", help="at most this many tokens before EOS")
    group.add_argument("--no-repeat-ngram", type=int, dest="no_repeat_ngram", help="ban repeated n-grams")
    group.add_argument("--batch-size", type=int, dest="batch_size", help="sentences per batch")
    group.add_argument("--checkpoint", default="best", metavar="NAME",
                       help="which weights of a run: best, last, averaged or step-N (default: best)")
    group.add_argument("--device", default="cpu", help="cpu or cuda")


def decode_options(args) -> dict:
    names = ("beam", "n_best", "length_penalty", "max_len_ratio", "min_len", "max_len", "no_repeat_ngram",
             "batch_size")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def bundle_translator(args):
    """The torch-free runtime's translator when ``--model`` names an exported bundle, else None."""
    if not (Path(args.model) / "bundle.json").is_file():
        return None
    from s2s.runtime import Translator

    providers = ["CPUExecutionProvider"] if args.device == "cpu" else None
    return Translator.load(args.model, args.variant, providers)
