"""Data: corpus readers (text, .gz, JSONL, TSV, Parquet, hub fallback), sentencepiece
vocabularies with fixed special ids, and token-budget batching."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from s2s.config import DataConfig, SplitConfig, VocabConfig
from s2s.data.batching import TokenBatcher, filter_by_length
from s2s.data.corpus import read_lines, read_split
from s2s.data.vocab import BOS, EOS, PAD, UNK, Vocab, build_vocabs, load_vocabs
from s2s.errors import DataError


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_gz(path: Path, data: bytes) -> Path:
    with gzip.open(path, "wb") as handle:
        handle.write(data)
    return path


def text_split(tmp_path: Path, src: list[str], tgt: list[str]) -> DataConfig:
    return DataConfig(train=SplitConfig(src=str(write_text(tmp_path / "train.src", src)),
                                        tgt=str(write_text(tmp_path / "train.tgt", tgt))))


def path_split(path: Path, **fields) -> DataConfig:
    return DataConfig(train=SplitConfig(path=str(path)), **fields)


def read_error(data: DataConfig, name: str = "train") -> str:
    with pytest.raises(DataError) as info:
        read_split(data, name)
    return str(info.value)


# --------------------------------------------------------------------------- plain text
def test_parallel_files_of_different_length_name_both_paths_and_counts(tmp_path):
    src = write_text(tmp_path / "a.en", ["one", "two", "three"])
    tgt = write_text(tmp_path / "a.de", ["eins", "zwei"])
    msg = read_error(DataConfig(train=SplitConfig(src=str(src), tgt=str(tgt))))
    assert re.search(re.escape(str(src)) + r"\D*\b3 lines", msg), msg
    assert re.search(re.escape(str(tgt)) + r"\D*\b2 lines", msg), msg


def test_missing_final_newline_does_not_count_as_a_missing_line(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo", encoding="utf-8")
    write_text(tmp_path / "a.de", ["eins", "zwei"])
    pairs = read_split(DataConfig(train=SplitConfig(src=str(tmp_path / "a.en"), tgt=str(tmp_path / "a.de"))),
                       "train")
    assert pairs.src == ["one", "two"] and pairs.tgt == ["eins", "zwei"]


def test_invalid_utf8_names_path_and_line(tmp_path):
    src = tmp_path / "bad.en"
    src.write_bytes(b"ok\n\xff\xfe bad\nfine\n")
    tgt = write_text(tmp_path / "bad.de", ["gut", "schlecht", "fein"])
    msg = read_error(DataConfig(train=SplitConfig(src=str(src), tgt=str(tgt))))
    assert str(src) in msg and "line 2" in msg and "UTF-8" in msg


def test_invalid_utf8_in_gzip_names_path_and_line(tmp_path):
    path = write_gz(tmp_path / "bad.en.gz", b"a\nb\nc \xc3\x28\n")
    with pytest.raises(DataError) as info:
        read_lines(path)
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_empty_pairs_are_skipped_and_counted(tmp_path):
    src = ["a", "", "c", "d", "   ", "f", ""]
    tgt = ["1", "2", "", "4", "5", "6", ""]
    pairs = read_split(text_split(tmp_path, src, tgt), "train")
    assert pairs.src == ["a", "d", "f"]
    assert pairs.tgt == ["1", "4", "6"]
    assert pairs.skipped_empty == 4
    assert len(pairs) == 3


def test_corpus_without_empty_pairs_is_kept_whole(tmp_path):
    pairs = read_split(text_split(tmp_path, ["a b", "c"], ["x", "y z"]), "train")
    assert (pairs.src, pairs.tgt, pairs.skipped_empty) == (["a b", "c"], ["x", "y z"], 0)


def test_gzip_and_crlf_text_read_the_same_as_plain_text(tmp_path):
    src, tgt = ["Ein Hund läuft.", "Zwei  Katzen", "ünïcödé ✓"], ["A dog runs.", "Two cats", "unicode"]
    plain = read_split(text_split(tmp_path, src, tgt), "train")
    gz_src = write_gz(tmp_path / "train.src.gz", "".join(s + "\n" for s in src).encode("utf-8"))
    crlf_tgt = tmp_path / "crlf.tgt"
    crlf_tgt.write_bytes("".join(t + "\r\n" for t in tgt).encode("utf-8"))
    mixed = read_split(DataConfig(train=SplitConfig(src=str(gz_src), tgt=str(crlf_tgt))), "train")
    assert plain.src == mixed.src == src
    assert plain.tgt == mixed.tgt == tgt
    assert read_lines(gz_src) == src


def test_plain_text_needs_both_sides(tmp_path):
    src = write_text(tmp_path / "only.en", ["a"])
    msg = read_error(DataConfig(train=SplitConfig(src=str(src))))
    assert str(src) in msg and "both src and tgt" in msg


# --------------------------------------------------------------------------- JSONL
def test_jsonl_with_named_fields(tmp_path):
    records = [{"en": "a dog", "de": "ein Hund", "id": 1}, {"en": "\"quoted\" ✓", "de": "x\ty"}]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    path = write_text(tmp_path / "c.jsonl", [lines[0], "", lines[1]])  # blank lines are allowed
    pairs = read_split(path_split(path, src_field="en", tgt_field="de"), "train")
    assert pairs.src == ["a dog", "\"quoted\" ✓"]
    assert pairs.tgt == ["ein Hund", "x\ty"]
    gz = write_gz(tmp_path / "c.jsonl.gz", path.read_bytes())
    assert read_split(path_split(gz, src_field="en", tgt_field="de"), "train").src == pairs.src


def test_jsonl_record_missing_a_field_names_path_line_and_fields(tmp_path):
    path = write_text(tmp_path / "c.jsonl", ['{"en": "a", "de": "b"}', '{"en": "c", "note": "no target"}'])
    msg = read_error(path_split(path, src_field="en", tgt_field="de"))
    assert str(path) in msg and "line 2" in msg
    assert "'de'" in msg
    assert "['en', 'note']" in msg


def test_jsonl_invalid_json_names_the_line(tmp_path):
    path = write_text(tmp_path / "c.jsonl", ['{"src": "a", "tgt": "b"}', '{"src": "a", "tgt": "b"}',
                                             '{"src": "a",'])
    msg = read_error(path_split(path))
    assert str(path) in msg and "line 3" in msg and "invalid JSON" in msg


def test_jsonl_non_object_line_fails(tmp_path):
    path = write_text(tmp_path / "c.jsonl", ['["a", "b"]'])
    msg = read_error(path_split(path))
    assert "line 1" in msg and "expected a JSON object" in msg and "list" in msg


# --------------------------------------------------------------------------- TSV
def test_tsv_with_header_picks_columns_by_name(tmp_path):
    path = write_text(tmp_path / "c.tsv", ["de\tid\ten", "ein Hund\t1\ta dog", "zwei\t2\ttwo"])
    pairs = read_split(path_split(path, src_field="en", tgt_field="de"), "train")
    assert pairs.src == ["a dog", "two"]
    assert pairs.tgt == ["ein Hund", "zwei"]


def test_tsv_row_with_wrong_field_count_names_the_line(tmp_path):
    path = write_text(tmp_path / "c.tsv", ["src\ttgt", "a\tb", "c\td\te", "f\tg"])
    msg = read_error(path_split(path))
    assert str(path) in msg and "line 3" in msg and "3 tab-separated fields, expected 2" in msg


def test_tsv_header_without_the_field_fails(tmp_path):
    path = write_text(tmp_path / "c.tsv", ["en\tde", "a\tb"])
    msg = read_error(path_split(path, src_field="en", tgt_field="fr"))
    assert str(path) in msg and "line 1" in msg and "'fr'" in msg and "['en', 'de']" in msg


def test_empty_tsv_fails_asking_for_a_header(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("", encoding="utf-8")
    assert "header" in read_error(path_split(path))


# --------------------------------------------------------------------------- Parquet and hub
@pytest.fixture
def datasets_in_tmp(tmp_path, monkeypatch):
    """`datasets` with its cache in tmp_path, so tests neither read nor grow the user's cache."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return datasets


def test_parquet_through_datasets(tmp_path, datasets_in_tmp):
    path = tmp_path / "c.parquet"
    datasets_in_tmp.Dataset.from_dict({"en": ["a dog", "", "two"], "de": ["ein Hund", "leer", "zwei"],
                                       "id": [1, 2, 3]}).to_parquet(str(path))
    pairs = read_split(path_split(path, src_field="en", tgt_field="de"), "train")
    assert pairs.src == ["a dog", "two"]
    assert pairs.tgt == ["ein Hund", "zwei"]
    assert pairs.skipped_empty == 1
    msg = read_error(path_split(path, src_field="en", tgt_field="fr"))
    assert str(path) in msg and "'fr'" in msg


def test_missing_local_file_falls_back_to_the_hub(tmp_path, datasets_in_tmp, monkeypatch):
    calls = []

    def fake_load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        return datasets_in_tmp.Dataset.from_dict({"en": ["hello"], "de": ["hallo"]})

    monkeypatch.setattr(datasets_in_tmp, "load_dataset", fake_load_dataset)
    data = DataConfig(hub="someone/corpus", src_field="en", tgt_field="de",
                      valid=SplitConfig(src=str(tmp_path / "absent.en"), tgt=str(tmp_path / "absent.de"),
                                        hub_split="validation"))
    pairs = read_split(data, "valid")
    assert (pairs.src, pairs.tgt) == (["hello"], ["hallo"])
    assert calls == [("someone/corpus", None, "validation")]
    assert "someone/corpus" in pairs.origin


def test_hub_failure_is_a_data_error_naming_the_dataset(datasets_in_tmp, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets_in_tmp, "load_dataset", offline)
    msg = read_error(DataConfig(hub="someone/corpus"), "test")
    assert "someone/corpus" in msg and "[test]" in msg and "no network" in msg


# --------------------------------------------------------------------------- missing / unknown
def test_missing_local_file_without_hub_names_the_path(tmp_path):
    tgt = write_text(tmp_path / "present.de", ["a"])
    missing = tmp_path / "absent.en"
    msg = read_error(DataConfig(train=SplitConfig(src=str(missing), tgt=str(tgt))))
    assert str(missing) in msg and "no such file" in msg
    msg = read_error(DataConfig(valid=SplitConfig(path=str(tmp_path / "absent.jsonl"))), "valid")
    assert str(tmp_path / "absent.jsonl") in msg and "data.valid" in msg


def test_split_without_files_or_hub_fails_naming_the_split():
    assert "data.test" in read_error(DataConfig(), "test")


@pytest.mark.parametrize("name, shown", [("c.csv", "'.csv'"), ("corpus", "(no suffix)"), ("c.txt.gz", "'.txt'")])
def test_unknown_suffix_fails_clearly(tmp_path, name, shown):
    path = tmp_path / name
    path.write_text("a,b\n", encoding="utf-8")
    msg = read_error(path_split(path))
    assert str(path) in msg and "unknown corpus format" in msg and shown in msg


# --------------------------------------------------------------------------- vocabularies
@pytest.fixture(scope="module")
def slice_lines(multi30k_slice) -> tuple[list[str], list[str]]:
    return read_lines(multi30k_slice["train.en"]), read_lines(multi30k_slice["train.de"])


SMALL_VOCAB = VocabConfig(size=200)


def test_build_joint_vocab_with_fixed_special_ids(tmp_path, slice_lines):
    src, tgt = slice_lines
    vocabs = build_vocabs(tmp_path / "vocab", src, tgt, SMALL_VOCAB)
    assert (tmp_path / "vocab" / "joint.model").is_file()
    assert vocabs.joint and vocabs.src is vocabs.tgt
    assert 4 < len(vocabs.src) <= SMALL_VOCAB.size
    sp = vocabs.src.sp
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (PAD, UNK, BOS, EOS)


def test_encode_decode_round_trips_training_sentences(tmp_path, slice_lines):
    src, tgt = slice_lines
    vocab = build_vocabs(tmp_path / "vocab", src, tgt, SMALL_VOCAB).tgt
    # sentencepiece's NFKC normalization squeezes repeated spaces; every other sentence must come back exactly
    clean = [s for s in src + tgt if " ".join(s.split()) == s]
    assert len(clean) > 300
    ids = vocab.encode(clean)
    assert all(all(i > EOS for i in row) for row in ids)  # no special ids inside the text
    assert [vocab.decode(row) for row in ids] == clean


def test_decode_stops_at_eos_and_drops_pad_and_bos(tmp_path, slice_lines):
    src, tgt = slice_lines
    vocab = build_vocabs(tmp_path / "vocab", src, tgt, SMALL_VOCAB).src
    sentence = next(s for s in src if " ".join(s.split()) == s)
    ids = vocab.encode([sentence])[0]
    other = vocab.encode([src[-1]])[0]
    half = len(ids) // 2
    assert vocab.decode([BOS] + ids + [EOS] + other + [PAD, PAD]) == sentence
    assert vocab.decode([PAD] + ids[:half] + [PAD, BOS] + ids[half:] + [PAD]) == sentence
    assert vocab.decode([EOS] + ids) == ""
    assert vocab.decode(np.asarray(ids + [EOS, *other])) == sentence


def test_build_vocabs_reuses_the_cached_model(tmp_path, slice_lines):
    src, tgt = slice_lines
    first = build_vocabs(tmp_path / "vocab", src, tgt, SMALL_VOCAB)
    model = tmp_path / "vocab" / "joint.model"
    stamp = model.stat().st_mtime_ns
    # no lines at all: training would fail, so passing proves the cached model was loaded
    again = build_vocabs(tmp_path / "vocab", [], [], SMALL_VOCAB)
    assert model.stat().st_mtime_ns == stamp
    assert again.src.encode(src[:20]) == first.src.encode(src[:20])


def test_separate_vocabs_write_one_model_per_side(tmp_path, slice_lines):
    src, tgt = slice_lines
    config = VocabConfig(size=200, joint=False)
    vocabs = build_vocabs(tmp_path / "vocab", src, tgt, config)
    assert (tmp_path / "vocab" / "src.model").is_file() and (tmp_path / "vocab" / "tgt.model").is_file()
    assert not (tmp_path / "vocab" / "joint.model").exists()
    assert not vocabs.joint
    src_pieces = set(vocabs.src.pieces(range(len(vocabs.src))))
    tgt_pieces = set(vocabs.tgt.pieces(range(len(vocabs.tgt))))
    assert src_pieces != tgt_pieces
    assert "▁und" in tgt_pieces and "▁und" not in src_pieces  # German "and" only on the target side
    reloaded = load_vocabs(tmp_path / "vocab", joint=False)
    assert reloaded.tgt.encode(tgt[:10]) == vocabs.tgt.encode(tgt[:10])


def test_vocab_refuses_missing_files_and_other_special_ids(tmp_path, slice_lines):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope.model"))):
        Vocab(tmp_path / "nope.model")
    src, _ = slice_lines
    spm.SentencePieceTrainer.train(sentence_iterator=iter(src), model_prefix=str(tmp_path / "default"),
                                   vocab_size=100, hard_vocab_limit=False, minloglevel=2)  # unk=0 bos=1 eos=2
    with pytest.raises(DataError, match="special ids"):
        Vocab(tmp_path / "default.model")


# --------------------------------------------------------------------------- batching
@pytest.fixture(scope="module")
def corpus() -> tuple[list[list[int]], list[list[int]]]:
    """3,000 pairs of random ids (4..99) with lengths 1..40 on each side."""
    rng = np.random.default_rng(0)
    src = [rng.integers(4, 100, rng.integers(1, 41)).tolist() for _ in range(3000)]
    tgt = [rng.integers(4, 100, rng.integers(1, 41)).tolist() for _ in range(3000)]
    return src, tgt


BUDGET = 300


def test_epoch_covers_every_sentence_exactly_once(corpus):
    batcher = TokenBatcher(*corpus, batch_tokens=BUDGET, seed=1)
    for epoch in (0, 1, 7):
        batches = batcher.epoch(epoch)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(len(batcher)))


def test_epoch_is_a_function_of_seed_and_epoch(corpus):
    def order(seed, epoch):
        return [b.tolist() for b in TokenBatcher(*corpus, batch_tokens=BUDGET, seed=seed).epoch(epoch)]

    assert order(1, 3) == order(1, 3)
    assert order(1, 3) != order(1, 4)
    assert order(1, 3) != order(2, 3)


def test_batches_stay_within_the_token_budget_and_are_filled(corpus):
    src, tgt = corpus
    batcher = TokenBatcher(src, tgt, batch_tokens=BUDGET, seed=1)
    batches = batcher.epoch(0)
    max_len = max(len(t) for t in tgt) + 1
    for batch in batches:
        tokens = sum(len(tgt[i]) + 1 for i in batch)  # + EOS
        assert len(batch) == 1 or tokens <= BUDGET
    # greedy packing: a batch is closed only when the next sentence does not fit
    assert len(batches) <= batcher.num_tokens / (BUDGET - max_len) + 1


def test_a_sentence_longer_than_the_budget_gets_a_batch_of_its_own():
    src = [[5]] * 6
    tgt = [[5] * 3] * 5 + [[5] * 20]
    batches = TokenBatcher(src, tgt, batch_tokens=10, seed=0).epoch(0)
    assert [5] in [b.tolist() for b in batches]
    assert all(len(b) == 1 or 4 * len(b) <= 10 for b in batches)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))


def test_bucketing_keeps_target_padding_small(corpus):
    batcher = TokenBatcher(*corpus, batch_tokens=BUDGET, seed=1)
    padded = real = 0
    for positions in batcher.epoch(0):
        batch = batcher.collate(positions)
        padded += batch.tgt_out.size
        real += batch.num_tokens
    assert real == batcher.num_tokens
    assert padded / real < 1.2


def test_collate_hand_worked_batch():
    src = [[5, 6, 7], [8], [9, 9]]
    tgt = [[10, 11], [12, 13, 14], [15]]
    batcher = TokenBatcher(src, tgt, batch_tokens=100, seed=0, index=np.array([1, 0]))
    batch = batcher.collate(np.array([0, 1]))  # positions in the batcher = corpus pairs 1 and 0
    assert batch.index.tolist() == [1, 0]
    assert batch.src.tolist() == [[8, EOS, PAD, PAD], [5, 6, 7, EOS]]
    assert batch.src_lengths.tolist() == [2, 4]
    assert batch.tgt_in.tolist() == [[BOS, 12, 13, 14], [BOS, 10, 11, PAD]]
    assert batch.tgt_out.tolist() == [[12, 13, 14, EOS], [10, 11, EOS, PAD]]
    assert batch.num_tokens == 7
    assert len(batch) == 2


def test_collate_rows_follow_the_contract(corpus):
    src, tgt = corpus
    batcher = TokenBatcher(src, tgt, batch_tokens=BUDGET, seed=3)
    for positions in batcher.epoch(0)[:20]:
        batch = batcher.collate(positions)
        assert (batch.tgt_in[:, 0] == BOS).all()
        assert batch.num_tokens == int((batch.tgt_out != PAD).sum())
        for row, i in enumerate(batch.index):
            s, t, n = src[i], tgt[i], len(tgt[i])
            assert batch.tgt_in[row, 1:n + 1].tolist() == t
            assert batch.tgt_out[row, :n].tolist() == t
            assert batch.tgt_out[row, n] == EOS
            assert (batch.tgt_out[row, n + 1:] == PAD).all()
            assert batch.src_lengths[row] == len(s) + 1
            assert batch.src[row, : len(s)].tolist() == s and batch.src[row, len(s)] == EOS
            assert (batch.src[row, len(s) + 1:] == PAD).all()


def test_sequential_covers_everything_in_source_length_order(corpus):
    batcher = TokenBatcher(*corpus, batch_tokens=BUDGET, seed=1)
    batches = batcher.sequential(max_sentences=128)
    order = np.concatenate(batches)
    assert np.array_equal(np.sort(order), np.arange(len(batcher)))
    assert (np.diff(batcher.src_len[order]) >= 0).all()
    assert max(len(b) for b in batches) == 128


def test_filter_by_length_hand_worked():
    src = [[1] * 3, [1] * 5, [], [1] * 2, [1] * 4, [1]]
    tgt = [[1] * 2, [1] * 2, [1], [1] * 7, [1] * 6, []]
    kept = filter_by_length(src, tgt, max_src=4, max_tgt=6)
    assert kept.dtype == np.int64
    assert kept.tolist() == [0, 4]  # limits are inclusive, empty sides are dropped
    assert filter_by_length(src, tgt, max_src=0, max_tgt=0).tolist() == []


def test_filter_by_length_keeps_exactly_the_pairs_within_limits(corpus):
    src, tgt = corpus
    kept = filter_by_length(src, tgt, max_src=20, max_tgt=30)
    expected = [i for i in range(len(src)) if len(src[i]) <= 20 and len(tgt[i]) <= 30]
    assert kept.tolist() == expected
    assert 0 < len(kept) < len(src)
