"""exported/clients/node: the Node.js client (onnxruntime-node and the bundle's search graph)
translates as the Python runtime does, line for line."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

CLIENT = ROOT / "exported" / "clients" / "node"


@pytest.fixture(scope="module")
def node(need) -> str:
    path = shutil.which("node")
    need(path is not None, "node", "your system's Node.js 18 or newer (with npm)")
    need((CLIENT / "node_modules" / "onnxruntime-node").is_dir()
         and (CLIENT / "node_modules" / "@sctg" / "sentencepiece-js").is_dir(),
         f"the npm packages of {CLIENT.relative_to(ROOT)}")
    return path


def run_client(node: str, bundle, lines: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(CLIENT / "translate.mjs"), str(bundle), *args],
                          input="".join(f"{line}\n" for line in lines), capture_output=True, text=True,
                          encoding="utf-8", timeout=600)


def test_translations_equal_the_python_runtime(node, search_bundle, python_translator, flickr_lines):
    # the first 50 test lines, with an empty and a blank line among them (they stay empty)
    lines = flickr_lines[:20] + ["", "   "] + flickr_lines[20:]
    done = run_client(node, search_bundle, lines)
    assert done.returncode == 0, done.stderr
    got = done.stdout.split("\n")
    assert got[-1] == "" and len(got) - 1 == len(lines), done.stdout
    expected = python_translator.translate(lines)
    differ = [f"line {i + 1}: {lines[i]!r}\n  node:   {a!r}\n  python: {b!r}"
              for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    assert not differ, f"{len(differ)} of {len(lines)} lines differ:\n" + "\n".join(differ)


@pytest.mark.parametrize("args, options", [
    (["--beam", "1"], {"beam": 1}),
    (["--max-len", "4", "--length-penalty", "0"], {"max_len": 4, "length_penalty": 0.0}),
])
def test_decoding_settings_given_as_flags_are_the_python_runtimes(node, search_bundle, python_translator,
                                                                 flickr_lines, args, options):
    """The graph's settings are inputs with the bundle's defaults, which onnxruntime-node will not
    feed: the client takes the defaults out of the graph (exported/clients/settings.mjs) and feeds
    each setting, a flag's value or bundle.json's."""
    lines = flickr_lines[:30]
    done = run_client(node, search_bundle, lines, *args)
    assert done.returncode == 0, done.stderr
    got = done.stdout.split("\n")[:-1]
    assert got == python_translator.translate(lines, **options)
    assert got != python_translator.translate(lines)  # the flags changed the translations


@pytest.mark.parametrize("args, message", [
    (["--beam", "two"], 'setting beam: expected a number, got "two"'),
    (["--max-len", "2.5"], 'setting max_len: expected an integer, got "2.5"'),
    (["--colour", "red"], "Unknown option '--colour'"),
])
def test_a_bad_setting_is_refused_with_its_name(node, search_bundle, args, message):
    done = run_client(node, search_bundle, ["A man."], *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_bundle_without_a_search_graph_is_refused(node, tmp_path):
    meta = json.loads((ROOT / "exported" / "multi30k-en-de" / "bundle.json").read_text(encoding="utf-8"))
    for files in meta["graphs"]["variants"].values():
        files.pop("search", None)
    (tmp_path / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    done = run_client(node, tmp_path, ["A man."])
    assert done.returncode == 1 and "no search graph" in done.stderr, done.stderr


def test_copied_source_pieces_are_spelled_as_the_python_runtime_spells_them(node, tmp_path, tiny_model_factory):
    """A bundle with copy attention over separate vocabularies: ids past the target vocabulary
    name source pieces the target lacks (exported/clients/pieces.mjs)."""
    from s2s.export.bundle import add_search_graphs
    from s2s.runtime.translator import Translator

    from tests.unit.test_copy import DECODERS, SOURCE_ONLY, copy_bundle

    copy_bundle(tmp_path, tiny_model_factory, *DECODERS[0])
    meta = json.loads((tmp_path / "bundle.json").read_text(encoding="utf-8"))
    meta["decode"].update(beam=3, max_len=4, min_len=2)  # the settings the client decodes with, in the graph
    (tmp_path / "bundle.json").write_text(json.dumps(meta), encoding="utf-8")
    add_search_graphs(tmp_path, ["ein zebra geht im park"])
    lines = ["ein zebra geht im park", "der quokka und das walross", "", "walross walross zebra hund",
             "zebra quokka walross zebra"]
    python = Translator.load(tmp_path)
    assert any(t >= python.vocab_size for hyps in python.hypotheses(lines) for t in hyps[0].tokens)
    done = run_client(node, tmp_path, lines)
    assert done.returncode == 0, done.stderr
    got = done.stdout.split("\n")[:-1]
    assert got == python.translate(lines)
    assert any(word in line.split() for line in got for word in SOURCE_ONLY)
