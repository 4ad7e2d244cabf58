"""Average the weights of several checkpoints into one (Vaswani et al., 2017, section 6.1).

    python tools/average_checkpoints.py --run runs/transformer --last 5
    python tools/average_checkpoints.py --inputs a.pt b.pt c.pt --output avg.pt

With ``--run`` it averages the newest ``--last`` ``checkpoints/step-N.pt`` files that
``train.average_last`` kept, into ``checkpoints/averaged.pt`` unless ``--output`` says otherwise,
so that ``s2s evaluate|translate|export --model RUN --checkpoint averaged`` use the result.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from s2s.errors import S2SError  # noqa: E402
from s2s.training.averaging import step_checkpoints, write_average  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run directory whose checkpoints/step-N.pt to average")
    source.add_argument("--inputs", nargs="+", help="checkpoint files to average")
    parser.add_argument("--last", type=int, default=5, help="with --run: how many of the newest step checkpoints")
    parser.add_argument("--output", help="checkpoint to write (default with --run: RUN/checkpoints/averaged.pt)")
    args = parser.parse_args(argv)
    try:
        if args.run:
            if args.last <= 0:
                raise S2SError(f"--last must be positive, got {args.last}")
            folder = Path(args.run) / "checkpoints"
            inputs = step_checkpoints(folder)[-args.last:]
            if not inputs:
                raise S2SError(f"{folder}: no step-N.pt checkpoints (train with --set train.average_last=K)")
            output = Path(args.output or folder / "averaged.pt")
        else:
            if not args.output:
                raise S2SError("--inputs needs --output")
            inputs, output = [Path(p) for p in args.inputs], Path(args.output)
        write_average(inputs, output)
    except S2SError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{output}: average of {len(inputs)} checkpoints: {', '.join(p.name for p in inputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
