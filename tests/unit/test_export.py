"""ONNX export and the torch-free runtime on tiny trained runs: parity, int8, bundle errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

import s2s.models  # noqa: F401  (registers the attention types parametrized below)
from s2s import registry
from s2s.errors import BundleError

ROOT = Path(__file__).resolve().parents[2]
CELLS = ["lstm", "gru"]


@pytest.fixture(scope="module")
def run_factory(tmp_path_factory, multi30k_slice):
    """Train (once per module) a tiny run for an attention type and cell."""
    import s2s.models  # noqa: F401
    from s2s.config import recipe_from_dict
    from s2s.training.loop import train

    from tests.conftest import tiny_recipe_dict

    runs: dict[tuple[str, str], Path] = {}

    def make(attention: str, cell: str = "lstm") -> Path:
        if (attention, cell) not in runs:
            recipe = recipe_from_dict(tiny_recipe_dict(
                multi30k_slice, model={"embeddings": {"dim": 16, "dropout": 0.1},
                                       "encoder": {"type": cell, "hidden": 8, "layers": 2, "dropout": 0.1},
                                       "attention": {"type": attention},
                                       "decoder": {"type": cell, "hidden": 16, "layers": 2, "dropout": 0.1}},
                train={"max_steps": 30, "valid_every": 30, "valid_bleu": False, "best_metric": "loss", "lr": 0.02}))
            run = tmp_path_factory.mktemp(f"run-{attention}-{cell}")
            train(recipe, run)
            runs[attention, cell] = run
        return runs[attention, cell]

    return make


def _lines(multi30k_slice) -> list[str]:
    return multi30k_slice["test.en"].read_text(encoding="utf-8").splitlines()[:24]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", registry.names("attention"))
def test_runtime_decodes_exactly_like_pytorch(run_factory, multi30k_slice, tmp_path, attention, cell):
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    run = run_factory(attention, cell)
    meta = export_bundle(run, tmp_path / "bundle", search=True)
    assert meta["verification"]["max_abs_diff"] <= 1e-4
    written = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert written["graphs"]["state"] and written["architecture"]["attention"] == attention
    step = onnx.load(str(tmp_path / "bundle" / "decoder_step.onnx")).graph
    columns = {i.name for i in step.initializer if len(i.dims) == 2 and i.dims[-1] == 1}
    # a matrix product with one output column (additive energies) is onnxruntime's least accurate sum
    assert not [n.name for n in step.node if n.op_type in ("MatMul", "Gemm") and columns & set(n.input)]
    lines = _lines(multi30k_slice) + [""]
    ours, theirs = TorchTranslator.from_run(run), Translator.load(tmp_path / "bundle")
    graph = Translator.load(tmp_path / "bundle", search="graph")
    assert theirs.has_search_head  # beam steps take the one-call path through the graph's search head
    for options in ({"beam": 1}, {"beam": 5, "n_best": 3, "length_penalty": 0.6},
                    {"beam": 3, "min_len": 6, "max_len": 6}, {"beam": 4, "no_repeat_ngram": 2},
                    {"beam": 3, "coverage_penalty": 0.4, "max_len_ratio": 0.5, "max_len_offset": 3}):
        a, b, c = (t.hypotheses(lines, **options) for t in (ours, theirs, graph))
        assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b], options
        assert [[h.tokens for h in hyps] for hyps in b] == [[h.tokens for h in hyps] for hyps in c], options
        for x, y, z in zip(a, b, c):
            assert [h.score for h in x] == pytest.approx([h.score for h in y], abs=1e-3)
            assert [h.score for h in y] == pytest.approx([h.score for h in z], abs=1e-5)
            assert [h.log_prob for h in y] == pytest.approx([h.log_prob for h in z], abs=1e-5)
    theirs.has_search_head = False  # the numpy selection (graphs without the search head) must agree too
    a, b = ours.hypotheses(lines, beam=5, n_best=2), theirs.hypotheses(lines, beam=5, n_best=2)
    assert [[h.tokens for h in hyps] for hyps in a] == [[h.tokens for h in hyps] for hyps in b]
    fixed = theirs.hypotheses(lines[:5], beam=3, min_len=6, max_len=6)
    assert all(len(h[0].tokens) == 6 for h in fixed)
    assert theirs.translate([""]) == [""]


def test_int8_bundle_translates_and_is_smaller(run_factory, multi30k_slice, tmp_path):
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    meta = export_bundle(run_factory("bahdanau"), tmp_path / "b", quantize="int8")
    assert set(meta["graphs"]["variants"]) == {"fp32", "int8"}
    assert 0.0 <= meta["verification"]["int8_sample_agreement"] <= 1.0
    size = {v: (tmp_path / "b" / f"decoder_step{'' if v == 'fp32' else '.int8'}.onnx").stat().st_size
            for v in ("fp32", "int8")}
    assert size["int8"] < size["fp32"]
    out = Translator.load(tmp_path / "b", "int8").translate(_lines(multi30k_slice)[:4], beam=2)
    assert len(out) == 4 and all(isinstance(s, str) for s in out)


def test_int8_only_bundle_is_the_int8_variant_without_the_fp32_graphs(run_factory, multi30k_slice, tmp_path):
    from s2s.bundle import read_bundle
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    run = run_factory("bahdanau")
    export_bundle(run, tmp_path / "both", quantize="int8")
    meta = export_bundle(run, tmp_path / "b", quantize="int8", keep_fp32=False)
    assert set(meta["graphs"]["variants"]) == {"int8"} and meta["verification"]["max_abs_diff"] < 1e-4
    assert not (tmp_path / "b" / "encoder.onnx").exists() and not (tmp_path / "b" / "decoder_step.onnx").exists()
    assert read_bundle(tmp_path / "b").default_variant == "int8"
    lines = _lines(multi30k_slice)[:6]
    only = Translator.load(tmp_path / "b")  # no variant named: the only one
    assert only.variant == "int8"
    assert only.translate(lines, beam=3) == Translator.load(tmp_path / "both", "int8").translate(lines, beam=3)
    with pytest.raises(BundleError, match=r"no 'fp32' graphs \(has \['int8'\]\)"):
        Translator.load(tmp_path / "b", "fp32")
    with pytest.raises(BundleError, match="--no-fp32 needs --quantize int8"):
        export_bundle(run, tmp_path / "c", keep_fp32=False)


def test_float64_errors_tell_which_engine_is_off(run_factory, tmp_path):
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.export.bundle import export_bundle
    from s2s.export.onnx import sample_batch
    from s2s.export.parity import float64_errors
    from s2s.runtime import Translator

    run = run_factory("bahdanau")
    export_bundle(run, tmp_path / "b")
    model = TorchTranslator.from_run(run).model.eval()
    runtime = Translator.load(tmp_path / "b", providers=["CPUExecutionProvider"])
    src, lengths = sample_batch(model.src_embed.num_embeddings)
    clean = float64_errors(model, runtime, src, lengths)
    assert set(clean) == {f"{e}_{w}" for e in ("torch", "runtime") for w in ("memory", "log_probs", "state")}
    assert all(0.0 <= value < 1e-5 for value in clean.values()), clean
    step = runtime.step

    def off_by_a_thousandth(tokens, state, memory):  # a runtime whose log-probs are wrong
        log_probs, new_state, attn = step(tokens, state, memory)
        return log_probs + 1e-3, new_state, attn

    runtime.step = off_by_a_thousandth
    off = float64_errors(model, runtime, src, lengths)
    assert off["runtime_log_probs"] == pytest.approx(1e-3, rel=0.02)
    assert off["torch_log_probs"] == clean["torch_log_probs"] and off["runtime_state"] == clean["runtime_state"]


def test_runtime_runs_where_torch_cannot_be_imported(run_factory, multi30k_slice, tmp_path):
    from s2s.export.bundle import export_bundle

    export_bundle(run_factory("luong-general"), tmp_path / "b")
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.') or name.startswith('s2s.models') \\\n"
        "                or name.startswith(('s2s.training', 's2s.decoding', 's2s.runs', 's2s.export')):\n"
        "            raise ImportError(f'{name} is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from s2s.runtime import Translator\n"
        f"t = Translator.load({str(tmp_path / 'b')!r})\n"
        "print(t.translate(['A dog runs through the grass.', ''], beam=5)[1] == '')\n"
        "print(any(m == 'torch' or m.startswith('torch.') for m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_failed_verification_keeps_the_previous_bundle(run_factory, tmp_path, monkeypatch):
    import s2s.export.parity as parity
    from s2s.export.bundle import export_bundle

    run = run_factory("bahdanau")
    export_bundle(run, tmp_path / "b")
    before = (tmp_path / "b" / "bundle.json").read_text()
    monkeypatch.setattr(parity, "TOLERANCE", -1.0)  # nothing can pass
    with pytest.raises(BundleError, match="differs from PyTorch"):
        export_bundle(run, tmp_path / "b")
    assert (tmp_path / "b" / "bundle.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no half-written folder left


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.pop("special_ids"), "missing field 'special_ids'"),
    (lambda m: m.update(format_version=99), "format_version 99 is newer"),
    (lambda m: m["graphs"]["variants"]["fp32"].update(decoder_step="gone.onnx"), "gone.onnx, which is not in the bundle"),
    (lambda m: m["vocab"].update(source=3), "'source' must be str"),
    (lambda m: m["graphs"].update(memory_per_sentence="yes"), "'graphs.memory_per_sentence' must be true or false"),
])
def test_bad_bundle_json_names_the_field(run_factory, tmp_path, edit, message):
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    export_bundle(run_factory("bahdanau"), tmp_path / "b")
    path = tmp_path / "b" / "bundle.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=message):
        Translator.load(tmp_path / "b")
    path.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        Translator.load(tmp_path / "b")


def test_translate_cli_takes_a_run_or_a_bundle(run_factory, multi30k_slice, tmp_path, capsys):
    from s2s.cli.main import main
    from s2s.export.bundle import export_bundle

    run = run_factory("bahdanau")
    assert main(["export", "--model", str(run), "--out", str(tmp_path / "b"), "--quantize", "int8"]) == 0
    assert "onnxruntime == PyTorch" in capsys.readouterr().out
    source = tmp_path / "in.txt"
    source.write_text("\n".join(_lines(multi30k_slice)[:6] + ["", "A dog."]) + "\n")
    outputs = []
    for model in (run, tmp_path / "b"):
        assert main(["translate", "--model", str(model), "--input", str(source), "--beam", "3"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and outputs[0].splitlines()[6] == ""
    aligned = []
    for model in (run, tmp_path / "b"):
        assert main(["translate", "--model", str(model), "--input", str(source), "--beam", "3", "--alignment"]) == 0
        aligned.append(capsys.readouterr().out.splitlines())
    assert aligned[0] == aligned[1] and len(aligned[0]) == 8 and aligned[0][6] == " ||| "
    for text_line, row in zip(outputs[0].splitlines(), aligned[0]):
        text, pairs = row.split(" ||| ")
        assert text == text_line  # the same translation, then one pair per target word
        assert [int(p.split("-")[1]) for p in pairs.split()] == list(range(len(text.split())))
    assert main(["translate", "--model", str(tmp_path / "b"), "--input", str(source), "--beam", "3", "--n-best", "2",
                 "--alignment"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 * 7 + 1 and all(len(r.split(" ||| ")) == 4 for r in rows if not r.startswith("6 "))
    assert main(["translate", "--model", str(tmp_path / "b"), "--variant", "int8", "--input", str(source)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 8
    ref = multi30k_slice["test.de"]
    src = multi30k_slice["test.en"]
    scores = []
    for model in (run, tmp_path / "b"):
        assert main(["evaluate", "--model", str(model), "--source", str(src), "--ref", str(ref), "--beam", "3",
                     "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0]["bleu"] == scores[1]["bleu"]  # same translations, same score
    assert main(["evaluate", "--model", str(tmp_path / "b")]) == 2
    assert "give --source and --ref" in capsys.readouterr().err


def test_min_len_above_max_len_is_refused_by_both_engines(run_factory, tmp_path):
    from s2s.decoding.translator import Translator as TorchTranslator
    from s2s.errors import ConfigError
    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    run = run_factory("bahdanau")
    export_bundle(run, tmp_path / "b")
    for engine in (TorchTranslator.from_run(run), Translator.load(tmp_path / "b")):
        with pytest.raises(ConfigError, match=r"min_len \(5\) must not exceed max_len \(3\)"):
            engine.translate(["A dog."], beam=2, min_len=5, max_len=3)


@pytest.mark.parametrize("vocab", [1024, 300])  # two-stage top-k (32 chunks of 32), and one plain TopK
def test_search_head_equals_a_full_top_k_with_ties_to_the_lower_index(tmp_path, vocab):
    """The head's top-k, two-stage or plain, returns exactly the k best of each sentence's W*V
    candidates, ties to the lower index, including ties across chunks, -inf masks and k larger
    than the number of chunks."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from s2s.export.onnx import add_search_head, head_chunk
    from s2s.search.candidates import top_k

    assert (head_chunk(vocab) > 0) == (vocab == 1024)
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["log_probs"])], "step",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", vocab])],
                              [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["batch", vocab])])
    path = tmp_path / "step.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    add_search_head(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    cases = [(3, 5, 10), (1, 5, 11), (2, 1, 1), (2, 1, 2), (1, 5, 40), (2, 2, 64), (2, 1, 40)]  # last: k > chunks
    for case, (sentences, width, k) in enumerate(cases + [(1, 2, 3), (2, 1, 5)]):
        x = rng.integers(-6, 0, size=(sentences * width, vocab)).astype(np.float32)  # many exact ties
        x[:, vocab // 2:] = x[:, : vocab - vocab // 2]  # equal values in far-apart chunks
        x[0, 3] = x[-1, vocab - 1] = 2.0
        if case >= len(cases):  # all equal but one late maximum: its chunk ranks first, yet ties keep index order
            x[:] = -1.0
            x[-1, vocab - 5] = 2.0
        scores = rng.integers(-2, 1, size=(sentences * width, 1)).astype(np.float32)
        mask = np.zeros((1, vocab), np.float32)
        mask[0, 1::7] = -np.inf
        feeds = {"x": x, "search.scores": scores, "search.mask": mask,
                 "search.shape": np.array([sentences, -1], np.int64), "search.k": np.array([k], np.int64)}
        values, index = session.run(["top_values", "top_indices"], feeds)
        want_values, want_index = top_k((x + (scores + mask)).reshape(sentences, -1), k)
        assert np.array_equal(index, want_index), (sentences, width, k)
        assert np.array_equal(values, want_values)


def test_translator_session_settings(run_factory, tmp_path, monkeypatch):
    """The runtime's defaults: onnxruntime workers spin only while a step runs (not between
    steps), and the host process's allocator is left alone unless the caller, owning its
    process, opts in; both can be changed, and a bad spin is refused."""
    from s2s.errors import ConfigError
    import onnxruntime as ort

    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator
    from s2s.runtime import translator as module

    export_bundle(run_factory("bahdanau"), tmp_path / "b")
    tuned, entries = [], []
    monkeypatch.setattr(module, "keep_freed_memory", lambda: tuned.append(True))
    original = ort.SessionOptions.add_session_config_entry
    monkeypatch.setattr(ort.SessionOptions, "add_session_config_entry",
                        lambda self, key, value: (entries.append((key, value)), original(self, key, value))[1])
    default = Translator.load(tmp_path / "b")
    assert default.translate(["A dog runs."], beam=2)
    assert tuned == [] and default.huge_page_bytes == 0
    assert {("session.intra_op.allow_spinning", "1"), ("session.force_spinning_stop", "1")} <= set(entries)
    entries.clear()
    Translator.load(tmp_path / "b", tune_allocator=True, spin="never")
    assert tuned == [True] and entries == [("session.intra_op.allow_spinning", "0")]
    entries.clear()
    Translator.load(tmp_path / "b", spin="always")
    assert entries == [("session.intra_op.allow_spinning", "1")]
    with pytest.raises(ConfigError, match="spin must be one of run, always, never, got 'sometimes'"):
        Translator.load(tmp_path / "b", spin="sometimes")


def test_translator_steps_through_the_public_session_run(run_factory, tmp_path, monkeypatch):
    """Every decoder step is a call of ``InferenceSession.run``, onnxruntime's public API."""
    import onnxruntime as ort

    from s2s.export.bundle import export_bundle
    from s2s.runtime import Translator

    export_bundle(run_factory("bahdanau"), tmp_path / "b")
    translator = Translator.load(tmp_path / "b")
    want = translator.translate(["A dog runs."], beam=3)
    calls = []
    original = ort.InferenceSession.run
    monkeypatch.setattr(ort.InferenceSession, "run",
                        lambda self, names, feeds, *rest: (calls.append(self), original(self, names, feeds, *rest))[1])
    assert translator.translate(["A dog runs."], beam=3) == want
    assert calls.count(translator.decoder) >= 2 and calls.count(translator.encoder) == 1


def _anon_huge_kib() -> int:
    import re

    return int(re.search(r"AnonHugePages:\s+(\d+)", Path("/proc/self/smaps_rollup").read_text()).group(1))


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_huge_pages_back_the_heap_that_loading_filled(tmp_path):
    """back_with_huge_pages collapses what it reports (the process's huge pages grow by as much),
    and the translator applies it to the heap range its sessions filled when told to
    (``tune_allocator=True``; by default it does not), with the same translations."""
    import ctypes
    import mmap

    import shutil

    from s2s.cpu.allocator import HUGE_PAGE, back_with_huge_pages
    from s2s.export.bundle import export_bundle
    from tools.bench_decode import random_run

    region = mmap.mmap(-1, 5 * HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # like heap memory
    region.write(b"\1" * len(region))  # touched, so there are pages to collapse
    start = ctypes.addressof(ctypes.c_char.from_buffer(region))
    before = _anon_huge_kib()
    collapsed = back_with_huge_pages(start, start + len(region))
    if not collapsed:
        pytest.skip("this kernel cannot collapse huge pages (needs transparent huge pages and Linux 6.1+)")
    assert collapsed % HUGE_PAGE == 0 and 4 * HUGE_PAGE <= collapsed <= 5 * HUGE_PAGE
    assert _anon_huge_kib() - before >= collapsed // 1024
    assert region[:3] == b"\1\1\1" and region[-1:] == b"\1"  # same contents
    assert back_with_huge_pages(start, start + HUGE_PAGE // 2) == 0  # no whole huge page inside

    # the benchmark transformer's width (some MB of weights), one layer each side, a small vocabulary
    run = Path(random_run("transformer", 1, ["vocab.size=300", "data.max_src_len=20", "model.encoder.layers=1",
                                             "model.decoder.layers=1"]))
    try:
        export_bundle(run, tmp_path / "b")
    finally:
        shutil.rmtree(run)
    # a fresh interpreter, as a server or the CLI starts: its heap grows while the sessions load
    probe = (f"from s2s.runtime import Translator; import re, pathlib; "
             f"t = Translator.load({str(tmp_path / 'b')!r}{{}}); "
             f"print(t.huge_page_bytes, re.search(r'AnonHugePages:\\s+(\\d+)', "
             f"pathlib.Path('/proc/self/smaps_rollup').read_text()).group(1), t.translate(['A dog runs.'], beam=2))")
    outputs = {}
    for how in (", tune_allocator=True", ""):  # opted in, and the default
        done = subprocess.run([sys.executable, "-c", probe.format(how)], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        outputs[how] = done.stdout.split(maxsplit=2)
    huge, kib, text = outputs[", tune_allocator=True"]
    assert int(huge) >= HUGE_PAGE and int(kib) >= int(huge) // 1024
    assert outputs[""][0] == "0" and outputs[""][2] == text
