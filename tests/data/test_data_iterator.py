"""The iterator: seeded global order, process sharding, exact resume, packing and evaluation batches."""

import json

import numpy as np
import pytest

from mixlaws import data
from mixlaws.data import datasets, sources

# Batch sizes that change between calls (ramp-up) and run past one epoch of the small corpus.
SIZES = [4, 4, 8, 8, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16]


@pytest.fixture(scope="module")
def cfg(make_cfg):
  return make_cfg()


def _stream(it, sizes):
  return [it.next(b) for b in sizes]


def test_same_seed_same_batches_other_seed_other_batches(cfg, make_cfg):
  first = _stream(data.TrainIterator(cfg), SIZES[:6])
  again = _stream(data.TrainIterator(cfg), SIZES[:6])
  other = _stream(data.TrainIterator(make_cfg("train.seed=1")), SIZES[:6])
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, c) for a, c in zip(first, other))


def test_batches_are_int32_windows_in_vocabulary(cfg):
  batch = data.TrainIterator(cfg).next(8)
  assert batch.shape == (8, cfg.model.seq_len + 1) and batch.dtype == np.int32
  assert 0 <= batch.min() and batch.max() < cfg.model.vocab_size


@pytest.mark.parametrize("process_count", [2, 4])
def test_processes_split_the_same_global_batches(cfg, process_count):
  sizes = [s for s in SIZES if s % process_count == 0]
  whole = _stream(data.TrainIterator(cfg), sizes)
  parts = [_stream(data.TrainIterator(cfg, p, process_count), sizes) for p in range(process_count)]
  for step, global_batch in enumerate(whole):
    local = [parts[p][step] for p in range(process_count)]
    assert all(part.shape[0] == global_batch.shape[0] // process_count for part in local)
    np.testing.assert_array_equal(np.concatenate(local), global_batch)


def test_resume_equals_uninterrupted_across_batch_size_changes(cfg):
  uninterrupted = _stream(data.TrainIterator(cfg), SIZES)
  for k in (3, 9, 15):  # before, at and after the batch size changes and the epoch boundary
    it = data.TrainIterator(cfg)
    _stream(it, SIZES[:k])
    saved = json.loads(json.dumps(it.state()))  # what the checkpoint stores
    resumed = data.TrainIterator(cfg)
    resumed.restore(saved)
    for expected, got in zip(uninterrupted[k:], _stream(resumed, SIZES[k:])):
      np.testing.assert_array_equal(expected, got)


def test_resume_per_process(cfg):
  whole = _stream(data.TrainIterator(cfg), [8] * 6)
  it = data.TrainIterator(cfg, 1, 2)
  _stream(it, [8] * 3)
  resumed = data.TrainIterator(cfg, 1, 2)
  resumed.restore(it.state())
  for expected, got in zip(whole[3:], _stream(resumed, [8] * 3)):
    np.testing.assert_array_equal(expected[4:], got)


def test_restore_rejects_a_state_from_another_seed(cfg, make_cfg):
  state = data.TrainIterator(make_cfg("train.seed=7")).state()
  with pytest.raises(ValueError, match="iterator state"):
    data.TrainIterator(cfg).restore(state)


def test_an_epoch_holds_every_token_of_the_corpus_exactly_once(cfg):
  it = data.TrainIterator(cfg)
  tok = it.tokenizer
  width = cfg.model.seq_len + 1
  epoch = np.concatenate(_stream(it, [1] * it.n_windows))
  # Expected: every train document tokenized and followed by EOS, read straight from the files.
  files = sources.corpus_files(cfg.data)
  docs = sources.split_documents(cfg.data, files)["train"]
  expected = np.concatenate(
    [np.append(tok.encode(text), tok.eos_id) for _, text in sources.read_documents(docs, "text")]
  )
  assert epoch.size - np.count_nonzero(epoch == tok.pad_id) == expected.size
  counts = np.bincount(epoch.ravel(), minlength=tok.vocab_size)
  counts[tok.pad_id] = 0
  np.testing.assert_array_equal(counts, np.bincount(expected, minlength=tok.vocab_size))
  # The rows are the tiles of the split's stream (documents in their stored order), as multisets.
  source = datasets.open_source(cfg.data)
  stored = [np.append(tok.encode(t), tok.eos_id) for texts in datasets.texts(source, "train") for t in texts]
  padded = np.full(it.n_windows * width, tok.pad_id)
  padded[: expected.size] = np.concatenate(stored)
  assert sorted(map(tuple, epoch.tolist())) == sorted(map(tuple, padded.reshape(-1, width).tolist()))


def test_second_epoch_is_a_new_order_of_the_same_windows(cfg):
  it = data.TrainIterator(cfg)
  first = np.concatenate(_stream(it, [1] * it.n_windows))
  second = np.concatenate(_stream(it, [1] * it.n_windows))
  assert it.epoch == 2
  assert not np.array_equal(first, second)
  assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, second.tolist()))


def test_eval_batches_are_a_fixed_set_split_over_processes(cfg):
  width = cfg.model.seq_len + 1
  whole = list(data.eval_batches(cfg, 3))
  assert [b.shape for b in whole] == [(3, width), (3, width)]
  n_eval = data.eval_windows(cfg)
  assert n_eval == 4  # 64 eval tokens / seq_len 16
  rows = np.concatenate(whole)
  pad = data.tokenizer(cfg.data).pad_id
  assert not (rows[:n_eval] == pad).all(axis=1).any() and (rows[n_eval:] == pad).all()
  np.testing.assert_array_equal(rows, np.concatenate(list(data.eval_batches(cfg, 3))))
  halves = [list(data.eval_batches(cfg, 4, p, 2)) for p in range(2)]
  joined = np.concatenate([np.concatenate([halves[0][i], halves[1][i]]) for i in range(len(halves[0]))])
  np.testing.assert_array_equal(joined[:n_eval], rows[:n_eval])
