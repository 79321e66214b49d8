"""Text datasets through TFDS: the builder for local corpora and prepared named datasets.

Writing without TensorFlow: a `GeneratorBasedBuilder` prepared with `file_format="array_record"`
serialises examples with TFDS's own copy of the tf.Example protos and writes them with the
array_record package, all in this process; TensorFlow would only be needed for TFRecord files
(`tf.io.TFRecordWriter`) and Beam for distributed generation, and neither path is taken. Reading
goes through `tfds.data_source`-style random access (`builder.as_data_source`), also TF-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator

import tensorflow_datasets as tfds
from etils import epath

from mixlaws.config import DataConfig
from mixlaws.data import locks, sources

BUILDER_NAME = "mixlaws_text"
SPLITS = ("train", "validation")
_READ_BATCH = 256  # documents per random-access read


def data_dir(data: DataConfig) -> str:
  """Where prepared datasets live: `data.data_dir`, or ~/.cache/mixlaws/tfds."""
  return data.data_dir or os.path.expanduser("~/.cache/mixlaws/tfds")


class MixlawsText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Documents of a local text corpus: {"text", "id"}, split into train and validation by path hash."""

  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, data: DataConfig, files: list[sources.File], **kwargs):
    self._data = data
    self._files = files
    super().__init__(**kwargs)

  def _create_builder_config(self, builder_config, version):
    # Each corpus gets a config named by the hash of its inputs, which cannot be declared in
    # BUILDER_CONFIGS ahead of time; the base class would log a warning for every such config.
    return builder_config

  def _info(self) -> tfds.core.DatasetInfo:
    features = tfds.features.FeaturesDict({"text": tfds.features.Text(), "id": tfds.features.Text()})
    return tfds.core.DatasetInfo(builder=self, features=features)

  def _split_generators(self, dl_manager):
    splits = sources.split_documents(self._data, self._files)
    return {name: self._generate_examples(docs) for name, docs in splits.items()}

  def _generate_examples(self, docs: list[sources.Document]):
    for doc_id, text in sources.read_documents(docs, self._data.text_field):
      yield doc_id, {"text": text, "id": doc_id}


@dataclasses.dataclass(frozen=True)
class Source:
  """A prepared dataset and which of its splits serve as train and validation."""

  name: str  # readable, for messages
  builder: tfds.core.DatasetBuilder
  splits: dict[str, str]  # "train" | "validation" → the dataset's split name
  text_field: str
  max_documents: int  # read at most this many documents per split; 0 → all


def source_key(data: DataConfig) -> tuple[str, str]:
  """(readable name, hex key) of the dataset `data` describes; cheap, builds nothing."""
  if data.source in ("stdlib", "files"):
    return data.source, sources.fingerprint(data, sources.corpus_files(data))
  _check_data_dir(data)
  root = data_dir(data)
  where = root if "://" in root else os.path.abspath(root)
  blob = f"{data.dataset}\0{where}\0{data.text_field}\0{data.max_documents}"
  return data.dataset, hashlib.sha256(blob.encode()).hexdigest()


def open_source(data: DataConfig) -> Source:
  """Opens the dataset of `data`, preparing a local corpus into the data dir once."""
  if data.source in ("stdlib", "files"):
    return _local(data)
  return _named(data)


def _local(data: DataConfig) -> Source:
  files = sources.corpus_files(data)
  key = sources.fingerprint(data, files)[:16]
  config = tfds.core.BuilderConfig(name=key)
  with locks.locked(data_dir(data), f"{BUILDER_NAME}-{key}"):
    builder = MixlawsText(data=data, files=files, config=config, data_dir=data_dir(data), file_format="array_record")
    if not (builder.data_path.exists() and builder.is_prepared()):  # is_prepared warns on a missing dir
      tfds.display_progress_bar(False)  # the run's own log says what is happening
      builder.download_and_prepare()
  # max_documents already shaped the prepared corpus.
  return Source(data.source, builder, {s: s for s in SPLITS}, "text", max_documents=0)


def _check_data_dir(data: DataConfig) -> None:
  if not epath.Path(data_dir(data)).exists():
    raise ValueError(f"data.data_dir: {data_dir(data)} does not exist")


def _named(data: DataConfig) -> Source:
  root = data_dir(data)
  _check_data_dir(data)
  try:
    builder = tfds.builder(data.dataset, data_dir=root)
  except tfds.core.DatasetNotFoundError:
    raise ValueError(f"data.dataset: unknown dataset {data.dataset!r} (not in TFDS nor prepared in {root})") from None
  except ValueError as e:
    raise ValueError(f"data.dataset: {data.dataset!r}: {str(e).splitlines()[0]}") from None
  if not builder.is_prepared():
    raise ValueError(f"data.dataset: {data.dataset} is not prepared in {root} (nothing is downloaded at run time)")
  names = list(builder.info.splits)
  held_out = next((s for s in ("validation", "test") if s in names), None)
  if "train" not in names or held_out is None:
    raise ValueError(f"data.dataset: {data.dataset} needs a train and a validation or test split, has {names}")
  if data.text_field not in builder.info.features:
    raise ValueError(f"data.text_field: {data.dataset} has no feature {data.text_field!r}")
  needs_tensorflow(builder, f"data.dataset: {data.dataset} is")
  return Source(data.dataset, builder, {"train": "train", "validation": held_out}, data.text_field, data.max_documents)


def needs_tensorflow(builder: tfds.core.DatasetBuilder, subject: str) -> bool:
  """True when `builder` was prepared as TFRecord, so it is read through TensorFlow (not `as_data_source`);
  then a missing TensorFlow raises "<subject> prepared as TFRecord, which needs TensorFlow: pip install …"."""
  if builder.info.file_format != tfds.core.FileFormat.TFRECORD:
    return False
  try:
    import tensorflow  # noqa: F401
  except ImportError:
    raise ValueError(f"{subject} prepared as TFRecord, which needs TensorFlow: pip install 'mixlaws[tf]'") from None
  return True


def n_documents(source: Source, split: str) -> int:
  total = source.builder.info.splits[source.splits[split]].num_examples
  return min(total, source.max_documents) if source.max_documents else total


def texts(source: Source, split: str) -> Iterator[list[str]]:
  """Batches of document texts of a split in its stored order; bad UTF-8 becomes U+FFFD."""
  count = n_documents(source, split)
  if source.builder.info.file_format == tfds.core.FileFormat.TFRECORD:
    yield from _tfrecord_texts(source, split, count)
    return
  records = source.builder.as_data_source(split=source.splits[split])
  for start in range(0, count, _READ_BATCH):
    batch = records.__getitems__(range(start, min(start + _READ_BATCH, count)))
    yield [_text(r[source.text_field]) for r in batch]


def _tfrecord_texts(source: Source, split: str, count: int) -> Iterator[list[str]]:
  ds = source.builder.as_dataset(split=source.splits[split], shuffle_files=False).take(count)
  batch: list[str] = []
  for record in tfds.as_numpy(ds):
    batch.append(_text(record[source.text_field]))
    if len(batch) == _READ_BATCH:
      yield batch
      batch = []
  if batch:
    yield batch


def _text(value: bytes | str) -> str:
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
