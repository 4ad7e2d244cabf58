"""search.onnx: the whole search in one graph gives the Python search's hypotheses, and its
export adds nothing but nodes to a bundle (the variant's graphs share one weights file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from unittest.mock import Mock

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2s.errors import BundleError, ConfigError


@pytest.fixture(scope="module")
def graph_bundles(tmp_path_factory, tiny_bundle, tiny_transformer_run) -> dict[str, Path]:
    """The session's tiny LSTM bundle and a tiny transformer bundle, each with search.onnx."""
    from s2s.export.bundle import add_search_graphs, export_bundle

    root = tmp_path_factory.mktemp("graph-bundles")
    lstm = root / "lstm"
    shutil.copytree(tiny_bundle, lstm)
    add_search_graphs(lstm)
    transformer = root / "transformer"
    export_bundle(tiny_transformer_run, transformer, quantize="int8", search=True)
    return {"lstm": lstm, "transformer": transformer}


def _lines(multi30k_slice, count=12) -> list[str]:
    return multi30k_slice["test.en"].read_text(encoding="utf-8").splitlines()[:count]


def _tokens(results) -> list[list[list[int]]]:
    return [[h.tokens for h in hyps] for hyps in results]


OPTIONS = st.fixed_dictionaries({
    "beam": st.integers(1, 4), "length_penalty": st.sampled_from([0.0, 0.6, 1.0]),
    "min_len": st.integers(0, 3), "max_len": st.sampled_from([0, 5, 9]),
    "no_repeat_ngram": st.integers(0, 3), "coverage_penalty": st.sampled_from([0.0, 0.3]),
    "max_len_ratio": st.sampled_from([0.5, 1.5]), "max_len_offset": st.integers(0, 4), "n_best": st.integers(1, 4)})


@pytest.mark.parametrize("family,variant", [("lstm", "fp32"), ("transformer", "fp32"), ("transformer", "int8")])
@settings(max_examples=12, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(options=OPTIONS)
def test_the_graph_search_gives_the_python_searchs_hypotheses(graph_bundles, multi30k_slice, family, variant,
                                                              options):
    from s2s.runtime import Translator

    options["n_best"] = min(options["n_best"], options["beam"])
    if options["max_len"] and options["min_len"] > options["max_len"]:
        options["min_len"] = options["max_len"]
    lines = _lines(multi30k_slice) + ["", "A dog."]
    python = Translator.load(graph_bundles[family], variant)
    graph = Translator.load(graph_bundles[family], variant, search="graph")
    a, b = python.hypotheses(lines, batch_size=5, **options), graph.hypotheses(lines, batch_size=5, **options)
    assert _tokens(a) == _tokens(b)
    for x, y in zip(a, b):
        assert [h.score for h in x] == pytest.approx([h.score for h in y], abs=1e-5)
        assert [h.log_prob for h in x] == pytest.approx([h.log_prob for h in y], abs=1e-5)
    if options["no_repeat_ngram"]:
        n = options["no_repeat_ngram"]
        for hyps in b:
            for h in hyps:
                grams = [tuple(h.tokens[i:i + n]) for i in range(len(h.tokens) - n + 1)]
                assert len(grams) == len(set(grams))


def test_fp32_graph_search_does_not_depend_on_the_batch(graph_bundles, multi30k_slice):
    from s2s.runtime import Translator

    graph = Translator.load(graph_bundles["transformer"], "fp32", search="graph")
    lines = _lines(multi30k_slice, 9)
    together = graph.translate(lines, beam=4)
    assert together == [graph.translate([line], beam=4)[0] for line in lines]


def test_the_graphs_of_a_variant_share_one_weights_file(graph_bundles):
    bundle = graph_bundles["transformer"]
    meta = json.loads((bundle / "bundle.json").read_text())
    for variant, files in meta["graphs"]["variants"].items():
        assert set(files) == {"encoder", "decoder_step", "search", "weights"}
        weights = bundle / files["weights"]
        for role in ("encoder", "decoder_step", "search"):
            graph = onnx.load(str(bundle / files[role]), load_external_data=False).graph
            assert max(len(t.raw_data) for t in graph.initializer) < 1024  # only tensors under 1 KiB stay inside
        # each tensor once: the search graph reads only bytes that the encoder or the step reads
        spans = {role: _spans(bundle / files[role]) for role in ("encoder", "decoder_step", "search")}
        assert spans["search"] == spans["encoder"]  # the loop body keeps the step's weights inline
        assert sum(length for _, length in spans["encoder"] | spans["decoder_step"]) <= weights.stat().st_size


def _spans(path: Path) -> set[tuple[int, int]]:
    """(offset, length) of each tensor a graph (its loop bodies included) keeps in its external
    weights file."""
    def initializers(graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                    yield from initializers(sub)

    graph = onnx.load(str(path), load_external_data=False).graph
    return {(int(e["offset"]), int(e["length"])) for e in
            ({d.key: d.value for d in t.external_data} for t in initializers(graph) if t.external_data)}


def test_search_graphs_join_an_existing_bundle_in_place_through_the_cli(tiny_bundle, tmp_path, multi30k_slice,
                                                                        capsys):
    from s2s.cli.main import main

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    assert main(["export", "--model", str(bundle), "--search"]) == 0
    assert "search graphs added" in capsys.readouterr().out
    source = multi30k_slice["test.en"]
    outputs = []
    for search in ("python", "graph"):
        out = tmp_path / f"{search}.txt"
        assert main(["translate", "--model", str(bundle), "--input", str(source), "--output", str(out),
                     "--beam", "3", "--search", search]) == 0
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1] and outputs[0].strip()
    assert main(["export", "--model", str(bundle), "--search", "--out", str(tmp_path / "other")]) != 0
    assert "only --search applies" in capsys.readouterr().err


def test_a_search_graph_that_disagrees_leaves_the_bundle_as_it_was(tiny_bundle, tmp_path, monkeypatch):
    import s2s.runtime.translator as runtime
    from s2s.export.bundle import add_search_graphs

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    before = (bundle / "bundle.json").read_text()
    real = runtime.hypotheses_of

    def reversed_tokens(*outputs):
        hyps = real(*outputs)
        for row in hyps:
            for h in row:
                h.tokens = h.tokens[::-1] + [4]
        return hyps

    monkeypatch.setattr(runtime, "hypotheses_of", reversed_tokens)
    with pytest.raises(BundleError, match="differs from the Python search"):
        add_search_graphs(bundle)
    assert (bundle / "bundle.json").read_text() == before
    assert not (bundle / "search.onnx").exists()
    monkeypatch.undo()
    assert runtime.Translator.load(bundle).translate(["A dog."])  # the bundle still works


def test_the_graph_search_says_what_it_cannot_do(graph_bundles, tiny_bundle):
    from s2s.runtime import Translator

    with pytest.raises(BundleError, match="--search"):
        Translator.load(tiny_bundle, search="graph")
    with pytest.raises(ConfigError, match="search must be one of"):
        Translator.load(tiny_bundle, search="numpy")
    graph = Translator.load(graph_bundles["lstm"], search="graph")
    with pytest.raises(ConfigError, match="sampling runs in the Python search"):
        graph.translate(["A dog."], sample=True)
    with pytest.raises(ConfigError, match="returns no attention"):
        graph.hypotheses(["A dog."], attention=True)
    with pytest.raises(ValueError, match="min_len"):
        graph.translate(["A dog."], min_len=2000)  # above the 1024-token cap of every sentence


def test_auto_search_takes_the_graph_where_it_can(graph_bundles, tiny_bundle, multi30k_slice):
    """search="auto": beam search and greedy in search.onnx, sampling and kept attention in the
    Python search, and a bundle without a search graph in the Python search."""
    from s2s.runtime import Translator

    lines = _lines(multi30k_slice, 6)
    python = Translator.load(graph_bundles["lstm"], search="python")
    auto = Translator.load(graph_bundles["lstm"], search="auto")
    auto.search_graph = counted = Mock(wraps=auto.search_graph)  # the graph session, its runs counted
    assert _tokens(auto.hypotheses(lines, beam=3, n_best=2)) == _tokens(python.hypotheses(lines, beam=3, n_best=2))
    assert auto.translate(lines, beam=1) == python.translate(lines, beam=1)
    assert counted.run.call_count == 2
    kept = auto.hypotheses(lines[:2], beam=2, attention=True)
    assert all(h.attention is not None for hyps in kept for h in hyps)
    assert auto.translate(lines[:2], sample=True, seed=3) == python.translate(lines[:2], sample=True, seed=3)
    assert counted.run.call_count == 2  # attention and sampling ran in the Python search
    plain = Translator.load(tiny_bundle, search="auto")  # no search graph: the Python search
    assert plain.search_graph is None and plain.translate(lines, beam=3) == python.translate(lines, beam=3)


@pytest.mark.parametrize("k", [1, 2, 10, 40])
def test_the_two_stage_top_k_equals_one_top_k_with_ties_to_the_lower_index(k):
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from s2s.export.onnx_builder import Nodes
    from s2s.export.search_graph import _top
    from s2s.search.candidates import top_k

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(6, 2 * 1024)).astype(np.float32)  # 3 sentences x 2 rows, many ties
    scores[0, 5:300] = -np.inf
    g = Nodes("t/")
    blocks = g.i64([3])
    values, index = _top(g, "scores", blocks, "k", chunk=32)
    graph = helper.make_graph(g.nodes, "top", [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None]),
                                               helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
                              [helper.make_tensor_value_info(values, TensorProto.FLOAT, None),
                               helper.make_tensor_value_info(index, TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got_values, got_index = session.run(None, {"scores": scores, "k": np.array([k], np.int64)})
    want_values, want_index = top_k(scores.reshape(3, -1), k)
    assert np.array_equal(got_index, want_index) and np.array_equal(got_values, want_values)


def test_info_counts_the_weights_inside_the_search_loop(graph_bundles):
    from s2s.bundle import read_bundle
    from s2s.export.info import _graph_weights

    counts, _ = _graph_weights(read_bundle(graph_bundles["transformer"]))
    assert counts["search graph"] >= counts["encoder graph"] + counts["decoder_step graph"]
