"""Cross-process file locks, so processes sharing a machine prepare each dataset once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


@contextlib.contextmanager
def locked(directory: str, name: str) -> Iterator[None]:
  """Holds an exclusive lock named `name` in a local directory while the block runs."""
  if "://" in directory:  # a bucket has no file locks; lock on this machine instead
    directory = os.path.expanduser("~/.cache/mixlaws/locks")
  directory = os.path.join(directory, ".locks")
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, f"{name}.lock"), "a") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
    try:
      yield
    finally:
      fcntl.flock(fh, fcntl.LOCK_UN)
