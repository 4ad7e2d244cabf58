"""Faults: checkpoints that cannot be lost (fsync, kept states, corrupt files, a full disk) and
faults in training (non-finite updates, out of memory). Each test breaks one thing on purpose
and checks what the run does about it."""

from __future__ import annotations

import errno
import io
import os
import stat
import zipfile

import numpy as np
import pytest
import torch

from s2s.data.batching import PAD, Batch
from s2s.errors import RunError, TrainingError
from s2s.models.contract import Seq2Seq
from s2s.training import checkpoint, faults
from s2s.training.loop import train

NO_BLEU = {"valid_bleu": False, "best_metric": "loss"}


def _state(path):
    return torch.load(path, weights_only=True)


def _one_line(err) -> str:
    text = str(err.value if hasattr(err, "value") else err)
    assert "\n" not in text, text
    return text


# ---------------------------------------------------------------------------- writing checkpoints
def test_save_atomic_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    checkpoint.save_atomic({"x": torch.ones(3)}, tmp_path / "last.pt")
    assert events == ["fsync file", "rename", "fsync folder"]


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails every write as a full disk does."""

    def __init__(self, raw, room: int):
        self.raw, self.room = raw, room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.raw.write(data)

    def fileno(self) -> int:
        return self.raw.fileno()

    def close(self) -> None:
        self.raw.close()
        super().close()


def _fill_the_disk(monkeypatch, room: int = 1000) -> None:
    """Every file opened for writing through os.fdopen (save_atomic's way) runs out of space."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        handle = real(fd, mode, *args, **kwargs)
        return _FullDisk(handle, room) if "w" in mode else handle

    monkeypatch.setattr(os, "fdopen", fdopen)


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_leaves_the_old_checkpoint_and_names_the_file(tmp_path, monkeypatch, where):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"x": torch.zeros(4)}, path)
    if where == "write":
        _fill_the_disk(monkeypatch)
    else:
        def fsync(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RunError) as err:
        checkpoint.save_atomic({"x": torch.ones(100_000)}, path)
    assert _one_line(err).startswith(f"{path}: no space left on device")
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(path)["x"], torch.zeros(4))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_full_disk_stops_the_run_through_the_cli_and_keeps_the_last_good_state(tiny_recipe, tmp_path, monkeypatch,
                                                                                 capsys):
    from s2s.cli.main import main

    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 2, "valid_every": 2, **NO_BLEU}), run)
    _fill_the_disk(monkeypatch)
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=4"]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    # the first write of step 4's validation fails: best.pt when it improved (written before
    # last.pt, see Trainer.validate), else last-4.pt
    named, _, reason = err.removeprefix("s2s train: error: ").partition(": ")
    assert named in {str(run / "checkpoints" / "best.pt"), str(run / "checkpoints" / "last-4.pt")}, err
    assert reason.startswith("no space left on device"), err
    assert _state(run / "checkpoints" / "last.pt")["position"]["step"] == 2
    assert _state(run / "checkpoints" / "best.pt")["position"]["step"] == 2
    assert not list((run / "checkpoints").glob(".*"))


# ---------------------------------------------------------------------------- reading checkpoints
def _corrupt_tensor_bytes(path):
    """Flip bytes inside the stored tensor data (torch.load alone would accept it)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 64)
    data = bytearray(path.read_bytes())
    header = info.header_offset  # the local header: 30 bytes, then the name and its own extra field
    name_length, extra_length = np.frombuffer(bytes(data[header + 26:header + 30]), dtype="<u2")
    start = header + 30 + int(name_length) + int(extra_length) + 16
    data[start:start + 8] = bytes(255 - b for b in data[start:start + 8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped tensor bytes", "not a checkpoint"])
def test_a_truncated_or_corrupt_checkpoint_is_one_line_naming_the_file(tmp_path, damage):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"x": torch.arange(1000, dtype=torch.float32)}, path)
    whole = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncated":
        path.write_bytes(whole[: len(whole) // 2])
    elif damage == "flipped tensor bytes":
        _corrupt_tensor_bytes(path)
    else:
        path.write_bytes(b"just some text\n" * 20)
    with pytest.raises(RunError) as err:
        checkpoint.load(path)
    assert _one_line(err).startswith(f"{path}: not a readable s2s checkpoint, truncated or corrupt (")


# ---------------------------------------------------------------------------- kept states and fallback
def test_keep_last_keeps_the_states_before_last_and_rotates_them(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 8, "valid_every": 2, "keep_last": 2, **NO_BLEU}), run)
    folder = run / "checkpoints"
    assert [p.name for p in checkpoint.numbered(folder, "last")] == ["last-4.pt", "last-6.pt", "last-8.pt"]
    assert [_state(p)["position"]["step"] for p in checkpoint.numbered(folder, "last")] == [4, 6, 8]
    assert os.path.samefile(folder / "last.pt", folder / "last-8.pt")  # a second name, no bytes copied
    off = tmp_path / "off"
    train(tiny_recipe(train={"max_steps": 4, "valid_every": 2, "keep_last": 0, **NO_BLEU}), off)
    assert not checkpoint.numbered(off / "checkpoints", "last")


def test_without_hard_links_the_kept_state_is_a_copy(tmp_path, monkeypatch):
    from s2s.training.report import RunReporter

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    reporter = RunReporter(tmp_path, progress=False, keep_last=1)
    for step in (2, 4, 6):
        reporter.save("last", {"position": {"step": step}, "x": torch.full((3,), float(step))})
    reporter.close()
    folder = tmp_path / "checkpoints"
    assert [p.name for p in checkpoint.numbered(folder, "last")] == ["last-4.pt", "last-6.pt"]
    assert not os.path.samefile(folder / "last.pt", folder / "last-6.pt")
    assert torch.equal(checkpoint.load(folder / "last.pt")["x"], torch.full((3,), 6.0))


@pytest.mark.parametrize("damage,resumed_from", [
    ("replaced by a truncated copy", "last-4.pt"),  # last-4.pt, a separate file now, still reads
    ("truncated in place", "last-2.pt"),  # last-4.pt is the same file: both unreadable
])
def test_resume_falls_back_to_the_newest_good_state_and_continues_exactly(tiny_recipe, tmp_path, damage,
                                                                          resumed_from):
    """A 6-update run; last.pt damaged at update 4; --resume reads the newest state that loads,
    logs every file it skipped, and ends with the weights of the uninterrupted run."""
    from s2s.cli.main import main

    full = tmp_path / "full"
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 2, **NO_BLEU}), full)
    run = tmp_path / "run"
    train(tiny_recipe(train={"max_steps": 4, "valid_every": 2, **NO_BLEU}), run)
    last = run / "checkpoints" / "last.pt"
    whole = last.read_bytes()
    if damage.startswith("replaced"):
        last.unlink()
    with open(last, "r+b" if last.exists() else "wb") as handle:  # r+b: the same inode, cut short
        handle.write(whole[: len(whole) // 3])
        handle.truncate()
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=6"]) == 0
    log = (run / "train.log").read_text()
    assert f"resume: skipped {last}: not a readable s2s checkpoint, truncated or corrupt" in log
    assert f"resumed from {run / 'checkpoints' / resumed_from} at step {resumed_from[5]}" in log
    a, b = _state(full / "checkpoints" / "last.pt")["model"], _state(last)["model"]
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_resume_with_no_readable_state_names_every_file_tried(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"")
    (folder / "last-2.pt").write_bytes(b"x")
    skipped = []
    with pytest.raises(RunError, match=r"no readable checkpoint to resume from \(tried last\.pt, last-2\.pt;"):
        checkpoint.load_resume_state(folder, skipped.append)
    assert len(skipped) == 2
    assert all(line.startswith(f"resume: skipped {folder / name}: not a readable s2s checkpoint")
               for line, name in zip(skipped, ("last.pt", "last-2.pt")))


# ---------------------------------------------------------------------------- non-finite updates
def _poison_loss(monkeypatch, when):
    """Seq2Seq.loss in training mode times NaN (or Inf) while ``when()`` says so."""
    real = Seq2Seq.loss

    def loss(self, *args, **kwargs):
        loss_sum, coverage = real(self, *args, **kwargs)
        factor = when() if self.training else None
        return (loss_sum if factor is None else loss_sum * factor), coverage

    monkeypatch.setattr(Seq2Seq, "loss", loss)


def _trainer(recipe, tmp_path, name="run"):
    from s2s.training.loop import build_trainer
    from s2s.training.prepare import prepare_data

    data = prepare_data(recipe, tmp_path)
    (tmp_path / name).mkdir()
    torch.manual_seed(0)
    return build_trainer(recipe, tmp_path / name, data, torch.device("cpu")), data


@pytest.mark.parametrize("fault", ["nan loss", "inf loss", "inf gradient"])
def test_a_non_finite_update_is_skipped_counted_and_logged(tiny_recipe, tmp_path, monkeypatch, caplog, fault):
    trainer, data = _trainer(tiny_recipe(train={"optimizer": "adam", **NO_BLEU}), tmp_path)
    batch = data.train.collate(data.train.epoch(0)[0])
    bad = {"on": True}
    if fault.endswith("loss"):
        value = float("nan") if fault == "nan loss" else float("inf")
        _poison_loss(monkeypatch, lambda: value if bad["on"] else None)
    else:  # a finite loss whose gradient overflows in one parameter
        first = next(trainer.model.parameters())
        first.register_hook(lambda grad: grad * float("inf") if bad["on"] else grad)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    with caplog.at_level("INFO", logger="s2s"):
        loss = trainer.train_step([batch])
    p = trainer.position
    assert (p.step, p.bad_updates, p.skipped_updates) == (1, 1, 1)  # the update still counts
    assert float(loss) == 0.0  # kept out of the window's training loss
    assert all(torch.equal(before[n], q) for n, q in trainer.model.named_parameters())  # no step taken
    assert all(q.grad is None for q in trainer.model.parameters())  # its gradients dropped
    assert not trainer.optimizer.state  # Adam's moments and step count untouched
    assert "step 1: skipped the update: loss" in caplog.text and "(1 in a row, 1 in all)" in caplog.text
    bad["on"] = False
    trainer.train_step([batch])
    assert (p.step, p.bad_updates, p.skipped_updates) == (2, 0, 1)
    assert all(torch.isfinite(q).all() for q in trainer.model.parameters())
    assert any(not torch.equal(before[n], q) for n, q in trainer.model.named_parameters())


def test_a_run_with_a_skipped_update_resumes_exactly(tiny_recipe, tmp_path, monkeypatch):
    """Update 3 of 6 is poisoned in both runs: 6 in one go == 4, stop, resume for 2 more."""
    import s2s.training.loop as loop

    update = {"n": 0}
    real_mixing = loop.token_mixing

    def mixing(config, step):  # train_step asks once per update, with the updates done so far
        update["n"] = step + 1
        return real_mixing(config, step)

    monkeypatch.setattr(loop, "token_mixing", mixing)
    _poison_loss(monkeypatch, lambda: float("nan") if update["n"] == 3 else None)
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 2, **NO_BLEU}), tmp_path / "full")
    train(tiny_recipe(train={"max_steps": 4, "valid_every": 2, **NO_BLEU}), tmp_path / "split")
    train(tiny_recipe(train={"max_steps": 6, "valid_every": 2, **NO_BLEU}), tmp_path / "split", resume=True)
    a, b = (_state(tmp_path / run / "checkpoints" / "last.pt") for run in ("full", "split"))
    assert a["position"]["skipped_updates"] == b["position"]["skipped_updates"] == 1
    assert all(torch.equal(a["model"][n], b["model"][n]) for n in a["model"])


def test_too_many_non_finite_updates_in_a_row_stop_the_run(tiny_recipe, tmp_path, monkeypatch):
    _poison_loss(monkeypatch, lambda: float("nan"))
    run = tmp_path / "run"
    with pytest.raises(TrainingError) as err:
        train(tiny_recipe(train={"max_steps": 8, "valid_every": 4, "max_bad_updates": 3, **NO_BLEU}), run)
    assert _one_line(err).startswith("step 3: 3 updates in a row had a non-finite loss or gradient norm")
    assert "train.max_bad_updates = 3" in str(err.value)
    log = (run / "train.log").read_text()
    assert "step 2: skipped the update" in log and "step 3: 3 updates in a row" in log


# ---------------------------------------------------------------------------- out of memory
def _batch(lengths_src, lengths_tgt) -> Batch:
    def rows(lengths, start):
        out = np.full((len(lengths), max(lengths)), PAD, dtype=np.int64)
        for i, n in enumerate(lengths):
            out[i, :n] = np.arange(start, start + n)
        return out

    return Batch(src=rows(lengths_src, 5), src_lengths=np.asarray(lengths_src), tgt_in=rows(lengths_tgt, 7),
                 tgt_out=rows(lengths_tgt, 9), num_tokens=int(sum(lengths_tgt)), index=np.arange(len(lengths_src)))


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79 GiB"),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 123456789 bytes. Error code 12"),
])
def test_out_of_memory_on_a_batch_names_its_shape_and_on_cpu_is_not_retried(tiny_recipe, tmp_path, monkeypatch,
                                                                             error):
    trainer, data = _trainer(tiny_recipe(), tmp_path)
    batch = data.train.collate(data.train.epoch(0)[0])
    calls = []

    def out_of_memory(self, src, *args, **kwargs):
        calls.append(tuple(src.shape))
        raise error

    monkeypatch.setattr(Seq2Seq, "teacher_forced", out_of_memory)
    with pytest.raises(TrainingError) as err:
        trainer.train_step([batch])
    (sentences, src), tgt = batch.src.shape, batch.tgt_out.shape[1]
    assert _one_line(err).startswith(f"step 1: out of memory on a batch of {sentences} sentences x {src} source "
                                     f"tokens x {tgt} target tokens on cpu (")
    assert "lower train.batch_tokens" in str(err.value)
    assert calls == [(sentences, src)]  # on a CPU there is no retry
    assert trainer.position.step == 0


def test_split_batch_halves_the_sentences_and_trims_the_padding():
    batch = _batch([3, 6, 2, 4, 5], [4, 2, 7, 3, 1])
    first, second = faults.split_batch(batch)
    assert (first.src.shape, first.tgt_out.shape, second.src.shape, second.tgt_out.shape) == ((2, 6), (2, 4),
                                                                                                (3, 5), (3, 7))
    assert first.num_tokens + second.num_tokens == batch.num_tokens
    assert list(first.index) + list(second.index) == list(batch.index)
    assert np.array_equal(second.tgt_in, batch.tgt_in[2:, :7])
    assert faults.split_batch(_batch([3], [2])) is None


def test_split_halves_make_the_update_of_the_whole_batch(tiny_recipe, tmp_path):
    """No dropout, plain SGD: one update on a batch == one update on its two halves."""
    recipe = tiny_recipe(model={"embeddings": {"dim": 16, "dropout": 0.0},
                                "encoder": {"type": "lstm", "hidden": 8, "layers": 2, "dropout": 0.0},
                                "decoder": {"type": "lstm", "hidden": 16, "layers": 2, "dropout": 0.0}},
                         train={"optimizer": "sgd", "lr": 0.5, "clip_norm": 0.0})
    whole, data = _trainer(recipe, tmp_path, "whole")
    torch.manual_seed(0)
    from s2s.training.loop import build_trainer
    (tmp_path / "halves").mkdir()
    halves = build_trainer(recipe, tmp_path / "halves", data, torch.device("cpu"))
    batch = data.train.collate(data.train.epoch(0)[0])
    whole.train_step([batch])
    halves.train_step(list(faults.split_batch(batch)))
    for (name, a), b in zip(whole.model.named_parameters(), halves.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


class _FakeTrainer:
    """What split_on_out_of_memory reads of a Trainer, on a pretend GPU."""

    def __init__(self, fits: int):
        self.device, self.fits, self.calls, self.logged = torch.device("cuda"), fits, [], []
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        self.reporter = type("R", (), {"log": lambda _, message: self.logged.append(message)})()

    @faults.split_on_out_of_memory
    def train_step(self, batches, total=0):
        self.calls.append([len(b) for b in batches])
        for b in batches:
            with faults.naming_the_batch(b, 1, self.device):
                if len(b) > self.fits:
                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return total


def test_on_a_gpu_the_update_is_retried_with_the_failing_batch_split_until_it_fits():
    trainer = _FakeTrainer(fits=2)
    small, large = _batch([2, 2], [2, 2]), _batch([3, 4, 5, 6, 7], [2, 3, 4, 5, 6])
    assert trainer.train_step([small, large], total=42) == 42
    assert trainer.calls == [[2, 5], [2, 2, 3], [2, 2, 1, 2]]
    assert len(trainer.logged) == 2 and "split in two" in trainer.logged[0]
    with pytest.raises(TrainingError, match=r"out of memory on a batch of 1 sentences x 3 source tokens"):
        _FakeTrainer(fits=0).train_step([_batch([3, 4], [2, 2])])
