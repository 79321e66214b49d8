"""Data: TFDS text datasets, tokenizers, packing and an exactly-resumable sharded iterator.

    tok = data.tokenizer(cfg.data)
    it = data.TrainIterator(cfg, process_index, process_count)  # prepares the dataset on first use
    batch = it.next(global_batch_size)  # int32 (global_batch_size / process_count, seq_len + 1)
    it.restore(it.state())  # the state is a small JSON-serialisable dict
    for batch in data.eval_batches(cfg, batch_size, process_index, process_count): ...

A batch row is a packed window: inputs row[:-1], targets row[1:]; targets equal to
`tok.pad_id` (the tail of a split, rows past the end of the evaluation set) carry no loss.
"""

from mixlaws.data.iterator import TrainIterator, eval_batches, eval_windows
from mixlaws.data.tokenizers import (
  ByteTokenizer,
  SentencePieceTokenizer,
  Tokenizer,
  tokenizer,
  train_on_dataset,
  train_sentencepiece,
)
from mixlaws.data.tokens import TokenStream, prepare, token_stream

__all__ = [
  "ByteTokenizer",
  "SentencePieceTokenizer",
  "TokenStream",
  "Tokenizer",
  "TrainIterator",
  "eval_batches",
  "eval_windows",
  "prepare",
  "token_stream",
  "tokenizer",
  "train_on_dataset",
  "train_sentencepiece",
]
