"""The token cache: each split tokenized once into a flat memory-mapped array in the data dir.

Documents are concatenated in their stored order, each followed by EOS. Tokenizing 30 MB of text
takes seconds, so it happens once per (dataset, tokenizer, split); every later run, and every
process of a run, maps the array instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

import numpy as np

from mixlaws.config import DataConfig
from mixlaws.data import datasets, locks
from mixlaws.data.tokenizers import Tokenizer

_META = "meta.json"  # written last: its presence means the cache is complete
_TOKENS = "tokens.bin"


@dataclasses.dataclass(frozen=True)
class TokenStream:
  """One split as a flat token array."""

  name: str  # "<dataset>/<split>", for messages
  tokens: np.ndarray  # 1-D, read-only memmap
  n_documents: int
  digest: str  # sha256 of the token bytes: names the content on any machine
  path: str  # the cache directory


def cache_root(data: DataConfig) -> str:
  """Token caches live in the data dir when it is local and writable, else in ~/.cache/mixlaws/tokens.

  A named dataset's data dir may be a bucket (gs://…, which np.memmap cannot map) or a shared
  read-only folder; each machine then keeps its own cache, identical since tokenizing is deterministic.
  """
  root = datasets.data_dir(data)
  if "://" in root or (data.source == "tfds" and not os.access(root, os.W_OK)):
    return os.path.expanduser("~/.cache/mixlaws/tokens")
  return os.path.join(root, "mixlaws_tokens")


def stream_dir(data: DataConfig, split: str, tok: Tokenizer) -> str:
  name, key = datasets.source_key(data)
  slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
  return os.path.join(cache_root(data), f"{slug}-{key[:16]}", tok.key, split)


def token_stream(data: DataConfig, split: str, tok: Tokenizer) -> TokenStream:
  """The split's tokens, tokenizing (and preparing the dataset) on first use."""
  directory = stream_dir(data, split, tok)
  if not os.path.exists(os.path.join(directory, _META)):
    lock_name = hashlib.sha256(directory.encode()).hexdigest()[:16]
    with locks.locked(cache_root(data), f"tokens-{lock_name}"):
      if not os.path.exists(os.path.join(directory, _META)):  # another process may have finished it
        _write(data, split, tok, directory)
  return _open(directory)


def _write(data: DataConfig, split: str, tok: Tokenizer, directory: str) -> None:
  source = datasets.open_source(data)
  if datasets.n_documents(source, split) == 0:
    raise ValueError(f"data: the {split} split of {source.name} has no documents")
  dtype = np.uint16 if tok.vocab_size <= 2**16 else np.uint32
  os.makedirs(directory, exist_ok=True)
  digest = hashlib.sha256()
  n_tokens = n_documents = 0
  eos = np.array([tok.eos_id], dtype)
  with open(os.path.join(directory, _TOKENS), "wb") as fh:
    for texts in datasets.texts(source, split):
      pieces = []
      for ids in tok.encode_batch(texts):
        pieces += [ids.astype(dtype), eos]
      chunk = np.concatenate(pieces).tobytes()
      fh.write(chunk)
      digest.update(chunk)
      n_tokens += len(chunk) // eos.itemsize
      n_documents += len(texts)
  meta = {
    "name": f"{source.name}/{split}",
    "dtype": np.dtype(dtype).name,
    "n_tokens": n_tokens,
    "n_documents": n_documents,
    "sha256": digest.hexdigest(),
  }
  with open(os.path.join(directory, _META), "w") as fh:
    json.dump(meta, fh, indent=2)


def _open(directory: str) -> TokenStream:
  with open(os.path.join(directory, _META)) as fh:
    meta = json.load(fh)
  tokens = np.memmap(os.path.join(directory, _TOKENS), dtype=meta["dtype"], mode="r", shape=(meta["n_tokens"],))
  return TokenStream(meta["name"], tokens, meta["n_documents"], meta["sha256"], directory)


def prepare(data: DataConfig, tok: Tokenizer) -> dict[str, TokenStream]:
  """Prepares the dataset and tokenizes both splits (each at most once); returns their streams."""
  return {split: token_stream(data, split, tok) for split in datasets.SPLITS}
