"""Argument helpers shared by subcommands (no logic beyond I/O)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

from s2s.errors import ConfigError, DataError
from s2s.textio import decode_lines, read_lines


def read_input(path: str | None) -> list[str]:
    """Lines of ``path`` (stdin for None or ``-``) without their newlines."""
    if path in (None, "-"):
        # the bytes, decoded as a file's are: invalid UTF-8 is one error line, not a traceback
        # from the text layer of stdin (strict, or surrogateescape under a C locale)
        return [text for _, text in decode_lines(sys.stdin.buffer, "<stdin>")]
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
    """One flag per field of :class:`~s2s.search.options.DecodeOptions`, its help and type taken
    from there; a flag left out keeps the run's or the bundle's own default. A yes/no field is a
    pair of flags taking no value (``--sample``/``--no-sample``), so that either answer can
    override a model whose default is the other."""
    import argparse

    from s2s.search.options import option_fields, option_type

    group = parser.add_argument_group("decoding (defaults: the run's or the bundle's decode section)")
    for f in option_fields():
        kind = option_type(f)
        how = {"action": argparse.BooleanOptionalAction} if kind is bool else {"type": kind}
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, **how,
                           help=f"{f.metadata['help']} (default: {f.default} unless the model says otherwise)")
    group.add_argument("--checkpoint", default="best", metavar="NAME",
                       help="which weights of a run: best, last, averaged or step-N (default: best)")
    group.add_argument("--device", default="cpu", help="cpu or cuda")
    group.add_argument("--variant", choices=["fp32", "int8"],
                       help="which graphs of a bundle to use (default: fp32, or the bundle's only variant)")
    group.add_argument("--search", choices=["python", "graph", "auto"], default="python",
                       help="with a bundle: run beam search and greedy in Python over the step graph (default), "
                            "or inside the bundle's search.onnx in one call (s2s export --search); auto: the "
                            "graph where the bundle has one and the call needs no sampling or attention")


def decode_options(args) -> dict:
    """The decoding flags given on the command line (the others stay None: the model's default)."""
    from s2s.search.options import option_fields

    return {f.name: getattr(args, f.name) for f in option_fields() if getattr(args, f.name) is not None}


def open_translator(args):
    """A translator for ``--model``: the torch-free runtime's for an exported bundle (it has
    ``bundle.json``), the PyTorch one for a run directory. Both have the same interface."""
    from s2s.bundle import is_bundle

    if is_bundle(args.model):
        from s2s.runtime import Translator

        providers = ["CPUExecutionProvider"] if args.device == "cpu" else None
        # the command owns its process, so the runtime may tune the process's allocator
        return Translator.load(args.model, args.variant, providers, tune_allocator=True,
                               search=getattr(args, "search", "python"))
    if getattr(args, "search", "python") != "python":
        raise ConfigError(f"{args.model}: --search {args.search} needs an exported bundle with search.onnx, not a run")
    import s2s.models  # noqa: F401  (registers the parts the run's recipe names)
    from s2s.decoding.translator import Translator

    return Translator.from_run(args.model, args.checkpoint, args.device)
