"""Packing: a split's token stream cut into non-overlapping windows of seq_len + 1 tokens.

Window w holds tokens [w·(seq_len+1), (w+1)·(seq_len+1)) of the stream, in which documents are
joined by EOS; a model reads inputs w[:-1] and predicts targets w[1:]. The windows tile the stream,
so an epoch over all of them holds every token exactly once: the final, shorter window is filled up
with PAD, and targets equal to PAD carry no loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def n_windows(n_tokens: int, seq_len: int) -> int:
  """Windows of seq_len + 1 tokens that tile n_tokens (the last one may be partly PAD)."""
  return -(-n_tokens // (seq_len + 1))


def windows(tokens: np.ndarray, window_ids: Sequence[int], seq_len: int, pad_id: int) -> np.ndarray:
  """int32 (len(window_ids), seq_len + 1): the given windows of `tokens`, PAD past its end."""
  width = seq_len + 1
  out_bw = np.full((len(window_ids), width), pad_id, np.int32)
  for row, w in enumerate(window_ids):
    # One contiguous slice per row reads only the pages of that window from the memmap.
    piece = tokens[int(w) * width : (int(w) + 1) * width]
    out_bw[row, : len(piece)] = piece
  return out_bw
