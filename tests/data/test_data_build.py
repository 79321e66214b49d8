"""Preparing datasets: local corpora through the TFDS builder, the stdlib default, named TFDS datasets."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

from mixlaws import data
from mixlaws.data import datasets, sources, tokens


@pytest.fixture(scope="module")
def cfg(make_cfg):
  return make_cfg()


@pytest.fixture(scope="module")
def prepared(cfg):
  source = datasets.open_source(cfg.data)
  return source, {split: [t for texts in datasets.texts(source, split) for t in texts] for split in datasets.SPLITS}


def _ids(source, split):
  records = source.builder.as_data_source(split=split)
  return sorted(r["id"].decode() for r in records)


def test_local_corpus_is_split_by_a_hash_of_each_document_path(cfg, corpus, prepared):
  source, texts = prepared
  train, validation = _ids(source, "train"), _ids(source, "validation")
  assert not set(train) & set(validation)
  jsonl = [f"records.jsonl:{i}" for i in range(1, 7)]
  txt = [os.path.relpath(p, corpus) for p in corpus.glob("**/*.txt")]
  assert sorted(train + validation) == sorted(txt + jsonl)
  # The rule, recomputed from the ids: held out when sha256(id) maps below validation_fraction.
  for doc_id in train + validation:
    assert (doc_id in validation) == (sources._unit_hash(doc_id) < cfg.data.validation_fraction)
  assert validation and train


def test_jsonl_records_and_undecodable_bytes(corpus, prepared):
  _, texts = prepared
  everything = texts["train"] + texts["validation"]
  records = [json.loads(line)["text"] for line in (corpus / "records.jsonl").read_text().splitlines()]
  assert all(r in everything for r in records)
  assert "caf\ufffd \ufffd\ufffd broken bytes\n" in everything


def test_second_prepare_is_a_no_op(cfg, prepared):
  source, _ = prepared
  tok = data.tokenizer(cfg.data)
  streams = tokens.prepare(cfg.data, tok)
  stamps = {p: os.stat(p).st_mtime_ns for p in source.builder.data_path.iterdir()}
  stamps |= {f: os.stat(os.path.join(s.path, f)).st_mtime_ns for s in streams.values() for f in os.listdir(s.path)}
  again = tokens.prepare(cfg.data, tok)
  assert datasets.open_source(cfg.data).builder.data_path == source.builder.data_path
  assert {k: s.digest for k, s in again.items()} == {k: s.digest for k, s in streams.items()}
  stamps_after = {p: os.stat(p).st_mtime_ns for p in source.builder.data_path.iterdir()}
  stamps_after |= {f: os.stat(os.path.join(s.path, f)).st_mtime_ns for s in again.values() for f in os.listdir(s.path)}
  assert stamps_after == stamps


def test_a_changed_corpus_is_prepared_again(make_cfg, tmp_path):
  for i in range(3):
    (tmp_path / f"f{i}.txt").write_text(f"document number {i}\n")
  cfg = make_cfg(f"data.paths={tmp_path}/*.txt", "model.seq_len=4", "train.eval_tokens=4")
  before = data.token_stream(cfg.data, "train", data.tokenizer(cfg.data))
  (tmp_path / "f3.txt").write_text("a new document\n")
  after = data.token_stream(cfg.data, "train", data.tokenizer(cfg.data))
  assert before.path != after.path


def test_stdlib_default_limited_to_a_few_files(make_cfg):
  cfg = make_cfg("data.source=stdlib", "data.paths=", "data.max_documents=3", "data.validation_fraction=0.05")
  source = datasets.open_source(cfg.data)
  train, validation = _ids(source, "train"), _ids(source, "validation")
  assert len(train) == len(validation) == 3
  stdlib = sources.stdlib_dir()
  assert all(i.endswith(".py") and os.path.isfile(os.path.join(stdlib, i)) for i in train + validation)
  batch = data.TrainIterator(cfg).next(4)
  assert batch.shape == (4, cfg.model.seq_len + 1)


def test_named_tfds_dataset_from_a_data_dir(cfg, prepared):
  source, _ = prepared
  key = source.builder.builder_config.name
  named = _named_cfg(cfg, f"mixlaws_text/{key}:1.0.0", cfg.data.data_dir)
  opened = datasets.open_source(named.data)
  assert opened.splits == {"train": "train", "validation": "validation"}
  local_it, named_it = data.TrainIterator(cfg), data.TrainIterator(named)
  assert named_it._stream.digest == local_it._stream.digest
  np.testing.assert_array_equal(named_it.next(8), local_it.next(8))


def test_named_tfrecord_dataset_without_tensorflow_says_to_install_it(cfg, prepared, tmp_path):
  source, _ = prepared
  key = source.builder.builder_config.name
  copy = tmp_path / "mixlaws_text" / key / "1.0.0"
  shutil.copytree(source.builder.data_path, copy)
  info = json.loads((copy / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (copy / "dataset_info.json").write_text(json.dumps(info))
  named = _named_cfg(cfg, f"mixlaws_text/{key}:1.0.0", str(tmp_path))
  try:
    import tensorflow  # noqa: F401
  except ImportError:
    with pytest.raises(ValueError, match=r"prepared as TFRecord, which needs TensorFlow: pip install 'mixlaws\[tf\]'"):
      datasets.open_source(named.data)
  else:
    assert datasets.open_source(named.data).builder.info.file_format.value == "tfrecord"


def _named_cfg(cfg, dataset, data_dir):
  return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="tfds", dataset=dataset, data_dir=data_dir))
