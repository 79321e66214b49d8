"""The training iterator and the evaluation batches, both sharded over processes.

Epoch e visits every window of the train split once, in the order of a permutation drawn from
(train.seed, e). A global batch of B sequences takes the next B positions of that order, running on
into the next epoch, so what a batch holds depends only on the seed and how many sequences came
before it: never on the number of processes, and not on how earlier batches were sized (batch
ramp-up). Process p of P reads only rows [p·B/P, (p+1)·B/P) of each global batch, the contiguous
block that `jax.make_array_from_process_local_data` expects for a batch sharded on its first axis.
The state is the count of sequences consumed plus a fingerprint of the data, seq_len and seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from mixlaws.config import Config
from mixlaws.data import packing, tokenizers, tokens


def _check_process(process_index: int, process_count: int) -> None:
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index: must lie in [0, {process_count}), got {process_index}")


def _rows_per_process(batch_size: int, process_count: int) -> int:
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(f"batch size: {batch_size} sequences do not split evenly over {process_count} processes")
  return batch_size // process_count


def _open_split(cfg: Config, split: str) -> tuple[tokenizers.Tokenizer, tokens.TokenStream]:
  tok = tokenizers.tokenizer(cfg.data)
  if cfg.model.vocab_size < tok.vocab_size:
    raise ValueError(f"model.vocab_size: {cfg.model.vocab_size} is smaller than the tokenizer's {tok.vocab_size} ids")
  stream = tokens.token_stream(cfg.data, split, tok)
  if len(stream.tokens) < cfg.model.seq_len + 1:
    raise ValueError(
      f"model.seq_len: {stream.name} holds {len(stream.tokens)} tokens, fewer than seq_len + 1 = {cfg.model.seq_len + 1}"
    )
  return tok, stream


class TrainIterator:
  """Global batches of packed train windows in a seeded order; this process's rows of each."""

  def __init__(self, cfg: Config, process_index: int = 0, process_count: int = 1):
    _check_process(process_index, process_count)
    self.tokenizer, self._stream = _open_split(cfg, "train")
    self._seq_len = cfg.model.seq_len
    self._seed = cfg.train.seed
    self._process_index = process_index
    self._process_count = process_count
    self.n_windows = packing.n_windows(len(self._stream.tokens), self._seq_len)
    blob = f"{self._stream.digest}\0{self._seq_len}\0{self._seed}"
    self._fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]
    self._sequences = 0  # sequences of all global batches so far
    self._orders: dict[int, np.ndarray] = {}

  @property
  def epoch(self) -> int:
    return self._sequences // self.n_windows

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._orders:
      self._orders = {e: o for e, o in self._orders.items() if e == epoch - 1}  # a batch spans at most two
      self._orders[epoch] = np.random.default_rng([self._seed, epoch]).permutation(self.n_windows)
    return self._orders[epoch]

  def next(self, global_batch_size: int) -> np.ndarray:
    """This process's rows of the next global batch: int32 (global_batch_size / processes, seq_len + 1)."""
    rows = _rows_per_process(global_batch_size, self._process_count)
    first = self._sequences + self._process_index * rows
    positions = np.arange(first, first + rows)
    epochs = positions // self.n_windows
    window_ids = np.empty(rows, np.int64)
    for epoch in np.unique(epochs):
      mine = epochs == epoch
      window_ids[mine] = self._order(int(epoch))[positions[mine] % self.n_windows]
    self._sequences += global_batch_size
    return packing.windows(self._stream.tokens, window_ids, self._seq_len, self.tokenizer.pad_id)

  def state(self) -> dict[str, Any]:
    """A small JSON-serialisable dict; `restore` of it continues exactly where this iterator is."""
    return {"sequences": self._sequences, "fingerprint": self._fingerprint}

  def restore(self, state: dict[str, Any]) -> None:
    if not isinstance(state, dict) or set(state) != {"sequences", "fingerprint"}:
      raise ValueError(f"iterator state: expected keys fingerprint and sequences, got {state!r}")
    if state["fingerprint"] != self._fingerprint:
      raise ValueError("iterator state: saved for other data, another model.seq_len or another train.seed")
    if not isinstance(state["sequences"], int) or state["sequences"] < 0:
      raise ValueError(f"iterator state: sequences must be a non-negative integer, got {state['sequences']!r}")
    self._sequences = state["sequences"]


def eval_windows(cfg: Config) -> int:
  """Validation windows in the fixed held-out budget: train.eval_tokens target tokens, rounded up."""
  return -(-cfg.train.eval_tokens // cfg.model.seq_len)


def eval_batches(cfg: Config, batch_size: int, process_index: int = 0, process_count: int = 1) -> Iterator[np.ndarray]:
  """The fixed held-out set in batches of this process's rows; rows past the set are all PAD."""
  _check_process(process_index, process_count)
  rows = _rows_per_process(batch_size, process_count)
  tok, stream = _open_split(cfg, "validation")
  total = eval_windows(cfg)
  available = packing.n_windows(len(stream.tokens), cfg.model.seq_len)
  if total > available:
    raise ValueError(
      f"train.eval_tokens: {cfg.train.eval_tokens} needs {total} windows but {stream.name} "
      f"has {available} at seq_len {cfg.model.seq_len}"
    )

  def batches() -> Iterator[np.ndarray]:
    for start in range(0, total, batch_size):
      first = start + process_index * rows
      window_ids = range(first, min(first + rows, total))
      batch = np.full((rows, cfg.model.seq_len + 1), tok.pad_id, np.int32)
      batch[: len(window_ids)] = packing.windows(stream.tokens, window_ids, cfg.model.seq_len, tok.pad_id)
      yield batch

  return batches()
