"""Downstream tasks as text: multiple-choice and generative examples, few-shot prompts, JSONL and TFDS sources.

A task is pure text; the engine tokenizes it with the run's tokenizer. Multiple-choice examples
carry one context per choice because some benchmarks (WinoGrande) vary the context and score a
shared continuation; most repeat one context.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from etils import epath

SHOT_SEPARATOR = "\n\n"  # between few-shot demonstrations and before the evaluated example


@dataclasses.dataclass(frozen=True)
class Choices:
  """A multiple-choice example: continuation i is scored after context i."""

  contexts: tuple[str, ...]
  continuations: tuple[str, ...]
  answer: int

  def demonstration(self) -> str:
    return self.contexts[self.answer] + self.continuations[self.answer]

  def prefixed(self, prefix: str) -> Choices:
    return dataclasses.replace(self, contexts=tuple(prefix + c for c in self.contexts))


@dataclasses.dataclass(frozen=True)
class Problem:
  """A generative example: a prompt, and one completion known to pass its checker."""

  prompt: str
  reference: str

  def demonstration(self) -> str:
    return self.prompt + self.reference

  def prefixed(self, prefix: str) -> Problem:
    return dataclasses.replace(self, prompt=prefix + self.prompt)


@dataclasses.dataclass(frozen=True)
class Task:
  """Examples of one kind; generative tasks add a checker and a generation budget."""

  name: str  # the metric prefix: "<name>/<metric>"
  examples: tuple  # Choices or Problems
  pool: tuple = ()  # few-shot demonstrations; () → the other examples of `examples`
  check: Callable[[Problem, str], bool] | None = None  # generative: does a completion (text up to EOS) pass?
  max_new_tokens: int = 0  # generative: tokens sampled per completion

  @property
  def generative(self) -> bool:
    return self.check is not None


def shot_name(name: str, shots: int) -> str:
  """The metric prefix of a task evaluated with `shots` demonstrations (e.g. triviaqa_1shot, PAPERS.md §6.2)."""
  return name if shots == 0 else f"{name}_{shots}shot"


def with_shots(task: Task, shots: int, seed: int) -> Task:
  """Prefixes each example with `shots` demonstrations, chosen by a generator seeded with (seed, index)."""
  if shots < 0:
    raise ValueError(f"--shots: must be non-negative, got {shots}")
  if shots == 0:
    return task
  pool = task.pool or task.examples
  own = not task.pool  # demonstrations from the evaluated examples never include the example itself
  if len(pool) - own < shots:
    raise ValueError(f"--shots: {task.name} has {len(pool) - own} examples to demonstrate with, fewer than {shots}")
  examples = []
  for i, example in enumerate(task.examples):
    picks = np.random.default_rng([seed, i]).choice(len(pool) - own, size=shots, replace=False)
    picks = [int(p) + int(own and p >= i) for p in picks]
    examples.append(example.prefixed("".join(pool[p].demonstration() + SHOT_SEPARATOR for p in picks)))
  return dataclasses.replace(task, name=shot_name(task.name, shots), examples=tuple(examples))


def limited(examples: list, limit: int) -> tuple:
  return tuple(examples[:limit] if limit else examples)


# --------------------------------------------------------------------------------------------
# Local JSONL: one {"context": str, "choices": [str, ...], "answer": int} per line.


def jsonl_name(path: str) -> str:
  """The metric prefix of a JSONL task: its file name without suffix, in [A-Za-z0-9_.-]."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(path))[0])


def jsonl_digest(path: str) -> str:
  """sha256 of the file, so an edited file counts as a different task."""
  return hashlib.sha256(epath.Path(path).read_bytes()).hexdigest()


def from_jsonl(path: str, limit: int = 0) -> Task:
  """A multiple-choice task from a JSONL file; the few-shot pool is the file's other examples."""
  p = epath.Path(path)
  if not p.exists():
    raise ValueError(f"--tasks: {path} does not exist")
  examples = []
  for number, line in enumerate(p.read_text().splitlines(), start=1):
    if line.strip():
      examples.append(_jsonl_example(line, f"{path}:{number}"))
  if not examples:
    raise ValueError(f"{path}: holds no examples")
  return Task(jsonl_name(path), limited(examples, limit))


def _jsonl_example(line: str, where: str) -> Choices:
  try:
    record = json.loads(line)
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
  if not isinstance(record, dict):
    raise ValueError(f"{where}: expected a JSON object with context, choices and answer")
  context, choices, answer = record.get("context"), record.get("choices"), record.get("answer")
  if not isinstance(context, str):
    raise ValueError(f"{where}: context must be a string, got {type(context).__name__}")
  if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
    raise ValueError(f"{where}: choices must be a list of at least 2 non-empty strings")
  if type(answer) is not int or not 0 <= answer < len(choices):
    raise ValueError(f"{where}: answer must be the index of one of the {len(choices)} choices, got {answer!r}")
  return Choices((context,) * len(choices), tuple(choices), answer)


# --------------------------------------------------------------------------------------------
# TFDS benchmarks, read from a data dir where they were prepared beforehand.
# Prompts follow lm-evaluation-harness (Gao et al. 2021), whose numbers the papers report.


def _text(value: Any) -> str:
  return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _hellaswag_clean(text: str) -> str:
  # lm-evaluation-harness hellaswag `preprocess`: WikiHow step markers out, double spaces collapsed.
  text = text.strip().replace(" [title]", ". ")
  return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def _hellaswag(r: dict) -> Choices:
  context = _hellaswag_clean(f"{_text(r['activity_label'])}: {_text(r['context'])}")
  endings = tuple(" " + _hellaswag_clean(_text(e)) for e in r["endings"])
  return Choices((context,) * len(endings), endings, int(r["label"]))


def _arc(r: dict) -> Choices:
  context = f"Question: {_text(r['question'])}\nAnswer:"
  texts = tuple(" " + _text(t) for t in r["choices"]["text"])
  labels = [int(label) for label in r["choices"]["label"]]
  return Choices((context,) * len(texts), texts, labels.index(int(r["answerKey"])))


def _piqa(r: dict) -> Choices:
  context = f"Question: {_text(r['goal'])}\nAnswer:"
  return Choices((context,) * 2, (" " + _text(r["sol1"]), " " + _text(r["sol2"])), int(r["label"]))


def _winogrande(r: dict) -> Choices:
  # Partial scoring (Sakaguchi et al. 2020; lm-evaluation-harness): each option fills the blank in
  # the context and the rest of the sentence is the continuation both choices share.
  sentence = _text(r["sentence"])
  blank = sentence.index("_")
  rest = " " + sentence[blank + 1 :].strip()
  options = (_text(r["option1"]), _text(r["option2"]))
  return Choices(tuple(sentence[:blank] + o for o in options), (rest, rest), int(r["label"]))


@dataclasses.dataclass(frozen=True)
class TfdsTask:
  """A TFDS benchmark: dataset name, the split scored, the split demonstrations come from, the adapter."""

  dataset: str
  split: str
  pool_split: str
  adapt: Callable[[dict], Choices]
  # Builders still under tensorflow_datasets.text register only when their module is imported,
  # which `import tensorflow_datasets` leaves out when TensorFlow is not installed.
  module: str = ""


# Named as the downstream-metrics data names them (PAPERS.md §6.2). ARC's test split carries
# labels; the others hide them, so their validation split is scored.
TFDS_TASKS: dict[str, TfdsTask] = {
  "hellaswag": TfdsTask("hellaswag", "validation", "train", _hellaswag, "tensorflow_datasets.text.hellaswag"),
  "arc_easy": TfdsTask("ai2_arc/ARC-Easy", "test", "train", _arc),
  "arc_challenge": TfdsTask("ai2_arc/ARC-Challenge", "test", "train", _arc),
  "piqa": TfdsTask("piqa", "validation", "train", _piqa),
  "winogrande": TfdsTask("winogrande", "validation", "train_xl", _winogrande, "tensorflow_datasets.text.winogrande"),
}


def from_tfds(name: str, data_dir: str, limit: int = 0, shots: int = 0) -> Task:
  """A TFDS benchmark prepared in `data_dir`; nothing is downloaded. The pool is read only for shots > 0."""
  spec = TFDS_TASKS[name]
  if spec.module:
    importlib.import_module(spec.module)
  builder = _prepared_builder(spec.dataset, data_dir)
  examples = [spec.adapt(r) for r in _records(builder, spec.split, limit)]
  pool = tuple(spec.adapt(r) for r in _records(builder, spec.pool_split, 0)) if shots else ()
  return Task(name, tuple(examples), pool=pool)


def _prepared_builder(dataset: str, data_dir: str):
  import tensorflow_datasets as tfds

  if not epath.Path(data_dir).exists():
    raise ValueError(f"--data-dir: {data_dir} does not exist (needed for the TFDS task {dataset})")
  try:
    builder = tfds.builder(dataset, data_dir=data_dir)
  except (tfds.core.DatasetNotFoundError, ValueError) as e:
    raise ValueError(f"{dataset}: cannot open in {data_dir} ({str(e).splitlines()[0]})") from None
  if not builder.is_prepared():
    raise ValueError(
      f"{dataset}: not prepared in {data_dir}; nothing is downloaded at run time "
      f"(prepare it once: tfds build {dataset} --data_dir {data_dir})"
    )
  return builder


def _records(builder, split: str, limit: int) -> Iterator[dict]:
  import tensorflow_datasets as tfds

  from mixlaws.data import datasets

  if split not in builder.info.splits:
    raise ValueError(f"{builder.info.full_name}: has no split {split!r} (has {', '.join(builder.info.splits)})")
  total = builder.info.splits[split].num_examples
  count = min(total, limit) if limit else total
  if datasets.needs_tensorflow(builder, f"{builder.info.full_name}:"):
    yield from tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).take(count))
    return
  source = builder.as_data_source(split=split)
  for start in range(0, count, 256):
    yield from source.__getitems__(range(start, min(start + 256, count)))
