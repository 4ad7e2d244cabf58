"""Streaming training data (data.streaming): lazy readers, windowed bucketing, resume, memory.

The streamed batches of an epoch hold every kept pair once, respect the token budget, are a
function of (seed, epoch), never mix windows, and with a window holding the whole corpus equal
the in-memory batches; a run resumed mid-epoch trains on the same batches as one that was not.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from s2s.config import DataConfig, SplitConfig, VocabConfig
from s2s.data.batching import TokenBatcher, filter_by_length, truncate, updates
from s2s.data import streaming
from s2s.data.corpus import read_split, stream_split
from s2s.data.streaming import LengthRules, StreamingBatcher, sample_pairs
from s2s.data.vocab import build_vocabs
from s2s.errors import ConfigError, DataError
from s2s.training.loop import train
from s2s.training.prepare import prepare_data

BUDGET = 300


@pytest.fixture(scope="module")
def slice_data(multi30k_slice) -> DataConfig:
    return DataConfig(train=SplitConfig(src=str(multi30k_slice["train.en"]), tgt=str(multi30k_slice["train.de"])))


@pytest.fixture(scope="module")
def vocabs(slice_data, tmp_path_factory):
    pairs = read_split(slice_data, "train")
    return build_vocabs(tmp_path_factory.mktemp("vocab"), pairs.src, pairs.tgt, VocabConfig(size=300))


def batcher(data: DataConfig, vocabs, window: int, rules: LengthRules = LengthRules(60, 60), seed: int = 1):
    return StreamingBatcher(stream_split(data, "train"), vocabs, rules, BUDGET, seed, window)


def in_memory(data: DataConfig, vocabs, rules: LengthRules, seed: int = 1) -> TokenBatcher:
    """The batcher prepare_data builds without streaming, by the same rules."""
    pairs = read_split(data, "train")
    src, tgt = vocabs.src.encode(pairs.src), vocabs.tgt.encode(pairs.tgt)
    if rules.truncate_src:
        src, _ = truncate(src, rules.max_src_len)
    return TokenBatcher(src, tgt, BUDGET, seed, filter_by_length(src, tgt, rules.max_src_len, rules.max_tgt_len))


def indices(batches) -> list[list[int]]:
    return [list(map(int, b.index)) for b in batches]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- the batches of an epoch
def test_an_epoch_holds_every_kept_pair_once(slice_data, vocabs):
    """37 does not divide the 200 pairs; the length limits drop some of them."""
    rules = LengthRules(14, 14)
    stream = batcher(slice_data, vocabs, window=37, rules=rules)
    got = sorted(i for batch in indices(stream.epoch(0)) for i in batch)
    kept = in_memory(slice_data, vocabs, rules).index
    assert 0 < len(kept) < 200
    assert got == sorted(map(int, kept))
    assert stream.counts.pairs == 200 and stream.counts.kept == len(kept)


def test_batches_respect_the_token_budget_and_count_what_they_collate(slice_data, vocabs):
    stream = batcher(slice_data, vocabs, window=50)
    for batch in stream.epoch(0):
        collated = stream.collate(batch)
        assert stream.count_tokens(batch) == collated.num_tokens == int((collated.tgt_out != 0).sum())
        assert collated.num_tokens <= BUDGET or len(batch) == 1
        assert (collated.src[np.arange(len(batch)), collated.src_lengths - 1] == 3).all()  # sources end in EOS


def test_batches_never_mix_windows_and_the_window_bounds_what_is_held(slice_data, vocabs):
    stream = batcher(slice_data, vocabs, window=30)
    for batch in stream.epoch(0):
        assert len(set(batch.index // 30)) == 1  # positions count the non-empty pairs: window k holds 30k..30k+29
        assert 0 < stream.held <= 30
    assert stream.peak_held == 30 and stream.held == 0


@pytest.mark.parametrize("rules, chunk", [(LengthRules(14, 14), 4096), (LengthRules(8, 20, truncate_src=True), 4096),
                                         (LengthRules(14, 14), 7)])
def test_a_window_holding_the_corpus_gives_the_in_memory_batches(slice_data, vocabs, rules, chunk, monkeypatch):
    """Also when the window is encoded and packed in chunks of 7 pairs."""
    monkeypatch.setattr(streaming, "CHUNK", chunk)
    stream = batcher(slice_data, vocabs, window=1000, rules=rules)
    memory = in_memory(slice_data, vocabs, rules)
    for epoch in (0, 1):
        streamed, kept = list(stream.epoch(epoch)), memory.epoch(epoch)
        assert indices(streamed) == [list(map(int, memory.index[b])) for b in kept]
        for s, m in zip(streamed, kept):
            a, b = stream.collate(s), memory.collate(m)
            assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("src", "tgt_in", "tgt_out", "index"))


def test_an_epoch_is_a_function_of_seed_and_epoch(slice_data, vocabs):
    def epoch(seed, number):
        return indices(batcher(slice_data, vocabs, window=40, seed=seed).epoch(number))

    assert epoch(1, 0) == epoch(1, 0)
    assert epoch(1, 0) != epoch(1, 1) and epoch(1, 0) != epoch(2, 0)


def test_a_resumed_epoch_gives_the_remaining_updates_identically(slice_data, vocabs):
    whole = list(updates(batcher(slice_data, vocabs, window=40).epoch(3), 0, 2))
    for done in (0, 3, 7, 2 * len(whole) - 1):  # mid-window, across windows, the last update
        resumed = list(updates(batcher(slice_data, vocabs, window=40).epoch(3), done, 2))
        flat = [b for update in whole for b in update][done:]
        assert [indices(u) for u in resumed] == [indices(flat[i:i + 2]) for i in range(0, len(flat), 2)]


def test_every_rank_sees_the_same_updates_and_together_they_train_each_batch_once(slice_data, vocabs):
    from s2s.training.distributed import World

    ranks = [list(updates(batcher(slice_data, vocabs, window=40).epoch(0), 0, 2)) for _ in range(2)]
    assert [indices(u) for u in ranks[0]] == [indices(u) for u in ranks[1]]
    shares = [[b for u in updates_ for b in World(rank, 2).shard(u)] for rank, updates_ in enumerate(ranks)]
    assert sorted(i for share in shares for i in indices(share)) == sorted(indices(b for u in ranks[0] for b in u))


# --------------------------------------------------------------------------- reading lazily
def test_a_bad_line_fails_as_in_memory_naming_file_and_line_after_the_windows_before_it(tmp_path, vocabs):
    rows = [{"src": "a dog runs", "tgt": "ein Hund rennt"}] * 6
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"src": "x", "tgt": 3}\n', encoding="utf-8")
    data = DataConfig(train=SplitConfig(path=str(path)))
    with pytest.raises(DataError) as memory:
        read_split(data, "train")
    batches = batcher(data, vocabs, window=2).epoch(0)
    first = next(batches)  # the first window is read and batched before the bad line is reached
    assert len(first) >= 1
    with pytest.raises(DataError) as streamed:
        list(batches)
    assert str(streamed.value) == str(memory.value)
    assert f"{path}: line 7: field 'tgt'" in str(streamed.value) and "\n" not in str(streamed.value)


def test_empty_pairs_are_skipped_and_counted(tmp_path, vocabs):
    rows = [{"src": "a dog", "tgt": "ein Hund"}, {"src": " ", "tgt": "leer"}, {"src": "two", "tgt": ""},
            {"src": "a cat", "tgt": "eine Katze"}]
    stream = batcher(DataConfig(train=SplitConfig(path=write_jsonl(tmp_path / "c.jsonl", rows))), vocabs, window=10)
    assert sorted(i for b in indices(stream.epoch(0)) for i in b) == [0, 1]
    assert (stream.counts.pairs, stream.counts.empty) == (2, 2)


def test_a_glob_names_shards_read_in_sorted_order_streamed_and_in_memory(tmp_path):
    rows = [{"src": f"s{i}", "tgt": f"t{i}"} for i in range(7)]
    for k, part in enumerate((rows[:3], rows[3:5], rows[5:])):
        write_jsonl(tmp_path / f"part-{k}.jsonl", part)
    data = DataConfig(train=SplitConfig(path=str(tmp_path / "part-*.jsonl")))
    want = [(r["src"], r["tgt"]) for r in rows]
    assert list(stream_split(data, "train")) == want
    pairs = read_split(data, "train")
    assert list(zip(pairs.src, pairs.tgt)) == want and "(3 shards)" in pairs.origin


def test_src_and_tgt_globs_pair_up_or_fail_naming_the_split(tmp_path):
    for k in range(2):
        (tmp_path / f"p{k}.en").write_text(f"a{k}\nb{k}\n", encoding="utf-8")
        (tmp_path / f"p{k}.de").write_text(f"A{k}\nB{k}\n", encoding="utf-8")
    data = DataConfig(train=SplitConfig(src=str(tmp_path / "p*.en"), tgt=str(tmp_path / "p*.de")))
    assert list(stream_split(data, "train")) == [("a0", "A0"), ("b0", "B0"), ("a1", "A1"), ("b1", "B1")]
    (tmp_path / "p2.en").write_text("c\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data\.train: src .* matches 3 files, tgt .* matches 2"):
        stream_split(data, "train")


def test_plain_text_of_different_lengths_fails_when_the_stream_reaches_the_end(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\nzwei\n", encoding="utf-8")
    data = DataConfig(train=SplitConfig(src=str(tmp_path / "a.en"), tgt=str(tmp_path / "a.de")))
    with pytest.raises(DataError, match=r"a\.en has 3 lines, .*a\.de has 2 lines"):
        list(stream_split(data, "train"))


def test_parquet_and_the_hub_stream_through_datasets(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    path = tmp_path / "c.parquet"
    datasets.Dataset.from_dict({"en": ["a dog", "", "two"], "de": ["ein Hund", "leer", "zwei"]}).to_parquet(str(path))
    want = [("a dog", "ein Hund"), ("", "leer"), ("two", "zwei")]
    local = DataConfig(train=SplitConfig(path=str(path)), src_field="en", tgt_field="de")
    assert list(stream_split(local, "train")) == want
    load, calls = datasets.load_dataset, []

    def hub_from_the_parquet_file(name, config=None, split=None, streaming=False):  # no network here
        calls.append((name, split, streaming))
        return load("parquet", data_files=str(path), split="train", streaming=streaming)

    monkeypatch.setattr(datasets, "load_dataset", hub_from_the_parquet_file)
    hub = dataclasses.replace(local, hub="someone/corpus", train=SplitConfig(path=str(tmp_path / "absent.jsonl")))
    assert list(stream_split(hub, "train")) == want
    assert calls == [("someone/corpus", "train", True)]
    with pytest.raises(DataError, match=r"someone/corpus \[train\]: row 1: no field 'fr'"):
        list(stream_split(dataclasses.replace(hub, tgt_field="fr"), "train"))


def test_the_vocabulary_sample_holds_at_most_its_size_drawn_from_the_whole_stream():
    pairs = [(f"s{i}", f"t{i}") for i in range(1000)] + [("", "empty")]
    src, tgt = sample_pairs(iter(pairs), 100, seed=3)
    assert len(src) == 100 and len(set(src)) == 100
    assert all(t == "t" + s[1:] for s, t in zip(src, tgt))
    assert max(int(s[1:]) for s in src) >= 500  # not just the first 100
    assert sample_pairs(iter(pairs), 100, seed=3) == (src, tgt)
    assert sample_pairs(iter(pairs[:5] + pairs[-1:]), 100, seed=3) == ([f"s{i}" for i in range(5)],
                                                                       [f"t{i}" for i in range(5)])


# --------------------------------------------------------------------------- a run
STREAMING = {"streaming": True, "shuffle_window": 60}
NO_BLEU = {"valid_bleu": False, "best_metric": "loss", "batch_tokens": 1500}


def _weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_a_streamed_run_resumes_exactly_across_an_epoch(tiny_recipe, tmp_path):
    """12 updates in one go == 5, stop, resume for 7: the stream is re-read to the position."""
    full = tiny_recipe(data=STREAMING, train={"max_steps": 12, "valid_every": 6, **NO_BLEU})
    end = train(full, tmp_path / "full")
    assert end.epoch >= 1 and end.step == 12
    train(tiny_recipe(data=STREAMING, train={"max_steps": 5, "valid_every": 5, **NO_BLEU}), tmp_path / "split")
    middle = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=True)["position"]
    assert (middle["epoch"], middle["batch"]) == (0, 5)  # mid-epoch, past the first window's batches
    train(full, tmp_path / "split", resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert all(torch.equal(a[n], b[n]) for n in a)
    log = (tmp_path / "full" / "train.log").read_text()
    assert "streamed from" in log and "streamed pass over" in log


def test_a_window_below_one_pair_is_refused_naming_the_setting():
    from s2s.config import recipe_from_dict

    with pytest.raises(ConfigError, match="shuffle_window must be >= 1, got 0"):
        recipe_from_dict({"data": {"streaming": True, "shuffle_window": 0}})


def test_prepare_streams_train_and_keeps_valid_in_memory(tiny_recipe, tmp_path):
    data = prepare_data(tiny_recipe(data=STREAMING), tmp_path)
    assert isinstance(data.train, StreamingBatcher) and isinstance(data.valid, TokenBatcher)
    assert len(data.valid) == 40 and (tmp_path / "vocab" / "joint.model").is_file()


def test_nothing_within_the_length_limits_fails_naming_the_stream(tiny_recipe, tmp_path):
    data = prepare_data(tiny_recipe(data={**STREAMING, "max_src_len": 1, "max_tgt_len": 1}), tmp_path)
    with pytest.raises(DataError, match=r"train\.en \+ .*: no training pair survives the length filter"):
        next(iter(data.train.epoch(0)))
