"""Shared fixtures of the data tests: a small temporary corpus and configs over it."""

import json

import numpy as np
import pytest

from mixlaws import config as config_lib

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu ünïcödé ☃".split()


def _text(rng: np.random.Generator, n_words: int) -> str:
  lines = [" ".join(rng.choice(WORDS, size=rng.integers(1, 9))) for _ in range(max(n_words // 5, 1))]
  return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
  """A directory of .txt files in two folders, one .jsonl file and one file with invalid UTF-8."""
  root = tmp_path_factory.mktemp("corpus")
  rng = np.random.default_rng(0)
  for folder in ("a", "b"):
    (root / folder).mkdir()
    for i in range(8):
      (root / folder / f"doc{i}.txt").write_text(_text(rng, int(rng.integers(10, 80))))
  records = [{"text": _text(rng, int(rng.integers(10, 60))), "meta": i} for i in range(6)]
  (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  (root / "a" / "latin1.txt").write_bytes(b"caf\xe9 \xff\xfe broken bytes\n")
  return root


@pytest.fixture(scope="session")
def make_cfg(corpus, tmp_path_factory):
  """Builds a resolved config over the corpus (shared data dir) with extra overrides."""
  data_dir = tmp_path_factory.mktemp("data_dir")

  def make(*overrides: str) -> config_lib.Config:
    base = [
      "data.source=files",
      f"data.paths={corpus}/**/*.txt,{corpus}/*.jsonl",
      f"data.data_dir={data_dir}",
      "data.validation_fraction=0.25",
      "model.vocab_size=259",
      "model.seq_len=16",
      "train.eval_tokens=64",
    ]
    return config_lib.resolve(config_lib.apply_overrides(config_lib.base_config(), base + list(overrides)))

  return make
