"""Local text corpora: which files, which documents, and the train/validation split by path hash."""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import pathlib
import sys
import sysconfig
from collections.abc import Iterator

from mixlaws.config import DataConfig

# Third-party packages live under the standard library's directory on some installs.
_NOT_STDLIB = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclasses.dataclass(frozen=True)
class File:
  """One corpus file and the name it is known by on every machine."""

  id: str  # path relative to the directory its glob starts from (stable across machines)
  path: str  # absolute path on this machine


@dataclasses.dataclass(frozen=True)
class Document:
  """A whole file, or one record of a .jsonl file."""

  id: str  # File.id, plus ":<line>" for a .jsonl record; the split hashes this
  path: str  # absolute path of its file
  line: int  # .jsonl: 1-based line number; 0: the whole file is the document


def stdlib_dir() -> str:
  return sysconfig.get_paths()["stdlib"]


def stdlib_files() -> list[File]:
  """This Python's standard-library .py files (the embedded default corpus)."""
  root = stdlib_dir()
  files = []
  for directory, subdirs, names in os.walk(root):
    subdirs[:] = [d for d in subdirs if d not in _NOT_STDLIB]  # prune: never walked, never read
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(directory, name)
        files.append(File(os.path.relpath(path, root).replace(os.sep, "/"), path))
  if not files:
    raise ValueError(f"data.source: no .py files under the standard library at {root}")
  return sorted(files, key=lambda f: f.id)


def _glob_base(pattern: str) -> str:
  """The directory a glob starts from: its leading components without wildcards."""
  parts = pathlib.PurePath(pattern).parts
  fixed = []
  for part in parts[:-1]:
    if glob.has_magic(part):
      break
    fixed.append(part)
  return str(pathlib.PurePath(*fixed)) if fixed else "."


def glob_files(paths: str) -> list[File]:
  """The files matched by comma-separated globs (`**` recurses); each glob must match a file."""
  files: dict[str, File] = {}
  for pattern in (p.strip() for p in paths.split(",")):
    if not pattern:
      continue
    pattern = os.path.expanduser(pattern)
    base = os.path.abspath(_glob_base(pattern))
    matched = [os.path.abspath(m) for m in glob.glob(pattern, recursive=True) if os.path.isfile(m)]
    if not matched:
      raise ValueError(f"data.paths: {pattern!r} matches no files")
    for path in matched:
      files.setdefault(path, File(os.path.relpath(path, base), path))
  return sorted(files.values(), key=lambda f: (f.id, f.path))


def corpus_files(data: DataConfig) -> list[File]:
  if data.source == "stdlib":
    return stdlib_files()
  if data.source == "files":
    return glob_files(data.paths)
  raise ValueError(f"data.source: {data.source!r} is not a local text source")


def fingerprint(data: DataConfig, files: list[File]) -> str:
  """Names a prepared corpus: the options that shape it and each file's size and mtime."""
  h = hashlib.sha256()
  options = {
    "source": data.source,
    "text_field": data.text_field,
    "validation_fraction": data.validation_fraction,
    "max_documents": data.max_documents,
    "python": sys.version if data.source == "stdlib" else "",
  }
  h.update(json.dumps(options, sort_keys=True).encode())
  for f in files:
    st = os.stat(f.path)
    h.update(f"\0{f.id}\0{f.path}\0{st.st_size}\0{st.st_mtime_ns}".encode())
  return h.hexdigest()


def _unit_hash(doc_id: str) -> float:
  """A document's place in [0, 1): the first 8 bytes of sha256 of its id."""
  return int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big") / 2**64


def _documents(files: list[File]) -> Iterator[Document]:
  for f in files:
    if f.path.endswith(".jsonl"):
      with open(f.path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
          if line.strip():
            yield Document(f"{f.id}:{number}", f.path, number)
    elif os.path.getsize(f.path) > 0:
      yield Document(f.id, f.path, 0)


def split_documents(data: DataConfig, files: list[File]) -> dict[str, list[Document]]:
  """Train and validation documents, split by a hash of each document's id, in id order.

  A document is held out when the hash of its id falls below `data.validation_fraction`, so the
  split of a document never depends on the others. The one exception keeps tiny corpora usable: when
  no document falls below the fraction, the one with the lowest hash is held out. Each split then
  keeps its first `data.max_documents` documents.
  """
  docs = list(_documents(files))
  where = "the standard library" if data.source == "stdlib" else repr(data.paths)
  if len(docs) < 2:
    raise ValueError(f"data.paths: {where} holds {len(docs)} non-empty documents; a train/validation split needs 2")
  scores = [_unit_hash(d.id) for d in docs]
  held_out = [s < data.validation_fraction for s in scores]
  if not any(held_out):
    held_out[scores.index(min(scores))] = True
  if all(held_out):
    held_out[scores.index(max(scores))] = False
  splits = {
    "train": [d for d, out in zip(docs, held_out) if not out],
    "validation": [d for d, out in zip(docs, held_out) if out],
  }
  if data.max_documents:
    splits = {name: split[: data.max_documents] for name, split in splits.items()}
  return splits


def read_documents(docs: list[Document], text_field: str) -> Iterator[tuple[str, str]]:
  """(id, text) of each document; undecodable bytes become U+FFFD instead of failing."""
  by_file: dict[str, dict[int, Document]] = {}
  for d in docs:
    by_file.setdefault(d.path, {})[d.line] = d
  for path, wanted in by_file.items():
    if 0 in wanted:
      with open(path, "rb") as fh:
        yield wanted[0].id, fh.read().decode("utf-8", errors="replace")
      continue
    with open(path, "rb") as fh:
      for number, line in enumerate(fh, start=1):
        if number in wanted:
          yield wanted[number].id, _jsonl_text(line, text_field, f"{path}:{number}")


def _jsonl_text(line: bytes, text_field: str, where: str) -> str:
  try:
    record = json.loads(line.decode("utf-8", errors="replace"))
  except json.JSONDecodeError as e:
    raise ValueError(f"{where}: not valid JSON ({e.msg})") from None
  if not isinstance(record, dict) or text_field not in record:
    raise ValueError(f"data.text_field: {where} has no field {text_field!r}")
  text = record[text_field]
  if not isinstance(text, str):
    raise ValueError(f"data.text_field: {where} field {text_field!r} is {type(text).__name__}, not a string")
  return text
