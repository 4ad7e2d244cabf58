"""DecodeOptions is the only place a decoding default is set: the recipe, the CLI, bundle.json
and both translators read it, and no function of s2s carries a default of its own."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from s2s.errors import BundleError, ConfigError
from s2s.search.options import DecodeOptions

ROOT = Path(__file__).resolve().parents[2]
FIELDS = [f.name for f in dataclasses.fields(DecodeOptions)]
# parameter names that carry a decoding option somewhere in the package
OPTION_NAMES = set(FIELDS) | {"beam_size"}
# option names that other parts of s2s use for settings of their own (the sentencepiece and
# export sample seeds, scheduled sampling's temperature): they count only in the decoding packages
SHARED_NAMES = {"seed", "temperature"}
DECODING_PACKAGES = ("search", "decoding", "runtime", "cli")


def test_the_recipe_section_is_decode_options_with_its_defaults():
    import s2s.models  # noqa: F401  (registers the parts a recipe names)
    from s2s.config import Recipe, recipe_from_dict

    assert Recipe().decode == DecodeOptions()
    assert recipe_from_dict({}).decode == DecodeOptions()


def test_the_cli_has_one_flag_per_option_and_sets_nothing_unless_given():
    from s2s.cli.common import decode_options
    from s2s.cli.main import build_parser

    parser = build_parser()
    step = {"int": lambda v: v + 1, "float": lambda v: v + 0.25, "bool": lambda v: not v}
    for command in ("translate", "evaluate"):
        args = parser.parse_args([command, "--model", "m"])
        assert decode_options(args) == {}  # the model's own defaults stay in force
        changed = {f.name: step[f.type](f.default) for f in dataclasses.fields(DecodeOptions)}
        assert any(type(v) is bool for v in changed.values())
        flags = []
        for name, value in changed.items():
            flag = f"--{name.replace('_', '-')}"
            if type(value) is bool:  # a yes/no option is a flag pair that takes no value
                flags.append(flag if value else f"--no-{flag[2:]}")
            else:
                flags += [flag, str(value)]
        given = decode_options(parser.parse_args([command, "--model", "m", *flags]))
        assert given == changed and all(type(given[n]) is type(changed[n]) for n in FIELDS)
        assert decode_options(parser.parse_args([command, "--model", "m", "--sample"]))["sample"] is True
        assert decode_options(parser.parse_args([command, "--model", "m", "--no-sample"]))["sample"] is False


def _bundle_json(tmp_path: Path, decode: dict | None) -> Path:
    from s2s.bundle import bundle_meta
    from s2s.search.hypotheses import SpecialIds

    (tmp_path / "sp.model").write_bytes(b"")
    for name in ("encoder.onnx", "decoder_step.onnx"):
        (tmp_path / name).write_bytes(b"")
    meta = bundle_meta(model_family="rnn", architecture={}, special=SpecialIds(0, 1, 2, 3),
                       vocab={"source": "sp.model", "target": "sp.model"}, max_lengths={}, decode=DecodeOptions(),
                       graphs={"memory": [], "state": [], "variants": {"fp32": {"encoder": "encoder.onnx",
                                                                                "decoder_step": "decoder_step.onnx"}}},
                       provenance={})
    if decode is None:
        del meta["decode"]
    else:
        meta["decode"] = decode
    (tmp_path / "bundle.json").write_text(json.dumps(meta))
    return tmp_path


def test_bundle_json_writes_and_reads_decode_options(tmp_path):
    from s2s.bundle import read_bundle, write_bundle_json

    folder = _bundle_json(tmp_path, None)
    assert read_bundle(folder).decode == DecodeOptions()  # an older bundle without the section: the same defaults
    meta = json.loads((folder / "bundle.json").read_text())
    meta["decode"] = DecodeOptions(beam=3, length_penalty=1.0).to_dict()
    assert write_bundle_json(meta, folder).decode == DecodeOptions(beam=3, length_penalty=1.0)
    assert read_bundle(folder).decode == DecodeOptions(beam=3, length_penalty=1.0)
    assert json.loads((folder / "bundle.json").read_text())["decode"] == {**DecodeOptions().to_dict(), "beam": 3,
                                                                          "length_penalty": 1.0}
    sampling = DecodeOptions(sample=True, beam=1, n_best=8, temperature=0.7, top_k=40, top_p=0.9, seed=3,
                             coverage_penalty=0.2)
    meta["decode"] = sampling.to_dict()
    assert json.loads(json.dumps(meta["decode"]))["sample"] is True  # a JSON true, read back as a bool
    assert write_bundle_json(meta, folder).decode == sampling == read_bundle(folder).decode


@pytest.mark.parametrize("decode, message", [
    ({"beam": "5"}, "decode'.beam: expected int, got '5'"),
    ({"length_penalty": True}, "length_penalty: expected float, got True"),
    ({"sample": 1}, "sample: expected bool, got 1"),
    ({"sample": "true"}, "sample: expected bool, got 'true'"),
    ({"top_k": False}, "top_k: expected int, got False"),
    ({"top_p": 1.5}, "top_p must be within (0, 1], got 1.5"),
    ({"temperature": 0}, "temperature must be > 0, got 0.0"),
    ({"coverage_penalty": -0.1}, "coverage_penalty must be >= 0, got -0.1"),
    ({"beams": 5}, "unknown field 'beams'"),
    ({"beam": 2, "n_best": 3}, "n_best must be within 1..beam (2), got 3"),
    ([5], "must be a mapping of decoding options"),
])
def test_a_bad_decode_section_names_the_field(tmp_path, decode, message):
    from s2s.bundle import read_bundle

    with pytest.raises(BundleError, match="bundle.json") as err:
        read_bundle(_bundle_json(tmp_path, decode))
    assert message in str(err.value)


def test_overrides_replace_fields_and_refuse_unknown_names_and_bad_values():
    options = DecodeOptions()
    assert options.with_overrides(beam=None, n_best=None) is options
    assert options.with_overrides(beam=1).greedy and not options.greedy
    with pytest.raises(ConfigError, match=r"unknown decoding options \['beams'\]"):
        options.with_overrides(beams=3)
    with pytest.raises(ConfigError, match="min_len .9. must not exceed max_len .4."):
        options.with_overrides(min_len=9, max_len=4)
    with pytest.raises(ConfigError, match="beam must be >= 1"):
        options.with_overrides(beam=0)


def test_sampling_draws_any_number_of_samples_whatever_the_beam():
    """With sample on, n_best counts samples and the beam is not used; without, n_best stays
    within the beam."""
    options = DecodeOptions(beam=2)
    assert options.with_overrides(sample=True, n_best=10).n_best == 10
    assert not DecodeOptions(beam=1, sample=True).greedy and DecodeOptions(beam=1).greedy
    with pytest.raises(ConfigError, match=r"n_best must be within 1..beam \(2\), got 10"):
        options.with_overrides(n_best=10)
    with pytest.raises(ConfigError, match=r"n_best \(samples per sentence\) must be >= 1, got 0"):
        options.with_overrides(sample=True, n_best=0)
    for name, value, expected in (("temperature", -1.0, "> 0"), ("top_p", 0.0, "within (0, 1]"),
                                  ("top_k", -1, ">= 0"), ("seed", -2, ">= 0")):
        with pytest.raises(ConfigError, match=f"{name} must be") as err:
            options.with_overrides(sample=True, **{name: value})
        assert expected in str(err.value)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, multi30k_slice) -> Path:
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.training.loop import train

    from tests.conftest import tiny_recipe_dict

    run = tmp_path_factory.mktemp("run")
    raw = tiny_recipe_dict(multi30k_slice, train={"max_steps": 20, "valid_every": 20, "valid_bleu": False, "lr": 0.02,
                                                  "best_metric": "loss"},
                           decode={"beam": 3, "length_penalty": 1.0, "max_len_ratio": 1.2, "batch_size": 2})
    train(recipe_from_dict(raw), run)
    return run


def test_both_translators_take_their_defaults_from_the_model_and_share_one_interface(tiny_run, tmp_path):
    """A run's translator uses the recipe's decode section, a bundle's the copy in bundle.json:
    the same DecodeOptions, and the same public methods."""
    import s2s.models  # noqa: F401
    from s2s.decoding.translator import Translator as RunTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator as BundleTranslator
    from s2s.runs import load_run
    from s2s.search.translator import Translator

    run = tiny_run
    export_bundle(run, tmp_path / "b")
    recipe = load_run(run)[0]
    ours, theirs = RunTranslator.from_run(run), BundleTranslator.load(tmp_path / "b")
    assert ours.options == theirs.options == recipe.decode == DecodeOptions(beam=3, length_penalty=1.0,
                                                                           max_len_ratio=1.2, batch_size=2)
    assert isinstance(ours, Translator) and isinstance(theirs, Translator)
    lines = ["A dog runs.", "", "Two men sit on a bench."]
    for options in ({}, {"beam": 1}, {"beam": 3, "n_best": 2, "min_len": 2}):
        a, b = ours.hypotheses(lines, **options), theirs.hypotheses(lines, **options)
        assert [[h.tokens for h in x] for x in a] == [[h.tokens for h in x] for x in b]
        assert ours.translate(lines, **options) == theirs.translate(lines, **options)
        assert a[1] == b[1] and a[1][0].tokens == [] and len(a[0]) == options.get("n_best", 1)


def _defaults_of_decoding_parameters(tree: ast.AST, names: set[str] = OPTION_NAMES) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in pairs:
                if arg.arg in names and not (isinstance(default, ast.Constant) and default.value is None):
                    found.append((node.lineno, arg.arg))
    return found


def test_no_function_of_s2s_sets_a_decoding_default_of_its_own():
    """A parameter named like a decoding option may default to None (meaning: the options in
    force), never to a value: that would be a second place where a default is set."""
    options_file = ROOT / "s2s" / "search" / "options.py"
    found = []
    for path in sorted((ROOT / "s2s").rglob("*.py")):
        if path == options_file:
            continue
        decoding = path.relative_to(ROOT / "s2s").parts[0] in DECODING_PACKAGES
        names = OPTION_NAMES if decoding else OPTION_NAMES - SHARED_NAMES
        for line, name in _defaults_of_decoding_parameters(ast.parse(path.read_text(encoding="utf-8")), names):
            found.append(f"{path.relative_to(ROOT)}:{line} gives {name} a default")
    assert not found, "\n".join(found)


def test_the_default_checker_sees_a_default():
    tree = ast.parse("def f(x, beam=5, *, length_penalty=0.6, n_best=None): pass\nlambda batch_size=8: 0\n")
    assert _defaults_of_decoding_parameters(tree) == [(1, "beam"), (1, "length_penalty"), (2, "batch_size")]
    tree = ast.parse("def g(rng, *, seed=0, top_p=None): pass\n")
    assert _defaults_of_decoding_parameters(tree) == [(1, "seed")]
    assert _defaults_of_decoding_parameters(tree, OPTION_NAMES - SHARED_NAMES) == []
