"""Cross-process file locks, so processes sharing a machine prepare each dataset once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


def lock_dir(data_dir: str) -> str:
  """Lock files sit in a local data dir; for a remote one (gs://…) in ~/.cache/mixlaws/locks."""
  if "://" in data_dir:
    return os.path.expanduser("~/.cache/mixlaws/locks")
  return os.path.join(data_dir, ".locks")


@contextlib.contextmanager
def locked(data_dir: str, name: str) -> Iterator[None]:
  """Holds an exclusive lock named `name` for the data dir while the block runs."""
  directory = lock_dir(data_dir)
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, f"{name}.lock"), "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
    try:
      yield
    finally:
      fcntl.flock(fh, fcntl.LOCK_UN)
