"""``s2s info``: a run's and a bundle's description; the parameter counts per part add up."""

from __future__ import annotations

import json
import shutil

import pytest

from s2s.errors import RunError
from s2s.export.info import describe, format_info

PARTS = ("embeddings", "encoder", "attention", "decoder", "output")


def model_of(run):
    import s2s.models  # noqa: F401
    from s2s.runs import load_run

    return load_run(run)[2]


def assert_parts_add_up(parameters: dict, total: int) -> None:
    assert set(PARTS) <= set(parameters) and parameters["total"] == total
    assert sum(v for k, v in parameters.items() if k != "total") == total
    assert all(parameters[part] > 0 for part in PARTS)


@pytest.mark.parametrize("fixture", ["tiny_lstm_run", "tiny_transformer_run"])
def test_a_runs_parts_add_up_to_the_models_parameters(fixture, request):
    run = request.getfixturevalue(fixture)
    info = describe(run)
    model = model_of(run)
    assert_parts_add_up(info["parameters"], sum(p.numel() for p in model.parameters()))
    assert info["vocabulary"]["target"] == model.tgt_embed.num_embeddings
    assert info["data"]["train"]["pairs"] == 200 and info["data"]["valid"]["pairs"] == 40
    assert info["training"]["steps"] in (4, 8) and info["scores"]["validation"]["step"] in (4, 8)
    text = format_info(info)
    assert f"{info['parameters']['total']:,}" in text and "checkpoints/best.pt" in text


def test_the_architecture_tree_names_types_and_sizes(tiny_transformer_run):
    architecture = describe(tiny_transformer_run)["architecture"]
    assert architecture["decoder"] == {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32}
    assert architecture["attention"] == {"type": "multihead", "heads": 2}
    text = format_info(describe(tiny_transformer_run))
    assert "decoder     transformer: hidden 16, layers 2, heads 2, ffn 32" in text


def test_a_bundle_reports_its_runs_parameters_and_its_files(tiny_bundle):
    info = describe(tiny_bundle)
    run = info["training"]["run"]  # the bundle's provenance names the run it came from
    assert_parts_add_up(info["parameters"], sum(p.numel() for p in model_of(run).parameters()))
    assert info["parameters_from"] == "bundle.json"
    assert {"fp32 encoder", "fp32 decoder_step"} <= set(info["files"])
    assert all(f["bytes"] == (tiny_bundle / f["file"]).stat().st_size for f in info["files"].values())
    assert info["architecture"]["decoder"] == {"type": "lstm", "hidden": 16, "layers": 2}
    json.dumps(info)


def test_a_bundle_without_counts_gives_its_graph_weights(tiny_bundle, tmp_path):
    pytest.importorskip("onnx")
    bundle = shutil.copytree(tiny_bundle, tmp_path / "old")
    meta = json.loads((bundle / "bundle.json").read_text())
    del meta["provenance"]["parameters"]  # a bundle exported before bundle.json recorded them
    (bundle / "bundle.json").write_text(json.dumps(meta))
    info = describe(bundle)
    assert info["parameters_from"] == "ONNX initializers of the fp32 graphs"
    assert set(info["parameters"]) == {"encoder graph", "decoder_step graph"}
    assert all(count > 0 for count in info["parameters"].values())
    assert "encoder graph" in format_info(info)


def test_the_command_prints_json_and_refuses_a_missing_folder(tiny_bundle, tmp_path, capsys):
    from s2s.cli.main import main

    assert main(["info", str(tiny_bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "bundle"
    assert main(["info", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s2s info: error: " in err and "no such run directory or bundle" in err
    with pytest.raises(RunError, match="not a run directory"):
        describe(tmp_path)


def test_evaluating_a_run_on_its_test_split_records_the_scores_info_shows(tiny_lstm_run, tmp_path, capsys):
    from s2s.cli.main import main

    run = shutil.copytree(tiny_lstm_run, tmp_path / "run")
    assert describe(run)["scores"]["test"] == {}
    assert main(["evaluate", "--model", str(run), "--metrics", "bleu,chrf", "--beam", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in (run / "test_scores.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["decode"] == {"beam": 2} and records[0]["checkpoint"] == "best"
    test = describe(run)["scores"]["test"]
    assert test["test_bleu"] == printed["bleu"] and test["test_chrf"] == printed["chrf"]
    assert test["step"] == describe(run)["scores"]["validation"]["step"]
    assert f"test_bleu {printed['bleu']:.4g}" in format_info(describe(run))
    # scoring other files (--source) is not the run's test score: nothing more is recorded
    source = tmp_path / "one.en"
    source.write_text("A dog runs.\n")
    assert main(["evaluate", "--model", str(run), "--source", str(source), "--ref", str(source)]) == 0
    assert len((run / "test_scores.jsonl").read_text().splitlines()) == 1
