"""``s2s train RECIPE`` and ``s2s train --resume RUN``."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model from a recipe",
                       description="Train from a YAML recipe into a run directory, or resume one.")
    p.add_argument("recipe", nargs="?", help="YAML recipe (omit with --resume)")
    p.add_argument("--run-dir", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", metavar="RUN", help="continue the run in RUN from checkpoints/last.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a recipe value (repeatable)")
    p.set_defaults(run=run)


def run(args) -> int:
    import s2s.models  # noqa: F401  (registers the parts the recipe names)
    from s2s.config import load_recipe
    from s2s.errors import ConfigError
    from s2s.training.distributed import world_from_env
    from s2s.training.loop import train

    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "checkpoints" / "last.pt").is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        recipe = load_recipe(run_dir / "config.yaml", args.overrides)
    elif args.recipe:
        recipe = load_recipe(args.recipe, args.overrides)
        run_dir = Path(args.run_dir or Path("runs") / recipe.name)
        if (run_dir / "checkpoints" / "last.pt").exists():
            raise ConfigError(f"{run_dir}: already holds a trained run; use --resume {run_dir} "
                              "or choose another --run-dir")
    else:
        raise ConfigError("give a RECIPE to train or --resume RUN")
    position = train(recipe, run_dir, resume=bool(args.resume))
    if not world_from_env().main:  # under torchrun, rank 0 alone reports
        return 0
    best = "" if position.best is None else f", best {recipe.train.best_metric} {abs(position.best):.2f}"
    print(f"{run_dir}: stopped ({position.stopped}) at step {position.step}, epoch {position.epoch}, "
          f"{position.elapsed / 60:.1f} min{best}")
    return 0
