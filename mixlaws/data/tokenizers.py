"""Tokenizers: byte-level (the default) and SentencePiece, behind one small interface."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Sequence

import numpy as np
from etils import epath

from mixlaws.config import BYTE_VOCAB_SIZE, DataConfig

# Byte-level ids: a byte's id is its value, then the three special tokens.
BYTE_PAD_ID = 256
BYTE_BOS_ID = 257
BYTE_EOS_ID = 258
assert BYTE_EOS_ID + 1 == BYTE_VOCAB_SIZE

# Ids of the special pieces in SentencePiece models that `train_sentencepiece` writes.
SP_UNK_ID, SP_BOS_ID, SP_EOS_ID, SP_PAD_ID = 0, 1, 2, 3


class ByteTokenizer:
  """UTF-8 bytes as ids 0–255, plus PAD, BOS and EOS (config.BYTE_VOCAB_SIZE ids in all)."""

  vocab_size = BYTE_VOCAB_SIZE
  pad_id = BYTE_PAD_ID
  bos_id = BYTE_BOS_ID
  eos_id = BYTE_EOS_ID
  key = "byte"  # names the token cache of a dataset tokenized with it

  def encode(self, text: str) -> list[int]:
    return list(text.encode("utf-8", errors="replace"))

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.frombuffer(t.encode("utf-8", errors="replace"), np.uint8) for t in texts]

  def decode(self, ids: Iterable[int]) -> str:
    return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


class SentencePieceTokenizer:
  """A SentencePiece model loaded from a .model file (local or gs://)."""

  def __init__(self, model_proto: bytes, name: str = "sentencepiece"):
    import sentencepiece as spm

    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
    self.vocab_size = self._sp.vocab_size()
    if self._sp.eos_id() < 0:
      raise ValueError(f"data.tokenizer_path: {name} has no EOS piece, which packing puts between documents")
    self.eos_id = self._sp.eos_id()
    # Models from elsewhere may lack BOS or PAD; fall back to ids that exist in the vocabulary.
    self.bos_id = self._sp.bos_id() if self._sp.bos_id() >= 0 else self.eos_id
    self.pad_id = self._sp.pad_id() if self._sp.pad_id() >= 0 else self._sp.unk_id()
    self.key = "sp-" + hashlib.sha256(model_proto).hexdigest()[:12]

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
    return [np.asarray(ids, np.int64) for ids in self._sp.encode(list(texts))]

  def decode(self, ids: Iterable[int]) -> str:
    return self._sp.decode([int(i) for i in ids])


Tokenizer = ByteTokenizer | SentencePieceTokenizer


def tokenizer(data: DataConfig) -> Tokenizer:
  """The tokenizer that `data.tokenizer` names."""
  if data.tokenizer == "byte":
    return ByteTokenizer()
  if data.tokenizer == "sentencepiece":
    path = epath.Path(data.tokenizer_path)
    if not path.exists():
      raise ValueError(f"data.tokenizer_path: {data.tokenizer_path} does not exist")
    return SentencePieceTokenizer(path.read_bytes(), name=data.tokenizer_path)
  raise ValueError(f"data.tokenizer: unknown tokenizer {data.tokenizer!r}")


def train_sentencepiece(
  texts: Iterable[str], output: str, vocab_size: int, model_type: str = "bpe", num_threads: int = 1
) -> SentencePieceTokenizer:
  """Trains a SentencePiece model on `texts` (one document each) and writes it to `output`."""
  import sentencepiece as spm

  if vocab_size <= 260:
    raise ValueError(f"--vocab-size: byte fallback needs more than 4 specials + 256 bytes, got {vocab_size}")
  model = io.BytesIO()
  options = dict(
    sentence_iterator=iter(texts),
    model_writer=model,
    vocab_size=vocab_size,
    model_type=model_type,
    # Lossless on code and prose: no whitespace or Unicode normalisation, unseen characters fall
    # back to bytes, and whole documents (newlines included) are the training "sentences".
    normalization_rule_name="identity",
    remove_extra_whitespaces=False,
    add_dummy_prefix=False,
    allow_whitespace_only_pieces=True,
    byte_fallback=True,
    split_digits=True,
    max_sentence_length=1 << 20,
    hard_vocab_limit=False,
    unk_id=SP_UNK_ID,
    bos_id=SP_BOS_ID,
    eos_id=SP_EOS_ID,
    pad_id=SP_PAD_ID,
    num_threads=num_threads,
    minloglevel=2,
  )
  try:
    spm.SentencePieceTrainer.train(**options)
  except RuntimeError as e:  # sentencepiece reports bad options and corpora as RuntimeError
    raise ValueError(f"sentencepiece training: {str(e).splitlines()[0]}") from None
  out = epath.Path(output)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_bytes(model.getvalue())
  return SentencePieceTokenizer(model.getvalue(), name=output)


def train_on_dataset(
  data: DataConfig, output: str, vocab_size: int, model_type: str = "bpe", num_threads: int = 1
) -> SentencePieceTokenizer:
  """Trains a SentencePiece model on the train split of the dataset `data` describes."""
  from mixlaws.data import datasets

  source = datasets.open_source(data)
  texts = (text for batch in datasets.texts(source, "train") for text in batch)
  return train_sentencepiece(texts, output, vocab_size, model_type, num_threads)
