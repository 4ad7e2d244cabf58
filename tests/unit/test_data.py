"""Data: corpus readers (text, .gz, JSONL, TSV, Parquet, hub fallback), sentencepiece
vocabularies with fixed special ids, token-budget batching, and a run's prepared data
(length filter or source truncation)."""

from __future__ import annotations

import gzip
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from s2s.config import DataConfig, SplitConfig, VocabConfig, load_recipe, recipe_from_dict, save_recipe
from s2s.data.batching import TokenBatcher, filter_by_length, truncate
from s2s.data.corpus import read_lines, read_split
from s2s.data.vocab import BOS, EOS, PAD, UNK, Vocab, build_vocabs, load_vocabs
from s2s.errors import ConfigError, DataError


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


def write_jsonl_gz(path: Path, lines: list[str]) -> Path:
    return write_gz(path, "".join(line + "\n" for line in lines).encode("utf-8"))


GOOD = '{"text": "a long description", "summary": "short"}'


@pytest.mark.parametrize("bad, shown", [
    ('{"text": "c", "note": "no summary"}', ["no field 'summary' (data.tgt_field)", "['note', 'text']"]),
    ('{"summary": "s"}', ["no field 'text' (data.src_field)", "['summary']"]),
    ('{"text": "c", "summary": 3}', ["field 'summary' (data.tgt_field) is a number; expected a string"]),
    ('{"text": null, "summary": "s"}', ["field 'text' (data.src_field) is null; expected a string"]),
    ('{"text": ["c"], "summary": "s"}', ["field 'text' (data.src_field) is an array; expected a string"]),
    ('{"text": "c", "summary": "s",', ["invalid JSON", "at column 30", "expected one object a line"]),
])
def test_bad_jsonl_line_is_one_line_naming_file_line_and_field(tmp_path, bad, shown):
    path = write_jsonl_gz(tmp_path / "train.jsonl.gz", [GOOD, "", bad, GOOD])
    msg = read_error(path_split(path, src_field="text", tgt_field="summary"))
    assert msg.startswith(f"{path}: line 3: ") and "\n" not in msg, msg
    for part in shown:
        assert part in msg, msg


def test_jsonl_pairs_with_an_empty_side_are_skipped_counted_and_logged(tmp_path, caplog):
    lines = [GOOD, '{"text": "", "summary": "s"}', '{"text": "t", "summary": "  "}', GOOD, GOOD]
    path = write_jsonl_gz(tmp_path / "valid.jsonl.gz", lines)
    with caplog.at_level(logging.WARNING, logger="s2s"):
        pairs = read_split(DataConfig(valid=SplitConfig(path=str(path)), src_field="text", tgt_field="summary"),
                           "valid")
    assert (len(pairs), pairs.skipped_empty) == (3, 2)
    assert pairs.src == ["a long description"] * 3
    assert f"{path} (data.valid): skipped 2 of 5 pairs with an empty source or target" in caplog.messages


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


def test_truncate_hand_worked():
    rows = [[5, 6, 7], [8], [9, 9, 9, 9], []]
    cut, count = truncate(rows, 2)
    assert cut == [[5, 6], [8], [9, 9], []]
    assert count == 2
    assert rows[0] == [5, 6, 7]  # the input is left as it is


# --------------------------------------------------------------------------- a run's prepared data
MAX_SRC, MAX_TGT = 25, 30  # on the Multi30k slice with 300 pieces: about half of each side is longer


def _encoded(recipe, vocabs, split):
    pairs = read_split(recipe.data, split)
    return vocabs.src.encode(pairs.src), vocabs.tgt.encode(pairs.tgt), pairs


def test_truncate_src_cuts_long_training_sources_and_keeps_their_pairs(tiny_recipe, tmp_path, caplog):
    """Each training source is its first MAX_SRC pieces (then EOS) and its target whole; only
    targets longer than MAX_TGT still drop a pair. Without truncate_src, long sources drop theirs."""
    from s2s.training.prepare import prepare_data

    limits = {"max_src_len": MAX_SRC, "max_tgt_len": MAX_TGT}
    recipe = tiny_recipe(data={**limits, "truncate_src": True})
    with caplog.at_level(logging.INFO, logger="s2s"):
        data = prepare_data(recipe, tmp_path)
    src, tgt, _ = _encoded(recipe, data.vocabs, "train")
    long = [i for i, s in enumerate(src) if len(s) > MAX_SRC]
    assert 0 < len(long) < len(src)
    assert f"truncated {len(long)} of {len(src)} training sources to {MAX_SRC} tokens" in caplog.messages
    short_target = [i for i in range(len(src)) if len(tgt[i]) <= MAX_TGT]
    assert data.train.index.tolist() == short_target
    assert set(long) & set(short_target)  # truncated pairs are among those kept
    for pos, i in enumerate(data.train.index):
        assert data.train.src[pos].tolist() == src[i][:MAX_SRC] + [EOS]
        assert data.train.tgt[pos].tolist() == tgt[i]

    dropping = prepare_data(tiny_recipe(data=limits), tmp_path)  # same vocabulary: reused from tmp_path
    assert dropping.train.index.tolist() == [i for i in short_target if i not in long]


def test_validation_pairs_are_never_dropped_and_their_references_never_cut(tiny_recipe, tmp_path, caplog):
    """With truncate_src the validation sources are cut like the training ones (the validation
    loss sees what training saw); every pair stays and every reference keeps all its pieces."""
    from s2s.training.prepare import prepare_data

    for truncate_src in (False, True):
        recipe = tiny_recipe(data={"max_src_len": MAX_SRC, "max_tgt_len": MAX_TGT, "truncate_src": truncate_src})
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="s2s"):
            data = prepare_data(recipe, tmp_path)
        src, tgt, pairs = _encoded(recipe, data.vocabs, "valid")
        assert any(len(t) > MAX_TGT for t in tgt) and any(len(s) > MAX_SRC for s in src)
        assert data.valid.index.tolist() == list(range(len(pairs)))
        assert [t.tolist() for t in data.valid.tgt] == tgt
        cut = [s[:MAX_SRC] if truncate_src else s for s in src]
        assert [s.tolist() for s in data.valid.src] == [s + [EOS] for s in cut]
        assert (data.valid_text.src, data.valid_text.tgt) == (pairs.src, pairs.tgt)  # the decode cuts for itself
        long = sum(len(s) > MAX_SRC for s in src)
        logged = f"truncated {long} of {len(src)} validation sources to {MAX_SRC} tokens"
        assert (logged in caplog.messages) == truncate_src


def test_truncate_src_gives_decoding_the_training_source_length(tmp_path):
    """decode.max_src_len = 0 becomes data.max_src_len, so validation decoding, translate and
    export cut sources as training did; a decode length set in the recipe is kept."""
    import s2s.models  # noqa: F401  (registers the parts the recipe resolves)

    recipe = recipe_from_dict({"data": {"truncate_src": True, "max_src_len": 400}})
    assert recipe.decode.max_src_len == 400
    assert recipe_from_dict({"data": {"max_src_len": 400}}).decode.max_src_len == 0
    explicit = recipe_from_dict({"data": {"truncate_src": True, "max_src_len": 400}, "decode": {"max_src_len": 300}})
    assert explicit.decode.max_src_len == 300
    save_recipe(recipe, tmp_path / "config.yaml")  # what a run directory holds and translate/export read
    assert load_recipe(tmp_path / "config.yaml") == recipe
    with pytest.raises(ConfigError, match=r"data\.max_src_len = 0 with data\.truncate_src"):
        recipe_from_dict({"data": {"truncate_src": True, "max_src_len": 0}})
