"""Settings the study files share (a helper module: names starting with _ are not studies)."""

from __future__ import annotations

import math

import ml_collections

from mixlaws import config


def paper_data(base: ml_collections.ConfigDict, dataset: str) -> None:
  """A paper's corpus as a prepared TFDS dataset, with a 50,257-entry tokenizer.

  The papers tokenize with GPT-2's BPE, which mixlaws does not ship; a SentencePiece model of the
  same size, trained once on the corpus with `mixlaws tokenizer train`, stands in. Its path is
  relative (to where runs are launched from): an absolute, machine-specific path would change
  every run id.
  """
  base.model.vocab_size = 50257
  base.data.source = "tfds"
  base.data.dataset = dataset
  base.data.tokenizer = "sentencepiece"
  base.data.tokenizer_path = f"tokenizers/{dataset.split('/')[0].split(':')[0]}-50257.model"


def cpu_data(base: ml_collections.ConfigDict) -> None:
  """The embedded default: this Python's standard library as text, bytes as tokens, float32 on CPU."""
  base.model.vocab_size = config.BYTE_VOCAB_SIZE
  base.model.compute_dtype = "float32"
  base.data.source = "stdlib"
  base.data.dataset = ""
  base.data.tokenizer = "byte"
  base.data.tokenizer_path = ""


def shrink_depth(n_blocks: int, factor: int = 4) -> int:
  """Tiny variants: depth divided by `factor`, rounded up so every block count stays distinct enough."""
  return math.ceil(n_blocks / factor)
