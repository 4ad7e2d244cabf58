"""Recipes: strict YAML loading, errors that point at the fault, ``--set`` overrides,
``${VAR:-default}`` expansion and the save/load round trip."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
import yaml

import s2s.models  # noqa: F401  (registers the encoder/decoder/attention configs the loader resolves)
from s2s import registry
from s2s.config import (
    DecodeOptions,
    Recipe,
    TrainConfig,
    load_recipe,
    recipe_from_dict,
    save_recipe,
)
from s2s.errors import ConfigError
from s2s.models.attention.base import AttentionConfig
from s2s.models.decoders.rnn import RNNDecoderConfig
from s2s.models.encoders.rnn import RNNEncoderConfig

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("**/*.yaml"))
PARTS = [(kind, entry) for kind in registry.KINDS for entry in registry.entries(kind)]


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, overrides: list[str] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_recipe(path, overrides)
    return str(info.value)


def allowed(cls: type) -> str:
    return "allowed keys: " + ", ".join(f.name for f in dataclasses.fields(cls))


# --------------------------------------------------------------------------- unknown keys
def test_unknown_key_names_file_line_key_section_allowed_keys_and_closest_match(tmp_path):
    path = write(tmp_path, "seed: 3\ntrain:\n  lr: 0.1\n  lrr: 0.2\n")
    msg = load_error(path)
    assert f"{path}: line 4" in msg
    assert "'train.lrr'" in msg
    assert "section 'train'" in msg
    assert allowed(TrainConfig) in msg
    assert "did you mean 'lr'" in msg


def test_unknown_top_level_key(tmp_path):
    msg = load_error(write(tmp_path, "name: x\nsede: 3\n"))
    assert "line 2" in msg and "'sede'" in msg and "the top level" in msg
    assert allowed(Recipe) in msg
    assert "did you mean 'seed'" in msg


def test_unknown_key_without_a_close_match_suggests_nothing(tmp_path):
    msg = load_error(write(tmp_path, "decode:\n  qqqqqqqq: 1\n"))
    assert "'decode.qqqqqqqq'" in msg and allowed(DecodeOptions) in msg
    assert "did you mean" not in msg


def test_unknown_key_in_a_part_section_lists_that_parts_keys(tmp_path):
    path = write(tmp_path, "model:\n  encoder:\n    type: lstm\n    hiden: 32\n")
    msg = load_error(path)
    assert f"{path}: line 4" in msg
    assert "'model.encoder.hiden'" in msg
    assert "section 'model.encoder'" in msg
    assert allowed(RNNEncoderConfig) in msg
    assert "did you mean 'hidden'" in msg


@pytest.mark.parametrize("kind, entry", PARTS, ids=[f"{k}-{e.name}" for k, e in PARTS])
def test_every_registered_part_rejects_unknown_keys_with_its_own_allowed_keys(kind, entry):
    with pytest.raises(ConfigError) as info:
        recipe_from_dict({"model": {kind: {"type": entry.name, "no_such_option": 1}}})
    msg = str(info.value)
    assert f"'model.{kind}.no_such_option'" in msg
    assert allowed(entry.config) in msg


# --------------------------------------------------------------------------- types and choices
@pytest.mark.parametrize("text, key, expected", [
    ("train:\n  lr: fast\n", "train.lr = 'fast'", "expected float"),
    ("train:\n  max_steps: 1.5\n", "train.max_steps = 1.5", "expected int"),
    ("train:\n  max_steps: true\n", "train.max_steps = True", "expected int"),  # bool is not an int
    ("vocab:\n  size: '8000'\n", "vocab.size = '8000'", "expected int"),
    ("train:\n  valid_bleu: 1\n", "train.valid_bleu = 1", "expected bool"),
])
def test_wrong_type_names_file_line_key_and_expected_type(tmp_path, text, key, expected):
    path = write(tmp_path, text)
    msg = load_error(path)
    assert f"{path}: line 2" in msg
    assert key in msg
    assert expected in msg


def test_wrong_type_inside_a_tuple_names_the_element(tmp_path):
    path = write(tmp_path, "train:\n  betas: [0.9, high]\n")
    msg = load_error(path)
    assert str(path) in msg
    assert "train.betas[1] = 'high'" in msg and "expected float" in msg


def test_wrong_type_inside_a_tuple_names_the_line(tmp_path):
    path = write(tmp_path, "seed: 1\ntrain:\n  betas: [0.9, high]\n")
    assert f"{path}: line 3" in load_error(path)


def test_wrong_type_inside_a_tuple_from_set_names_the_set(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    msg = load_error(path, ["train.betas=[0.9, high]"])
    assert "train.betas[1] = 'high'" in msg
    assert "--set train.betas=[0.9, high]" in msg


def test_tuple_of_wrong_length_and_scalar_section_fail_clearly(tmp_path):
    assert "train.betas must be a list of 2 values" in load_error(write(tmp_path, "train:\n  betas: [0.9]\n"))
    assert "train must be a section" in load_error(write(tmp_path, "train: 5\n"))
    assert "must be a mapping" in load_error(write(tmp_path, "- train\n- decode\n"))


def test_int_is_accepted_where_a_float_is_expected(tmp_path):
    recipe = load_recipe(write(tmp_path, "train:\n  lr: 1\n  max_minutes: 60\n"))
    assert recipe.train.lr == 1.0 and type(recipe.train.lr) is float
    assert type(recipe.train.max_minutes) is float


def test_bad_literal_choice_lists_the_choices(tmp_path):
    msg = load_error(write(tmp_path, "train:\n  optimizer: adamm\n"))
    choices = typing.get_args(typing.get_type_hints(TrainConfig)["optimizer"])
    assert "train.optimizer = 'adamm'" in msg
    assert "expected one of " + ", ".join(repr(c) for c in choices) in msg
    assert "did you mean 'adam'" in msg


def test_unknown_part_type_lists_registered_names(tmp_path):
    path = write(tmp_path, "model:\n  attention:\n    type: luong-dott\n")
    msg = load_error(path)
    assert f"{path}: line 3" in msg
    assert "model.attention.type = 'luong-dott'" in msg
    assert str(registry.names("attention")) in msg
    assert "did you mean 'luong-dot'" in msg


@pytest.mark.parametrize("text, section, complaint", [
    ("model:\n  encoder:\n    dropout: 1.5\n", "model.encoder", "dropout must be in [0, 1)"),
    ("model:\n  decoder:\n    layers: 0\n", "model.decoder", "hidden and layers must be positive"),
    ("model:\n  attention:\n    hidden: -1\n", "model.attention", "hidden must be >= 0"),
])
def test_part_post_init_checks_become_config_errors_naming_the_section(tmp_path, text, section, complaint):
    path = write(tmp_path, text)
    msg = load_error(path)
    assert str(path) in msg
    assert f"{section}:" in msg
    assert complaint in msg


def test_empty_recipe_resolves_every_part_to_its_default_type():
    recipe = recipe_from_dict({})
    assert recipe.model.encoder == RNNEncoderConfig()
    assert recipe.model.decoder == RNNDecoderConfig()
    assert recipe.model.attention == AttentionConfig(type="bahdanau")
    assert recipe.train == TrainConfig()


def test_unreadable_and_invalid_yaml_name_the_file(tmp_path):
    missing = tmp_path / "absent.yaml"
    assert str(missing) in load_error(missing) and "cannot read recipe" in load_error(missing)
    bad = write(tmp_path, "train: [unclosed\n")
    msg = load_error(bad)
    assert str(bad) in msg and "invalid YAML" in msg


# --------------------------------------------------------------------------- --set overrides
def test_set_overrides_change_values_parsed_as_yaml():
    recipe = recipe_from_dict(
        {"train": {"lr": 0.1, "max_steps": 3}},
        overrides=["train.lr=0.5", "train.max_steps=7", "train.progress=false", "train.betas=[0.8, 0.95]",
                   "model.encoder.type=gru", "model.encoder.hidden=16", "name=run one", "seed= 4"],
    )
    assert recipe.train.lr == 0.5 and type(recipe.train.lr) is float
    assert recipe.train.max_steps == 7 and type(recipe.train.max_steps) is int
    assert recipe.train.progress is False
    assert recipe.train.betas == (0.8, 0.95)
    assert recipe.model.encoder == RNNEncoderConfig(type="gru", hidden=16)
    assert recipe.name == "run one"
    assert recipe.seed == 4
    assert recipe.train.optimizer == "adam"  # untouched keys keep their defaults


def test_set_overrides_win_over_the_file_and_the_last_one_wins(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n  max_steps: 9\n")
    recipe = load_recipe(path, ["train.lr=0.3", "train.lr=0.4"])
    assert recipe.train.lr == 0.4
    assert recipe.train.max_steps == 9


def test_unknown_key_from_set_names_the_set(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    msg = load_error(path, ["train.lrr=1"])
    assert "--set train.lrr=1" in msg
    assert "'train.lrr'" in msg and allowed(TrainConfig) in msg and "did you mean 'lr'" in msg
    assert str(path) not in msg  # the file is not blamed for the override's key


def test_wrong_type_from_set_names_the_set_even_when_the_file_sets_the_key(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n")
    msg = load_error(path, ["train.lr=abc"])
    assert "--set train.lr=abc" in msg and "expected float" in msg
    assert str(path) not in msg


@pytest.mark.parametrize("assignment, complaint", [
    ("train.lr", "--set train.lr: expected section.key=value"),
    ("train..lr=1", "empty key"),
    ("seed.x=1", "--set seed.x=1: seed is not a section"),
])
def test_malformed_set_fails_clearly(assignment, complaint):
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        recipe_from_dict({"seed": 1}, overrides=[assignment])


def test_unknown_key_inside_a_mapping_valued_set_names_the_set(tmp_path):
    path = write(tmp_path, "model:\n  encoder:\n    hidden: 8\n")
    msg = load_error(path, ["model.encoder={hiden: 3}"])
    assert "'model.encoder.hiden'" in msg
    assert "--set model.encoder={hiden: 3}" in msg


def test_recipe_from_dict_leaves_its_input_untouched():
    raw = {"train": {"lr": 0.1}}
    recipe_from_dict(raw, overrides=["train.lr=0.5", "decode.beam=2"])
    assert raw == {"train": {"lr": 0.1}}
    assert recipe_from_dict(raw).train.lr == 0.1


# --------------------------------------------------------------------------- environment
def test_env_var_with_default_in_string_values(tmp_path, monkeypatch):
    path = write(tmp_path, 'data:\n  train: {src: "${S2S_TEST_ROOT:-/fallback}/train.en", tgt: plain.de}\n')
    monkeypatch.setenv("S2S_TEST_ROOT", "/corpora")
    assert load_recipe(path).data.train.src == "/corpora/train.en"
    monkeypatch.delenv("S2S_TEST_ROOT")
    recipe = load_recipe(path)
    assert recipe.data.train.src == "/fallback/train.en"
    assert recipe.data.train.tgt == "plain.de"


def test_env_var_is_expanded_in_set_values_too(monkeypatch):
    monkeypatch.setenv("S2S_TEST_ROOT", "/corpora")
    recipe = recipe_from_dict({}, overrides=["data.valid.path=${S2S_TEST_ROOT:-/x}/valid.jsonl"])
    assert recipe.data.valid.path == "/corpora/valid.jsonl"


def test_shipped_recipe_reads_its_data_root_from_s2s_data(monkeypatch, tmp_path):
    recipe_path = ROOT / "recipes" / "multi30k-en-de" / "bilstm-bahdanau.yaml"
    if not recipe_path.is_file():
        pytest.skip("reference recipe not present")
    monkeypatch.setenv("S2S_DATA", str(tmp_path))
    assert load_recipe(recipe_path).data.train.src == f"{tmp_path}/multi30k/train.en.gz"


# --------------------------------------------------------------------------- round trip and names
@pytest.mark.parametrize("source", ["custom", *RECIPES], ids=lambda s: Path(str(s)).stem)
def test_save_then_load_gives_an_equal_recipe(tmp_path, source):
    if source == "custom":
        recipe = recipe_from_dict({"name": "custom", "seed": 7, "train": {"lr": 3e-4, "betas": [0.8, 0.9]},
                                   "model": {"encoder": {"type": "gru", "hidden": 16},
                                             "attention": {"type": "luong-general"}},
                                   "data": {"train": {"path": "corpus.jsonl"}, "src_field": "en"}})
    else:
        recipe = load_recipe(source)
    out = tmp_path / "saved.yaml"
    save_recipe(recipe, out)
    assert load_recipe(out) == recipe


def test_saved_recipe_spells_out_every_default(tmp_path):
    out = tmp_path / "saved.yaml"
    save_recipe(recipe_from_dict({"name": "x", "train": {"lr": 0.5}}), out)
    saved = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert list(saved) == [f.name for f in dataclasses.fields(Recipe)]
    assert list(saved["train"]) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert list(saved["model"]["encoder"]) == [f.name for f in dataclasses.fields(RNNEncoderConfig)]
    assert saved["train"]["lr"] == 0.5
    assert saved["decode"]["beam"] == DecodeOptions().beam
    assert saved["model"]["attention"]["type"] == "bahdanau"
    assert saved["train"]["betas"] == list(TrainConfig().betas)


def test_name_defaults_to_the_file_stem(tmp_path):
    assert load_recipe(write(tmp_path, "seed: 2\n", "my-run.yaml")).name == "my-run"
    assert load_recipe(write(tmp_path, "", "empty.yaml")).name == "empty"
    assert load_recipe(write(tmp_path, "name: chosen\n", "other.yaml")).name == "chosen"
    assert load_recipe(write(tmp_path, "seed: 2\n", "third.yaml"), ["name=cli"]).name == "cli"


# --------------------------------------------------------------------------- shipped recipes
def test_recipes_are_found():
    assert RECIPES, f"no recipes under {ROOT / 'recipes'}"


@pytest.mark.parametrize("path", RECIPES, ids=[p.relative_to(ROOT / "recipes").as_posix() for p in RECIPES])
def test_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe)
    assert recipe.name.endswith(path.stem)  # the stem, or the stem with its folder's prefix (debian-quick)
    for kind in registry.KINDS:
        assert registry.lookup(kind, getattr(recipe.model, kind).type) is not None


def test_no_two_shipped_recipes_train_into_the_same_run_folder():
    names = [load_recipe(path).name for path in RECIPES]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)


# --------------------------------------------------------------------------- settings that fail together
PAIRS = [  # (recipe sections over the tiny recipe, the keys the error must name, what it says)
    ({"model": {"decoder": {"type": "transformer", "hidden": 16, "layers": 1, "heads": 2, "ffn": 32}}},
     ("model.decoder.type", "model.attention.type"), "in ['multihead'], got 'bahdanau'"),
    ({"model": {"decoder": {"type": "lstm", "hidden": 24, "layers": 1}}},
     ("model.embeddings.tie_output", "model.decoder.hidden", "model.embeddings.dim"),
     "(24) == model.embeddings.dim (16)"),
    ({"vocab": {"size": 300, "joint": False}, "model": {"embeddings": {"dim": 16, "share_src_tgt": True}}},
     ("model.embeddings.share_src_tgt", "vocab.joint"), "but vocab.joint is false"),
    ({"train": {"schedule": "inverse_sqrt"}}, ("train.schedule", "train.warmup_steps"), "> 0 (got 0)"),
    ({"train": {"schedule": "noam", "warmup_steps": 0}}, ("train.schedule", "train.warmup_steps"), "> 0 (got 0)"),
    ({"model": {"attention": {"type": "luong-dot"}, "encoder": {"type": "gru", "hidden": 8, "bidirectional": False}}},
     ("model.attention.type", "model.decoder.hidden", "model.encoder.hidden"), "(16) == the encoder output size (8"),
    ({"model": {"attention": {"type": "multihead", "heads": 3}}},
     ("model.attention.heads", "model.encoder.hidden"), "must divide the attention size 16"),
]


@pytest.mark.parametrize("sections,keys,says", PAIRS, ids=[p[1][0] + "+" + p[1][1] for p in PAIRS])
def test_settings_that_fail_together_stop_train_before_the_run_folder_gets_a_file(tmp_path, capsys, tiny_recipe_raw,
                                                                                  sections, keys, says):
    """Each check names both keys and the recipe's line in one line, from ``s2s train``, before
    the run folder exists; the same recipe without the pair loads."""
    from s2s.cli.main import main

    load_recipe(write(tmp_path, yaml.safe_dump(tiny_recipe_raw()), "fine.yaml"))
    path = write(tmp_path, yaml.safe_dump(tiny_recipe_raw(**sections)))
    run = tmp_path / "run"
    assert main(["train", str(path), "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"s2s train: error: {path}: line ")
    assert all(key in err for key in keys) and says in err, err
    assert not run.exists()


def test_a_pair_completed_by_set_names_the_set(tmp_path):
    msg = load_error(write(tmp_path, "train:\n  warmup_steps: 0\n"), ["train.schedule=noam"])
    assert msg.startswith("--set train.schedule=noam: train.schedule = 'noam' needs train.warmup_steps > 0")


@pytest.mark.parametrize("key", ["keep_last", "max_bad_updates", "warmup_steps"])
def test_negative_counts_in_train_are_refused_naming_the_section(tmp_path, key):
    path = write(tmp_path, f"train:\n  {key}: -1\n")
    msg = load_error(path)
    assert msg.startswith(f"{path}: line 1: train: {key} must be >= 0, got -1")
