"""Tokenizers: byte-level ids, SentencePiece training and loading, and the data CLI commands."""

import numpy as np
import pytest
from click.testing import CliRunner

from mixlaws import cli, config, data

SAMPLE = "def f(x):\n\treturn  x + 1  # café ☃\n"


def test_byte_tokenizer_ids_and_round_trip(make_cfg):
  tok = data.tokenizer(make_cfg().data)
  assert tok.vocab_size == config.BYTE_VOCAB_SIZE == 259
  assert {tok.pad_id, tok.bos_id, tok.eos_id} == {256, 257, 258}
  ids = tok.encode(SAMPLE)
  assert ids == list(SAMPLE.encode()) and max(ids) < 256
  assert tok.decode(ids + [tok.eos_id, tok.pad_id]) == SAMPLE
  assert tok.decode([99, 97, 102, 0xFF]) == "caf\ufffd"  # a broken byte decodes to U+FFFD
  np.testing.assert_array_equal(tok.encode_batch([SAMPLE])[0], ids)


@pytest.fixture(scope="module")
def sp_model(make_cfg, tmp_path_factory):
  path = tmp_path_factory.mktemp("sp") / "tiny.model"
  result = CliRunner().invoke(
    cli.main,
    ["tokenizer", "train", "--out", str(path), "--vocab-size", "300", *_args(make_cfg)],
  )
  assert result.exit_code == 0, result.output
  return path


def _args(make_cfg):
  """The fixture corpus as command-line overrides."""
  cfg = make_cfg()
  return [
    arg
    for field in ("source", "paths", "data_dir", "validation_fraction")
    for arg in ("-o", f"data.{field}={getattr(cfg.data, field)}")
  ] + ["-o", "model.vocab_size=259", "-o", "model.seq_len=16", "-o", "train.eval_tokens=64"]


def test_sentencepiece_train_and_load_round_trip(make_cfg, sp_model):
  cfg = make_cfg("data.tokenizer=sentencepiece", f"data.tokenizer_path={sp_model}", "model.vocab_size=300")
  tok = data.tokenizer(cfg.data)
  assert tok.vocab_size == 300
  assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3)
  ids = tok.encode(SAMPLE)
  assert tok.decode(ids) == SAMPLE
  text = "alpha beta gamma\n"
  assert len(tok.encode(text)) < len(text.encode())  # it learned merges from the corpus
  batch = data.TrainIterator(cfg).next(4)
  assert batch.shape == (4, 17) and batch.max() < 300
  byte_cfg = make_cfg()
  assert data.TrainIterator(cfg)._stream.path != data.TrainIterator(byte_cfg)._stream.path


def test_sentencepiece_vocabulary_must_fit_the_model(make_cfg, sp_model):
  cfg = make_cfg("data.tokenizer=sentencepiece", f"data.tokenizer_path={sp_model}", "model.vocab_size=259")
  with pytest.raises(ValueError, match="model.vocab_size: 259 is smaller than the tokenizer's 300 ids"):
    data.TrainIterator(cfg)


def test_data_prepare_command(make_cfg):
  result = CliRunner().invoke(cli.main, ["data", "prepare", *_args(make_cfg)])
  assert result.exit_code == 0, result.output
  assert "files/train" in result.output and "files/validation" in result.output
  bad = CliRunner().invoke(
    cli.main, ["data", "prepare", "-o", "data.source=files", "-o", "data.paths=/nonexistent/*.txt"]
  )
  assert bad.exit_code == 2 and bad.output.strip() == "error: data.paths: '/nonexistent/*.txt' matches no files"
