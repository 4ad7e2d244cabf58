"""The command line, end to end: train -> translate -> evaluate on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def s2s(*args, stdin: str | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "s2s.cli.main", *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def trained_run(multi30k_slice, tiny_recipe_raw, tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    recipe = work / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_raw(train={"max_steps": 6, "valid_every": 3})))
    result = s2s("train", recipe, "--run-dir", work / "run", "--set", "train.lr=0.01")
    assert result.returncode == 0, result.stderr
    assert "stopped (max_steps) at step 6" in result.stdout
    return work, work / "run", multi30k_slice


def test_translate_keeps_order_and_empty_lines(trained_run):
    work, run, files = trained_run
    lines = files["test.en"].read_text().splitlines()[:5]
    text = "\n".join([lines[0], "", lines[1], lines[2], "", lines[3]]) + "\n"
    result = s2s("translate", "--model", run, "--beam", "3", stdin=text)
    assert result.returncode == 0, result.stderr
    out = result.stdout.split("\n")[:-1]
    assert len(out) == 6
    assert out[1] == "" and out[4] == ""
    # Each line's translation is the same when translated alone: order and batching hold.
    alone = s2s("translate", "--model", run, "--beam", "3", stdin=lines[2] + "\n")
    assert alone.stdout.split("\n")[0] == out[3]


def test_translate_files_and_n_best(trained_run):
    work, run, files = trained_run
    output = work / "hyp.de"
    result = s2s("translate", "--model", run, "--input", files["test.en"], "--output", output, "--beam", "2")
    assert result.returncode == 0, result.stderr
    assert len(output.read_text().splitlines()) == len(files["test.en"].read_text().splitlines())
    nbest = s2s("translate", "--model", run, "--beam", "3", "--n-best", "3", stdin="A man rides a bike.\n")
    rows = [line.split(" ||| ") for line in nbest.stdout.splitlines()]
    assert len(rows) == 3 and all(r[0] == "0" for r in rows)
    scores = [float(r[2]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_evaluate_hyp_ref_json_and_text(trained_run):
    work, run, files = trained_run
    ref = files["test.de"]
    result = s2s("evaluate", "--hyp", ref, "--ref", ref, "--metrics", "bleu,chrf,ter", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["bleu"] == pytest.approx(100.0) and scores["ter"] == pytest.approx(0.0)
    assert set(scores["signatures"]) == {"bleu", "chrf", "ter"}
    assert "tok:13a" in scores["signatures"]["bleu"]
    text = s2s("evaluate", "--hyp", ref, "--ref", ref, "--metrics", "bleu")
    assert text.stdout.startswith("BLEU") and "100.00" in text.stdout


def test_evaluate_with_model_translates_the_test_split(trained_run):
    work, run, files = trained_run
    result = s2s("evaluate", "--model", run, "--beam", "2", "--json", "--output", work / "test.hyp")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert 0.0 <= scores["bleu"] <= 100.0 and "chrf" in scores
    assert len((work / "test.hyp").read_text().splitlines()) == 40
    explicit = s2s("evaluate", "--model", run, "--source", files["test.en"], "--ref", files["test.de"],
                   "--beam", "2", "--json")
    assert json.loads(explicit.stdout)["bleu"] == scores["bleu"]


def test_evaluate_rouge_alias_with_hyp_ref_and_with_model_shows_the_signature(trained_run):
    """--metrics rouge = rouge1, rouge2, rougeL, rougeLsum, each beside its signature, both when
    scoring files and when translating with a run first."""
    from s2s.evaluation.metrics import rouge_signature

    work, run, files = trained_run
    hyp = work / "rouge.hyp"
    hyp.write_text("".join(line.lower() + "\n" for line in files["test.de"].read_text().splitlines()))
    text = s2s("evaluate", "--hyp", hyp, "--ref", files["test.de"], "--metrics", "rouge")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    assert all(line.split()[1] == "100.00" and line.endswith(f"  {rouge_signature()}") for line in lines), lines
    result = s2s("evaluate", "--model", run, "--beam", "1", "--metrics", "rouge", "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) == {"rouge1", "rouge2", "rougeL", "rougeLsum", "signatures"}
    assert all(0.0 <= scores[name] <= 100.0 for name in scores["signatures"])
    assert scores["signatures"] == dict.fromkeys(["rouge1", "rouge2", "rougeL", "rougeLsum"], rouge_signature())


def test_resume_continues_a_run(trained_run):
    work, run, _ = trained_run
    result = s2s("train", "--resume", run, "--set", "train.max_steps=9")
    assert result.returncode == 0, result.stderr
    assert "at step 9" in result.stdout


def test_training_into_an_existing_run_is_refused(trained_run):
    work, run, _ = trained_run
    result = s2s("train", work / "tiny.yaml", "--run-dir", run)
    assert result.returncode == 2
    assert "--resume" in result.stderr


def test_config_error_is_one_clean_line(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("train:\n  lrr: 0.1\n")
    result = s2s("train", recipe, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "line 2" in result.stderr and "'train.lrr'" in result.stderr and "did you mean 'lr'" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing is started before the recipe is checked


def test_data_error_names_both_files(tmp_path, tiny_recipe_raw):
    short = tmp_path / "short.de"
    short.write_text("eins\nzwei\n")
    raw = tiny_recipe_raw()
    raw["data"]["train"]["tgt"] = str(short)
    recipe = tmp_path / "mismatch.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    result = s2s("train", recipe, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert str(short) in result.stderr and "200 lines" in result.stderr and "2 lines" in result.stderr


def test_bad_jsonl_line_is_one_clean_line_naming_file_line_and_field(tmp_path, tiny_recipe_raw):
    import gzip

    corpus = tmp_path / "train.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as out:
        out.write('{"text": "a package", "summary": "a summary"}\n{"text": "another", "summary": 7}\n')
    raw = tiny_recipe_raw(data={"src_field": "text", "tgt_field": "summary", "train": {"path": str(corpus)},
                                "valid": {"path": str(corpus)}})
    recipe = tmp_path / "summaries.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    result = s2s("train", recipe, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert f"{corpus}: line 2: field 'summary' (data.tgt_field) is a number; expected a string" in result.stderr


def test_bad_model_directory(tmp_path):
    result = s2s("translate", "--model", tmp_path, stdin="hello\n")
    assert result.returncode == 2 and "not a run directory" in result.stderr


# --------------------------------------------------------------------------- without the training extra
TRAINING_PACKAGES = ("torch", "yaml", "datasets", "sacrebleu", "onnx", "tqdm", "rouge_score", "matplotlib")
BLOCKER = """import sys
class Block:  # a package of the training extra is not installed here
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def runtime_only(trained_run):
    """``run(*args, stdin=...)``: ``python -m s2s`` in an interpreter where the training extra's
    packages cannot be imported (a ``sitecustomize`` blocks them), and a bundle of the tiny run."""
    import os

    work, run, _ = trained_run
    bundle = work / "runtime-only-bundle"
    assert s2s("export", "--model", run, "--out", bundle).returncode == 0
    site = work / "runtime-only-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(TRAINING_PACKAGES)))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(root)])}

    def run_cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "s2s", *map(str, args)], input=stdin, capture_output=True,
                              text=True, env=env, timeout=300)

    probe = run_cli("--version")  # the blocker is in force: importing torch fails there
    assert probe.returncode == 0, probe.stderr
    blocked = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert "No module named 'torch'" in blocked.stderr
    return run_cli, bundle


def test_translate_with_a_bundle_needs_no_training_package(runtime_only, trained_run, tmp_path):
    """stdin, --input (gzip too), --output and n-best, as where torch was never installed; the
    same translations as with every package present."""
    import gzip

    run_cli, bundle = runtime_only
    _, _, files = trained_run
    lines = files["test.en"].read_text().splitlines()[:3]
    text = "\n".join([lines[0], "", lines[1], lines[2]]) + "\n"
    done = run_cli("translate", "--model", bundle, "--beam", "3", stdin=text)
    assert done.returncode == 0, done.stderr
    assert done.stdout == s2s("translate", "--model", bundle, "--beam", "3", stdin=text).stdout
    assert done.stdout.split("\n")[1] == "" and len(done.stdout.splitlines()) == 4

    source = tmp_path / "in.en.gz"
    with gzip.open(source, "wt", encoding="utf-8") as out:
        out.write(text)
    output = tmp_path / "out.de"
    done = run_cli("translate", "--model", bundle, "--beam", "3", "--input", source, "--output", output)
    assert done.returncode == 0, done.stderr
    assert output.read_text() == s2s("translate", "--model", bundle, "--beam", "3", stdin=text).stdout

    nbest = run_cli("translate", "--model", bundle, "--beam", "3", "--n-best", "2", stdin="A man rides a bike.\n")
    assert nbest.returncode == 0, nbest.stderr
    assert [row.split(" ||| ")[0] for row in nbest.stdout.splitlines()] == ["0", "0"]

    bad = tmp_path / "bad.en"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    done = run_cli("translate", "--model", bundle, "--input", bad)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"s2s translate: error: {bad}: line 2: invalid UTF-8 (invalid start byte at byte 0); expected UTF-8 text"]


def test_training_commands_name_the_missing_extra_in_one_line(runtime_only, trained_run):
    run_cli, bundle = runtime_only
    work, run, files = trained_run
    done = run_cli("train", work / "tiny.yaml", "--run-dir", work / "never")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "s2s train: error: needs the training extra (pip install \"s2s[train]\"): No module named 'torch'"]
    assert not (work / "never").exists()
    for args in (("translate", "--model", run), ("export", "--model", run, "--out", work / "never"),
                 ("evaluate", "--hyp", files["test.de"], "--ref", files["test.de"]), ("info", run),
                 ("plot", "metrics", run, "--out", work / "never.png")):
        done = run_cli(*args, stdin="A dog runs.\n")
        assert done.returncode == 2, args
        assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(
            f"s2s {args[0]}: error: needs the training extra (pip install \"s2s[train]\"): No module named "), args


def _tool(name: str, *args, sets=(), timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``tools/<name>`` with ``args`` and ``--set`` overrides (and ``env`` added to the
    environment); the data must be present."""
    import os

    from pathlib import Path

    from tests.conftest import MULTI30K

    if not MULTI30K.is_dir():
        pytest.skip("Multi30k not found")
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, root / "tools" / name, *args, *[a for s in sets for a in ("--set", s)]],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_decode_benchmark_and_parity_tools_run_and_write_json(trained_run):
    """tools/bench_decode.py and tools/check_parity.py on the tiny run: rows per setting, parity counts."""
    work, run, files = trained_run
    out = work / "decode.json"
    done = _tool("bench_decode.py", "--model", run, "--source", files["test.en"], "--limit", "6",
                 "--limit-batch1", "2", "--min-len", "3", "--max-len", "3", "--json", out, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert {(r["engine"], r["batch"], r["beam"]) for r in rows} == {
        (e, b, k) for e in ("torch", "runtime-fp32", "runtime-int8") for b in (1, 32) for k in (1, 5)}
    for r in rows:  # fixed-length mode: exactly 3 tokens per sentence
        assert r["target_tokens_per_s"] == pytest.approx(3 * r["sentences_per_s"], rel=1e-6)
    bundle = work / "bundle"
    assert s2s("export", "--model", run, "--out", bundle).returncode == 0
    out = work / "parity.json"
    done = _tool("check_parity.py", "--model", run, "--bundle", bundle, "--source", files["test.en"],
                 "--json", out, timeout=300)
    result = json.loads(out.read_text())
    assert result["sentences"] == 40 and result["differing_sentences"] == 0, done.stdout
    assert result["max_abs_log_prob_diff"] <= 1e-4


def test_search_graph_tools_compare_the_two_searches(trained_run):
    """tools/check_search_graph.py and bench_decode's runtime-graph engines on the tiny run: the
    graph search gives the Python search's tokens, and --repeat keeps every round's time."""
    work, run, files = trained_run
    bundle = work / "graph-bundle"
    assert s2s("export", "--model", run, "--out", bundle, "--quantize", "int8", "--search").returncode == 0
    out = work / "graph.json"
    done = _tool("check_search_graph.py", "--bundle", bundle, "--source", files["test.en"], "--beams", "3,1",
                 "--json", out, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["beam"], r["sentences"], r["differing"]) for r in rows] == [(3, 40, 0), (1, 40, 0)]
    out = work / "decode-graph.json"
    done = _tool("bench_decode.py", "--model", run, "--bundle", bundle, "--source", files["test.en"], "--limit", "6",
                 "--limit-batch1", "2", "--batches", "1,4", "--beams", "3", "--repeat", "2", "--min-len", "3",
                 "--max-len", "3", "--engines",
                 "runtime-int8,runtime-graph-int8", "--json", out, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {(r["engine"], r["batch"]): r for r in json.loads(out.read_text())["rows"]}
    for batch in (1, 4):
        graph = rows["runtime-graph-int8", batch]
        assert graph["differing_from_python_search"] == 0 and len(graph["rounds"]) == 2
        assert graph["seconds"] == pytest.approx(sum(graph["rounds"]) / 2)  # the median of two rounds


def test_decode_benchmark_times_this_checkout_against_another(trained_run):
    """bench_decode --against TREE: each setting in fresh processes of both trees, alternating;
    against this very checkout the tokens agree and both trees' rates are recorded per round."""
    work, run, files = trained_run
    out = work / "against.json"
    root = Path(__file__).resolve().parents[2]
    done = _tool("bench_decode.py", "--model", run, "--source", files["test.en"], "--limit", "6", "--batches", "4",
                 "--beams", "2", "--min-len", "2", "--max-len", "2", "--engines", "torch,runtime-fp32",
                 "--against", root, "--rounds", "2", "--passes", "1", "--json", out, timeout=600)
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["meta"]["against"] == str(root)
    assert [(r["engine"], r["batch"], r["beam"]) for r in data["rows"]] == [("torch", 4, 2), ("runtime-fp32", 4, 2)]
    for r in data["rows"]:
        assert r["differing"] == 0 and len(r["this_tokens_per_s"]) == len(r["against_tokens_per_s"]) == 2
        assert r["median_ratio"] > 0 and all(rate > 0 for rate in r["this_tokens_per_s"] + r["against_tokens_per_s"])
    refused = _tool("bench_decode.py", "--model", run, "--source", files["test.en"], "--engines", "ctranslate2-fp32",
                    "--against", root, timeout=300)
    assert refused.returncode != 0 and "--against times the torch and runtime-* engines only" in refused.stderr


def test_training_benchmark_reports_the_median_round(tmp_path):
    """tools/bench_train.py on a shrunken benchmark model: rounds, JSON keys, median figure."""
    out = tmp_path / "train.json"
    shrink = ["vocab.size=300", "model.embeddings.dim=16", "model.encoder.hidden=8", "model.decoder.hidden=16",
              "train.batch_tokens=300", "data.max_src_len=20", "data.max_tgt_len=20"]
    done = _tool("bench_train.py", "--updates", "3", "--warmup", "1", "--rounds", "3", "--cache", tmp_path / "cache",
                 "--json", out, "--variant", "ss:teacher_forcing_ratio=0.5,predictions=sample",
                 "--variant", "copy:model.decoder.copy=true,model.decoder.coverage=true,train.coverage_loss=0.5",
                 sets=shrink)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["rounds"] == 3 and len(result["round_tokens_per_s"]) == 3 and result["updates"] == 3
    assert result["target_tokens_per_s"] == pytest.approx(sorted(result["round_tokens_per_s"])[1], abs=0.1)
    assert result["peak_rss_mb"] > 0 and result["mean_batch_target_tokens"] <= 300 + 20
    ss = result["variants"]["ss"]  # timed in the same rounds as the base, on the same batches
    assert len(ss["round_tokens_per_s"]) == 3
    assert ss["target_tokens_per_s"] == pytest.approx(sorted(ss["round_tokens_per_s"])[1], abs=0.1)
    assert ss["ratio_to_base"] == pytest.approx(ss["target_tokens_per_s"] / result["target_tokens_per_s"])
    assert ss["sampling"]["teacher_forcing_ratio"] == 0.5 and ss["sampling"]["predictions"] == "sample"
    assert "x base" in done.stdout
    copy = result["variants"]["copy"]  # a model of its own (copy attention and coverage), same batches
    assert copy["own_model"] and not ss["own_model"] and len(copy["round_tokens_per_s"]) == 3
    assert copy["source_tokens_per_s"] > 0 and result["source_tokens_per_s"] > result["target_tokens_per_s"] * 0.5

    bad = _tool("bench_train.py", "--updates", "1", "--cache", tmp_path / "cache",
                "--variant", "ss:teacher_forcing_ratio", sets=shrink)
    assert bad.returncode != 0 and "expected NAME:KEY=VALUE" in bad.stderr
    refused = _tool("bench_train.py", "--updates", "1", "--cache", tmp_path / "cache",
                    "--variant", "st:teacher_forcing_ratio=0.5,first_pass_gradient=true", sets=shrink)
    assert refused.returncode != 0 and "first_pass_gradient" in refused.stderr


def test_decode_benchmark_builds_a_random_transformer(tmp_path):
    """--random-init --arch transformer: no training, a shrunken benchmark transformer, one setting."""
    out = tmp_path / "decode.json"
    shrink = ["vocab.size=300", "model.embeddings.dim=16", "model.attention.heads=2", "data.max_src_len=20",
              *(f"model.{side}.{key}" for side in ("encoder", "decoder")
                for key in ("hidden=16", "heads=2", "ffn=32", "layers=1"))]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = _tool("bench_decode.py", "--arch", "transformer", "--random-init", "--batch", "4", "--beam", "2",
                 "--limit", "8", "--min-len", "5", "--max-len", "5", "--json", out, sets=shrink,
                 env={"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    # the random run and its export are gone (onnxruntime leaves its own small .ses marker file)
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []
    result = json.loads(out.read_text())
    assert result["meta"]["random_init"] and result["meta"]["arch"] == "transformer"
    rows = result["rows"]
    assert {(r["engine"], r["batch"], r["beam"]) for r in rows} == {
        (e, 4, 2) for e in ("torch", "runtime-fp32", "runtime-int8")}
    assert all(r["target_tokens_per_s"] == pytest.approx(5 * r["sentences_per_s"], rel=1e-6) for r in rows)
    fp32 = next(r for r in rows if r["engine"] == "runtime-fp32")
    assert fp32["differing_from_torch"] == 0


def test_ctranslate2_peer_runs_the_same_weights(tmp_path, tiny_recipe_raw, trained_run):
    """tools/peer_ctranslate2.py converts a transformer run exactly (teacher-forced log-probs and
    greedy output equal PyTorch's), bench_decode times it as an engine, and a run it cannot
    convert is refused by name."""
    pytest.importorskip("ctranslate2")
    heads = {"type": "transformer", "hidden": 16, "layers": 2, "heads": 2, "ffn": 32, "dropout": 0.1}
    raw = tiny_recipe_raw(model={"embeddings": {"dim": 16, "dropout": 0.0, "share_src_tgt": True, "tie_output": True},
                                 "encoder": dict(heads), "attention": {"type": "multihead", "heads": 2},
                                 "decoder": dict(heads)},
                          train={"max_steps": 20, "valid_every": 20, "lr": 0.01})
    recipe = tmp_path / "tiny-transformer.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    run = tmp_path / "run"
    assert s2s("train", recipe, "--run-dir", run).returncode == 0
    converted = tmp_path / "ct2"
    done = _tool("peer_ctranslate2.py", "convert", "--model", run, "--out", converted)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "check.json"
    done = _tool("peer_ctranslate2.py", "check", "--model", run, "--ct2", converted, "--source",
                 raw["data"]["test"]["src"], "--ref", raw["data"]["test"]["tgt"], "--limit", "20", "--json", out)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["sentences"] == 20 and result["max_abs_log_prob_diff"] < 1e-4
    assert result["greedy_same"] == 20

    bench, scratch = tmp_path / "decode.json", tmp_path / "tmp"
    scratch.mkdir()
    done = _tool("bench_decode.py", "--model", run, "--source", raw["data"]["test"]["src"], "--batch", "4",
                 "--beam", "2", "--limit", "8", "--min-len", "5", "--max-len", "5",
                 "--engines", "torch,runtime-fp32,ctranslate2-fp32,ctranslate2-int8", "--json", bench,
                 "--ctranslate2-env", "OMP_DYNAMIC=true", "--ctranslate2-env", "fp32:CT2_USE_MKL=0",
                 env={"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stderr
    # the export and CTranslate2's conversions are gone (onnxruntime leaves its .ses marker file)
    assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []
    rows = {r["engine"]: r for r in json.loads(bench.read_text())["rows"]}
    assert set(rows) == {"torch", "runtime-fp32", "ctranslate2-fp32", "ctranslate2-int8"}
    for r in rows.values():  # fixed length: every engine emitted exactly 5 tokens per sentence
        assert r["target_tokens_per_s"] == pytest.approx(5 * r["sentences_per_s"], rel=1e-6), r["engine"]
    assert "runtime-fp32 / ctranslate2-fp32, batch 4 beam 2" in done.stdout
    # --ctranslate2-env reached each variant's worker process, and only the variant it names
    assert rows["ctranslate2-fp32"]["environment"].get("CT2_USE_MKL") == "0"
    assert rows["ctranslate2-fp32"]["environment"].get("OMP_DYNAMIC") == "true"
    assert rows["ctranslate2-int8"]["environment"].get("OMP_DYNAMIC") == "true"
    assert "CT2_USE_MKL" not in rows["ctranslate2-int8"]["environment"]
    refused = _tool("bench_decode.py", "--model", run, "--engines", "ctranslate2-fp32", "--ctranslate2-env", "gpu:X=1")
    assert refused.returncode == 2 and "expected KEY=VALUE, fp32:KEY=VALUE or int8:KEY=VALUE" in refused.stderr

    _, rnn_run, _ = trained_run
    refused = _tool("peer_ctranslate2.py", "convert", "--model", rnn_run, "--out", tmp_path / "rnn")
    assert refused.returncode != 0 and "model.encoder.type and model.decoder.type 'transformer'" in refused.stderr


def test_sampling_ablation_trains_scores_and_tabulates_each_mode(tmp_path, tiny_recipe_raw):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe_raw()))
    out = tmp_path / "ablation"
    result = _tool("ablate_sampling.py", recipe, "--out", out, "--updates", "6", "--sampling-warmup", "2",
                   "--modes", "teacher-forcing,exponential", "--jobs", "2", "--threads", "1")
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())
    assert [r["mode"] for r in rows] == ["teacher-forcing", "exponential"]
    assert all(0 <= r["bleu"] <= 100 and r["signature"].startswith("nrefs:1") for r in rows)
    ratios = [json.loads(line).get("teacher_forcing_ratio")
              for line in (out / "exponential" / "metrics.jsonl").read_text().splitlines()]
    assert ratios[-2] == pytest.approx(0.5)  # the last logged update sits on the floor
    assert "| exponential |" in (out / "results.md").read_text()

    # --from: each mode continues a copy of a trained run; the schedule starts where it stopped
    more = tmp_path / "continued"
    result = _tool("ablate_sampling.py", "--from", out / "teacher-forcing", "--out", more, "--updates", "4",
                   "--modes", "linear", "--threads", "1")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads((more / "results.json").read_text())
    assert (row["start"], row["mode"]) == (6, "linear")
    logged = [json.loads(line) for line in (more / "linear" / "metrics.jsonl").read_text().splitlines()]
    ratios = {r["step"]: r["teacher_forcing_ratio"] for r in logged if "train_loss" in r}
    assert ratios == {8: pytest.approx(1 - 0.5 / 3), 10: pytest.approx(0.5)}  # updates 6..9, span 3


@pytest.mark.parametrize("mode", ["linear", "exponential", "inverse_sigmoid"])
def test_ablation_schedules_reach_the_floor_at_the_last_update(mode):
    from pathlib import Path

    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.training.sampling import gold_probability

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    from ablate_sampling import sampling_overrides

    overrides = [s.removeprefix("train.sampling.") for s in sampling_overrides(mode, 500, 125, 0.5)]
    raw = {"train": {"sampling": {k: yaml.safe_load(v) for k, v in (s.split("=") for s in overrides)}}}
    config = recipe_from_dict(raw).train.sampling
    assert gold_probability(config, 124) == 1.0 and gold_probability(config, 125) > 0.95
    assert gold_probability(config, 499) == pytest.approx(0.5, abs=0.01)
    assert gold_probability(config, 300) > 0.5
